/* The insert-only commit (issue 12): a batch's feed entries stay stored `pending` and one commit
 * marker (`_sync_commits`) makes them applied. The crash point it adds (killed after the documents,
 * before the marker) is repaired like a crash before the documents; a committed batch is never
 * replayed however old; old entries stored `applied` read as before; retention drops the markers
 * with their entries. Entries are written here exactly as a writer that died would leave them. */
import { ClientChange, decodeCursor, encodeCursor } from '@sync/protocol';
import { ChangeFeedRepository, FeedEntry } from '../src/feed/change-feed.repository';
import { connectTestDb } from './support/db';
import { emitAck, joinedClient, startTestApp, TestApp, waitFor, ClientSocket } from './support/app';

const COLL = 'marked';

describe('insert-only commit: commit markers', () => {
  let t: TestApp;
  let a: ClientSocket;
  let b: ClientSocket;
  let db: Awaited<ReturnType<typeof connectTestDb>>;
  let repo: ChangeFeedRepository;

  beforeAll(async () => {
    // leases of 1 s: a dead writer's entries are replayed after 2 s
    t = await startTestApp({ AUTH_MODE: 'dev', SYNC_LOCK_TTL_MS: '1000' }, 'commits');
    a = await joinedClient(t.url, 'alice');
    b = await joinedClient(t.url, 'bob');
    db = await connectTestDb('unused', t.mongoUri);
    repo = t.app.get(ChangeFeedRepository);
  });
  afterAll(async () => {
    a?.close();
    b?.close();
    await db?.client.close();
    await t?.close();
  });

  const entry = (pos: number, documentId: string, v: number, extra: Partial<FeedEntry> = {}): FeedEntry => ({
    _id: pos,
    changeId: `c-${pos}`,
    state: 'pending',
    collection: COLL,
    documentId,
    docKey: `${COLL}:${documentId}`,
    operation: 'insert',
    after: { _id: documentId, v, sync_updated_at: 1000 + pos, _updated_by: 'alice' },
    before: null,
    timestamp: 1000 + pos,
    prevTimestamp: null,
    userId: 'alice',
    serverTimestamp: Date.now(),
    createdAt: new Date(),
    ...extra,
  });
  const read = async (cursor: string) => emitAck(b, 'sync:get_changes', { cursor, collection: COLL, limit: 100 });
  const stored = (id: string) => db.db.collection(COLL).findOne({ _id: id as never });
  const storedEntry = (pos: number) => db.db.collection('_sync_feed').findOne({ _id: pos as never });

  it('commits a batch with one marker: its entries are not rewritten, and readers see it at once', async () => {
    const head = (await emitAck(b, 'sync:join', { userId: 'bob' })).cursor;
    const changes = Array.from({ length: 5 }, (_, i): ClientChange => ({
      changeId: `live-${i}`,
      operation: 'insert',
      collection: COLL,
      documentId: `live-${i}`,
      data: { i },
    }));
    const res = await emitAck(a, 'sync:changeBatch', { changes });
    expect(res.results.map((r: any) => r.success)).toEqual(changes.map(() => true));
    const positions = res.results.map((r: any) => decodeCursor(r.cursor)!);
    const entries = await db.db
      .collection('_sync_feed')
      .find({ _id: { $in: positions } as never })
      .toArray();
    expect(entries.map((e) => e.state)).toEqual(changes.map(() => 'pending'));
    const commit = entries[0].commit as string;
    expect(entries.every((e) => e.commit === commit)).toBe(true);
    expect(await db.db.collection('_sync_commits').findOne({ _id: commit as never })).toMatchObject({ last: Math.max(...positions) });
    const page = await read(head);
    expect(page.changes.map((c: any) => c.changeId)).toEqual(changes.map((c) => c.changeId));
    for (const c of changes) expect(await stored(c.documentId)).toMatchObject({ i: c.data?.i });
  });

  it('an ordered insert refused early leaves none of the batch behind it (FerretDB goes on with its next chunk of 100)', async () => {
    const first = (await repo.maxPosition()) + 1;
    // another node's entry holds the batch's 31st position
    expect(await repo.insertOrdered([entry(first + 30, 'other-node', 1, { changeId: 'other-node', commit: 'other' })])).toBe(1);
    const batch = Array.from({ length: 250 }, (_, i) => entry(first + i, `chunked-${i}`, i, { changeId: `chunked-${i}`, commit: 'chunked' }));
    expect(await repo.insertOrdered(batch)).toBe(30);
    const left = await db.db.collection('_sync_feed').find({ commit: 'chunked' }).project({ _id: 1 }).toArray();
    expect(left.map((e) => e._id)).toEqual(Array.from({ length: 30 }, (_, i) => first + i));
    expect((await storedEntry(first + 30))?.changeId).toBe('other-node');
    // gone again, before the server's writer claims these positions
    await db.db.collection('_sync_feed').deleteMany({ commit: { $in: ['chunked', 'other'] } });
  });

  it('a batch of over 100 changes with retries in it: every new change is written and acknowledged once', async () => {
    const head = (await emitAck(b, 'sync:join', { userId: 'bob' })).cursor;
    const change = (id: string, i: number): ClientChange => ({ changeId: id, operation: 'insert', collection: COLL, documentId: id, data: { i } });
    const early = [change('big-retry-0', 0), change('big-retry-1', 1)];
    const firstAcks = (await emitAck(a, 'sync:changeBatch', { changes: early })).results;
    expect(firstAcks.every((r: any) => r.success)).toBe(true);
    // what a client killed mid-flight sends again: a retry first, one in the middle, new changes around them
    const fresh = Array.from({ length: 240 }, (_, i) => change(`big-new-${i}`, i));
    const changes = [early[0], ...fresh.slice(0, 50), early[1], ...fresh.slice(50)];
    const res = await emitAck(a, 'sync:changeBatch', { changes });
    expect(res.results[0]).toMatchObject({ success: true, duplicate: true, cursor: firstAcks[0].cursor });
    expect(res.results[51]).toMatchObject({ success: true, duplicate: true, cursor: firstAcks[1].cursor });
    const freshAcks = res.results.filter((_: unknown, i: number) => i !== 0 && i !== 51);
    expect(freshAcks.filter((r: any) => !r.success || r.duplicate)).toEqual([]);
    for (const c of fresh) expect(await stored(c.documentId)).toMatchObject({ i: c.data?.i });
    // the feed holds each change once, at the position its ack named
    const seen: any[] = [];
    let cursor = head;
    for (;;) {
      const page = await read(cursor);
      seen.push(...page.changes.filter((c: any) => c.documentId.startsWith('big-')));
      cursor = page.cursor;
      if (!page.hasMore) break;
    }
    expect(seen.map((c: any) => c.changeId)).toEqual([...early, ...fresh].map((c) => c.changeId));
    expect(seen.slice(2).map((c: any) => c.cursor)).toEqual(freshAcks.map((r: any) => r.cursor));
  });

  it('replays a batch whose writer died after (some of) its documents, before its marker', async () => {
    const head = (await emitAck(b, 'sync:join', { userId: 'bob' })).cursor;
    const first = (await repo.maxPosition()) + 1;
    // the dead writer's batch: two entries naming a commit that never came; the first document was
    // written, the second not yet
    const e1 = entry(first, 'dead-1', 1, { commit: 'dead-batch' });
    const e2 = entry(first + 1, 'dead-2', 2, { commit: 'dead-batch' });
    expect(await repo.insertOrdered([e1, e2])).toBe(2);
    await repo.raiseHighWater(first + 1);
    await db.db.collection(COLL).insertOne({ ...e1.after } as never);
    const lease = new Date(Date.now() + 1000);
    await db.db.collection('_sync_locks').insertMany([
      { _id: `${COLL}:dead-1` as never, owner: 'dead-node', expiresAt: lease },
      { _id: `${COLL}:dead-2` as never, owner: 'dead-node', expiresAt: lease },
    ]);
    // not committed: the reader waits at it
    const blocked = await read(head);
    expect(blocked.changes).toEqual([]);
    expect(decodeCursor(blocked.cursor)).toBeLessThan(first);
    // once stale, replayed: each change once, in order, the documents at their versions
    await waitFor(async () => (await read(head)).changes.length === 2, 30_000, 'replay of the uncommitted batch');
    expect((await read(head)).changes.map((c: any) => [c.changeId, decodeCursor(c.cursor)])).toEqual([
      [e1.changeId, first],
      [e2.changeId, first + 1],
    ]);
    expect(await stored('dead-1')).toEqual(e1.after);
    expect(await stored('dead-2')).toEqual(e2.after);
    expect((await storedEntry(first))?.state).toBe('applied');
    expect((await storedEntry(first + 1))?.state).toBe('applied');
    // the client's retry gets its first ack, marked duplicate
    const retry = await emitAck(a, 'sync:change', {
      changeId: e2.changeId,
      operation: 'insert',
      collection: COLL,
      documentId: 'dead-2',
      data: { v: 2 },
      timestamp: e2.timestamp,
    });
    expect(retry).toMatchObject({ success: true, duplicate: true, cursor: encodeCursor(first + 1) });
  });

  it('never replays a committed batch, however old; its aborted entries stay aborted; old `applied` entries read as before', async () => {
    const head = (await emitAck(b, 'sync:join', { userId: 'bob' })).cursor;
    const first = (await repo.maxPosition()) + 1;
    const old = new Date(Date.now() - 3_600_000);
    // committed an hour ago; its documents were changed since (here: deleted by another application),
    // so a replay would show: it would write them back
    const entries = [
      entry(first, 'old-1', 1, { commit: 'old-batch', createdAt: old }),
      entry(first + 1, 'old-2', 2, { commit: 'old-batch', createdAt: old, state: 'aborted', changeId: `aborted:${first + 1}:c-${first + 1}` }),
      entry(first + 2, 'old-3', 3, { createdAt: old, state: 'applied' }), // written before commit markers existed
    ];
    expect(await repo.insertOrdered(entries)).toBe(3);
    await db.db.collection('_sync_commits').insertOne({ _id: 'old-batch' as never, last: first + 1, createdAt: old });
    await repo.raiseHighWater(first + 2);
    const page = await read(head);
    expect(page.changes.map((c: any) => [c.changeId, decodeCursor(c.cursor)])).toEqual([
      [`c-${first}`, first],
      [`c-${first + 2}`, first + 2],
    ]);
    expect(page.hasMore).toBe(false);
    expect(await stored('old-1')).toBeNull();
    expect(await stored('old-2')).toBeNull();
    expect((await storedEntry(first))?.state).toBe('pending');
  });

  it('waits at a hole wider than a read window and skips it once stale', async () => {
    const head = (await emitAck(b, 'sync:join', { userId: 'bob' })).cursor;
    // a writer claimed 700 positions and died; a change after them landed
    const after = (await repo.maxPosition()) + 700;
    const e = entry(after + 1, 'past-hole', 1, { state: 'applied' });
    expect(await repo.insertOrdered([e])).toBe(1);
    await repo.raiseHighWater(after + 1);
    const pastHole = async () => (await read(head)).changes.filter((c: any) => c.documentId === 'past-hole');
    const blocked = await read(head);
    expect(blocked.changes.filter((c: any) => c.documentId === 'past-hole')).toEqual([]);
    expect(decodeCursor(blocked.cursor)).toBeLessThanOrEqual(after - 700);
    await waitFor(async () => (await pastHole()).length === 1, 30_000, 'the hole is skipped');
    expect((await pastHole()).map((c: any) => decodeCursor(c.cursor))).toEqual([after + 1]);
    expect((await storedEntry(after))?.state).toBe('skip');
  });

  it('retention drops the markers with their entries and keeps the later ones', async () => {
    const batch = async (tag: string) => {
      const changes = Array.from({ length: 3 }, (_, i): ClientChange => ({
        changeId: `${tag}-${i}`,
        operation: 'insert',
        collection: COLL,
        documentId: `${tag}-${i}`,
        data: { i },
      }));
      const res = await emitAck(a, 'sync:changeBatch', { changes });
      expect(res.results.every((r: any) => r.success)).toBe(true);
      return res.results.map((r: any) => decodeCursor(r.cursor)!) as number[];
    };
    const early = await batch('early');
    const cutoff = new Date(Date.now() + 2);
    await waitFor(async () => Date.now() > cutoff.getTime() + 2, 5_000, 'the clock passes the cutoff');
    const late = await batch('late');
    const commitOf = async (pos: number) => (await storedEntry(pos))!.commit as string;
    const [earlyCommit, lateCommit] = [await commitOf(early[0]), await commitOf(late[0])];
    // retention purges only up to the settled head the feed walk recorded
    await waitFor(async () => (await repo.settledThrough()) >= Math.max(...late), 30_000, 'the settled head is recorded');
    expect(await repo.purge(cutoff)).toBeGreaterThanOrEqual(early.length);
    expect(await db.db.collection('_sync_commits').findOne({ _id: earlyCommit as never })).toBeNull();
    expect(await db.db.collection('_sync_commits').findOne({ _id: lateCommit as never })).not.toBeNull();
    expect(await storedEntry(Math.max(...early))).toBeNull();
    // the idempotency records go with their entries, found by position (the index retention uses)
    const records = db.db.collection('_sync_changes');
    expect(await records.countDocuments({ pos: { $in: early } })).toBe(0);
    expect(await records.countDocuments({ pos: { $in: late } })).toBe(late.length);
    expect((await records.indexes()).map((i) => i.name)).toEqual(expect.arrayContaining(['pos']));
    expect((await records.indexes()).map((i) => i.name)).not.toContain('createdAt');
    const page = await read(encodeCursor(Math.min(...late) - 1));
    expect(page.changes.map((c: any) => c.changeId)).toEqual(['late-0', 'late-1', 'late-2']);
  });
});
