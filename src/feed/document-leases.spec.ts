import { ChangeFeedService } from './change-feed.service';
import { DocumentLeases, MAX_UNFINISHED } from './document-leases';
import { LockRepository } from './lock.repository';
import { syncTimings } from './sync.constants';

/** The bookkeeping of failed commits, on in-memory leases and a feed whose replay fails (the database is away). */
describe('DocumentLeases: unfinished documents', () => {
  const setup = () => {
    const locks = new LockRepository({} as never, { sync: { singleNode: true } } as never);
    const replayed: string[] = [];
    let failing = true;
    const feed = {
      replayAt: async (key: string) => {
        if (failing) throw new Error('database away');
        replayed.push(key);
      },
      replayPending: async () => undefined,
    } as unknown as ChangeFeedService;
    const leases = new DocumentLeases(syncTimings(60_000), locks, feed);
    return { leases, locks, replayed, recover: () => (failing = false) };
  };

  it('a document whose roll-forward failed keeps its lease, and its next writer in this process finishes it first', async () => {
    const { leases, locks, replayed, recover } = setup();
    const held = await leases.acquire(['c:a', 'c:b']);
    await expect(held.finish(new Map([['c:a', [1, 2]]]))).rejects.toThrow('database away');
    held.release();
    expect(leases.unfinishedCount).toBe(1);
    expect(await locks.tryAcquire(['c:a', 'c:b'], 1000)).toEqual(['c:a']); // c:b was given back
    await locks.release(['c:b']);
    recover();
    const next = await leases.acquire(['c:a']);
    expect(replayed).toEqual(['c:a']);
    expect(leases.unfinishedCount).toBe(0);
    next.release();
  });

  it(`remembers at most ${MAX_UNFINISHED} documents: beyond, a failed one is left to the feed walk's replay`, async () => {
    const { leases } = setup();
    const keys = Array.from({ length: MAX_UNFINISHED + 50 }, (_, i) => `c:${i}`);
    const held = await leases.acquire(keys);
    for (const k of keys) await held.finish(new Map([[k, [1]]])).catch(() => undefined);
    held.release();
    expect(leases.unfinishedCount).toBe(MAX_UNFINISHED);
  });
});
