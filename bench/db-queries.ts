/* Cost of the query shapes the server's write and read paths use, against the database, as a
 * collection grows — and of the alternatives a fix could use:
 *   npx tsx bench/db-queries.ts [--sizes=1000,10000,30000] [--mongodb-uri=URI]
 * Without a URI it starts the embedded FerretDB in a temporary folder. A cost that grows with the
 * collection means the database answers that shape with a scan, not an index. */
import * as fs from 'node:fs';
import { MongoClient } from 'mongodb';
import { scratchDatabase } from './lib/scratch-database';

const arg = (k: string) => process.argv.find((a) => a.startsWith(`--${k}=`))?.slice(k.length + 3);

async function main() {
  const sizes = (arg('sizes') ?? '1000,10000,30000').split(',').map(Number);
  const db0 = await scratchDatabase(arg('mongodb-uri'), 'dbq');
  const uri = db0.uri;
  const c = await MongoClient.connect(uri, { socketTimeoutMS: 120_000 });
  const results: Record<string, Record<number, number>> = {};
  try {
    const db = c.db();
    const num = db.collection<any>('feed_numeric_id');
    const str = db.collection<any>('docs_string_id');
    for (const coll of [num, str]) {
      await coll.drop().catch(() => undefined);
      await coll.createIndexes([
        { key: { changeId: 1 }, name: 'changeId_unique', unique: true },
        { key: { docKey: 1 }, name: 'docKey' },
      ]);
    }
    const time = async (label: string, size: number, f: (i: number) => Promise<unknown>, reps = 5) => {
      await f(-1);
      const t0 = performance.now();
      for (let i = 0; i < reps; i++) await f(i);
      const ms = Math.round(((performance.now() - t0) / reps) * 100) / 100;
      (results[label] ??= {})[size] = ms;
      console.log(`${label.padEnd(60)} ${String(ms).padStart(9)} ms`);
    };
    const sid = (i: number) => `doc-${String(i).padStart(8, '0')}`;
    let n = 0;
    for (const size of sizes) {
      while (n < size) {
        const k = Math.min(1000, size - n);
        const mk = (id: number | string, j: number) => ({
          _id: id,
          changeId: `c${j}`,
          docKey: `t:${j}`,
          state: 'applied',
          sync_updated_at: 1,
          body: 'x'.repeat(200),
        });
        await num.insertMany(Array.from({ length: k }, (_, j) => mk(n + j, n + j)));
        await str.insertMany(Array.from({ length: k }, (_, j) => mk(sid(n + j), n + j)));
        n += k;
      }
      console.log(`--- ${size} documents per collection`);
      const rnd = () => Math.floor(Math.random() * size);
      const ids = (k = 100) => Array.from({ length: k }, rnd);
      const cont = () => {
        const first = Math.max(0, rnd() - 100);
        return Array.from({ length: 100 }, (_, k) => first + k);
      };
      // the shapes the server uses today
      await time('numeric _id: find({_id: {$in: 100}})', size, () => num.find({ _id: { $in: ids() } }).toArray());
      // settle: 100 consecutive entries really flip from pending to applied (a write per entry)
      const flip = async (filter: (ids: number[]) => Record<string, unknown>) => {
        const ids = cont();
        await num.updateMany({ _id: { $in: ids } }, { $set: { state: 'pending' } });
        const t0 = performance.now();
        await num.updateMany({ ...filter(ids), state: 'pending' }, { $set: { state: 'applied' } });
        return performance.now() - t0;
      };
      const flipTime = async (label: string, filter: (ids: number[]) => Record<string, unknown>) => {
        let total = 0;
        for (let i = 0; i < 3; i++) total += await flip(filter);
        const ms = Math.round((total / 3) * 100) / 100;
        (results[label] ??= {})[size] = ms;
        console.log(`${label.padEnd(60)} ${String(ms).padStart(9)} ms`);
      };
      await flipTime('numeric _id: updateMany({_id: {$in: 100}, state}) (settle)', (ids) => ({ _id: { $in: ids } }));
      await flipTime('alt: updateMany({_id: {$gte, $lte}, state}) (settle by range)', (ids) => ({ _id: { $gte: ids[0], $lte: ids[ids.length - 1] } }));
      await time('numeric _id: find({_id: {$gt}}).sort({_id}).limit(1000) (scan)', size, () =>
        num
          .find({ _id: { $gt: size - 2000 } })
          .sort({ _id: 1 })
          .limit(1000)
          .toArray(),
      );
      await time('numeric _id: findOne({_id})', size, () => num.findOne({ _id: rnd() }));
      await time('indexed field: find({changeId: {$in: 100}}) (idempotency)', size, () => num.find({ changeId: { $in: ids().map((i) => `c${i}`) } }).toArray());
      await time('indexed field: find({docKey}) (equality)', size, () => num.find({ docKey: `t:${rnd()}` }).toArray());
      await time('string _id: find({_id: {$in: 100}}) (load states)', size, () => str.find({ _id: { $in: ids().map(sid) } }).toArray());
      await time('string _id: findOne({_id})', size, () => str.findOne({ _id: sid(rnd()) }));
      await time('string _id: findOne({_id, sync_updated_at}) (CAS guard)', size, () => str.findOne({ _id: sid(rnd()), sync_updated_at: 1 }));
      await time('string _id: bulk 20 × replaceOne({_id, sync_updated_at}) (CAS)', size, () =>
        str.bulkWrite(
          ids(20).map((i) => ({
            replaceOne: {
              filter: { _id: sid(i), sync_updated_at: 1 },
              replacement: { changeId: `c${i}`, docKey: `t:${i}`, state: 'applied', sync_updated_at: 1, body: 'y' },
            },
          })),
          { ordered: false },
        ),
      );
      // alternatives
      await time('alt: bulk 100 × updateOne({_id: string})', size, () =>
        str.bulkWrite(
          ids().map((i) => ({ updateOne: { filter: { _id: sid(i) }, update: { $set: { state: 'applied' } } } })),
          { ordered: false },
        ),
      );
      await time('alt: 100 × findOne({_id: string}) in parallel', size, () => Promise.all(ids().map((i) => str.findOne({ _id: sid(i) }))));
      await time('alt: bulk 20 × replaceOne({_id: string}) (no guard)', size, () =>
        str.bulkWrite(
          ids(20).map((i) => ({
            replaceOne: { filter: { _id: sid(i) }, replacement: { changeId: `c${i}`, docKey: `t:${i}`, state: 'applied', sync_updated_at: 1, body: 'y' } },
          })),
          { ordered: false },
        ),
      );
      await time('insertOne (e.g. a commit marker)', size, async (i) => {
        await str.insertOne({ _id: `marker-${size}-${i}`, changeId: `m${size}-${i}`, docKey: `m:${size}-${i}`, state: 'applied' });
      });
      await time('insertMany 100 (new string _ids)', size, async (i) => {
        const base = 90_000_000 + size * 10 + (i + 1) * 100;
        await str.insertMany(
          Array.from({ length: 100 }, (_, j) => ({ _id: sid(base + j), changeId: `n${base + j}`, docKey: `n:${base + j}`, state: 'pending', body: 'z' })),
        );
      });
    }
  } finally {
    await c.close();
    await db0.stop();
  }
  const out = arg('json');
  if (out) fs.writeFileSync(out, JSON.stringify({ uri: uri.replace(/\/\/[^@/]*@/, '//***@'), sizes, msPerQuery: results }, null, 2) + '\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
