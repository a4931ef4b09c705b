import fc from 'fast-check';
import { compileQuery } from '.';
import { PayloadTooLargeError } from '../errors';
import { LIMITS } from '../types';
import { compileGlob, foldCodePoint, foldString, MatchBudgetExceededError, type MatchBudget } from './query.glob';
import { ANY_ONE, type Glob } from './query.ir';
import { likeReference as likeRef } from './testing/like-reference';

/** Reference LIKE over code points, with the same per-code-point fold. */
const likeReference = (pattern: string, s: string, ci: boolean) =>
  likeRef(pattern, s, ci ? (c) => String.fromCodePoint(foldCodePoint(c.codePointAt(0)!)) : undefined);

const chars = ['a', 'b', 'A', 'B', '*', '?', 'ß', 'ẞ', 'Σ', 'ς', 'σ', '😀', '𐐀', '𐐨', 'ı', 'I', 'i', 'K', 'k'];
const str = (min: number, max: number) => fc.array(fc.constantFrom(...chars), { minLength: min, maxLength: max }).map((a) => a.join(''));

describe('linear-time string patterns', () => {
  it('LIKE agrees with the reference, also for patterns longer than one machine word (multi-word NFA)', () => {
    fc.assert(
      fc.property(str(0, 80), str(0, 90), fc.boolean(), (pattern, s, ci) => {
        expect(compileQuery(`a LIKE${ci ? '[c]' : ''} $0`, [pattern]).test({ a: s })).toBe(likeReference(pattern, s, ci));
      }),
      { numRuns: 3000 },
    );
  });

  it('a long pattern that nearly matches: many `?` and `*` over a long text', () => {
    const pattern = '*' + 'a?'.repeat(60) + 'b*';
    const s = 'a'.repeat(3000);
    for (const ci of [false, true]) {
      const m = compileQuery(`a LIKE${ci ? '[c]' : ''} $0`, [pattern]);
      expect(m.test({ a: s })).toBe(false);
      expect(m.test({ a: s + 'xb' })).toBe(true);
      expect(m.test({ a: s + 'b' })).toBe(true);
    }
  });

  it("[c] folds like JavaScript's `iu` regular expressions, code point by code point", () => {
    const ranges: [number, number][] = [
      [0, 0xd7ff],
      [0xe000, 0xffff],
      [0x10400, 0x104ff],
      [0x10c80, 0x10cff],
      [0x118a0, 0x118ff],
      [0x1e900, 0x1e95f],
    ];
    const bad: string[] = [];
    for (const [lo, hi] of ranges) {
      for (let cp = lo; cp <= hi; cp++) {
        const ch = String.fromCodePoint(cp);
        const f = foldCodePoint(cp);
        const re = new RegExp(`^\\u{${cp.toString(16)}}$`, 'iu');
        if (!re.test(String.fromCodePoint(f)) || foldCodePoint(f) !== f) bad.push(cp.toString(16));
        for (const other of [ch.toLowerCase(), ch.toUpperCase(), ch.toUpperCase().toLowerCase()]) {
          const o = other.codePointAt(0)!;
          if (other.length !== String.fromCodePoint(o).length) continue;
          if (re.test(other) !== (foldCodePoint(o) === f)) bad.push(`${cp.toString(16)}~${o.toString(16)}`);
        }
      }
    }
    expect(bad).toEqual([]);
    expect(foldString('ẞΣς')).toBe(foldString('ßσσ'));
  });

  it('charges its work to the budget and refuses to run past it', () => {
    const glob: Glob = [[], ['ab', ANY_ONE, 'c'], []];
    const m = compileGlob(glob, true);
    const budget: MatchBudget = { left: 1000 };
    expect(m('xxabzc', budget)).toBe(true);
    expect(budget.left).toBeLessThan(1000);
    expect(() => m('a'.repeat(5000), budget)).toThrow(MatchBudgetExceededError);
    expect(budget.left).toBe(0);
    // a pattern of many words costs more per character
    const long = compileGlob([[], ['a'.repeat(200), ANY_ONE], []], false);
    const b2: MatchBudget = { left: 1e9 };
    long('b'.repeat(1000), b2);
    expect(1e9 - b2.left).toBeGreaterThanOrEqual(1000 * 7);
    // without a budget nothing is charged and the match runs
    expect(compileQuery('a CONTAINS[c] $0', ['Q']).test({ a: 'q'.repeat(10) })).toBe(true);
  });

  it('a query with a pattern over budget throws from test(), and matches without one', () => {
    const q = compileQuery('a LIKE[c] $0', ['*' + '?'.repeat(100) + 'z']);
    const doc = { a: 'y'.repeat(100_000) + 'z' };
    expect(() => q.test(doc, { left: 10_000 })).toThrow(MatchBudgetExceededError);
    expect(q.test(doc)).toBe(true);
  });
});

describe('arguments count in the size limits', () => {
  it('a string argument longer than maxQueryValueLength is PAYLOAD_TOO_LARGE', () => {
    expect(() => compileQuery('text CONTAINS[c] $0', ['x'.repeat(20_000)])).toThrow(PayloadTooLargeError);
    expect(() => compileQuery('text CONTAINS[c] $0', ['x'.repeat(LIMITS.maxQueryValueLength)])).not.toThrow();
  });

  it('unused arguments count too, and so do IN-list elements', () => {
    expect(() => compileQuery('a == 1', ['x', 'y'.repeat(LIMITS.maxQueryValueLength + 1)])).toThrow(PayloadTooLargeError);
    expect(() => compileQuery('a IN $0', [['z'.repeat(LIMITS.maxQueryValueLength + 1)]])).toThrow(PayloadTooLargeError);
    const many = new Array(40).fill('w'.repeat(LIMITS.maxQueryValueLength));
    expect(() => compileQuery('a IN $0', [many])).toThrow(/at most 65536 characters together/);
    expect(() => compileQuery('a == $0', many)).toThrow(PayloadTooLargeError);
    expect(() => compileQuery('a IN $0', [new Array(LIMITS.maxArrayLength).fill(1)])).not.toThrow();
  });
});

describe('long needles', () => {
  it('CONTAINS with a long needle agrees with indexOf, and costs linear work', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom('a', 'b', 'ab'), { minLength: 9, maxLength: 30 }),
        fc.array(fc.constantFrom('a', 'b', 'ba', 'aab'), { maxLength: 200 }),
        (n, h) => {
          const needle = n.join('');
          const hay = h.join('');
          expect(compileQuery('a CONTAINS $0', [needle]).test({ a: hay })).toBe(hay.includes(needle));
          expect(compileQuery('a LIKE $0', [`*${needle}*${needle}*`]).test({ a: hay })).toBe(
            hay.includes(needle) && hay.indexOf(needle, hay.indexOf(needle) + needle.length) >= 0,
          );
        },
      ),
      { numRuns: 2000 },
    );
    const hostile = 'a'.repeat(2000) + 'b' + 'a'.repeat(2000);
    const budget: MatchBudget = { left: 1e9 };
    expect(compileQuery('t CONTAINS[c] $0', [hostile]).test({ t: 'a'.repeat(200_000) }, budget)).toBe(false);
    expect(1e9 - budget.left).toBeLessThan(1_000_000);
  });
});
