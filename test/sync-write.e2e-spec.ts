import { connectTestDb } from './support/db';
import type { ClientChange } from '@sync/protocol';
import {
  collectEvents,
  connectClient,
  emitAck,
  joinedClient,
  recordEvents,
  startTestApp,
  TestApp,
  emitUntyped,
  ClientSocket,
  untypedSocket,
} from './support/app';

describe('sync engine: write path (sync:change, sync:changeBatch, compat events)', () => {
  let t: TestApp;
  let a: ClientSocket;
  let b: ClientSocket;
  let db: Awaited<ReturnType<typeof connectTestDb>>;
  let seq = 0;
  const id = (p = 'doc') => `${p}-${++seq}-${Date.now()}`;

  beforeAll(async () => {
    t = await startTestApp({ AUTH_MODE: 'dev', AUTH_SERVICE_TOKEN: 'svc-token-for-tests-0123456789abcdef' }, 'syncwrite');
    db = await connectTestDb('unused', t.mongoUri);
    a = await joinedClient(t.url, 'alice');
    b = await joinedClient(t.url, 'bob');
  });
  afterAll(async () => {
    a?.close();
    b?.close();
    await db?.close();
    await t?.close();
  });

  it('join answers userId, server timestamp and the feed head cursor', async () => {
    const s = await connectClient(t.url);
    const ack = await emitAck(s, 'sync:join', { userId: 'carol' });
    expect(ack).toMatchObject({ success: true, userId: 'carol' });
    expect(typeof ack.timestamp).toBe('number');
    expect(ack.cursor).toMatch(/^c2[0-9a-f]{16}\.[A-Za-z0-9_-]{11}$/);
    s.close();
  });

  it('refuses sync events before join with UNAUTHENTICATED', async () => {
    const s = await connectClient(t.url);
    for (const ev of ['sync:change', 'sync:changeBatch', 'sync:get_changes']) {
      const ack = await emitUntyped(s, ev, {});
      expect(ack).toMatchObject({ success: false, code: 'UNAUTHENTICATED' });
      expect(typeof ack.error).toBe('string');
    }
    s.close();
  });

  it('applies an insert, stores it, acks with changeId/timestamp/cursor and broadcasts to others but not the sender', async () => {
    const docId = id();
    const aEvents = recordEvents(a, 'sync:changes');
    const got = collectEvents(b, 'sync:changes', 1);
    const ack = await emitAck(a, 'sync:change', {
      changeId: `c-${docId}`,
      operation: 'insert',
      collection: 'tasks',
      documentId: docId,
      data: { title: 'Buy milk', done: false },
      timestamp: 1000,
    });
    expect(ack).toEqual({ success: true, changeId: `c-${docId}`, timestamp: 1000, cursor: expect.stringMatching(/^c2/) });
    const [change] = await got;
    expect(change).toMatchObject({
      changeId: `c-${docId}`,
      operation: 'insert',
      collection: 'tasks',
      documentId: docId,
      timestamp: 1000,
      userId: 'alice',
      cursor: ack.cursor,
    });
    expect(change.data).toEqual({ _id: docId, title: 'Buy milk', done: false, sync_updated_at: 1000, _updated_by: 'alice' });
    expect(typeof change.serverTimestamp).toBe('number');
    const stored = await db.db.collection('tasks').findOne({ _id: docId as any });
    expect(stored).toEqual({ _id: docId, title: 'Buy milk', done: false, sync_updated_at: 1000, _updated_by: 'alice' });
    await new Promise((r) => setTimeout(r, 100));
    expect(aEvents.filter((c) => c.documentId === docId)).toHaveLength(0);
  });

  it('accepts the aliases collectionName / id and falls back to data.sync_updated_at', async () => {
    const docId = id();
    const ack = await emitUntyped(a, 'sync:change', {
      id: `alias-${docId}`,
      operation: 'insert',
      collectionName: 'tasks',
      documentId: docId,
      data: { x: 1, sync_updated_at: 4242 },
    });
    expect(ack).toMatchObject({ success: true, changeId: `alias-${docId}`, timestamp: 4242 });
  });

  it('resolves conflicts: older loses with CONFLICT and the current doc, newer wins, equal keeps stored', async () => {
    const docId = id();
    await emitAck(a, 'sync:change', { operation: 'insert', collection: 'tasks', documentId: docId, data: { title: 'v1' }, timestamp: 100 });
    const older = await emitAck(b, 'sync:change', {
      changeId: `old-${docId}`,
      operation: 'update',
      collection: 'tasks',
      documentId: docId,
      data: { title: 'old' },
      timestamp: 50,
    });
    expect(older).toMatchObject({ success: false, code: 'CONFLICT', changeId: `old-${docId}`, timestamp: 100 });
    expect(older.current).toEqual({ _id: docId, title: 'v1', sync_updated_at: 100, _updated_by: 'alice' });
    const equal = await emitAck(b, 'sync:change', { operation: 'update', collection: 'tasks', documentId: docId, data: { title: 'same' }, timestamp: 100 });
    expect(equal).toMatchObject({ success: false, code: 'CONFLICT' });
    const newer = await emitAck(b, 'sync:change', { operation: 'update', collection: 'tasks', documentId: docId, data: { done: true }, timestamp: 150 });
    expect(newer).toMatchObject({ success: true, timestamp: 150 });
    expect(await db.db.collection('tasks').findOne({ _id: docId as any })).toEqual({
      _id: docId,
      title: 'v1',
      done: true,
      sync_updated_at: 150,
      _updated_by: 'bob',
    });
  });

  it('insert over an existing document is resolved like an update, never a blind overwrite', async () => {
    const docId = id();
    await emitAck(a, 'sync:change', { operation: 'insert', collection: 'tasks', documentId: docId, data: { title: 'first', keep: 1 }, timestamp: 200 });
    const lose = await emitAck(b, 'sync:change', { operation: 'insert', collection: 'tasks', documentId: docId, data: { title: 'stale' }, timestamp: 150 });
    expect(lose.code).toBe('CONFLICT');
    const win = await emitAck(b, 'sync:change', { operation: 'insert', collection: 'tasks', documentId: docId, data: { title: 'second' }, timestamp: 250 });
    expect(win.success).toBe(true);
    expect(await db.db.collection('tasks').findOne({ _id: docId as any })).toMatchObject({ title: 'second', keep: 1, sync_updated_at: 250 });
  });

  it('update of a missing document creates it', async () => {
    const docId = id();
    const ack = await emitAck(a, 'sync:change', {
      operation: 'update',
      collection: 'tasks',
      documentId: docId,
      data: { title: 'created by update' },
      timestamp: 10,
    });
    expect(ack.success).toBe(true);
    expect(await db.db.collection('tasks').findOne({ _id: docId as any })).toMatchObject({ title: 'created by update' });
  });

  it('delete leaves a tombstone: a late older update loses, a newer one recreates', async () => {
    const docId = id();
    await emitAck(a, 'sync:change', { operation: 'insert', collection: 'tasks', documentId: docId, data: { title: 't' }, timestamp: 100 });
    const del = await emitAck(a, 'sync:change', { operation: 'delete', collection: 'tasks', documentId: docId, timestamp: 200 });
    expect(del.success).toBe(true);
    expect(await db.db.collection('tasks').findOne({ _id: docId as any })).toBeNull();
    const tomb = await db.db.collection('_sync_tombstones').findOne({ _id: `tasks:${docId}` as any });
    expect(tomb).toMatchObject({ timestamp: 200, userId: 'alice' });
    const late = await emitAck(b, 'sync:change', { operation: 'update', collection: 'tasks', documentId: docId, data: { title: 'late' }, timestamp: 150 });
    expect(late).toMatchObject({ success: false, code: 'CONFLICT', current: null, timestamp: 200 });
    expect(await db.db.collection('tasks').findOne({ _id: docId as any })).toBeNull();
    const again = await emitAck(b, 'sync:change', { operation: 'update', collection: 'tasks', documentId: docId, data: { title: 'back' }, timestamp: 300 });
    expect(again.success).toBe(true);
    expect(await db.db.collection('tasks').findOne({ _id: docId as any })).toMatchObject({ title: 'back', sync_updated_at: 300 });
  });

  it('clamps a timestamp far in the future to the server clock', async () => {
    const docId = id();
    const before = Date.now();
    const ack = await emitAck(a, 'sync:change', {
      operation: 'insert',
      collection: 'tasks',
      documentId: docId,
      data: { x: 1 },
      timestamp: Date.now() + 10 * 86_400_000,
    });
    expect(ack.success).toBe(true);
    expect(ack.timestamp).toBeGreaterThanOrEqual(before);
    expect(ack.timestamp).toBeLessThanOrEqual(Date.now());
    // so a correct device can still win a minute later
    const next = await emitAck(b, 'sync:change', { operation: 'update', collection: 'tasks', documentId: docId, data: { x: 2 }, timestamp: Date.now() + 1000 });
    expect(next.success).toBe(true);
  });

  it("keeps the order of a fast-clock device's own changes: insert then update of one document, both clamped", async () => {
    const docId = id();
    const far = Date.now() + 75_000;
    const res = await emitAck(a, 'sync:changeBatch', {
      changes: [
        { operation: 'insert', collection: 'tasks', documentId: docId, data: { step: 1 }, timestamp: far },
        { operation: 'update', collection: 'tasks', documentId: docId, data: { step: 2 }, timestamp: far + 1 },
      ],
    });
    expect(res.results.map((r: any) => r.success)).toEqual([true, true]);
    expect(res.results[1].timestamp).toBeGreaterThan(res.results[0].timestamp);
    expect(res.results[1].timestamp).toBeLessThanOrEqual(Date.now() + 60_000);
    // and in a later message too
    const again = await emitAck(a, 'sync:change', { operation: 'update', collection: 'tasks', documentId: docId, data: { step: 3 }, timestamp: far + 2 });
    expect(again.success).toBe(true);
    expect(await db.db.collection('tasks').findOne({ _id: docId as any })).toMatchObject({ step: 3 });
  });

  it('is idempotent: the same changeId sent 3 times (and twice inside a batch) is applied and broadcast once', async () => {
    const docId = id();
    const changeId = `idem-${docId}`;
    const seen = recordEvents(b, 'sync:changes');
    const change: ClientChange = { changeId, operation: 'insert', collection: 'tasks', documentId: docId, data: { n: 1 }, timestamp: 500 };
    const first = await emitAck(a, 'sync:change', change);
    const second = await emitAck(a, 'sync:change', change);
    const third = await emitAck(a, 'sync:change', { ...change, data: { n: 999 } });
    expect(first).toMatchObject({ success: true, changeId });
    expect(first.duplicate).toBeUndefined();
    for (const r of [second, third]) expect(r).toEqual({ ...first, duplicate: true });
    const batch = await emitAck(a, 'sync:changeBatch', {
      changes: [
        change,
        change,
        { ...change, changeId: `${changeId}-b`, data: { n: 2 }, timestamp: 600 },
        { ...change, changeId: `${changeId}-b`, data: { n: 2 }, timestamp: 600 },
      ],
    });
    expect(batch.results[0]).toEqual({ ...first, duplicate: true });
    expect(batch.results[1]).toEqual({ ...first, duplicate: true });
    expect(batch.results[2]).toMatchObject({ success: true, changeId: `${changeId}-b` });
    expect(batch.results[2].duplicate).toBeUndefined();
    expect(batch.results[3]).toEqual({ ...batch.results[2], duplicate: true });
    await new Promise((r) => setTimeout(r, 200));
    expect(seen.filter((c) => c.documentId === docId).map((c) => c.changeId)).toEqual([changeId, `${changeId}-b`]);
    expect(await db.db.collection('_sync_feed').countDocuments({ changeId })).toBe(1);
    expect(await db.db.collection('tasks').findOne({ _id: docId as any })).toMatchObject({ n: 2 });
  });

  it('applies a batch in order, each change on its own merits, with per-change acks', async () => {
    const d1 = id();
    const d2 = id();
    const res = await emitUntyped(a, 'sync:changeBatch', {
      changes: [
        { operation: 'insert', collection: 'tasks', documentId: d1, data: { v: 1 }, timestamp: 10 },
        { operation: 'update', collection: 'tasks', documentId: d1, data: { v: 2 }, timestamp: 20 },
        { operation: 'update', collection: 'tasks', documentId: d1, data: { v: 0 }, timestamp: 15 },
        { operation: 'bogus', collection: 'tasks', documentId: d2 },
        { operation: 'insert', collection: 'tasks', documentId: d2, data: { $where: 'x' } },
        { operation: 'insert', collection: '_sync_feed', documentId: d2, data: {} },
        { operation: 'insert', collection: 'tasks', documentId: d2, data: { ok: true }, timestamp: 5 },
        null,
      ],
    });
    expect(res.success).toBe(true);
    expect(res.results.map((r: any) => r.success || r.code)).toEqual([
      true,
      true,
      'CONFLICT',
      'INVALID_PAYLOAD',
      'INVALID_PAYLOAD',
      'INVALID_PAYLOAD',
      true,
      'INVALID_PAYLOAD',
    ]);
    expect(res.successCount).toBe(3);
    expect(res.failureCount).toBe(5);
    expect(res.results[2].current).toMatchObject({ v: 2 });
    expect(await db.db.collection('tasks').findOne({ _id: d1 as any })).toMatchObject({ v: 2, sync_updated_at: 20 });
    expect(await db.db.collection('_sync_feed').countDocuments({ documentId: d2, collection: '_sync_feed' })).toBe(0);
  });

  it('answers malformed payloads with INVALID_PAYLOAD / PAYLOAD_TOO_LARGE and keeps running', async () => {
    const bad = [
      null,
      42,
      'x',
      [],
      { operation: 'insert' },
      { operation: 'insert', collection: 'tasks', documentId: '' },
      { operation: 'insert', collection: 'system.users', documentId: 'a' },
      { operation: 'update', collection: 'tasks', documentId: 'a', data: { 'a.b': 1 } },
      { operation: 'update', collection: 'tasks', documentId: 'a', data: { nested: { $gt: 1 } } },
      { operation: 'update', collection: 'tasks', documentId: 'a', data: [1] },
      { operation: 'update', collection: 'tasks', documentId: 'a', data: { x: 1 }, timestamp: 'yesterday' },
      { operation: 'insert', collection: 'tasks', documentId: 'x'.repeat(300), data: {} },
    ];
    for (const p of bad) {
      const ack = await emitUntyped(a, 'sync:change', p);
      expect(ack).toMatchObject({ success: false, code: 'INVALID_PAYLOAD' });
      expect(ack.error).toEqual(expect.any(String));
    }
    const big = await emitAck(a, 'sync:change', { operation: 'insert', collection: 'tasks', documentId: id(), data: { blob: 'x'.repeat(300 * 1024) } });
    expect(big.code).toBe('PAYLOAD_TOO_LARGE');
    const notArray = await emitUntyped(a, 'sync:changeBatch', { changes: 'nope' });
    expect(notArray.code).toBe('INVALID_PAYLOAD');
    const tooMany = await emitAck(a, 'sync:changeBatch', { changes: new Array(501).fill({}) });
    expect(tooMany.code).toBe('PAYLOAD_TOO_LARGE');
    // a missing ack callback does not crash anything
    untypedSocket(a).emit('sync:change', { operation: 'insert', collection: 'tasks', documentId: id(), data: {} });
    untypedSocket(a).emit('sync:change');
    const ping = await emitAck(a, 'ping', {});
    expect(typeof ping.timestamp).toBe('number');
  });

  it('records rejected changes in the audit trail with author, time, reason and address', async () => {
    const docId = id();
    await emitAck(a, 'sync:change', { operation: 'insert', collection: 'tasks', documentId: docId, data: {}, timestamp: 100 });
    await emitAck(b, 'sync:change', { changeId: `aud-${docId}`, operation: 'update', collection: 'tasks', documentId: docId, data: {}, timestamp: 1 });
    await new Promise((r) => setTimeout(r, 200));
    const rec = await db.db.collection('_sync_audit').findOne({ changeId: `aud-${docId}` });
    expect(rec).toMatchObject({ userId: 'bob', code: 'CONFLICT', collection: 'tasks', documentId: docId });
    expect(rec!.at).toBeInstanceOf(Date);
    expect(rec!.clientAddress).toMatch(/127\.0\.0\.1/);
    expect(rec!.reason).toEqual(expect.any(String));
  });

  it('supports the Flutter compatibility events mongoUpsert and mongoDelete', async () => {
    const docId = id();
    const got = collectEvents(b, 'sync:changes', 2);
    expect(
      await emitAck(a, 'mongoUpsert', { collection: 'chat', update: { text: 'hi', sync_updated_at: 10 }, query: { _id: docId }, patchId: `p-${docId}` }),
    ).toBe('ok');
    expect(await emitUntyped(a, 'mongoUpsert', { collection: 'chat', update: { text: 'hi' }, query: {} })).toBe('error');
    expect(await emitAck(a, 'mongoDelete', { collection: 'chat', query: { _id: docId }, patchId: `pd-${docId}` })).toEqual({ success: true });
    const bad = await emitAck(a, 'mongoDelete', { collection: '$bad', query: { _id: docId } });
    expect(bad.success).toBe(false);
    expect(typeof bad.error).toBe('string');
    const changes = await got;
    expect(changes.map((c) => [c.operation, c.changeId])).toEqual([
      ['update', `p-${docId}`],
      ['delete', `pd-${docId}`],
    ]);
  });

  it('POST /api/changes ingests with the service token: same acks and broadcasts as a batch', async () => {
    const docId = id();
    const got = collectEvents(b, 'sync:changes', 1);
    const res = await fetch(`${t.url}/api/changes`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer svc-token-for-tests-0123456789abcdef' },
      body: JSON.stringify({
        changes: [
          { changeId: `rest-${docId}`, operation: 'insert', collection: 'tasks', documentId: docId, data: { via: 'rest' }, timestamp: 5 },
          { operation: 'nope' },
        ],
      }),
    });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body).toMatchObject({ success: true, successCount: 1, failureCount: 1 });
    expect(body.results[0]).toMatchObject({ success: true, changeId: `rest-${docId}` });
    expect(body.results[1].code).toBe('INVALID_PAYLOAD');
    const [c] = await got;
    expect(c).toMatchObject({ documentId: docId, userId: 'service', data: { via: 'rest' } });
    const denied = await fetch(`${t.url}/api/changes`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"changes":[]}' });
    expect(denied.status).toBe(401);
  });

  it('counts changes in /stats', async () => {
    const res = await fetch(`${t.url}/stats`).then((r) => r.json());
    expect(res.totalChanges).toBeGreaterThan(10);
    expect(res.syncedChanges).toBeGreaterThan(5);
    expect(res.activeConnections).toBeGreaterThanOrEqual(2);
    expect(res.activeUsers).toEqual(expect.arrayContaining(['alice', 'bob']));
  });
});

describe('sync engine: a whole batch resent after its ack was lost', () => {
  let t: TestApp;
  let db: Awaited<ReturnType<typeof connectTestDb>>;
  beforeAll(async () => {
    // client-wins: the resolver accepts every retry, so the feed's unique (userId, changeId) index
    // is what recognises them
    t = await startTestApp({ AUTH_MODE: 'dev', CONFLICT_STRATEGY: 'client-wins' }, 'syncresend');
    db = await connectTestDb('unused', t.mongoUri);
  });
  afterAll(async () => {
    await db?.close();
    await t?.close();
  });

  it('answers the retries duplicate, applies the new changes once, and leaves no gap for readers', async () => {
    const a = await joinedClient(t.url, 'alice');
    const reader = await joinedClient(t.url, 'reader');
    const head = (await emitAck(reader, 'sync:get_changes', { limit: 1 })).cursor;
    const first = Array.from({ length: 6 }, (_, i): ClientChange => ({
      changeId: `r-${i}`,
      operation: 'insert',
      collection: 'notes',
      documentId: `n${i}`,
      data: { v: i },
      timestamp: 1000 + i,
    }));
    const acked = await emitAck(a, 'sync:changeBatch', { changes: first });
    expect(acked.results.every((r: any) => r.success && !r.duplicate)).toBe(true);
    // the client never saw that ack: it sends the batch again, with two new changes in between
    const fresh: ClientChange[] = [
      { changeId: 'r-new-1', operation: 'update', collection: 'notes', documentId: 'n1', data: { v: 100 }, timestamp: 5000 },
      { changeId: 'r-new-2', operation: 'insert', collection: 'notes', documentId: 'n9', data: { v: 9 }, timestamp: 5001 },
    ];
    const resent = await emitAck(a, 'sync:changeBatch', { changes: [...first.slice(0, 3), fresh[0], ...first.slice(3), fresh[1]] });
    const byId = new Map(resent.results.map((r: any) => [r.changeId, r]));
    for (const [i, c] of first.entries()) expect(byId.get(c.changeId)).toEqual({ ...acked.results[i], duplicate: true });
    for (const c of fresh) expect(byId.get(c.changeId)).toMatchObject({ success: true, changeId: c.changeId });
    expect((byId.get('r-new-1') as any).duplicate).toBeUndefined();
    expect(await db.db.collection('_sync_feed').countDocuments({ changeId: { $in: first.map((c) => c.changeId) } })).toBe(first.length);
    expect(await db.db.collection('notes').findOne({ _id: 'n1' as any })).toMatchObject({ v: 100 });

    // a reader gets everything at once: the retries' unused positions are filled, not gaps to wait out
    // (a gap would stop the page short of the new changes until the stale limit, 15 s here)
    const page = await emitAck(reader, 'sync:get_changes', { cursor: head, limit: 100 });
    expect(page.changes.map((c: any) => c.changeId)).toEqual([...first.map((c) => c.changeId), 'r-new-1', 'r-new-2']);
    expect(page.hasMore).toBe(false);
    const positions = (await db.db
      .collection('_sync_feed')
      .find({}, { projection: { _id: 1, state: 1 } })
      .sort({ _id: 1 })
      .toArray()) as any[];
    expect(positions.map((e) => e._id)).toEqual(positions.map((_, i) => positions[0]._id + i));
    expect(positions.filter((e) => e.state === 'skip').length).toBeGreaterThan(0);
    a.close();
    reader.close();
  });
});
