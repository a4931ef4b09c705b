import { decodeCursor, encodeCursor, ClientChange } from '@sync/protocol';
import { connectTestDb } from './support/db';
import { emitAck, joinedClient, startTestApp, TestApp, waitFor, emitUntyped, ClientSocket } from './support/app';

async function readAll(s: ClientSocket, cursor: string | undefined, limit: number, extra: Record<string, unknown> = {}) {
  const changes: any[] = [];
  let pages = 0;
  for (;;) {
    const page = await emitAck(s, 'sync:get_changes', { cursor, limit, ...extra });
    if (!page.success) throw new Error(JSON.stringify(page));
    expect(page.changes.length).toBeLessThanOrEqual(limit);
    changes.push(...page.changes);
    cursor = page.cursor;
    pages++;
    if (!page.hasMore) return { changes, cursor: cursor!, pages };
  }
}

describe('change feed: sync:get_changes', () => {
  let t: TestApp;
  let a: ClientSocket;
  let b: ClientSocket;

  beforeAll(async () => {
    // leases of 3 s: a pending entry or a hole becomes repairable after 4.5 s (long enough to observe the
    // reader waiting at it on a loaded CI machine)
    t = await startTestApp({ AUTH_MODE: 'dev', SYNC_LOCK_TTL_MS: '3000' }, 'feed');
    a = await joinedClient(t.url, 'alice');
    b = await joinedClient(t.url, 'bob');
  });
  afterAll(async () => {
    a?.close();
    b?.close();
    await t?.close();
  });

  it('pages through every change in order, with deletes, per collection, and `since`', async () => {
    const join = await emitAck(b, 'sync:join', { userId: 'bob' });
    const start = join.cursor;
    const t0 = Date.now() - 1;
    await emitAck(a, 'sync:changeBatch', {
      changes: [
        { changeId: 'f1', operation: 'insert', collection: 'notes', documentId: 'n1', data: { v: 1 }, timestamp: 1 },
        { changeId: 'f2', operation: 'insert', collection: 'other', documentId: 'o1', data: { v: 1 }, timestamp: 1 },
        { changeId: 'f3', operation: 'update', collection: 'notes', documentId: 'n1', data: { v: 2 }, timestamp: 2 },
        { changeId: 'f4', operation: 'delete', collection: 'notes', documentId: 'n1', timestamp: 3 },
        { changeId: 'f5', operation: 'update', collection: 'notes', documentId: 'n1', data: { v: 9 }, timestamp: 2 }, // loses: not in the feed
      ],
    });
    const all = await readAll(b, start, 2);
    expect(all.changes.map((c) => c.changeId)).toEqual(['f1', 'f2', 'f3', 'f4']);
    expect(all.pages).toBeGreaterThanOrEqual(2);
    const del = all.changes[3];
    expect(del).toMatchObject({ operation: 'delete', collection: 'notes', documentId: 'n1', timestamp: 3, userId: 'alice' });
    expect(del.data).toBeUndefined();
    expect(all.changes[2].data).toEqual({ _id: 'n1', v: 2, sync_updated_at: 2, _updated_by: 'alice' });
    const cursors = all.changes.map((c) => c.cursor);
    expect([...cursors].sort()).toEqual(cursors);

    const notes = await readAll(b, start, 500, { collection: 'notes' });
    expect(notes.changes.map((c) => c.changeId)).toEqual(['f1', 'f3', 'f4']);

    const viaSince = await emitAck(b, 'sync:get_changes', { since: t0, limit: 500 });
    expect(viaSince.changes.map((c: any) => c.changeId)).toEqual(['f1', 'f2', 'f3', 'f4']);
    expect(viaSince.latestTimestamp).toBeGreaterThanOrEqual(t0);
    expect(viaSince.cursor).toMatch(/^c2/);

    // nothing new after the end
    const tail = await emitAck(b, 'sync:get_changes', { cursor: all.cursor });
    expect(tail).toMatchObject({ success: true, changes: [], cursor: all.cursor, hasMore: false });
  });

  it('rejects bad requests with INVALID_PAYLOAD', async () => {
    for (const p of [
      { cursor: 'garbage' },
      { cursor: 42 },
      { limit: 0 },
      { limit: 'x' },
      { since: -5 },
      { collection: '_sync_feed' },
      { collection: 'system.users' },
    ]) {
      const ack = await emitUntyped(b, 'sync:get_changes', p);
      expect(ack).toMatchObject({ success: false, code: 'INVALID_PAYLOAD' });
    }
  });

  it('caps limit at 5000', async () => {
    const ack = await emitAck(b, 'sync:get_changes', { cursor: encodeCursor(0), limit: 100000 });
    expect(ack.success).toBe(true);
    expect(ack.changes.length).toBeLessThanOrEqual(5000);
  });

  it('is gap-free and duplicate-free: 2,000 changes from 4 concurrent clients, read with limit 7 while they write', async () => {
    // an app of its own with client-wins: every change of the concurrent writers is applied (with
    // last-write-wins, how many lose to a newer one depends on timing), so all 2,000 come back
    const own = await startTestApp({ AUTH_MODE: 'dev', SYNC_LOCK_TTL_MS: '3000', CONFLICT_STRATEGY: 'client-wins' }, 'feedconc');
    const b = await joinedClient(own.url, 'bob');
    const t0 = Date.now();
    const head = (await emitAck(b, 'sync:join', { userId: 'bob' })).cursor;
    const writers = await Promise.all([0, 1, 2, 3].map((i) => joinedClient(own.url, `writer-${i}`)));
    const acked = new Set<string>();
    const write = async (s: ClientSocket, w: number) => {
      for (let k = 0; k < 50; k++) {
        // singles and batches mixed, many changes in the same millisecond, some on shared documents
        const changes = Array.from({ length: 10 }, (_, j): ClientChange & { changeId: string } => ({
          changeId: `w${w}-${k}-${j}`,
          operation: 'update',
          collection: 'feedtest',
          documentId: `d${(k * 10 + j) % 37}`,
          data: { w, k, j },
          timestamp: 1_000_000 + k * 100 + j * 10 + w,
        }));
        if (k % 5 === 0) {
          const acks = await Promise.all(changes.map((c) => emitAck(s, 'sync:change', c)));
          acks.forEach((r, j) => r.success && acked.add(changes[j].changeId));
        } else {
          const res = await emitAck(s, 'sync:changeBatch', { changes });
          res.results.forEach((r: any, j: number) => r.success && acked.add(changes[j].changeId));
        }
      }
    };
    // a reader pages concurrently with the writers, then drains the rest
    const seen: any[] = [];
    let cursor = head;
    let writing = true;
    const reader = (async () => {
      while (writing) {
        const page = await emitAck(b, 'sync:get_changes', { cursor, limit: 7, collection: 'feedtest' });
        seen.push(...page.changes);
        cursor = page.cursor;
      }
    })();
    await Promise.all(writers.map((s, i) => write(s, i)));
    console.log('writers done', Date.now() - t0, 'ms, read so far', seen.length);
    writing = false;
    await reader;
    const rest = await readAll(b, cursor, 7, { collection: 'feedtest' });
    seen.push(...rest.changes);
    writers.forEach((s) => s.close());
    console.log('drained', Date.now() - t0, 'ms', seen.length);

    const ids = seen.map((c) => c.changeId);
    expect(new Set(ids).size).toBe(ids.length); // no duplicate
    expect(new Set(ids)).toEqual(acked); // no gap: every acked change exactly once, nothing else
    expect(acked.size).toBe(2000);
    const positions = seen.map((c) => decodeCursor(c.cursor)!);
    for (let i = 1; i < positions.length; i++) expect(positions[i]).toBeGreaterThan(positions[i - 1]);
    // many share a millisecond
    const perMs = new Map<number, number>();
    for (const c of seen) perMs.set(c.serverTimestamp, (perMs.get(c.serverTimestamp) ?? 0) + 1);
    expect(Math.max(...perMs.values())).toBeGreaterThan(5);
    // one consistent order: a second full read gives exactly the same sequence
    const again = await readAll(b, head, 500, { collection: 'feedtest' });
    expect(again.changes.map((c) => c.changeId)).toEqual(ids);
    b.close();
    await own.close();
  }, 300_000);

  it('never moves a reader past a position still being written, and repairs one whose writer died', async () => {
    const db = await connectTestDb('unused', t.mongoUri);
    try {
      const head = (await emitAck(b, 'sync:join', { userId: 'bob' })).cursor;
      // another server node claimed two positions, wrote the second and died before writing the first
      const max = (await db.db.collection('_sync_feed').find({}).sort({ _id: -1 }).limit(1).toArray())[0]?._id ?? 0;
      const lost = (max as unknown as number) + 1;
      const now = Date.now();
      await db.db.collection('_sync_feed').insertOne({
        _id: (lost + 1) as any,
        changeId: 'after-gap',
        state: 'applied',
        collection: 'gaptest',
        documentId: 'g1',
        docKey: 'gaptest:g1',
        operation: 'insert',
        after: { _id: 'g1', sync_updated_at: 5, _updated_by: 'alice' },
        before: null,
        timestamp: 5,
        userId: 'alice',
        serverTimestamp: now,
        createdAt: new Date(now),
      });
      const blocked = await emitAck(b, 'sync:get_changes', { cursor: head, collection: 'gaptest' });
      expect(blocked.changes).toEqual([]);
      expect(decodeCursor(blocked.cursor)).toBeLessThan(lost);
      expect(blocked.hasMore).toBe(true);
      // once the hole is older than the lease time, it is skipped and the reader goes on
      await waitFor(async () => (await emitAck(b, 'sync:get_changes', { cursor: head, collection: 'gaptest' })).changes.length === 1, 30_000, 'gap repair');
      expect(await db.db.collection('_sync_feed').findOne({ _id: lost as any })).toMatchObject({ state: 'skip' });
    } finally {
      await db.client.close();
    }
  });

  it('replays a write-ahead entry whose writer died before writing the document', async () => {
    const db = await connectTestDb('unused', t.mongoUri);
    try {
      const head = (await emitAck(b, 'sync:join', { userId: 'bob' })).cursor;

      const pos = ((await db.db.collection('_sync_feed').find({}).sort({ _id: -1 }).limit(1).toArray())[0]?._id as unknown as number) + 1;
      const now = Date.now();
      await db.db.collection('_sync_feed').insertOne({
        _id: pos as any,
        changeId: 'crashed-writer',
        state: 'pending',
        collection: 'replay',
        documentId: 'r1',
        docKey: 'replay:r1',
        operation: 'insert',
        after: { _id: 'r1', v: 1, sync_updated_at: 77, _updated_by: 'alice' },
        before: null,
        timestamp: 77,
        prevTimestamp: null,
        userId: 'alice',
        serverTimestamp: now,
        createdAt: new Date(now),
      });
      await db.db.collection('_sync_locks').insertOne({ _id: 'replay:r1' as any, owner: 'dead-node', expiresAt: new Date(now + 3000) });
      const blocked = await emitAck(b, 'sync:get_changes', { cursor: head, collection: 'replay' });
      expect(blocked.changes).toEqual([]);
      await waitFor(async () => (await emitAck(b, 'sync:get_changes', { cursor: head, collection: 'replay' })).changes.length === 1, 30_000, 'replay');
      expect(await db.db.collection('replay').findOne({ _id: 'r1' as any })).toEqual({ _id: 'r1', v: 1, sync_updated_at: 77, _updated_by: 'alice' });
      expect(await db.db.collection('_sync_feed').findOne({ _id: pos as any })).toMatchObject({ state: 'applied' });
      // the retry of that change is answered as a duplicate, not applied again
      const retry = await emitAck(a, 'sync:change', {
        changeId: 'crashed-writer',
        operation: 'insert',
        collection: 'replay',
        documentId: 'r1',
        data: { v: 1 },
        timestamp: 77,
      });
      expect(retry).toMatchObject({ success: true, duplicate: true, timestamp: 77, cursor: encodeCursor(pos) });
    } finally {
      await db.client.close();
    }
  });
});

describe('change feed retention', () => {
  let t: TestApp;
  afterAll(async () => t?.close());

  it('purges old entries and answers CURSOR_EXPIRED for cursors older than the retention window', async () => {
    // 2 seconds of retention, swept every second
    t = await startTestApp({ AUTH_MODE: 'dev', CHANGE_RETENTION_DAYS: String(2 / 86400), RETENTION_SWEEP_INTERVAL_MS: '1000' }, 'retention');
    const s = await joinedClient(t.url, 'alice');
    const head = (await emitAck(s, 'sync:join', { userId: 'alice' })).cursor;
    await emitAck(s, 'sync:change', { operation: 'insert', collection: 'ret', documentId: 'x', data: {}, timestamp: 1 });
    const ok = await emitAck(s, 'sync:get_changes', { cursor: head });
    expect(ok.changes).toHaveLength(1);
    await waitFor(async () => (await emitAck(s, 'sync:get_changes', { cursor: head })).code === 'CURSOR_EXPIRED', 15_000, 'expiry');
    const expired = await emitAck(s, 'sync:get_changes', { cursor: head });
    expect(expired).toMatchObject({ success: false, code: 'CURSOR_EXPIRED' });
    // a fresh head still works
    const fresh = (await emitAck(s, 'sync:join', { userId: 'alice' })).cursor;
    expect((await emitAck(s, 'sync:get_changes', { cursor: fresh })).success).toBe(true);
    s.close();
  });
});
