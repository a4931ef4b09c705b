/* Issue 12, latency of a single change: where no other node can share the database (SYNC_SINGLE_NODE,
 * by default the embedded database without REDIS_URL) the document leases live in memory and cost no
 * `_sync_locks` round trip; nodes that share a database keep them. And two nodes writing one after the
 * other leave no hole in the feed (a node whose claimed positions were taken claims them again or
 * fills them): before, a batch after single changes alternating between nodes left holes that live
 * delivery, and the batch's ack, waited for until they were stale. */
import { randomUUID } from 'node:crypto';
import { Collection } from 'mongodb';
import { decodeCursor, ClientChange, Operation } from '@sync/protocol';
import { loadConfig } from '../src/config/config.loader';
import { LockRepository } from '../src/feed/lock.repository';
import { connectTestDb, testMongoUri } from './support/db';
import { emitAck, joinedClient, startTestApp, TestApp, ClientSocket } from './support/app';
import { feedEntries } from './support/feed';

/** Counts the writes of this process (every node of these tests runs in it) to `_sync_locks`. */
function spyLockWrites(): { count(): number; restore(): void } {
  let n = 0;
  const proto = Collection.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
  const names = ['insertOne', 'insertMany', 'updateOne', 'updateMany', 'deleteOne', 'deleteMany', 'bulkWrite', 'findOneAndUpdate'];
  const originals = names.map((name) => proto[name]);
  names.forEach((name, i) => {
    const original = originals[i];
    proto[name] = function (this: Collection, ...args: unknown[]) {
      if (this.collectionName === '_sync_locks') n++;
      return original.apply(this, args);
    };
  });
  return {
    count: () => n,
    restore: () => names.forEach((name, i) => (proto[name] = originals[i])),
  };
}

const change = (documentId: string, data: Record<string, unknown>, operation: Operation = 'insert'): ClientChange => ({
  changeId: randomUUID(),
  operation,
  collection: 'notes',
  documentId,
  data,
});

describe('SYNC_SINGLE_NODE: the default follows where the database is', () => {
  const cfg = (env: Record<string, string>) => loadConfig({ NODE_ENV: 'test', ...env }, '/nonexistent-config-dir').sync.singleNode;

  it('is on with the embedded database and no bus, off with MONGODB_URI or REDIS_URL, and an explicit setting wins', () => {
    expect(cfg({})).toBe(true);
    expect(cfg({ MONGODB_URI: 'mongodb://127.0.0.1:27017/x' })).toBe(false);
    expect(cfg({ REDIS_URL: 'redis://127.0.0.1:6379' })).toBe(false);
    expect(cfg({ SYNC_SINGLE_NODE: 'false' })).toBe(false);
    expect(cfg({ SYNC_SINGLE_NODE: 'true', MONGODB_URI: 'mongodb://127.0.0.1:27017/x' })).toBe(true);
    expect(cfg({ SYNC_SINGLE_NODE: '' })).toBe(true); // as in .env.example: empty is unset
    expect(cfg({ SYNC_SINGLE_NODE: '', MONGODB_URI: 'mongodb://127.0.0.1:27017/x' })).toBe(false);
    expect(() => cfg({ SYNC_SINGLE_NODE: 'maybe' })).toThrow(/SYNC_SINGLE_NODE/);
    expect(() => cfg({ SYNC_SINGLE_NODE: 'true', REDIS_URL: 'redis://127.0.0.1:6379' })).toThrow(/SYNC_SINGLE_NODE.*REDIS_URL/);
  });
});

describe('document leases: in memory on a single node, in the database when nodes share it', () => {
  const sockets: ClientSocket[] = [];
  const apps: TestApp[] = [];
  let spy: ReturnType<typeof spyLockWrites>;

  beforeAll(() => {
    spy = spyLockWrites();
  });
  afterAll(async () => {
    spy.restore();
    for (const s of sockets) s.close();
    for (const a of apps) await a.close();
  });
  const joined = async (url: string, user: string) => {
    const s = await joinedClient(url, user);
    sockets.push(s);
    return s;
  };

  it('a single node (SYNC_SINGLE_NODE=true) writes singles, batches and deletes without one lease in the database', async () => {
    const t = await startTestApp({ AUTH_MODE: 'dev', RATE_LIMIT_DISABLED: 'true', SYNC_SINGLE_NODE: 'true' }, 'single_node');
    apps.push(t);
    expect(t.app.get(LockRepository).inMemory).toBe(true);
    const db = await connectTestDb('unused', t.mongoUri);
    try {
      const s = await joined(t.url, 'solo');
      const before = spy.count();
      // concurrent singles of one document (one group or several: the in-process lock orders them), a batch, a delete
      const id = `doc-${randomUUID()}`;
      const acks = await Promise.all([
        emitAck(s, 'sync:change', change(id, { v: 0 })),
        ...[1, 2, 3].map((v) => emitAck(s, 'sync:change', change(id, { v }, 'update'))),
      ]);
      expect(acks.map((a) => a.success)).toEqual([true, true, true, true]);
      const batch = await emitAck(s, 'sync:changeBatch', { changes: Array.from({ length: 20 }, (_, i) => change(`b-${i}`, { i })) });
      expect(batch).toMatchObject({ successCount: 20, failureCount: 0 });
      expect(await emitAck(s, 'sync:change', { ...change('b-0', {}, 'delete'), data: undefined })).toMatchObject({ success: true });
      expect(await db.db.collection('notes').findOne({ _id: id as never })).toMatchObject({ v: 3 });
      expect(await db.db.collection('notes').countDocuments()).toBe(20);
      expect(spy.count() - before).toBe(0);
      expect(await db.db.collection('_sync_locks').countDocuments()).toBe(0);
    } finally {
      await db.close();
    }
  }, 60_000);

  it('two nodes on one database (MONGODB_URI, the default) still take their leases in the database', async () => {
    const uri = testMongoUri('two_nodes_leases');
    const a = await startTestApp({ AUTH_MODE: 'dev', RATE_LIMIT_DISABLED: 'true', MONGODB_URI: uri });
    apps.push(a);
    const b = await startTestApp({ AUTH_MODE: 'dev', RATE_LIMIT_DISABLED: 'true', MONGODB_URI: uri });
    apps.push(b);
    expect(a.app.get(LockRepository).inMemory).toBe(false);
    expect(b.app.get(LockRepository).inMemory).toBe(false);
    const sa = await joined(a.url, 'ann');
    const sb = await joined(b.url, 'bob');
    const before = spy.count();
    expect(await emitAck(sa, 'sync:change', change(`a-${randomUUID()}`, { n: 1 }))).toMatchObject({ success: true });
    const afterA = spy.count();
    expect(await emitAck(sb, 'sync:change', change(`b-${randomUUID()}`, { n: 2 }))).toMatchObject({ success: true });
    // each write: a lease claimed (an insert), then released (a delete, in the background)
    expect(afterA - before).toBeGreaterThanOrEqual(1);
    expect(spy.count() - afterA).toBeGreaterThanOrEqual(1);
  }, 60_000);
});

describe('two nodes writing one after the other leave no hole in the feed', () => {
  const sockets: ClientSocket[] = [];
  let a: TestApp;
  let b: TestApp;
  let db: Awaited<ReturnType<typeof connectTestDb>>;

  beforeAll(async () => {
    const uri = testMongoUri('alternating');
    // a short stale limit: before the fix the holes were filled with skips after it (and acks waited for it)
    const env = { AUTH_MODE: 'dev', RATE_LIMIT_DISABLED: 'true', MONGODB_URI: uri, SYNC_LOCK_TTL_MS: '1000' };
    a = await startTestApp(env);
    b = await startTestApp(env);
    db = await connectTestDb('unused', uri);
  }, 60_000);
  afterAll(async () => {
    for (const s of sockets) s.close();
    await db?.close();
    await a?.close();
    await b?.close();
  });

  it('a batch after single changes alternating between nodes takes the next positions, and the feed has neither holes nor skips', async () => {
    const sa = await joinedClient(a.url, 'alt');
    const sb = await joinedClient(b.url, 'alt');
    sockets.push(sa, sb);
    const cursors: string[] = [];
    for (let i = 0; i < 6; i++) {
      const ack = await emitAck(i % 2 ? sb : sa, 'sync:change', change(`alt-${i}`, { i }), 30_000);
      expect(ack).toMatchObject({ success: true });
      cursors.push(ack.cursor);
    }
    // node A's counter is behind: its next position was taken by node B
    const batch = await emitAck(sa, 'sync:changeBatch', { changes: Array.from({ length: 10 }, (_, i) => change(`alt-batch-${i}`, { i })) }, 30_000);
    expect(batch).toMatchObject({ successCount: 10, failureCount: 0 });
    const feed = await feedEntries(db.db);
    const positions = feed.map((e) => e._id as unknown as number);
    expect(feed.map((e) => e.state)).toEqual(feed.map(() => 'applied'));
    expect(positions).toEqual(positions.map((_, i) => positions[0] + i));
    expect(positions).toHaveLength(16);
    // every ack carries its change's own position (none was lowered to what the node had delivered)
    const byChange = new Map(feed.map((e) => [e.changeId as string, e._id as unknown as number]));
    const batchCursors = (batch.results as { changeId: string; cursor: string }[]).map((r) => [r.cursor, byChange.get(r.changeId)]);
    const decode = (c: string) => decodeCursor(c);
    for (const [cursor, pos] of batchCursors) expect(decode(cursor as string)).toBe(pos);
    expect(cursors.map(decode)).toEqual(positions.slice(0, 6));
  }, 90_000);
});
