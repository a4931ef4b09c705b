/* The catch-up scenario's data written straight into the server's database with the driver
 * (`--catchup-fill=direct`): the same documents and the same feed entries (settled, consecutive
 * positions after the feed's current end, the high-water mark raised) that `sync:changeBatch` of
 * those inserts leaves behind, in a fraction of the time. For measuring the read side on a busy
 * machine, where writing 100,000 changes through the server takes minutes; the default fill goes
 * through the server. */
import { randomUUID } from 'node:crypto';
import { MongoClient } from 'mongodb';
import { benchDoc } from '../lib/protocol';

export async function fillDirect(uri: string, collection: string, prefix: string, count: number): Promise<{ written: number; elapsedMs: number }> {
  const client = await MongoClient.connect(uri, { maxPoolSize: 2 });
  const t0 = performance.now();
  try {
    const db = client.db();
    const feed = db.collection<any>('_sync_feed');
    const last = await feed
      .find({}, { projection: { _id: 1 } })
      .sort({ _id: -1 })
      .limit(1)
      .toArray();
    let pos = last.length ? (last[0]._id as number) : 0;
    const step = 1000;
    for (let first = 0; first < count; first += step) {
      const now = Date.now();
      const docs = Array.from({ length: Math.min(step, count - first) }, (_, k) => ({
        _id: `${prefix}-${first + k}`,
        ...benchDoc(first + k),
        sync_updated_at: now,
        _updated_by: 'filler',
      }));
      await db.collection<any>(collection).insertMany(docs, { ordered: false });
      const entries = docs.map((d) => ({
        _id: ++pos,
        changeId: randomUUID(),
        state: 'applied',
        collection,
        documentId: d._id,
        docKey: `${collection}:${d._id}`,
        operation: 'insert',
        after: d,
        before: null,
        timestamp: now,
        prevTimestamp: null,
        userId: 'filler',
        serverTimestamp: now,
        clientAddress: '127.0.0.1',
        createdAt: new Date(now),
      }));
      await feed.insertMany(entries, { ordered: true });
      await db.collection<any>('_sync_changes').insertMany(
        entries.map((e) => ({ _id: `${e.userId}\u0000${e.changeId}`, pos: e._id, createdAt: e.createdAt })),
        { ordered: false },
      );
      await db.collection<any>('_sync_counters').updateOne({ _id: 'feed' }, { $max: { highWater: pos } }, { upsert: true });
    }
    return { written: count, elapsedMs: performance.now() - t0 };
  } finally {
    await client.close();
  }
}
