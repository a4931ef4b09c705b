/* The feed's high-water mark (`_sync_counters/feed`) is raised by every batch's write-ahead. Raises
 * of one process are issued one after another (FerretDB's `$max` is a read-then-write); raises asked
 * for while one is in flight are merged into the next update, so concurrent batches do not queue one
 * database update each behind each other. */
import { Collection } from 'mongodb';
import { ChangeFeedRepository, COUNTERS_COLLECTION } from '../src/feed/change-feed.repository';
import { connectTestDb } from './support/db';
import { startTestApp, TestApp } from './support/app';

describe('feed high-water mark', () => {
  let t: TestApp;
  let db: Awaited<ReturnType<typeof connectTestDb>>;
  let repo: ChangeFeedRepository;

  beforeAll(async () => {
    t = await startTestApp({ AUTH_MODE: 'dev' }, 'highwater');
    db = await connectTestDb('unused', t.mongoUri);
    repo = t.app.get(ChangeFeedRepository);
  });
  afterAll(async () => {
    await db?.client.close();
    await t?.close();
  });

  const stored = async () => (await db.db.collection<{ _id: string; highWater?: number }>(COUNTERS_COLLECTION).findOne({ _id: 'feed' }))?.highWater ?? 0;

  it('merges concurrent raises into at most two updates, and the highest one lands', async () => {
    const spy = jest.spyOn(Collection.prototype, 'updateOne');
    try {
      const base = await stored();
      // out of order on purpose: the mark never goes down
      const targets = Array.from({ length: 40 }, (_, i) => base + 1 + ((i * 7) % 40));
      await Promise.all(targets.map((p) => repo.raiseHighWater(p)));
      const updates = spy.mock.contexts.filter((c) => (c as Collection).collectionName === COUNTERS_COLLECTION).length;
      expect(updates).toBeGreaterThanOrEqual(1);
      expect(updates).toBeLessThanOrEqual(2);
      expect(await stored()).toBe(base + 40);

      // a raise asked for while one is in flight waits for the next update, which covers it
      spy.mockClear();
      const first = repo.raiseHighWater(base + 50);
      await Promise.resolve(); // the first update is on its way
      const second = Promise.all([repo.raiseHighWater(base + 60), repo.raiseHighWater(base + 55)]);
      await second;
      expect(await stored()).toBe(base + 60);
      await first;
      const after = spy.mock.contexts.filter((c) => (c as Collection).collectionName === COUNTERS_COLLECTION).length;
      expect(after).toBeLessThanOrEqual(2);
    } finally {
      spy.mockRestore();
    }
  });
});
