/*
 * How many of the query-agreement property's random queries discriminate between its random
 * documents (match some but not all), over many seeds: what the property's sanity bound is set
 * against (test/query-agreement.e2e-spec.ts). In memory only: the property itself checks that the
 * database agrees.
 *
 *   npx tsx scripts/query-generator-stats.ts [seeds=300] [queries=400] [documents=300]
 */
import fc from 'fast-check';
import { compileQuery } from '../libs/protocol/src/query';
import { documentsFor, queryArb, VARS } from '../test/support/query-arbitraries';

const [seeds = 300, queries = 400, documents = 300] = process.argv.slice(2).map(Number);
const counts: number[] = [];
for (let i = 1; i <= seeds; i++) {
  const seed = i * 7919;
  const docs = documentsFor(seed, documents);
  let discriminating = 0;
  for (const { text, args } of fc.sample(queryArb, { numRuns: queries, seed })) {
    const q = compileQuery(text, args, VARS);
    const n = docs.filter((d) => q.test(d)).length;
    if (n > 0 && n < docs.length) discriminating++;
  }
  counts.push(discriminating);
}
counts.sort((a, b) => a - b);
const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
const sd = Math.sqrt(counts.reduce((a, b) => a + (b - mean) ** 2, 0) / counts.length);
console.log(
  `${seeds} seeds, ${queries} queries over ${documents} documents: discriminating min ${counts[0]}, median ${counts[counts.length >> 1]}, ` +
    `max ${counts[counts.length - 1]}, mean ${mean.toFixed(1)}, sd ${sd.toFixed(1)}`,
);
