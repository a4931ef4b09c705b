/* The SDK against the real server: changes refused for good in the middle of a long offline queue
 * never block the rest, and a client reset (CURSOR_EXPIRED after the feed was purged) that
 * discards unsent changes when the app asks it to. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MemoryStorage, SyncClient, type SyncClientOptions } from '@sync/client';
import { emitAck, joinedClient, startTestApp, TestApp, waitFor } from './support/app';

const RULES = {
  default: { read: 'TRUEPREDICATE', write: 'TRUEPREDICATE' },
  collections: {
    jobs: { read: 'TRUEPREDICATE', write: 'owner == %user.id' },
  },
};

function makeClient(t: TestApp, user: string, storage = new MemoryStorage(), opts: SyncClientOptions = {}): SyncClient {
  return new SyncClient(t.url, user, storage, { logger: null, transports: ['websocket'], connectTimeoutMs: 30_000, reconnectDelayMs: 100, ...opts });
}

describe('SDK: refused changes never block the outbox (real server)', () => {
  let t: TestApp;
  let dir: string;
  const clients: SyncClient[] = [];

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sdk-res-'));
    fs.writeFileSync(path.join(dir, 'rules.json'), JSON.stringify(RULES));
    t = await startTestApp(
      { AUTH_MODE: 'dev', SYNC_RULES_FILE: path.join(dir, 'rules.json'), MAX_CHANGE_BYTES: '4096', SYNC_RATE_LIMIT_MAX: '100000' },
      'sdk_resilience',
    );
  }, 60_000);
  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    await t?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a FORBIDDEN and a PAYLOAD_TOO_LARGE change in a queue of 120 made offline: both rolled back with typed events, the other 118 applied', async () => {
    const me = makeClient(t, 'worker', new MemoryStorage(), { maxBatchSize: 25 });
    clients.push(me);
    await me.subscribe('jobs');
    const rejected: { id: string; code: string }[] = [];
    me.on('rejected', (r) => rejected.push({ id: r.change.documentId, code: r.code }));
    for (let i = 0; i < 120; i++) {
      const id = `job-${String(i).padStart(3, '0')}`;
      if (i === 40)
        await me.makeChange('insert', 'jobs', id, { owner: 'someone-else', i }); // the write rule refuses it
      else if (i === 80)
        await me.makeChange('insert', 'jobs', id, { owner: 'worker', i, blob: 'x'.repeat(10_000) }); // over MAX_CHANGE_BYTES
      else await me.makeChange('insert', 'jobs', id, { owner: 'worker', i });
    }
    await me.makeChange('update', 'jobs', 'job-041', { done: true }); // behind the refused one, same batch area
    expect(me.getPendingChangesCount()).toBe(121);
    expect(me.getDocument('jobs', 'job-040')).toBeDefined(); // optimistic until the server answers

    await me.connect();
    await me.whenSynced(60_000);
    expect(rejected.sort((a, b) => a.id.localeCompare(b.id))).toEqual([
      { id: 'job-040', code: 'FORBIDDEN' },
      { id: 'job-080', code: 'PAYLOAD_TOO_LARGE' },
    ]);
    expect(me.getPendingChangesCount()).toBe(0);
    expect(me.inspect().outbox).toEqual([]);
    expect(me.getDocument('jobs', 'job-040')).toBeUndefined();
    expect(me.getDocument('jobs', 'job-080')).toBeUndefined();
    expect(me.getDocument('jobs', 'job-041')).toMatchObject({ done: true });

    // what the server holds, seen by a fresh client
    const other = makeClient(t, 'reader');
    clients.push(other);
    await other.subscribe('jobs');
    await other.connect();
    const ids = other.getDocuments('jobs').map((d) => String(d._id));
    expect(ids).toHaveLength(118);
    expect(ids).not.toContain('job-040');
    expect(ids).not.toContain('job-080');
    expect(other.getDocument('jobs', 'job-041')).toMatchObject({ done: true, owner: 'worker' });
  }, 120_000);
});

describe('SDK: client reset after CURSOR_EXPIRED (real server, feed purged)', () => {
  let t: TestApp;
  beforeAll(async () => {
    // 2 seconds of change retention, swept every second
    t = await startTestApp({ AUTH_MODE: 'dev', CHANGE_RETENTION_DAYS: String(2 / 86400), RETENTION_SWEEP_INTERVAL_MS: '1000' }, 'sdk_reset');
  }, 60_000);
  afterAll(async () => t?.close());

  it('discardUnsyncedChanges: unsent changes are dropped and listed, the view re-bootstraps to the server state', async () => {
    const storage = new MemoryStorage();
    let bob = makeClient(t, 'bob', storage);
    const alice = makeClient(t, 'alice');
    await bob.subscribe('resets');
    await alice.subscribe('resets');
    await Promise.all([alice.connect(), bob.connect()]);
    await alice.makeChange('insert', 'resets', 'stays', { n: 1 });
    await alice.makeChange('insert', 'resets', 'goes', { n: 1 });
    await waitFor(() => bob.getDocuments('resets').length === 2, 20_000, 'both at bob');
    await bob.whenSynced();
    const bobCursor = bob.getCursor();
    await bob.close();

    await alice.makeChange('update', 'resets', 'stays', { n: 2 });
    await alice.makeChange('delete', 'resets', 'goes');
    await alice.whenSynced();
    const raw = await joinedClient(t.url, 'probe');
    await waitFor(async () => (await emitAck(raw, 'sync:get_changes', { cursor: bobCursor as string })).code === 'CURSOR_EXPIRED', 30_000, 'cursor expiry');
    raw.close();

    bob = makeClient(t, 'bob', storage, { clientResetMode: 'discardUnsyncedChanges' });
    const resets: { reason: string; mode: string; discarded: string[] }[] = [];
    bob.on('reset', (r) => resets.push({ reason: r.reason, mode: r.mode, discarded: r.discarded.map((c) => c.documentId) }));
    await bob.initialize();
    await bob.makeChange('insert', 'resets', 'bob-offline', { n: 1 });
    await bob.makeChange('update', 'resets', 'stays', { n: 99 });
    await bob.connect();
    await bob.whenSynced();
    expect(resets).toEqual([{ reason: 'CURSOR_EXPIRED', mode: 'discardUnsyncedChanges', discarded: ['bob-offline', 'stays'] }]);
    expect(bob.getPendingChangesCount()).toBe(0);
    expect(bob.getDocuments('resets').map((d) => [d._id, d.n])).toEqual([['stays', 2]]);
    // and the server never saw the discarded changes
    await alice.whenSynced();
    expect(alice.getDocument('resets', 'bob-offline')).toBeUndefined();
    expect(alice.getDocument('resets', 'stays')).toMatchObject({ n: 2 });
    await Promise.all([alice.close(), bob.close()]);
  }, 120_000);
});
