import fc from 'fast-check';
import { compileQuery } from '.';
import { ANY_ONE, type Glob } from './query.ir';
import { compareStrings, compileGlob } from './query.matcher';
import { globToRegexSource } from './query.mongo';
import { likeReference as likeRef } from './testing/like-reference';

/** Reference LIKE, case folded with toLowerCase for [c]. */
const likeReference = (pattern: string, s: string, ci: boolean) => likeRef(pattern, s, ci ? (c) => c.toLowerCase() : undefined);

const chars = ['a', 'b', 'A', 'B', '*', '?', '.', '\n', '😀', '$', '\\'];
const str = (max: number) => fc.array(fc.constantFrom(...chars), { maxLength: max }).map((a) => a.join(''));

describe('compareStrings', () => {
  it('orders by code point, as MongoDB orders UTF-8 bytes', () => {
    const s = fc.string({ unit: 'grapheme', maxLength: 6 });
    fc.assert(
      fc.property(s, s, (a, b) => {
        expect(Math.sign(compareStrings(a, b))).toBe(Math.sign(Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))));
      }),
      { numRuns: 2000 },
    );
    expect(compareStrings('😀', '\uE000')).toBeGreaterThan(0);
    expect('😀' < '\uE000').toBe(true); // what JavaScript's < would have said
  });
});

describe('string patterns', () => {
  it('LIKE matches like the reference (case-sensitive and [c] on ASCII)', () => {
    fc.assert(
      fc.property(str(6), str(8), fc.boolean(), (pattern, s, ci) => {
        const q = compileQuery(`a LIKE${ci ? '[c]' : ''} $0`, [pattern]);
        expect(q.test({ a: s })).toBe(likeReference(pattern, s, ci));
      }),
      { numRuns: 5000 },
    );
  });

  it('the Mongo regex of a pattern matches the same strings (checked with a JavaScript equivalent)', () => {
    fc.assert(
      fc.property(str(6), str(8), (pattern, s) => {
        const src = (compileQuery('a LIKE $0', [pattern]).mongo as { a: { $regex: string } }).a.$regex;
        // PCRE/RE2 syntax to JavaScript: \z is the end of input, \x{h} a code point
        const js = new RegExp(src.replace(/\\z$/, '$').replace(/\\x\{([0-9a-f]+)\}/g, '\\u{$1}'), 'u');
        expect(js.test(s)).toBe(likeReference(pattern, s, false));
      }),
      { numRuns: 3000 },
    );
  });

  it.each<[string, string, string, boolean]>([
    ['BEGINSWITH', 'a*', 'a*b', true],
    ['BEGINSWITH', 'a*', 'ab', false],
    ['ENDSWITH', '?', 'x?', true],
    ['ENDSWITH', '?', 'x', false],
    ['CONTAINS', '.', 'a.b', true],
    ['CONTAINS', '.', 'ab', false],
    ['CONTAINS', '', 'anything', true],
    ['ENDSWITH', 'abc', 'abc\n', false],
  ])('%s %j on %j is %j', (op, value, s, expected) => {
    expect(compileQuery(`a ${op} $0`, [value]).test({ a: s })).toBe(expected);
    expect(compileQuery(`a ${op}[c] $0`, [value.toUpperCase()]).test({ a: s })).toBe(expected);
  });

  it('cannot be made to backtrack catastrophically', () => {
    const pattern = '*a'.repeat(200) + 'b';
    const q = compileQuery('a LIKE $0 OR a LIKE[c] $0', [pattern]);
    const start = Date.now();
    expect(q.test({ a: 'a'.repeat(3000) })).toBe(false);
    expect(Date.now() - start).toBeLessThan(1000);
  });

  it('escapes every regex metacharacter for MongoDB', () => {
    const glob: Glob = [['^$.*+?()[]{}|\\'], [ANY_ONE]];
    expect(globToRegexSource(glob)).toBe('^\\^\\$\\.\\*\\+\\?\\(\\)\\[\\]\\{\\}\\|\\\\[\\s\\S]*[\\s\\S]\\z');
    expect(compileGlob(glob, false)('^$.*+?()[]{}|\\x')).toBe(true);
    expect(compileGlob(glob, false)('^$.*+?()[]{}|\\')).toBe(false);
  });
});
