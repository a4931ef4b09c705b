/* Scenario 2 — the database's own limit: the same documents written straight to the same database
 * with the MongoDB driver (no server in between), with the same concurrency and batch size:
 *   - bulk upsert (replaceOne by _id, upsert): what a document write costs — the fair ceiling;
 *   - raw insertMany: the cheapest possible write;
 *   - the server's write path replayed with the driver: the round trips the server makes for one
 *     batch of new documents (leases, state load, write-ahead entries claiming their positions,
 *     high-water mark and idempotency records, document writes, the commit marker, lease release) with no Node.js server work between.
 *     Server ≈ this figure means the time goes to database round trips; server ≪ it means the
 *     server's own CPU work is the limit. */
import { randomUUID } from 'node:crypto';
import { MongoClient, type Db } from 'mongodb';
import { Ctx, fmt, Row, ScenarioResult } from '../lib/context';
import { createHistogram, recordMs, summarize } from '../lib/hist';
import { nowMs } from '../lib/lite-client';
import { CpuMeter } from '../lib/proc';
import { benchDoc } from '../lib/protocol';
import { WRITE_DATABASE } from './write';

type Doc = { _id: string } & Record<string, unknown>;

function docs(prefix: string, first: number, n: number): Doc[] {
  const ts = Date.now();
  return Array.from({ length: n }, (_, k) => ({ _id: `${prefix}-${first + k}`, ...benchDoc(first + k), sync_updated_at: ts, _updated_by: 'writer-0' }));
}

/** Runs `writers` closed loops of `op` for the window; returns documents per second and op latency. */
async function loop(writers: number, warmupMs: number, durationMs: number, op: (w: number, seq: number) => Promise<number>) {
  const startAt = nowMs() + warmupMs;
  const endAt = startAt + durationMs;
  const hist = createHistogram();
  let written = 0;
  await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      for (let seq = 0; nowMs() < endAt; seq++) {
        const t0 = nowMs();
        const n = await op(w, seq);
        const t1 = nowMs();
        // as for the server: operations completed inside the window
        if (t1 >= startAt && t1 <= endAt) {
          written += n;
          recordMs(hist, t1 - t0);
        }
      }
    }),
  );
  return { docsPerS: written / (durationMs / 1000), latency: summarize(hist) };
}

async function ensureWritePathIndexes(db: Db, p: string) {
  for (const [coll, specs] of [
    [
      `${p}_feed`,
      [
        { key: { userId: 1, changeId: 1 }, name: 'user_changeId_unique', unique: true },
        { key: { docKey: 1 }, name: 'docKey' },
        { key: { serverTimestamp: 1 }, name: 'serverTimestamp' },
        { key: { createdAt: 1 }, name: 'createdAt' },
      ],
    ],
    [`${p}_changes`, [{ key: { pos: 1 }, name: 'pos' }]],
    [`${p}_commits`, [{ key: { last: 1 }, name: 'last' }]],
    [`${p}_locks`, [{ key: { expiresAt: 1 }, name: 'expiresAt' }]],
    [`${p}_tombstones`, [{ key: { deletedAt: 1 }, name: 'deletedAt' }]],
  ] as const) {
    for (const { key, ...options } of specs) await db.collection(coll).createIndex(key, options);
  }
  await db.collection<any>(`${p}_counters`).updateOne({ _id: 'feed' }, { $max: { highWater: 0 } }, { upsert: true });
}

/** This process's next feed position (as SyncService keeps one per server process). */
let nextPosition = 1;

/** The database operations SyncService.applyFresh makes for one batch of inserts of new documents. */
async function writePathBatch(db: Db, p: string, coll: string, batch: Doc[]): Promise<number> {
  const feed = db.collection<any>(`${p}_feed`);
  const locks = db.collection<any>(`${p}_locks`);
  const counters = db.collection<any>(`${p}_counters`);
  const tombs = db.collection<any>(`${p}_tombstones`);
  const docsColl = db.collection<any>(coll);
  const ids = batch.map((d) => d._id);
  const keys = ids.map((id) => `${coll}:${id}`);
  const now = Date.now();
  const commit = randomUUID();
  await locks.insertMany(
    keys.map((k) => ({ _id: k, owner: 'bench', expiresAt: new Date(now + 10_000) })),
    { ordered: false },
  );
  await Promise.all([docsColl.find({ _id: { $in: ids } }).toArray(), tombs.find({ _id: { $in: keys } }).toArray()]);
  const entries = batch.map((d, i) => ({
    _id: 0,
    changeId: randomUUID(),
    state: 'pending',
    collection: coll,
    documentId: d._id,
    docKey: keys[i],
    operation: 'insert',
    after: d,
    before: null,
    timestamp: now,
    prevTimestamp: null,
    userId: 'writer-0',
    serverTimestamp: now,
    clientAddress: '127.0.0.1',
    createdAt: new Date(now),
    commit,
  }));
  // write-ahead entries claim consecutive positions by an ordered insert (the unique _id arbitrates)
  const first = nextPosition;
  nextPosition += entries.length;
  entries.forEach((e, i) => (e._id = first + i));
  await feed.insertMany(entries, { ordered: true });
  // the high-water mark and the idempotency records, together (as insertPending does)
  await Promise.all([
    counters.updateOne({ _id: 'feed' }, { $max: { highWater: first + entries.length - 1 } }),
    db.collection<any>(`${p}_changes`).insertMany(
      entries.map((e) => ({ _id: `${e.userId}\u0000${e.changeId}`, pos: e._id, createdAt: e.createdAt })),
      { ordered: false },
    ),
  ]);
  // new documents: one unordered insertMany; then the batch's commit marker (insert-only commit)
  await docsColl.insertMany(batch, { ordered: false });
  await db.collection<any>(`${p}_commits`).insertOne({ _id: commit, last: first + entries.length - 1, createdAt: new Date(now) });
  await locks.deleteMany({ _id: { $in: keys }, owner: 'bench' });
  return batch.length;
}

export async function runDbLimit(ctx: Ctx): Promise<Omit<ScenarioResult, 'elapsedS'>> {
  const o = ctx.opts.dblimit;
  const database = ctx.shared.write?.database ?? WRITE_DATABASE;
  const client = await MongoClient.connect(`${ctx.dbBaseUri}/${database}`, { maxPoolSize: Math.max(10, o.writers * 2), retryWrites: false });
  const rows: Row[] = [];
  const figures: Record<string, unknown> = { database };
  const phases: ScenarioResult['phases'] = {};
  const notes: string[] = [];
  try {
    const db = client.db();
    const warm = Math.min(1000, Math.round(o.durationMs / 3));
    const runs: [string, string, (w: number, seq: number) => Promise<number>][] = [
      [
        'bulkUpsert',
        'bulk upsert (replaceOne, upsert)',
        async (w, seq) => {
          const batch = docs(`u${w}`, seq * o.batchSize, o.batchSize);
          const r = await db.collection<Doc>('dblimit_upsert').bulkWrite(
            batch.map((d) => ({ replaceOne: { filter: { _id: d._id }, replacement: d, upsert: true } })),
            { ordered: false },
          );
          return r.upsertedCount + r.modifiedCount;
        },
      ],
      [
        'insertMany',
        'raw insertMany',
        async (w, seq) => {
          const r = await db.collection<Doc>('dblimit_insert').insertMany(docs(`i${w}`, seq * o.batchSize, o.batchSize), { ordered: false });
          return r.insertedCount;
        },
      ],
      [
        'writePath',
        "server's write path via the driver",
        (w, seq) => writePathBatch(db, '_benchpath', 'dblimit_path', docs(`p${w}`, seq * o.batchSize, o.batchSize)),
      ],
    ];
    await ensureWritePathIndexes(db, '_benchpath');
    for (const [key, label, op] of runs) {
      ctx.log(`  ${label}: ${o.writers} writers × batches of ${o.batchSize}, ${o.durationMs / 1000} s`);
      const meter = new CpuMeter(() => ({ database: [ctx.dbPid], generator: [process.pid] }));
      meter.start();
      const r = await loop(o.writers, warm, o.durationMs, op);
      phases[`dblimit-${key}`] = { cpu: meter.stop() };
      figures[key] = { docsPerS: Math.round(r.docsPerS), batchLatencyMs: r.latency };
      rows.push({ metric: `${label}: documents/s`, value: fmt(r.docsPerS) });
      rows.push({ metric: `${label}: batch latency p50 / p99`, value: `${fmt(r.latency.p50)} / ${fmt(r.latency.p99)}`, unit: 'ms' });
    }
    const ceiling = (figures.bulkUpsert as { docsPerS: number }).docsPerS;
    const path = (figures.writePath as { docsPerS: number }).docsPerS;
    if (ctx.shared.write) {
      const { batchChangesPerS, singleChangesPerS } = ctx.shared.write;
      const pct = (x: number, of: number) => (of ? Math.round((x / of) * 1000) / 10 : 0);
      figures.server = {
        batchChangesPerS,
        singleChangesPerS,
        batchPctOfBulkUpsert: pct(batchChangesPerS, ceiling),
        batchPctOfInsertMany: pct(batchChangesPerS, (figures.insertMany as { docsPerS: number }).docsPerS),
        batchPctOfWritePath: pct(batchChangesPerS, path),
        singlePctOfBulkUpsert: pct(singleChangesPerS, ceiling),
      };
      const f = figures.server as Record<string, number>;
      rows.push({ metric: 'server changeBatch as % of bulk upsert (the ceiling)', value: `${f.batchPctOfBulkUpsert}%` });
      rows.push({ metric: 'server changeBatch as % of raw insertMany', value: `${f.batchPctOfInsertMany}%` });
      rows.push({ metric: 'server changeBatch as % of its write path via the driver', value: `${f.batchPctOfWritePath}%` });
      rows.push({ metric: 'server single change as % of bulk upsert', value: `${f.singlePctOfBulkUpsert}%` });
    } else notes.push('run the write scenario in the same run (not --only=dblimit) to get the server as a percentage of the ceiling');
  } finally {
    await client.close();
  }
  return { name: 'dblimit', title: 'Database limit (MongoDB driver, no server)', params: { ...o, database }, figures, rows, notes, phases };
}
