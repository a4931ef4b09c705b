/* The database's own read rates for the catch-up scenario's data (the ceiling of catch-up and
 * bootstrap): the feed entries and the documents the server just wrote, read with the MongoDB driver
 * (no server in between) in the shapes a reader can use:
 *   - feed by `_id: {$in}` windows of 500 / 900 / 1,000 / 5,000 positions (the embedded FerretDB
 *     pushes a `$in` of up to 900 values down to SQLite; a larger one reads the whole feed per query,
 *     so those are timed on one window only and extrapolated);
 *   - feed by `_id` windows of 500 without the before image (what a projection saves);
 *   - feed by `_id` range (`$gt`/`$lte`, one query per window: not pushed down on FerretDB, so timed
 *     on a few windows) and the whole feed through one cursor (`find({})`, batchSize 5,000);
 *   - the documents through one cursor (batchSize 501 as a bootstrap of pages of 500 asks, and
 *     5,000), their `countDocuments` (what a subscribe's ack counts) and `estimatedDocumentCount`;
 *   - two concurrent readers (feed `$in` windows of 500 interleaved, documents by `_id` windows).
 * Each read: items per second, and the CPU of the database and of this process per 100,000 items. */
import { MongoClient, type Db } from 'mongodb';
import { fmt, Row } from '../lib/context';
import { cpuSeconds } from '../lib/proc';

export interface ReadRate {
  items: number;
  seconds: number;
  perS: number;
  /** CPU-seconds per 100,000 items: the database process, and this process (driver decoding). */
  dbCpuPer100k: number | null;
  clientCpuPer100k: number;
  /** True when timed on part of the data and extrapolated. */
  extrapolated?: boolean;
}

async function measure(dbPid: number | undefined, work: () => Promise<{ items: number; scale?: number }>): Promise<ReadRate> {
  const db0 = cpuSeconds(dbPid);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const { items, scale = 1 } = await work();
  const seconds = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  const db1 = cpuSeconds(dbPid);
  const per100k = (s: number) => Math.round(((s * 100_000) / Math.max(1, items)) * 100) / 100;
  return {
    items: Math.round(items * scale),
    seconds: Math.round(seconds * scale * 100) / 100,
    perS: Math.round(items / seconds),
    dbCpuPer100k: db0 === null || db1 === null ? null : per100k(db1 - db0),
    clientCpuPer100k: per100k((c.user + c.system) / 1e6),
    ...(scale !== 1 ? { extrapolated: true } : {}),
  };
}

/** Reads `ids` in windows of `size` by `$in` with `readers` windows in flight; at most `maxWindows`. */
async function byWindows(db: Db, coll: string, ids: any[], size: number, readers: number, projection?: Record<string, 0 | 1>, maxWindows = Infinity) {
  const windows: any[][] = [];
  for (let i = 0; i < ids.length && windows.length < maxWindows; i += size) windows.push(ids.slice(i, i + size));
  let next = 0;
  let items = 0;
  await Promise.all(
    Array.from({ length: readers }, async () => {
      while (next < windows.length) {
        const w = windows[next++];
        items += (
          await db
            .collection<any>(coll)
            .find({ _id: { $in: w } }, projection ? { projection } : {})
            .toArray()
        ).length;
      }
    }),
  );
  const read = windows.reduce((s, w) => s + w.length, 0);
  return { items, scale: ids.length / Math.max(1, read) };
}

async function byCursor(db: Db, coll: string, batchSize: number, filter: Record<string, unknown> = {}) {
  let items = 0;
  for await (const d of db.collection(coll).find(filter).batchSize(batchSize)) if (d) items++;
  return { items };
}

/** Runs the reads against `uri` (the server's database: `_sync_feed` and `collection`). */
export async function measureReadCeiling(
  uri: string,
  dbPid: number | undefined,
  collection: string,
  log: (m: string) => void,
): Promise<{ figures: Record<string, ReadRate>; rows: Row[] }> {
  const client = await MongoClient.connect(uri, { maxPoolSize: 4 });
  const figures: Record<string, ReadRate> = {};
  const rows: Row[] = [];
  try {
    const db = client.db();
    // the ids, read once outside any timing
    const feedIds = (
      await db
        .collection<{ _id: number }>('_sync_feed')
        .find({}, { projection: { _id: 1 } })
        .toArray()
    )
      .map((e) => e._id)
      .sort((a, b) => a - b);
    const docIds = (
      await db
        .collection(collection)
        .find({}, { projection: { _id: 1 } })
        .toArray()
    ).map((d) => d._id as unknown);
    const runs: [string, string, () => Promise<{ items: number; scale?: number }>][] = [
      ['feedIn500', 'feed by _id $in windows of 500', () => byWindows(db, '_sync_feed', feedIds, 500, 1)],
      ['feedIn900', 'feed by _id $in windows of 900', () => byWindows(db, '_sync_feed', feedIds, 900, 1)],
      ['feedIn1000', 'feed by _id $in windows of 1,000 (not pushed down: 1 window)', () => byWindows(db, '_sync_feed', feedIds, 1000, 1, undefined, 1)],
      ['feedIn5000', 'feed by _id $in windows of 5,000 (not pushed down: 1 window)', () => byWindows(db, '_sync_feed', feedIds, 5000, 1, undefined, 1)],
      ['feedIn500NoBefore', 'feed by _id $in windows of 500, projection {before: 0}', () => byWindows(db, '_sync_feed', feedIds, 500, 1, { before: 0 })],
      ['feedIn500x2', 'feed by _id $in windows of 500, 2 readers', () => byWindows(db, '_sync_feed', feedIds, 500, 2)],
      [
        'feedRange5000',
        'feed by _id range of 5,000 ($gt/$lte: 1 window)',
        async () => {
          let items = 0;
          for (let w = 0; w < 1; w++) {
            const after = feedIds[w * 5000] - 1;
            items += (
              await db
                .collection<{ _id: number }>('_sync_feed')
                .find({ _id: { $gt: after, $lte: after + 5000 } })
                .toArray()
            ).length;
          }
          return { items, scale: feedIds.length / Math.max(1, items) };
        },
      ],
      ['feedCursor', 'whole feed through one cursor (batchSize 5,000)', () => byCursor(db, '_sync_feed', 5000)],
      ['docsCursor501', 'documents through one cursor (batchSize 501)', () => byCursor(db, collection, 501)],
      ['docsCursor5000', 'documents through one cursor (batchSize 5,000)', () => byCursor(db, collection, 5000)],
      ['docsIn500x2', 'documents by _id $in windows of 500, 2 readers', () => byWindows(db, collection, docIds, 500, 2)],
      ['docsCount', 'countDocuments({}) of the documents', async () => ({ items: await db.collection(collection).countDocuments({}) })],
      ['docsEstimatedCount', 'estimatedDocumentCount() of the documents', async () => ({ items: await db.collection(collection).estimatedDocumentCount() })],
    ];
    for (const [key, label, work] of runs) {
      log(`    ${label}`);
      const r = await measure(dbPid, work);
      figures[key] = r;
      rows.push({
        metric: `database: ${label}`,
        value: `${fmt(r.perS)}/s${r.extrapolated ? ' (extrapolated)' : ''}, CPU per 100k: db ${r.dbCpuPer100k === null ? '?' : fmt(r.dbCpuPer100k)} s, driver ${fmt(r.clientCpuPer100k)} s`,
      });
    }
  } finally {
    await client.close();
  }
  return { figures, rows };
}
