import { MemoryStorage } from './storage/memory-storage';
import { SyncClientError } from './sync-client';
import { until, useFakeServer } from './testing/fake-harness';
import { FakeSyncServer } from './testing/fake-sync-server';

/* The client's protocol logic against an in-memory protocol server (test/client-*.e2e-spec.ts run
 * the same scenarios against the real server). */

const h = useFakeServer();
const { client } = h;

describe('SyncClient (against a fake protocol server)', () => {
  it('keeps the SEED API: initialize, connect, makeChange, isOnline, pending count, last sync, disconnect', async () => {
    const c = client('user-123');
    await c.initialize();
    await c.connect();
    expect(c.isOnline()).toBe(true);
    await c.makeChange('insert', 'tasks', 'task-1', { title: 'Buy groceries', completed: false, userId: 'user-123', sync_updated_at: Date.now() });
    await c.makeChange('update', 'tasks', 'task-1', { completed: true, sync_updated_at: Date.now() });
    expect(c.getDocument('tasks', 'task-1')).toMatchObject({ title: 'Buy groceries', completed: true });
    await c.whenSynced();
    expect(c.getPendingChangesCount()).toBe(0);
    expect(c.getLastSyncTimestamp()).toBeGreaterThan(Date.now() - 5_000);
    expect(h.server.get('tasks', 'task-1')).toMatchObject({ title: 'Buy groceries', completed: true });
    await c.makeChange('delete', 'tasks', 'task-1');
    await c.whenSynced();
    expect(h.server.get('tasks', 'task-1')).toBeNull();
    await c.disconnect();
    expect(c.isOnline()).toBe(false);
    expect(h.server.count('sync:changeBatch')).toBeGreaterThan(0);
    expect(h.server.count('sync:change')).toBe(0);
  });

  it('timestamps are monotonic per client and strictly increasing per document', async () => {
    let now = 1_000_000;
    const c = client('u', new MemoryStorage(), { now: () => now });
    const a = await c.makeChange('insert', 'tasks', 'a', { n: 1 });
    now -= 500; // the clock goes back
    const b = await c.makeChange('update', 'tasks', 'a', { n: 2 });
    const d = await c.makeChange('insert', 'tasks', 'other', { n: 1 });
    expect(b.timestamp).toBe(a.timestamp + 1);
    expect(d.timestamp).toBeGreaterThanOrEqual(b.timestamp);
    expect(c.getDocument('tasks', 'a')).toMatchObject({ n: 2, sync_updated_at: b.timestamp });
  });

  it('rejects bad changes before queueing them', async () => {
    const c = client('u');
    await expect(c.makeChange('insert', '_sync_feed', 'x', {})).rejects.toBeInstanceOf(SyncClientError);
    await expect(c.makeChange('insert', 'tasks', '', {})).rejects.toThrow(/documentId/);
    await expect(c.makeChange('update', 'tasks', 'x', { $set: { a: 1 } })).rejects.toThrow(/\$/);
    await expect(c.makeChange('update', 'tasks', 'x', { nested: { 'a.b': 1 } })).rejects.toThrow(/dot/);
    await expect(c.makeChange('upsert' as never, 'tasks', 'x', {})).rejects.toThrow(/operation/);
    expect(c.getPendingChangesCount()).toBe(0);
  });

  it('two clients: a change of one shows up live in the other, with change events', async () => {
    const a = client('alice');
    const b = client('bob');
    await a.subscribe('tasks');
    await b.subscribe('tasks');
    await Promise.all([a.connect(), b.connect()]);
    const seen: string[] = [];
    b.on('change', (ch) => seen.push(`${ch.source}:${ch.documentId}`));
    await a.makeChange('insert', 'tasks', 't1', { title: 'from alice' });
    await until(() => !!b.getDocument('tasks', 't1'), 'live change');
    expect(b.getDocument('tasks', 't1')).toMatchObject({ title: 'from alice', _id: 't1' });
    expect(seen).toEqual(['remote:t1']);
  });

  it('queues changes while offline and sends them, once, in order, on reconnect', async () => {
    const c = client('u');
    await c.subscribe('tasks');
    await c.connect();
    h.server.accepting = false;
    h.server.dropAll();
    await until(() => !c.isOnline(), 'offline');
    await c.makeChange('insert', 'tasks', 'a', { n: 1 });
    await c.makeChange('update', 'tasks', 'a', { n: 2 });
    await c.makeChange('insert', 'tasks', 'b', { n: 1 });
    expect(c.getPendingChangesCount()).toBe(3);
    h.server.accepting = true;
    await c.whenSynced(10_000);
    expect(h.server.get('tasks', 'a')).toMatchObject({ n: 2 });
    const sent = h.server.received.filter((r) => r.event === 'sync:changeBatch').flatMap((r) => r.payload.changes);
    expect(sent.map((x: { documentId: string; operation: string }) => `${x.operation}:${x.documentId}`)).toEqual(['insert:a', 'update:a', 'insert:b']);
  });

  it('backs off on RATE_LIMITED and retries with the same changeId', async () => {
    const c = client('u');
    await c.connect();
    let refused = 0;
    h.server.interceptors.push((event) => {
      if (event === 'sync:changeBatch' && refused < 2) {
        refused++;
        return { success: false, code: 'RATE_LIMITED', error: 'slow down', retryAfterMs: 30 };
      }
    });
    const ch = await c.makeChange('insert', 'tasks', 'x', { n: 1 });
    await c.whenSynced();
    const ids = h.server.received.filter((r) => r.event === 'sync:changeBatch').map((r) => r.payload.changes[0].changeId);
    expect(ids).toEqual([ch.changeId, ch.changeId, ch.changeId]);
    expect(h.server.get('tasks', 'x')).toMatchObject({ n: 1 });
  });

  it('retries a per-change UNAVAILABLE, and an unanswered batch, without duplicates', async () => {
    const c = client('u', new MemoryStorage(), { ackTimeoutMs: 300 });
    await c.connect();
    let step = 0;
    h.server.interceptors.push((event, payload) => {
      if (event !== 'sync:changeBatch') return;
      step++;
      if (step === 1)
        return {
          success: true,
          results: payload.changes.map(() => ({ success: false, code: 'UNAVAILABLE', error: 'db down' })),
          successCount: 0,
          failureCount: 1,
        };
      if (step === 2) return FakeSyncServer.NO_ACK; // no ack arrives: the client times out and resends
    });
    await c.makeChange('insert', 'tasks', 'x', { n: 1 });
    await c.whenSynced(10_000);
    expect(h.server.feed).toHaveLength(1);
  });

  it('splits batches the server drops for being too large (connection closed) until they fit', async () => {
    await h.restart({ maxHttpBufferSize: 20_000 });
    const c = client('u', new MemoryStorage(), { ackTimeoutMs: 1_000 });
    for (let i = 0; i < 40; i++) await c.makeChange('insert', 'tasks', `big-${i}`, { pad: 'x'.repeat(2_000) });
    await c.connect().catch(() => undefined);
    await c.whenSynced(20_000);
    expect(h.server.feed).toHaveLength(40);
  });

  it('on CONFLICT replaces the optimistic value with the server version', async () => {
    const c = client('u', new MemoryStorage(), { now: () => 1_000 });
    await c.subscribe('tasks');
    await c.connect();
    h.server.broadcast = false; // we have not heard of the newer version yet
    h.server.applyExternal({ operation: 'insert', collection: 'tasks', documentId: 'x', data: { title: 'newer elsewhere' }, timestamp: 5_000 });
    const conflicts: unknown[] = [];
    c.on('conflict', (x) => conflicts.push(x.current));
    await c.makeChange('update', 'tasks', 'x', { title: 'mine' });
    await c.whenSynced();
    expect(conflicts).toEqual([expect.objectContaining({ title: 'newer elsewhere' })]);
    expect(c.getDocument('tasks', 'x')).toMatchObject({ title: 'newer elsewhere' });
  });

  it('on FORBIDDEN rolls the optimistic write back and emits rejected', async () => {
    const c = client('u');
    await c.subscribe('tasks');
    await c.connect();
    await c.makeChange('insert', 'tasks', 'x', { owner: 'u' });
    await c.whenSynced();
    h.server.interceptors.push((event, payload) => {
      if (event === 'sync:changeBatch') {
        return {
          success: true,
          results: payload.changes.map((ch: { changeId: string }) => ({ success: false, code: 'FORBIDDEN', changeId: ch.changeId, error: 'not yours' })),
          successCount: 0,
          failureCount: 1,
        };
      }
    });
    const rejected: string[] = [];
    const sources: string[] = [];
    c.on('rejected', (r) => rejected.push(r.code));
    c.on('change', (ch) => sources.push(ch.source));
    await c.makeChange('update', 'tasks', 'x', { owner: 'mallory' });
    expect(c.getDocument('tasks', 'x')).toMatchObject({ owner: 'mallory' });
    await c.whenSynced();
    expect(rejected).toEqual(['FORBIDDEN']);
    expect(c.getDocument('tasks', 'x')).toMatchObject({ owner: 'u' });
    expect(sources).toEqual(['local', 'rollback']);
    expect(c.getPendingChangesCount()).toBe(0);
  });

  it('catches up from the stored cursor after a restart (same storage), and bootstraps only once', async () => {
    const storage = new MemoryStorage();
    let c = client('u', storage);
    await c.subscribe('tasks');
    h.server.applyExternal({ operation: 'insert', collection: 'tasks', documentId: 'a', data: { n: 1 }, timestamp: 10 });
    await c.connect();
    expect(c.getDocument('tasks', 'a')).toMatchObject({ n: 1 });
    await c.close();
    // while it is away
    h.server.applyExternal({ operation: 'update', collection: 'tasks', documentId: 'a', data: { n: 2 }, timestamp: 20 });
    h.server.applyExternal({ operation: 'insert', collection: 'tasks', documentId: 'b', data: { n: 1 }, timestamp: 21 });
    h.server.applyExternal({ operation: 'delete', collection: 'tasks', documentId: 'b', timestamp: 22 });
    c = client('u', storage);
    await c.initialize();
    expect(c.getDocument('tasks', 'a')).toMatchObject({ n: 1 }); // the stored view, offline
    await c.connect();
    expect(c.getDocument('tasks', 'a')).toMatchObject({ n: 2 });
    expect(c.getDocument('tasks', 'b')).toBeUndefined();
    const subs = h.server.received.filter((r) => r.event === 'sync:subscribe').map((r) => r.payload.bootstrap);
    expect(subs).toEqual([true, false]);
  });

  it('pages get_changes until hasMore is false', async () => {
    const c = client('u', new MemoryStorage(), { getChangesLimit: 2 });
    await c.subscribe('tasks');
    await c.connect();
    h.server.broadcast = false;
    for (let i = 0; i < 7; i++) h.server.applyExternal({ operation: 'insert', collection: 'tasks', documentId: `d${i}`, data: { i }, timestamp: 100 + i });
    await c.whenSynced();
    expect(c.getDocuments('tasks')).toHaveLength(7);
    expect(c.getCursor()).toBe(h.server.feed.at(-1)!.cursor);
  });

  it('whenSynced waits for a catch-up that starts after the call, not one already under way', async () => {
    const c = client('u');
    await c.subscribe('tasks');
    await c.connect();
    await c.whenSynced();
    h.server.broadcast = false;
    h.server.answerDelayMs['sync:get_changes'] = 300;
    const first = c.whenSynced(); // a catch-up whose page is computed now and answered 300 ms later
    await new Promise((r) => setTimeout(r, 50));
    h.server.applyExternal({ operation: 'insert', collection: 'tasks', documentId: 'late', data: { n: 1 }, timestamp: 100 });
    await c.whenSynced(); // called after the write: must not settle on the first catch-up's answer
    expect(c.getDocument('tasks', 'late')).toMatchObject({ n: 1 });
    expect(c.getCursor()).toBe(h.server.feed.at(-1)!.cursor);
    await first;
  });

  it('never moves the stored cursor on live changes', async () => {
    const a = client('a');
    const b = client('b', new MemoryStorage(), { catchUpIntervalMs: 0 });
    await b.subscribe('tasks');
    await Promise.all([a.connect(), b.connect()]);
    const before = b.getCursor();
    await a.makeChange('insert', 'tasks', 'x', { n: 1 });
    await until(() => !!b.getDocument('tasks', 'x'), 'live change');
    expect(b.getCursor()).toBe(before);
  });

  it('on CURSOR_EXPIRED bootstraps again without losing unsent changes, and drops what vanished', async () => {
    const storage = new MemoryStorage();
    let c = client('u', storage);
    await c.subscribe('tasks');
    h.server.applyExternal({ operation: 'insert', collection: 'tasks', documentId: 'gone', data: { n: 1 }, timestamp: 10 });
    h.server.applyExternal({ operation: 'insert', collection: 'tasks', documentId: 'kept', data: { n: 1 }, timestamp: 11 });
    await c.connect();
    await c.close();
    h.server.applyExternal({ operation: 'delete', collection: 'tasks', documentId: 'gone', timestamp: 20 });
    h.server.applyExternal({ operation: 'update', collection: 'tasks', documentId: 'kept', data: { n: 2 }, timestamp: 21 });
    let expired = true;
    h.server.interceptors.push((event) => {
      if (event === 'sync:get_changes' && expired) {
        expired = false;
        return { success: false, code: 'CURSOR_EXPIRED', error: 'too old' };
      }
    });
    h.server.accepting = false;
    c = client('u', storage);
    const resets: string[] = [];
    c.on('reset', (r) => resets.push(r.reason));
    await c.initialize();
    await c.makeChange('insert', 'tasks', 'offline-1', { n: 1 });
    h.server.accepting = true;
    await c.connect();
    await c.whenSynced();
    expect(resets).toEqual(['CURSOR_EXPIRED']);
    expect(c.getDocuments('tasks').map((d) => [d._id, d.n])).toEqual([
      ['kept', 2],
      ['offline-1', 1],
    ]);
    expect(h.server.get('tasks', 'offline-1')).toMatchObject({ n: 1 });
  });

  it('drops a document that leaves the view (outOfView)', async () => {
    const c = client('u');
    await c.subscribe('tasks');
    h.server.applyExternal({ operation: 'insert', collection: 'tasks', documentId: 'x', data: { n: 1 }, timestamp: 10 });
    await c.connect();
    expect(c.getDocument('tasks', 'x')).toBeDefined();
    const sock = [...h.server.io.sockets.sockets.values()][0];
    sock.emit('sync:changes', [
      {
        changeId: 'z',
        operation: 'update',
        collection: 'tasks',
        documentId: 'x',
        data: { n: 2 },
        timestamp: 20,
        userId: 'o',
        serverTimestamp: 1,
        cursor: 'c1' + '9'.repeat(16),
        outOfView: true,
      },
    ]);
    await until(() => !c.getDocument('tasks', 'x'), 'drop');
  });

  it('filters feed changes through the subscription filter', async () => {
    const c = client('u');
    await c.subscribe('tasks', 'owner == $0', ['u']);
    await c.connect();
    h.server.broadcast = false;
    h.server.applyExternal({ operation: 'insert', collection: 'tasks', documentId: 'mine', data: { owner: 'u' }, timestamp: 10 });
    h.server.applyExternal({ operation: 'insert', collection: 'tasks', documentId: 'theirs', data: { owner: 'v' }, timestamp: 11 });
    await c.whenSynced();
    expect(c.getDocuments('tasks').map((d) => d._id)).toEqual(['mine']);
  });

  it('re-joins with a fresh token on sync:token_expired and after UNAUTHENTICATED', async () => {
    let n = 0;
    h.server.validTokens = new Set(['t1']);
    const c = client('u', new MemoryStorage(), { getToken: () => `t${++n}` });
    await c.connect();
    expect(h.server.received.find((r) => r.event === 'sync:join')!.payload).toMatchObject({ userId: 'u', token: 't1' });
    h.server.validTokens.add('t2');
    const sock = [...h.server.io.sockets.sockets.values()][0];
    sock.emit('sync:token_expired', { code: 'UNAUTHENTICATED', error: 'expired', graceMs: 1000 });
    await until(() => h.server.received.some((r) => r.event === 'sync:join' && r.payload.token === 't2'), 'rejoin');
    // the server now refuses t2-era requests once: the client re-joins with t3 and retries
    h.server.validTokens.add('t3');
    let refused = false;
    h.server.interceptors.push((event) => {
      if (event === 'sync:changeBatch' && !refused) {
        refused = true;
        return { success: false, code: 'UNAUTHENTICATED', error: 'expired' };
      }
    });
    await c.makeChange('insert', 'tasks', 'x', { n: 1 });
    await c.whenSynced();
    expect(h.server.received.some((r) => r.event === 'sync:join' && r.payload.token === 't3')).toBe(true);
    expect(h.server.get('tasks', 'x')).toMatchObject({ n: 1 });
  });

  it('watch() gives the documents now and after each change', async () => {
    const c = client('u');
    const seen: number[] = [];
    const off = c.watch('tasks', (docs) => seen.push(docs.length));
    await c.makeChange('insert', 'tasks', 'a', { n: 1 });
    await c.makeChange('insert', 'tasks', 'b', { n: 1 });
    await new Promise((r) => setTimeout(r, 0));
    off();
    await c.makeChange('insert', 'tasks', 'c', { n: 1 });
    await new Promise((r) => setTimeout(r, 0));
    expect(seen[0]).toBe(0);
    expect(seen.at(-1)).toBe(2);
  });

  it('a refused subscription filter rejects subscribe()', async () => {
    const c = client('u');
    await c.connect();
    h.server.interceptors.push((event) => (event === 'sync:subscribe' ? { success: false, code: 'INVALID_QUERY', error: 'bad filter at 3' } : undefined));
    await expect(c.subscribe('tasks', 'a ==')).rejects.toMatchObject({ code: 'INVALID_QUERY' });
    expect(c.subscriptions()).toHaveLength(0);
  });

  it('connect() rejects after connectTimeoutMs while the server is away, and the client keeps trying', async () => {
    h.server.accepting = false;
    const c = client('u', new MemoryStorage(), { connectTimeoutMs: 300 });
    await expect(c.connect()).rejects.toMatchObject({ code: 'TIMEOUT' });
    await c.makeChange('insert', 'tasks', 'x', { n: 1 });
    h.server.accepting = true;
    await c.whenSynced(10_000);
    expect(h.server.get('tasks', 'x')).toMatchObject({ n: 1 });
  });
});
