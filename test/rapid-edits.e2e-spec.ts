/* Rapid edits of one document by one client (issue 12): none may be lost. A change without a timestamp
 * gets the server's clock and never a value at or below the stored version's; on a timestamp tie with
 * a stored version of the same author, the later-arriving change wins. Single changes, batches (inside
 * one batch and across batches) and the compatibility event mongoUpsert; both strategies that compare
 * timestamps (per document and per field). */
import { connectTestDb } from './support/db';
import type { ClientChange } from '@sync/protocol';
import { emitAck, joinedClient, startTestApp, TestApp, waitFor, ClientEvent, ClientSocket, RequestOf } from './support/app';
import { feedEntries } from './support/feed';

const BURST = 5;

describe.each([
  ['lww', {}],
  ['field', { CONFLICT_STRATEGY: 'field' }],
])('rapid edits of one document (%s strategy)', (name, env) => {
  let t: TestApp;
  let a: ClientSocket;
  let a2: ClientSocket;
  let b: ClientSocket;
  let db: Awaited<ReturnType<typeof connectTestDb>>;
  let seq = 0;
  const id = (p = 'doc') => `${p}-${++seq}`;

  beforeAll(async () => {
    t = await startTestApp({ AUTH_MODE: 'dev', RATE_LIMIT_DISABLED: 'true', ...env }, `rapid_${name}`);
    db = await connectTestDb('unused', t.mongoUri);
    a = await joinedClient(t.url, 'alice');
    a2 = await joinedClient(t.url, 'alice'); // a second device of alice
    b = await joinedClient(t.url, 'bob');
  });
  afterAll(async () => {
    for (const s of [a, a2, b]) s?.close();
    await db?.close();
    await t?.close();
  });

  const stored = (docId: string) => db.db.collection('tasks').findOne({ _id: docId as never });
  const feed = (docId: string) => feedEntries(db.db, { documentId: docId }, 'applied');
  /** Emits every payload at once (back to back on one socket) and waits for all the acks. */
  const burst = <E extends ClientEvent>(s: ClientSocket, event: E, payloads: RequestOf<E>[]) => Promise.all(payloads.map((p) => emitAck(s, event, p)));
  const update = (docId: string, i: number, extra: Record<string, unknown> = {}): ClientChange => ({
    operation: 'update',
    collection: 'tasks',
    documentId: docId,
    data: { n: i, text: `edit ${i}` },
    ...extra,
  });

  /** Every edit applied, in the order sent: the stored document is the last one, the feed holds them all. */
  async function expectAllApplied(docId: string, edits: number) {
    expect(await stored(docId)).toMatchObject({ n: edits - 1, text: `edit ${edits - 1}`, _updated_by: 'alice' });
    const entries = await feed(docId);
    const updates = entries.filter((e) => e.operation === 'update');
    expect(updates.map((e) => e.after.n)).toEqual(Array.from({ length: edits }, (_, i) => i));
    // versions never go back in time
    for (let i = 1; i < entries.length; i++) expect(entries[i].timestamp).toBeGreaterThanOrEqual(entries[i - 1].timestamp);
  }

  it('sync:change without a timestamp: every edit applies, in order (was ok, ok, CONFLICT, ok, CONFLICT)', async () => {
    const docId = id();
    expect(await emitAck(a, 'sync:change', { operation: 'insert', collection: 'tasks', documentId: docId, data: { n: -1 } })).toMatchObject({ success: true });
    const acks = await burst(
      a,
      'sync:change',
      Array.from({ length: BURST }, (_, i) => update(docId, i)),
    );
    expect(acks.map((r) => r.success || r.code)).toEqual(Array(BURST).fill(true));
    // the server's clock never gives a timestamp at or below the stored version's
    for (let i = 1; i < BURST; i++) expect(acks[i].timestamp).toBeGreaterThan(acks[i - 1].timestamp);
    await expectAllApplied(docId, BURST);
  });

  it('sync:change with one explicit timestamp (several edits in one millisecond): every edit applies', async () => {
    const docId = id();
    const ts = Date.now();
    expect(await emitAck(a, 'sync:change', { operation: 'insert', collection: 'tasks', documentId: docId, data: { n: -1 }, timestamp: ts })).toMatchObject({
      success: true,
    });
    const acks = await burst(
      a,
      'sync:change',
      Array.from({ length: BURST }, (_, i) => update(docId, i, { timestamp: ts })),
    );
    expect(acks.map((r) => r.success || r.code)).toEqual(Array(BURST).fill(true));
    for (const r of acks) expect(r.timestamp).toBe(ts);
    await expectAllApplied(docId, BURST);
  });

  it('a tie with a version of another author still keeps the stored version; another device of the same user wins it', async () => {
    const docId = id();
    const ts = Date.now();
    expect(
      await emitAck(a, 'sync:change', { operation: 'insert', collection: 'tasks', documentId: docId, data: { n: 0, text: 'alice' }, timestamp: ts }),
    ).toMatchObject({ success: true });
    const lost = await emitAck(b, 'sync:change', { operation: 'update', collection: 'tasks', documentId: docId, data: { n: 9, text: 'bob' }, timestamp: ts });
    expect(lost).toMatchObject({ success: false, code: 'CONFLICT', timestamp: ts });
    expect(lost.current).toMatchObject({ n: 0, text: 'alice' });
    const won = await emitAck(a2, 'sync:change', {
      operation: 'update',
      collection: 'tasks',
      documentId: docId,
      data: { n: 1, text: 'alice again' },
      timestamp: ts,
    });
    expect(won).toMatchObject({ success: true, timestamp: ts });
    expect(await stored(docId)).toMatchObject({ n: 1, text: 'alice again', sync_updated_at: ts });
  });

  it('a change without a timestamp comes after a stored version that is ahead of the server clock (another author)', async () => {
    const docId = id();
    const ahead = Date.now() + 30_000; // within MAX_CLOCK_SKEW_MS: kept as sent
    expect(await emitAck(b, 'sync:change', { operation: 'insert', collection: 'tasks', documentId: docId, data: { n: -1 }, timestamp: ahead })).toMatchObject({
      success: true,
      timestamp: ahead,
    });
    const ack = await emitAck(a, 'sync:change', update(docId, 0));
    expect(ack).toMatchObject({ success: true, timestamp: ahead + 1 });
    await expectAllApplied(docId, 1);
  });

  it('insert, delete and insert again in one millisecond by one author: the last one stands', async () => {
    const docId = id();
    const ts = Date.now();
    const acks = await burst(a, 'sync:change', [
      { operation: 'insert', collection: 'tasks', documentId: docId, data: { n: 1 }, timestamp: ts },
      { operation: 'delete', collection: 'tasks', documentId: docId, timestamp: ts },
      { operation: 'insert', collection: 'tasks', documentId: docId, data: { n: 3 }, timestamp: ts },
    ]);
    expect(acks.map((r) => r.success || r.code)).toEqual([true, true, true]);
    expect(await stored(docId)).toMatchObject({ n: 3, sync_updated_at: ts });
  });

  it('sync:changeBatch: several edits of one document inside one batch, and across back-to-back batches', async () => {
    for (const mode of ['server clock', 'one timestamp'] as const) {
      const docId = id();
      const ts = Date.now();
      const extra = mode === 'server clock' ? {} : { timestamp: ts };
      const first = await emitAck(a, 'sync:changeBatch', {
        changes: [
          { operation: 'insert', collection: 'tasks', documentId: docId, data: { n: -1 }, ...extra },
          ...Array.from({ length: BURST }, (_, i) => update(docId, i, extra)),
        ],
      });
      expect({ mode, results: first.results.map((r: any) => r.success || r.code) }).toEqual({ mode, results: Array(BURST + 1).fill(true) });
      // three more batches sent back to back, without waiting for each other's acks
      const more = await burst(
        a,
        'sync:changeBatch',
        [0, 1, 2].map((k) => ({ changes: Array.from({ length: BURST }, (_, i) => update(docId, BURST * (k + 1) + i, extra)) })),
      );
      for (const m of more) expect({ mode, results: m.results.map((r: any) => r.success || r.code) }).toEqual({ mode, results: Array(BURST).fill(true) });
      await expectAllApplied(docId, BURST * 4);
    }
  });

  it('mongoUpsert (compatibility): back-to-back upserts without and with one sync_updated_at all apply', async () => {
    for (const mode of ['server clock', 'one timestamp'] as const) {
      const docId = id('compat');
      const ts = Date.now();
      const acks = await burst(
        a,
        'mongoUpsert',
        Array.from({ length: BURST }, (_, i) => ({
          collection: 'tasks',
          query: { _id: docId },
          update: { n: i, text: `edit ${i}`, ...(mode === 'one timestamp' ? { sync_updated_at: ts } : {}) },
        })),
      );
      expect({ mode, acks }).toEqual({ mode, acks: Array(BURST).fill('ok') });
      await expectAllApplied(docId, BURST);
    }
  });
});

/* A writer that dies between its write-ahead entry and the document write leaves a pending entry,
 * replayed once stale. With same-author ties, the stored version may share the entry's timestamp:
 * the replay must tell the versions apart (by content), not take an equal timestamp for "in place". */
describe('replay of a version that shares its timestamp with the stored one', () => {
  let t: TestApp;
  let a: ClientSocket;
  let db: Awaited<ReturnType<typeof connectTestDb>>;

  beforeAll(async () => {
    t = await startTestApp({ AUTH_MODE: 'dev', SYNC_LOCK_TTL_MS: '1000' }, 'rapid_replay');
    db = await connectTestDb('unused', t.mongoUri);
    a = await joinedClient(t.url, 'alice');
  });
  afterAll(async () => {
    a?.close();
    await db?.close();
    await t?.close();
  });

  it('writes the pending version (update, and delete) whose writer died, though the document is at that timestamp', async () => {
    const ts = 4242;
    expect(await emitAck(a, 'sync:change', { operation: 'insert', collection: 'replay', documentId: 'r1', data: { v: 1 }, timestamp: ts })).toMatchObject({
      success: true,
    });
    expect(await emitAck(a, 'sync:change', { operation: 'insert', collection: 'replay', documentId: 'r2', data: { v: 1 }, timestamp: ts })).toMatchObject({
      success: true,
    });
    const head = (await emitAck(a, 'sync:join', { userId: 'alice' })).cursor;
    const max = (await db.db.collection('_sync_feed').find({}).sort({ _id: -1 }).limit(1).toArray())[0]._id as unknown as number;
    const now = Date.now();
    const entry = (pos: number, documentId: string, operation: string, after: Record<string, unknown> | null) => ({
      _id: pos as never,
      changeId: `crashed-${documentId}`,
      state: 'pending',
      collection: 'replay',
      documentId,
      docKey: `replay:${documentId}`,
      operation,
      after,
      before: { _id: documentId, v: 1, sync_updated_at: ts, _updated_by: 'alice' },
      timestamp: ts,
      prevTimestamp: ts,
      userId: 'alice',
      serverTimestamp: now,
      createdAt: new Date(now),
    });
    await db.db
      .collection('_sync_feed')
      .insertMany([entry(max + 1, 'r1', 'update', { _id: 'r1', v: 2, sync_updated_at: ts, _updated_by: 'alice' }), entry(max + 2, 'r2', 'delete', null)]);
    await waitFor(async () => (await emitAck(a, 'sync:get_changes', { cursor: head, collection: 'replay' })).changes.length === 2, 30_000, 'replay');
    expect(await db.db.collection('replay').findOne({ _id: 'r1' as never })).toEqual({ _id: 'r1', v: 2, sync_updated_at: ts, _updated_by: 'alice' });
    expect(await db.db.collection('replay').findOne({ _id: 'r2' as never })).toBeNull();
    expect(await db.db.collection('_sync_tombstones').findOne({ _id: 'replay:r2' as never })).toMatchObject({
      timestamp: ts,
      userId: 'alice',
      lastDoc: { v: 1 },
    });
  });
});
