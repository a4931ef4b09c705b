/*
 * Property: for random documents and random queries of the whole grammar, the MongoDB filter run by
 * a real MongoDB-wire server (the embedded FerretDB, or MONGODB_URI) selects exactly the documents
 * the in-memory predicate accepts.
 *
 * Restrictions, because FerretDB v1 and MongoDB must both agree (libs/protocol/src/query/README.md):
 * - Documents never hold an array directly inside an array: FerretDB v1 refuses to store them
 *   ("nested arrays are not supported"). Arrays of objects holding arrays are generated.
 * - No NaN or ±Infinity in documents (not JSON, so not expected; not checked against the servers);
 *   -0 is generated: stored as 0, and compared as 0 on both sides.
 * - Case-insensitive ([c]) strings use ASCII letters and é/É only: JavaScript, PCRE (MongoDB) and RE2
 *   (FerretDB) fold those the same way; exotic folds (ß/ẞ, Turkish i) may differ between engines.
 * - The compiler avoids, rather than the test restricts, what FerretDB v1 does differently from
 *   MongoDB: $ne/$nin/$not on dotted paths apply per array element (negations of dotted paths are
 *   compiled as $nor); several operators in one object on a dotted path must hold for one element
 *   (merged only on top-level fields); { 'a.b': null } with arrays of objects lacking `b` in part
 *   (compiled as $exists:false OR $type:'null'); '$' as an end anchor (PCRE lets it match before a
 *   final newline; compiled as \z); '.' as a wildcard (no newline; compiled as [\s\S]).
 */
import fc from 'fast-check';
import type { Collection, Db } from 'mongodb';
import { compileQuery, MAX_QUERY_DEPTH } from '../libs/protocol/src/query';
import { connectTestDb } from './support/db';
import { type Doc, documentsFor, queryArb, VARS } from './support/query-arbitraries';

const SEED = Number(process.env.QUERY_AGREEMENT_SEED ?? Date.now() % 2 ** 31);
const DOCS = 300;
const QUERIES = Number(process.env.QUERY_AGREEMENT_RUNS ?? 400);

describe('query language: the MongoDB filter and the in-memory predicate agree on a real database', () => {
  let conn: Awaited<ReturnType<typeof connectTestDb>>;
  let db: Db;
  let col: Collection<Doc>;
  let docs: Doc[];

  beforeAll(async () => {
    conn = await connectTestDb('query_agreement');
    db = conn.db;
    col = db.collection<Doc>('docs');
    docs = documentsFor(SEED, DOCS);
    await col.insertMany(docs.map((d) => structuredClone(d)));
  });
  afterAll(async () => {
    await conn?.close();
  });

  const check = async (text: string, args: unknown[]) => {
    const q = compileQuery(text, args, VARS);
    const fromDb = (await col.find(q.mongo, { projection: { _id: 1 } }).toArray()).map((d) => d._id).sort();
    const inMemory = docs
      .filter((d) => q.test(d))
      .map((d) => d._id)
      .sort();
    if (fromDb.join() !== inMemory.join()) {
      const diff = [
        ...fromDb.filter((id) => !inMemory.includes(id)).map((id) => `db only: ${id}`),
        ...inMemory.filter((id) => !fromDb.includes(id)).map((id) => `memory only: ${id}`),
      ];
      const shown = diff.slice(0, 5).map((line) => `${line} ${JSON.stringify(docs.find((d) => d._id === line.split(': ')[1]))}`);
      throw new Error(
        `disagreement (seed ${SEED}) on ${JSON.stringify(text)} args ${JSON.stringify(args)}\nfilter ${JSON.stringify(q.mongo)}\n${shown.join('\n')}`,
      );
    }
    return fromDb.length;
  };

  it('agrees on hand-picked queries over the tricky documents', async () => {
    const queries: [string, unknown[]?][] = [
      ['a == null'],
      ['a != null'],
      ['a.b == null'],
      ['a.b != null'],
      ['a.b == 5'],
      ['a.b != 5'],
      ['a.b.c > 2'],
      ['a > 3 AND a < 2'],
      ['a BETWEEN {2, 4}'],
      ['NOT a BETWEEN {2, 4}'],
      ['a >= null'],
      ['a > null'],
      ['a < "b"'],
      ['a > "\uE000"'],
      ['a ENDSWITH "abc"'],
      ['b ENDSWITH "abc"'],
      ['a LIKE "abc?x"'],
      ['a LIKE "?"'],
      ['a ==[c] "été"'],
      ['a BEGINSWITH[c] "ÉT"'],
      ['a == "a.b*c?(d)[e]{f}|g\\\\h^i$j+k/l"'],
      ['a CONTAINS ".b*c?(d)[e]{f}|g\\\\h^i$j+"'],
      ['a LIKE "a.b*|g\\\\h^i$j+k?l"'],
      ['a CONTAINS "\\u0000"'],
      ['a IN {1, null}'],
      ['NOT a.b IN {5, null}'],
      ['a IN $0', [['abc\nx', 5, true]]],
      ['c == 5 OR c == "5"'],
      ['a == true OR b < true'],
      ['a == %user.missing'],
      ['NOT a == %user.missing'],
      ['a.b IN %user.tags'],
      ['TRUEPREDICATE'],
      ['FALSEPREDICATE'],
    ];
    // the deepest nesting the parser allows, alternating AND and OR (the deepest filter)
    let deep = 'a == 1';
    for (let i = 0; i < MAX_QUERY_DEPTH; i++) deep = i % 2 ? `(a.b == ${i} OR ${deep})` : `(a.b != ${i} AND ${deep})`;
    queries.push([deep]);
    let matched = 0;
    for (const [text, args] of queries) matched += await check(text, args ?? []);
    expect(matched).toBeGreaterThan(0);
  });

  it(`agrees on ${QUERIES} random queries over ${DOCS} random documents`, async () => {
    let nonTrivial = 0;
    await fc.assert(
      fc.asyncProperty(queryArb, async ({ text, args }) => {
        const n = await check(text, args);
        if (n > 0 && n < docs.length) nonTrivial++;
      }),
      { numRuns: QUERIES, seed: SEED },
    );
    // The generator must produce queries that actually discriminate between documents. Over 300
    // seeds, 400 queries gave 110 to 159 such queries (mean 133, sd 10.4:
    // `npx tsx scripts/query-generator-stats.ts`): a bound at a quarter was 3 sd from the mean and
    // failed about once in a thousand runs; a sixth is 6 sd away, and still fails a generator that
    // has lost half its discriminating queries.
    if (nonTrivial <= QUERIES / 6) throw new Error(`seed ${SEED}: only ${nonTrivial} of ${QUERIES} queries discriminate between documents`);
  });
});
