/* A retry in front of new changes of the same document (the randomized convergence failure, seed
 * 474489626): a device sends a change, loses the connection before its ack, and on reconnect resends
 * it together with its next edit of that document. Meanwhile another user has changed the document.
 * The retry must be answered `duplicate` and have no effect: the next edit is resolved against the
 * other user's version, not against the retry resolved a second time (a retry without a timestamp
 * gets the server's clock, so it would win again), even though the feed's unique index then drops
 * the retry's own entry. Through one batch, through group commit (single changes of several sockets
 * queued together), and when the retry's record in _sync_changes is missing (its writer stopped
 * before writing it), where only the feed's unique index recognises it. */
import { randomUUID } from 'node:crypto';
import { connectTestDb } from './support/db';
import type { ClientChange, Operation } from '@sync/protocol';
import { emitAck, joinedClient, startTestApp, TestApp, ClientSocket } from './support/app';
import { feedEntries } from './support/feed';

const COLL = 'notes';
const ACK_MS = 60_000;

describe('a retry followed by new changes of its document', () => {
  let t: TestApp;
  let db: Awaited<ReturnType<typeof connectTestDb>>;
  let alice: ClientSocket;
  let bob: ClientSocket;
  const others: ClientSocket[] = [];

  beforeAll(async () => {
    t = await startTestApp({ AUTH_MODE: 'dev', RATE_LIMIT_DISABLED: 'true' }, 'retryfold');
    db = await connectTestDb('unused', t.mongoUri);
    alice = await joinedClient(t.url, 'alice');
    bob = await joinedClient(t.url, 'bob');
    for (let i = 0; i < 2; i++) others.push(await joinedClient(t.url, `other${i}`));
  });
  afterAll(async () => {
    for (const s of [alice, bob, ...others]) s?.close();
    await db?.close();
    await t?.close();
  });

  const change = (documentId: string, operation: Operation, data?: Record<string, unknown>): ClientChange => ({
    changeId: randomUUID(),
    operation,
    collection: COLL,
    documentId,
    ...(data ? { data } : {}),
  });
  const send = async (s: ClientSocket, c: ClientChange) => {
    const ack = await emitAck(s, 'sync:change', c, ACK_MS);
    expect(ack).toMatchObject({ success: true });
    return ack;
  };
  const stored = (id: string) => db.db.collection(COLL).findOne({ _id: id as never });
  const feed = (id: string) => feedEntries(db.db, { documentId: id });

  /**
   * alice's first edit (acked, but say she never got the ack), then bob deletes the document and
   * creates it again: the stored version is bob's.
   */
  async function setUp(id: string) {
    const first = change(id, 'insert', { b: { n: 1 }, c: 'x', a: false });
    const firstAck = await send(alice, first);
    await send(bob, change(id, 'delete'));
    const bobs = await send(bob, change(id, 'insert', { b: null }));
    expect(await stored(id)).toMatchObject({ b: null, _updated_by: 'bob' });
    return { first, firstAck, bobs };
  }

  /** The retry was answered with its first ack and changed nothing; the next edit applied on bob's version. */
  async function expectRetryHadNoEffect(id: string, retryAck: any, firstAck: any, nextAck: any, bobsAck: any) {
    expect(retryAck).toMatchObject({ success: true, duplicate: true, changeId: firstAck.changeId, cursor: firstAck.cursor, timestamp: firstAck.timestamp });
    expect(nextAck).toMatchObject({ success: true });
    expect(nextAck.duplicate).toBeUndefined();
    expect(nextAck.timestamp).toBeGreaterThan(bobsAck.timestamp);
    const doc = await stored(id);
    // bob's version with alice's next edit on top: bob's b:null stays, nothing of the first edit comes back
    expect(doc).toEqual({ _id: id, b: null, c: { n: 2 }, a: 15, sync_updated_at: nextAck.timestamp, _updated_by: 'alice' });
    // the feed: the first edit once, bob's delete and insert, the next edit; its after-image is what is stored
    const entries = (await feed(id)).filter((e) => e.state !== 'skip');
    expect(entries.map((e) => [e.state, e.operation, e.userId])).toEqual([
      ['applied', 'insert', 'alice'],
      ['applied', 'delete', 'bob'],
      ['applied', 'insert', 'bob'],
      ['applied', 'insert', 'alice'],
    ]);
    expect(entries[3].after).toEqual(doc);
    expect(entries[3].before).toEqual({ _id: id, b: null, sync_updated_at: bobsAck.timestamp, _updated_by: 'bob' });
  }

  it("in one batch: the retry is a duplicate, the next edit is resolved against the other user's version", async () => {
    const id = `batch-${randomUUID()}`;
    const { first, firstAck, bobs } = await setUp(id);
    const next = change(id, 'insert', { c: { n: 2 }, a: 15 });
    const res = await emitAck(alice, 'sync:changeBatch', { changes: [first, next] }, ACK_MS);
    expect(res).toMatchObject({ success: true });
    await expectRetryHadNoEffect(id, res.results[0], firstAck, res.results[1], bobs);
  });

  it("through group commit: the retry and the next edit queued behind other sockets' changes", async () => {
    const id = `group-${randomUUID()}`;
    const { first, firstAck, bobs } = await setUp(id);
    const next = change(id, 'insert', { c: { n: 2 }, a: 15 });
    // two changes of other sockets take the two group slots; alice's two single changes queue
    // behind them and are (most often) applied as one group. The outcome must be the same either way
    const busy = others.map((s, i) => emitAck(s, 'sync:change', change(`busy-${i}-${randomUUID()}`, 'insert', { v: i }), ACK_MS));
    const [retryAck, nextAck] = await Promise.all([emitAck(alice, 'sync:change', first, ACK_MS), emitAck(alice, 'sync:change', next, ACK_MS)]);
    for (const b of await Promise.all(busy)) expect(b).toMatchObject({ success: true });
    await expectRetryHadNoEffect(id, retryAck, firstAck, nextAck, bobs);
  });

  it("a retry whose record was lost (recognised only by the feed's unique index) does not spoil the next edit either", async () => {
    const id = `norecord-${randomUUID()}`;
    const { first, firstAck, bobs } = await setUp(id);
    // as if the first attempt's writer had stopped before writing its idempotency record
    expect((await db.db.collection('_sync_changes').deleteOne({ _id: `alice\u0000${first.changeId}` as never })).deletedCount).toBe(1);
    const next = change(id, 'insert', { c: { n: 2 }, a: 15 });
    const res = await emitAck(alice, 'sync:changeBatch', { changes: [first, next] }, ACK_MS);
    expect(res.results[0]).toMatchObject({ success: true, duplicate: true, changeId: first.changeId, cursor: firstAck.cursor });
    // the next edit was resolved on top of the retry: it is not written, and answered UNAVAILABLE (retry)
    expect(res.results[1]).toMatchObject({ success: false, code: 'UNAVAILABLE' });
    expect(await stored(id)).toMatchObject({ b: null, _updated_by: 'bob', sync_updated_at: bobs.timestamp });
    // the device retries it, as it does on UNAVAILABLE: now it applies on bob's version
    const nextAck = await send(alice, next);
    await expectRetryHadNoEffect(id, res.results[0], firstAck, nextAck, bobs);
  });
});
