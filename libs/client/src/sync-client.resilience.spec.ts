/* eslint-disable @typescript-eslint/no-explicit-any */
import { MemoryStorage } from './storage/memory-storage';
import { SyncClient, SyncClientError } from './sync-client';
import { until, useFakeServer } from './testing/fake-harness';
import { backoffDelay } from './util';

/* An outbox that never sticks, backoff that reaches minutes, server disconnect notices, the
 * inspector and client-reset modes, against the in-memory protocol server (test/sdk-*.e2e-spec.ts
 * covers the same against the real server). */

const h = useFakeServer({ reconnectDelayMs: 50 });
const { client } = h;

/** Refuses changes to these document ids with this per-change code (the rest go through). */
function refuseDocs(code: string, ids: string[]): void {
  h.server.interceptors.push((event, payload) => {
    if (event !== 'sync:changeBatch') return undefined;
    const changes: any[] = payload.changes ?? [];
    if (!changes.some((c) => ids.includes(c.documentId))) return undefined;
    const results = changes.map((c) =>
      ids.includes(c.documentId) ? { success: false, code, changeId: c.changeId, error: `refused: ${code}` } : (h.server as any).apply(c, 'u', undefined),
    );
    return { success: true, results, successCount: results.filter((r) => r.success).length, failureCount: results.filter((r) => !r.success).length };
  });
}

describe('an outbox that never sticks', () => {
  it.each(['FORBIDDEN', 'INVALID_PAYLOAD', 'PAYLOAD_TOO_LARGE', 'SCHEMA_VIOLATION'])(
    'a change refused with %s in the middle of a long offline queue is rolled back; the rest go through',
    async (code) => {
      const c = client('u');
      await c.subscribe('tasks');
      const rejected: { id: string; code: string }[] = [];
      c.on('rejected', (r) => rejected.push({ id: r.change.documentId, code: r.code }));
      for (let i = 0; i < 40; i++) await c.makeChange('insert', 'tasks', `t-${i}`, { i });
      refuseDocs(code, ['t-17']);
      await c.connect();
      await c.whenSynced();
      expect(rejected).toEqual([{ id: 't-17', code }]);
      expect(c.getPendingChangesCount()).toBe(0);
      expect(c.getDocument('tasks', 't-17')).toBeUndefined(); // the optimistic insert was rolled back
      expect(c.getDocuments('tasks')).toHaveLength(39);
      for (let i = 0; i < 40; i++) expect(h.server.get('tasks', `t-${i}`)).toEqual(i === 17 ? undefined : expect.objectContaining({ i }));
    },
  );

  it('a code the client does not know is retried a few times, then refused (never stuck); the inspector shows it', async () => {
    const c = client('u');
    await c.connect();
    refuseDocs('SOMETHING_NEW', ['odd']);
    const rejected: string[] = [];
    c.on('rejected', (r) => rejected.push(r.code));
    await c.makeChange('insert', 'tasks', 'odd', { n: 1 });
    await c.makeChange('insert', 'tasks', 'fine', { n: 1 });
    await until(() => h.server.get('tasks', 'fine') !== undefined, 'the change behind it applied');
    // still in the outbox, with its error, until the attempts run out
    const seen = c.inspect().outbox.find((e) => e.documentId === 'odd');
    if (seen) expect(seen.lastError?.code).toBe('SOMETHING_NEW');
    await until(() => rejected.length === 1, 'rejected');
    expect(rejected).toEqual(['SOMETHING_NEW']);
    expect(c.getPendingChangesCount()).toBe(0);
    expect(c.inspect().lastError).toMatchObject({ code: 'SOMETHING_NEW' });
  });

  it('a big change the server never answers (its connection closes: over the message limit) is refused after 5 tries alone; the rest go through', async () => {
    await h.restart({ maxHttpBufferSize: 100_000 });
    const c = client('u', new MemoryStorage(), { ackTimeoutMs: 2_000, maxChangeBytes: 300_000 });
    const rejected: string[] = [];
    c.on('rejected', (r) => rejected.push(`${r.change.documentId}:${r.code}`));
    await c.makeChange('insert', 'tasks', 'a', { n: 1 });
    await c.makeChange('insert', 'tasks', 'huge', { pad: 'x'.repeat(150_000) });
    await c.makeChange('insert', 'tasks', 'b', { n: 1 });
    await c.connect().catch(() => undefined);
    await until(() => c.getPendingChangesCount() === 0, 'outbox empty', 30_000);
    expect(rejected).toEqual(['huge:PAYLOAD_TOO_LARGE']);
    expect(c.getDocument('tasks', 'huge')).toBeUndefined();
    expect(h.server.get('tasks', 'a')).toMatchObject({ n: 1 });
    expect(h.server.get('tasks', 'b')).toMatchObject({ n: 1 });
  });

  it('honours retryAfterMs from a RATE_LIMITED ack (waits at least that long, same changeId)', async () => {
    const c = client('u');
    await c.connect();
    const times: number[] = [];
    h.server.interceptors.push((event) => {
      if (event !== 'sync:changeBatch') return undefined;
      times.push(Date.now());
      if (times.length === 1) return { success: false, code: 'RATE_LIMITED', error: 'shedding load', retryAfterMs: 700 };
      return undefined;
    });
    const ch = await c.makeChange('insert', 'tasks', 'x', { n: 1 });
    await until(() => c.inspect().outbox[0]?.lastError?.code === 'RATE_LIMITED', 'inspector shows the RATE_LIMITED');
    expect(c.inspect().outbox[0]).toMatchObject({ changeId: ch.changeId, state: 'retrying', attempts: 1 });
    await c.whenSynced();
    expect(times.length).toBe(2);
    expect(times[1] - times[0]).toBeGreaterThanOrEqual(690);
    expect(h.server.get('tasks', 'x')).toMatchObject({ n: 1 });
  });

  it('backoff grows to minutes with jitter, and socket.io reconnects are not capped at 5 s', async () => {
    const delays = Array.from({ length: 200 }, () => backoffDelay(30, 1_000, 300_000));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(150_000);
    expect(Math.max(...delays)).toBeLessThanOrEqual(450_000);
    expect(new Set(delays).size).toBeGreaterThan(100); // spread out, not in step
    expect(backoffDelay(0, 1_000, 300_000)).toBeLessThanOrEqual(1_500);
    const c = new SyncClient('http://127.0.0.1:9', 'u', null, { logger: null });
    h.closeAfterTest(c);
    void c.connect().catch(() => undefined);
    await until(() => !!(c as any).socket, 'socket created');
    const manager = (c as any).socket.io;
    expect(manager.reconnectionDelayMax()).toBe(300_000);
    expect(manager.randomizationFactor()).toBe(0.5);
  });
});

describe('server disconnect notices', () => {
  it('sync:shutdown: reconnects after the hint (spread out) and catches up', async () => {
    const c = client('u');
    await c.subscribe('tasks');
    await c.connect();
    const notices: any[] = [];
    c.on('disconnected', (d) => notices.push(d));
    h.server.broadcast = false;
    for (const s of h.server.io.sockets.sockets.values()) {
      s.emit('sync:shutdown', { retryAfterMs: 300 });
      setTimeout(() => s.disconnect(true), 20);
    }
    await until(() => notices.length === 1, 'disconnected event');
    expect(notices[0]).toMatchObject({ reason: 'shutdown', code: 'SHUTDOWN' });
    expect(notices[0].retryInMs).toBeGreaterThanOrEqual(250);
    expect(notices[0].retryInMs).toBeLessThanOrEqual(650);
    h.server.applyExternal({ operation: 'insert', collection: 'tasks', documentId: 'while-away', data: { n: 1 }, timestamp: Date.now() });
    await until(() => c.isOnline(), 'back online');
    await c.whenSynced();
    expect(c.getDocument('tasks', 'while-away')).toMatchObject({ n: 1 });
  });

  it('sync:error SLOW_CONSUMER: a typed error, reconnect with backoff, catch up what the live stream dropped', async () => {
    const c = client('u');
    await c.subscribe('tasks');
    await c.connect();
    const errors: string[] = [];
    const notices: any[] = [];
    c.on('error', (e) => errors.push((e as SyncClientError).code));
    c.on('disconnected', (d) => notices.push(d));
    h.server.broadcast = false; // the live changes this client "could not keep up with"
    h.server.applyExternal({ operation: 'insert', collection: 'tasks', documentId: 'dropped', data: { n: 1 }, timestamp: Date.now() });
    for (const s of h.server.io.sockets.sockets.values()) s.emit('sync:error', { code: 'SLOW_CONSUMER', error: 'outgoing buffer full' });
    await until(() => notices.length === 1, 'disconnected event');
    expect(errors).toContain('SLOW_CONSUMER');
    expect(notices[0]).toMatchObject({ reason: 'slow-consumer', code: 'SLOW_CONSUMER' });
    await until(() => c.getDocument('tasks', 'dropped') !== undefined, 'caught up after reconnecting');
    expect(c.isOnline()).toBe(true);
  });
});

describe('client reset (CURSOR_EXPIRED)', () => {
  async function expireOnce(): Promise<void> {
    let expired = true;
    h.server.interceptors.push((event) => {
      if (event === 'sync:get_changes' && expired) {
        expired = false;
        return { success: false, code: 'CURSOR_EXPIRED', error: 'too old' };
      }
      return undefined;
    });
  }

  it('discardUnsyncedChanges: unsent changes are rolled back and listed; the view is the server state', async () => {
    const storage = new MemoryStorage();
    let c = client('u', storage);
    await c.subscribe('tasks');
    h.server.applyExternal({ operation: 'insert', collection: 'tasks', documentId: 'srv', data: { n: 1 }, timestamp: 10 });
    await c.connect();
    await c.close();
    c = client('u', storage, { clientResetMode: 'discardUnsyncedChanges' });
    await c.initialize();
    await c.makeChange('update', 'tasks', 'srv', { n: 99 });
    await c.makeChange('insert', 'tasks', 'local', { n: 1 });
    expect(c.getDocument('tasks', 'srv')).toMatchObject({ n: 99 });
    await expireOnce();
    const resets: any[] = [];
    c.on('reset', (r) => resets.push(r));
    await c.connect();
    await c.whenSynced();
    expect(h.server.count('sync:changeBatch')).toBe(0); // the reset was found before sending them
    expect(resets[0].mode).toBe('discardUnsyncedChanges');
    expect(resets[0].discarded.map((d: any) => d.documentId).sort()).toEqual(['local', 'srv']);
    expect(c.getPendingChangesCount()).toBe(0);
    expect(c.getDocuments('tasks').map((d) => [d._id, d.n])).toEqual([['srv', 1]]);
    expect(h.server.get('tasks', 'local')).toBeUndefined();
  });

  it('a function chooses the mode; recoverUnsyncedChanges keeps and sends them', async () => {
    const storage = new MemoryStorage();
    let c = client('u', storage);
    await c.subscribe('tasks');
    await c.connect();
    await c.close();
    const asked: number[] = [];
    c = client('u', storage, {
      clientResetMode: ({ pending }) => {
        asked.push(pending.length);
        return 'recoverUnsyncedChanges';
      },
    });
    await c.initialize();
    await c.makeChange('insert', 'tasks', 'kept', { n: 1 });
    await expireOnce();
    const resets: any[] = [];
    c.on('reset', (r) => resets.push(r));
    await c.connect();
    await c.whenSynced();
    await until(() => resets.length === 1, 'reset');
    expect(resets[0]).toMatchObject({ reason: 'CURSOR_EXPIRED', mode: 'recoverUnsyncedChanges', discarded: [] });
    expect(h.server.get('tasks', 'kept')).toMatchObject({ n: 1 });
    expect(asked.length).toBe(1);
  });
});
