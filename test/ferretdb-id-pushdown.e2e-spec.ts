/* Our FerretDB patch (scripts/ferretdb/0001-sqlite-id-pushdown.patch) pushes `_id` conditions down to
 * SQLite. It must not change what a query matches: MongoDB compares numbers across types (int32,
 * int64 and double 5 are equal, 0 equals -0) and never a number with a string. These are the answers
 * MongoDB gives (and the stock FerretDB build gave, checked when the patch was written). */
import { Double, Long, ObjectId } from 'mongodb';
import { connectTestDb } from './support/db';

describe('embedded database: _id lookups keep MongoDB semantics with our pushdown patch', () => {
  let t: Awaited<ReturnType<typeof connectTestDb>>;
  const oid = new ObjectId();
  beforeAll(async () => {
    t = await connectTestDb('idpushdown');
    await t.db.collection<any>('t').insertMany([
      { _id: 5, k: 'i32' },
      { _id: new Double(6), k: 'dbl6' },
      { _id: Long.fromNumber(7), k: 'long7' },
      { _id: new Double(5.5), k: 'dbl5.5' },
      { _id: new Double(-0), k: 'negzero' },
      { _id: '5', k: 'str5' },
      { _id: oid, k: 'oid' },
      { _id: 2 ** 40, k: 'big' },
      { _id: -3, k: 'neg' },
    ]);
  });
  afterAll(async () => {
    await t?.close();
  });

  const cases: [string, () => object, string[]][] = [
    ['int32 5', () => ({ _id: 5 }), ['i32']],
    ['long 5', () => ({ _id: Long.fromNumber(5) }), ['i32']],
    ['double 5', () => ({ _id: new Double(5) }), ['i32']],
    ['int32 6 finds double 6', () => ({ _id: 6 }), ['dbl6']],
    ['long 6 finds double 6', () => ({ _id: Long.fromNumber(6) }), ['dbl6']],
    ['int32 7 finds long 7', () => ({ _id: 7 }), ['long7']],
    ['double 7 finds long 7', () => ({ _id: new Double(7) }), ['long7']],
    ['0 finds -0', () => ({ _id: 0 }), ['negzero']],
    ['5.5', () => ({ _id: 5.5 }), ['dbl5.5']],
    ['string "5" is not number 5', () => ({ _id: '5' }), ['str5']],
    ['ObjectId', () => ({ _id: oid }), ['oid']],
    ['2^40', () => ({ _id: 2 ** 40 }), ['big']],
    ['negative', () => ({ _id: -3 }), ['neg']],
    ['$in of mixed types', () => ({ _id: { $in: [5, 6, 7, '5', -3] } }), ['dbl6', 'i32', 'long7', 'neg', 'str5']],
    ['$in with another condition', () => ({ _id: { $in: [5, 6, 7] }, k: { $ne: 'i32' } }), ['dbl6', 'long7']],
    ['_id and a condition that fails', () => ({ _id: 5, k: 'x' }), []],
  ];
  it.each(cases)('%s', async (_name, filter, expected) => {
    const got = (await t.db.collection<any>('t').find(filter()).toArray()).map((d) => d.k).sort();
    expect(got).toEqual(expected);
  });

  it('updates and deletes find the same documents', async () => {
    const c = t.db.collection<any>('t');
    expect((await c.updateOne({ _id: 6, k: 'dbl6' }, { $set: { u: 1 } })).modifiedCount).toBe(1);
    expect((await c.deleteOne({ _id: Long.fromNumber(7) })).deletedCount).toBe(1);
    expect((await c.updateOne({ _id: '6' }, { $set: { u: 2 } })).matchedCount).toBe(0);
    const all = (await c.find({}).toArray()).map((d) => `${d.k}${d.u ? `+u${d.u}` : ''}`).sort();
    expect(all).toEqual(['big', 'dbl5.5', 'dbl6+u1', 'i32', 'neg', 'negzero', 'oid', 'str5']);
  });
});
