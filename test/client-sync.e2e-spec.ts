/* The client SDK against the real server (embedded database): two Node clients syncing, offline
 * edits converging, conflict rollback, restart catch-up, token refresh. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FileStorage, MemoryStorage, SyncClient, type SyncClientOptions, type SyncDocument } from '@sync/client';
import { emitAck, joinedClient, startTestApp, TestApp, waitFor } from './support/app';
import { hs256, TEST_SECRET } from './support/jwt';

const clients: SyncClient[] = [];
function makeClient(t: TestApp, userId: string, storage: MemoryStorage | FileStorage = new MemoryStorage(), opts: SyncClientOptions = {}): SyncClient {
  const c = new SyncClient(t.url, userId, storage, {
    logger: null,
    transports: ['websocket'],
    connectTimeoutMs: 20_000,
    socketOptions: { reconnectionDelay: 100, reconnectionDelayMax: 500 },
    ...opts,
  });
  clients.push(c);
  return c;
}
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
});

const strip = (docs: SyncDocument[]) => docs.map(({ _id, title, completed, n }) => ({ _id, title, completed, n }));

describe('client SDK e2e (dev auth)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ AUTH_MODE: 'dev' }, 'client_sync');
  });
  afterAll(async () => {
    await t?.close();
  });

  it('two Node clients sync inserts, updates and deletes through the server', async () => {
    const a = makeClient(t, 'alice');
    const b = makeClient(t, 'bob');
    await a.subscribe('tasks');
    await b.subscribe('tasks');
    await Promise.all([a.connect(), b.connect()]);

    await a.makeChange('insert', 'tasks', 'two-1', { title: 'Buy groceries', completed: false });
    await waitFor(() => b.getDocument('tasks', 'two-1')?.title === 'Buy groceries', 10_000, 'insert at bob');
    expect(b.getDocument('tasks', 'two-1')).toMatchObject({ _id: 'two-1', completed: false, _updated_by: 'alice' });

    await b.makeChange('update', 'tasks', 'two-1', { completed: true });
    await waitFor(() => a.getDocument('tasks', 'two-1')?.completed === true, 10_000, 'update at alice');
    expect(a.getDocument('tasks', 'two-1')).toMatchObject({ title: 'Buy groceries', completed: true });

    await a.makeChange('delete', 'tasks', 'two-1');
    await waitFor(() => !b.getDocument('tasks', 'two-1'), 10_000, 'delete at bob');
    await Promise.all([a.whenSynced(), b.whenSynced()]);
    expect(a.getPendingChangesCount()).toBe(0);
    expect(b.getPendingChangesCount()).toBe(0);
  });

  it('a late subscriber bootstraps what exists, then follows live changes', async () => {
    const a = makeClient(t, 'alice');
    await a.connect();
    for (let i = 0; i < 5; i++) await a.makeChange('insert', 'notes', `boot-${i}`, { n: i });
    await a.whenSynced();
    const b = makeClient(t, 'bob');
    await b.connect();
    await b.subscribe('notes');
    expect(b.getDocuments('notes').filter((d) => String(d._id).startsWith('boot-'))).toHaveLength(5);
    await a.makeChange('update', 'notes', 'boot-0', { n: 100 });
    await waitFor(() => b.getDocument('notes', 'boot-0')?.n === 100, 10_000, 'live update after bootstrap');
  });

  it('offline edits on two clients converge after both reconnect', async () => {
    const a = makeClient(t, 'alice');
    const b = makeClient(t, 'bob');
    await a.subscribe('tasks');
    await b.subscribe('tasks');
    await Promise.all([a.connect(), b.connect()]);
    await a.makeChange('insert', 'tasks', 'conv-shared', { title: 'shared', n: 0 });
    await a.makeChange('insert', 'tasks', 'conv-gone', { title: 'to be deleted', n: 0 });
    await waitFor(() => !!b.getDocument('tasks', 'conv-gone'), 10_000, 'initial docs at bob');
    await a.whenSynced();

    await Promise.all([a.disconnect(), b.disconnect()]);
    // both edit the same document (b later, so b wins), each adds its own, one deletes
    await a.makeChange('update', 'tasks', 'conv-shared', { title: 'alice was here', n: 1 });
    await a.makeChange('insert', 'tasks', 'conv-a', { title: 'from alice offline', n: 1 });
    await new Promise((r) => setTimeout(r, 5));
    await b.makeChange('update', 'tasks', 'conv-shared', { title: 'bob was here', n: 2 });
    await b.makeChange('insert', 'tasks', 'conv-b', { title: 'from bob offline', n: 2 });
    await b.makeChange('delete', 'tasks', 'conv-gone');
    expect(a.getPendingChangesCount()).toBe(2);
    expect(b.getPendingChangesCount()).toBe(3);

    await Promise.all([a.connect(), b.connect()]);
    await Promise.all([a.whenSynced(), b.whenSynced()]);
    await Promise.all([a.whenSynced(), b.whenSynced()]); // one more round: each has read the other's changes
    const mine = (c: SyncClient) => strip(c.getDocuments('tasks', (d) => String(d._id).startsWith('conv-')));
    expect(mine(a)).toEqual(mine(b));
    expect(a.getDocument('tasks', 'conv-shared')).toMatchObject({ title: 'bob was here', n: 2 });
    expect(a.getDocument('tasks', 'conv-gone')).toBeUndefined();
    expect(mine(a).map((d) => d._id)).toEqual(['conv-a', 'conv-b', 'conv-shared']);
  });

  it('a change that loses its conflict is replaced by the server version (rollback)', async () => {
    const a = makeClient(t, 'alice');
    let clock = Date.now() - 10_000; // alice's clock is 10 s behind
    const b = makeClient(t, 'bob', new MemoryStorage(), { now: () => clock });
    await a.subscribe('tasks');
    await b.subscribe('tasks');
    await Promise.all([a.connect(), b.connect()]);
    await a.makeChange('insert', 'tasks', 'conflict-1', { title: 'v1' });
    await waitFor(() => !!b.getDocument('tasks', 'conflict-1'), 10_000, 'v1 at bob');
    await b.disconnect();
    await a.makeChange('update', 'tasks', 'conflict-1', { title: 'alice wins' });
    await a.whenSynced();
    // bob edits offline with an older clock than alice's edit: optimistic, then rolled back
    clock = Date.now() - 5_000;
    const conflicts: (SyncDocument | null)[] = [];
    b.on('conflict', (c) => conflicts.push(c.current));
    await b.makeChange('update', 'tasks', 'conflict-1', { title: 'bob loses' });
    expect(b.getDocument('tasks', 'conflict-1')).toMatchObject({ title: 'bob loses' });
    await b.connect();
    await b.whenSynced();
    expect(conflicts).toEqual([expect.objectContaining({ title: 'alice wins' })]);
    expect(b.getDocument('tasks', 'conflict-1')).toMatchObject({ title: 'alice wins' });
    expect(b.view.isPending('tasks', 'conflict-1')).toBe(false);
  });

  it('restarts from its file storage: shows stored data offline, then catches up from the cursor', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'client-e2e-'));
    try {
      let b = makeClient(t, 'bob', new FileStorage(dir));
      await b.subscribe('restart');
      await b.connect();
      const a = makeClient(t, 'alice');
      await a.connect();
      await a.makeChange('insert', 'restart', 'r1', { n: 1 });
      await waitFor(() => !!b.getDocument('restart', 'r1'), 10_000, 'r1 at bob');
      await b.close();
      await a.makeChange('update', 'restart', 'r1', { n: 2 });
      await a.makeChange('insert', 'restart', 'r2', { n: 1 });
      await a.whenSynced();

      b = makeClient(t, 'bob', new FileStorage(dir));
      await b.initialize();
      expect(b.getDocument('restart', 'r1')).toMatchObject({ n: 1 });
      await b.connect();
      await b.whenSynced();
      expect(strip(b.getDocuments('restart'))).toEqual([
        { _id: 'r1', n: 2, title: undefined, completed: undefined },
        { _id: 'r2', n: 1, title: undefined, completed: undefined },
      ]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('sends a large outbox in batches of at most MAX_BATCH_SIZE', async () => {
    const a = makeClient(t, 'alice', new MemoryStorage(), { maxBatchSize: 100 });
    const b = makeClient(t, 'bob');
    await b.subscribe('bulk');
    await b.connect();
    for (let i = 0; i < 250; i++) await a.makeChange('insert', 'bulk', `bulk-${i}`, { n: i });
    await a.connect();
    await a.whenSynced();
    await waitFor(() => b.getDocuments('bulk').length === 250, 15_000, 'all 250 at bob');
  });
});

describe('client SDK e2e (JWT auth, token refresh)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ AUTH_JWT_SECRET: TEST_SECRET, TOKEN_EXPIRY_GRACE_MS: '1500' }, 'client_jwt');
  });
  afterAll(async () => {
    await t?.close();
  });

  it('re-joins with a fresh token when the server says it expired, and keeps syncing', async () => {
    let issued = 0;
    const getToken = async () => {
      issued++;
      return hs256({ sub: 'carol' }, { expiresIn: Math.floor(Date.now() / 1000) + 2 });
    };
    const c = makeClient(t, 'carol', new MemoryStorage(), { getToken });
    await c.subscribe('tasks');
    await c.connect();
    const d = makeClient(t, 'dave', new MemoryStorage(), { getToken: () => hs256({ sub: 'dave' }, { expiresIn: '1h' }) });
    await d.connect();
    // past carol's expiry and the grace period: a client that did not refresh would be disconnected
    await new Promise((r) => setTimeout(r, 4_500));
    expect(issued).toBeGreaterThanOrEqual(2);
    await d.makeChange('insert', 'tasks', 'jwt-1', { title: 'after refresh' });
    await waitFor(() => !!c.getDocument('tasks', 'jwt-1'), 10_000, 'live change after token refresh');
    expect(c.isOnline()).toBe(true);
    await c.makeChange('insert', 'tasks', 'jwt-2', { title: 'written with the fresh token' });
    await c.whenSynced();
    expect(c.getPendingChangesCount()).toBe(0);
  });

  it('a userId that does not match the token is refused (no silent impersonation)', async () => {
    const c = makeClient(t, 'mallory', new MemoryStorage(), { token: await hs256({ sub: 'erin' }, { expiresIn: '1h' }), connectTimeoutMs: 2_000 });
    const errors: string[] = [];
    c.on('error', (e) => errors.push(e.message));
    await expect(c.connect()).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect(errors.join('\n')).toMatch(/join refused/);
  });
});

describe('client SDK e2e (cursor expiry)', () => {
  let t: TestApp;
  beforeAll(async () => {
    // 2 seconds of change retention, swept every second
    t = await startTestApp({ AUTH_MODE: 'dev', CHANGE_RETENTION_DAYS: String(2 / 86400), RETENTION_SWEEP_INTERVAL_MS: '1000' }, 'client_expiry');
  });
  afterAll(async () => {
    await t?.close();
  });

  it('offline past the retention window: bootstraps again, keeps unsent changes, drops what was deleted', async () => {
    const storage = new MemoryStorage();
    let b = makeClient(t, 'bob', storage);
    const a = makeClient(t, 'alice');
    await b.subscribe('exp');
    await Promise.all([a.connect(), b.connect()]);
    await a.makeChange('insert', 'exp', 'stays', { n: 1 });
    await a.makeChange('insert', 'exp', 'goes', { n: 1 });
    await waitFor(() => b.getDocuments('exp').length === 2, 10_000, 'both at bob');
    await b.whenSynced();
    const bobCursor = b.getCursor();
    await b.close();

    await a.makeChange('update', 'exp', 'stays', { n: 2 });
    await a.makeChange('delete', 'exp', 'goes');
    await a.whenSynced();
    // wait until the feed entries bob would need are purged
    const raw = await joinedClient(t.url, 'probe');
    await waitFor(async () => (await emitAck(raw, 'sync:get_changes', { cursor: bobCursor as string })).code === 'CURSOR_EXPIRED', 20_000, 'cursor expiry');
    raw.close();

    b = makeClient(t, 'bob', storage);
    const resets: string[] = [];
    b.on('reset', (r) => resets.push(r.reason));
    await b.initialize();
    await b.makeChange('insert', 'exp', 'bob-offline', { n: 1 });
    await b.connect();
    await b.whenSynced();
    expect(resets).toEqual(['CURSOR_EXPIRED']);
    expect(b.getDocuments('exp').map((d) => [d._id, d.n])).toEqual([
      ['bob-offline', 1],
      ['stays', 2],
    ]);
  });
});
