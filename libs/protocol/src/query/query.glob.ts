/**
 * String patterns (`==[c]`, BEGINSWITH, ENDSWITH, CONTAINS, LIKE) matched without regular
 * expressions, in time linear in the text:
 *
 * - patterns without `?` are literal segments separated by `*`: each segment is found with a
 *   linear-time substring search (Knuth-Morris-Pratt for long ones) at its leftmost place after the
 *   previous one, which is exact for such patterns;
 * - patterns with `?` run as a bit-parallel NFA (shift-and with self-loops for `*`): one pass over
 *   the text's code points, ⌈(m + 1) / 32⌉ word operations per code point for m pattern items, no
 *   backtracking whatever the pattern.
 *
 * `[c]` folds each code point on its own (simple case folding, as JavaScript's `iu` regular
 * expressions, PCRE and RE2 do), so folding never changes the length in code points.
 *
 * Every match is charged to an optional MatchBudget before it runs (text length × pattern words),
 * so the work spent on one change is bounded: a match that would exceed it throws
 * MatchBudgetExceededError instead of running.
 */
import { ANY_ONE, type Glob } from './query.ir';

/** Work units left for matching one document (roughly: characters compared). */
export interface MatchBudget {
  left: number;
}

/** Thrown by a predicate whose matching would exceed its MatchBudget: the caller decides (not a match). */
export class MatchBudgetExceededError extends Error {
  constructor(readonly needed: number) {
    super(`matching would take ${needed} work units, more than the budget left`);
    this.name = 'MatchBudgetExceededError';
  }
}

export type StringMatch = (s: string, budget?: MatchBudget) => boolean;

function charge(budget: MatchBudget | undefined, cost: number): void {
  if (!budget) return;
  if (cost > budget.left) {
    budget.left = 0;
    throw new MatchBudgetExceededError(cost);
  }
  budget.left -= cost;
}

// ---------------------------------------------------------------- case folding

/** Code points whose lower(upper(c)) is not their simple case folding (they fold to themselves). */
const FOLDS_TO_ITSELF = new Set<number>([0x0131 /* dotless ı */]);
const foldCache = new Map<number, number>();
const FOLD_CACHE_MAX = 8192;

/** Simple case folding of one code point (maps every member of a case class to one representative). */
export function foldCodePoint(cp: number): number {
  if (cp < 0x80) return cp >= 0x41 && cp <= 0x5a ? cp + 0x20 : cp;
  const cached = foldCache.get(cp);
  if (cached !== undefined) return cached;
  let r = cp;
  if (!FOLDS_TO_ITSELF.has(cp)) {
    const ch = String.fromCodePoint(cp);
    const up = ch.toUpperCase();
    const viaUpper = single(up) !== -1 ? single(up.toLowerCase()) : -1;
    if (viaUpper !== -1 && !FOLDS_TO_ITSELF.has(viaUpper)) r = viaUpper;
    else {
      const low = single(ch.toLowerCase());
      if (low !== -1) r = low;
    }
  }
  if (foldCache.size < FOLD_CACHE_MAX) foldCache.set(cp, r);
  return r;
}

/** The code point of a one-code-point string, else -1. */
function single(s: string): number {
  const cp = s.codePointAt(0);
  if (cp === undefined) return -1;
  return s.length === (cp > 0xffff ? 2 : 1) ? cp : -1;
}

/** The string folded code point by code point (same number of code points). */
export function foldString(s: string): string {
  let ascii = true;
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return s.toLowerCase();
  let out = '';
  for (const ch of s) out += String.fromCodePoint(foldCodePoint(ch.codePointAt(0)!));
  return out;
}

// ---------------------------------------------------------------- compilation

/** Number of pattern items (code points and `?`) in a glob. */
export function globSize(glob: Glob): number {
  let n = 0;
  for (const seg of glob) for (const p of seg) n += p === ANY_ONE ? 1 : codePointCount(p);
  return n;
}

function codePointCount(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    if (s.codePointAt(i)! > 0xffff) {
      n--;
      i++;
    }
  }
  return n;
}

/** A string pattern as a function. See Glob in query.ir.ts. */
export function compileGlob(glob: Glob, ci: boolean): StringMatch {
  const hasAnyOne = glob.some((seg) => seg.some((p) => p === ANY_ONE));
  return hasAnyOne ? compileNfa(glob, ci) : compileSegments(glob, ci);
}

/** Needles up to this length use the engine's indexOf (at most this many comparisons per character). */
const SHORT_NEEDLE = 16;

/**
 * A substring to find, leftmost first, in time linear in the text: the engine's indexOf for short
 * needles; Knuth-Morris-Pratt for longer ones (indexOf may compare a long needle at every position:
 * 'a'.repeat(2000) + 'b' + 'a'.repeat(2000) in 200,000 'a' took 250 ms).
 */
class Needle {
  private readonly fail: Int32Array | null;

  constructor(readonly text: string) {
    if (text.length <= SHORT_NEEDLE) {
      this.fail = null;
      return;
    }
    const f = new Int32Array(text.length);
    for (let i = 1, k = 0; i < text.length; i++) {
      while (k > 0 && text.charCodeAt(i) !== text.charCodeAt(k)) k = f[k - 1];
      if (text.charCodeAt(i) === text.charCodeAt(k)) k++;
      f[i] = k;
    }
    this.fail = f;
  }

  /** Work units of one search through `n` characters. */
  cost(n: number): number {
    return this.fail ? 2 * n + this.text.length : n * Math.max(1, this.text.length);
  }

  indexIn(hay: string, from: number): number {
    const f = this.fail;
    if (!f) return hay.indexOf(this.text, from);
    const p = this.text;
    const m = p.length;
    for (let i = from, k = 0; i < hay.length; i++) {
      const c = hay.charCodeAt(i);
      while (k > 0 && c !== p.charCodeAt(k)) k = f[k - 1];
      if (c === p.charCodeAt(k) && ++k === m) return i - m + 1;
    }
    return -1;
  }
}

/** Patterns of literal segments only: substring searches, leftmost first. */
function compileSegments(glob: Glob, ci: boolean): StringMatch {
  const texts = glob.map((seg) => {
    const t = (seg as readonly string[]).join('');
    return ci ? foldString(t) : t;
  });
  const patternLength = texts.reduce((n, t) => n + t.length, 0);
  const fold = ci ? foldString : (s: string) => s;
  if (glob.length === 1) {
    const want = texts[0];
    return (s, budget) => {
      if (!ci) return s === want;
      charge(budget, 2 * s.length + patternLength + 1);
      return fold(s) === want;
    };
  }
  const last = texts.length - 1;
  const first = texts[0];
  const end = texts[last];
  const middles = texts
    .slice(1, last)
    .filter((t) => t !== '')
    .map((t) => new Needle(t));
  // the fold (one pass), the prefix and suffix, each middle search (at worst the whole text)
  const cost = (n: number) => (ci ? n : 0) + 2 * patternLength + 1 + middles.reduce((c, nd) => c + nd.cost(n), 0);
  return (s, budget) => {
    charge(budget, cost(s.length));
    const t = fold(s);
    if (!t.startsWith(first)) return false;
    let pos = first.length;
    for (let i = 0; i < middles.length; i++) {
      const at = middles[i].indexIn(t, pos);
      if (at < 0) return false;
      pos = at + middles[i].text.length;
    }
    return t.length - end.length >= pos && t.endsWith(end);
  };
}

/**
 * Patterns with `?`: states 0..m (the first i items matched); a `*` after i items is a self-loop
 * on state i. Per code point c of the text: D = ((D << 1) & (B[c] | ANY)) | (D & LOOPS).
 */
function compileNfa(glob: Glob, ci: boolean): StringMatch {
  const m = globSize(glob);
  const words = (m >>> 5) + 1; // bits 0..m
  const any = new Uint32Array(words);
  const loops = new Uint32Array(words);
  const byChar = new Map<number, Uint32Array>();
  const set = (bits: Uint32Array, i: number) => {
    bits[i >>> 5] |= 1 << (i & 31);
  };
  let item = 0;
  glob.forEach((seg, k) => {
    if (k > 0) set(loops, item); // a `*` before this segment: stay on the state reached so far
    for (const p of seg) {
      if (p === ANY_ONE) {
        set(any, ++item);
        continue;
      }
      for (const ch of p) {
        let cp = ch.codePointAt(0)!;
        if (ci) cp = foldCodePoint(cp);
        let bits = byChar.get(cp);
        if (!bits) byChar.set(cp, (bits = new Uint32Array(words)));
        set(bits, ++item);
      }
    }
  });
  const acceptWord = m >>> 5;
  const acceptBit = 1 << (m & 31);
  if (words === 1) {
    const any0 = any[0];
    const loops0 = loops[0];
    const masks = new Map<number, number>();
    for (const [cp, bits] of byChar) masks.set(cp, bits[0] | any0);
    return (s, budget) => {
      charge(budget, s.length + 1);
      let d = 1;
      for (let i = 0; i < s.length; i++) {
        let c = s.codePointAt(i)!; // a surrogate pair is one code point (a lone surrogate stays itself)
        if (c > 0xffff) i++;
        if (ci) c = foldCodePoint(c);
        d = ((d << 1) & (masks.get(c) ?? any0)) | (d & loops0);
        if (d === 0) return false;
      }
      return (d & acceptBit) !== 0;
    };
  }
  return (s, budget) => {
    charge(budget, (s.length + 1) * words);
    let d = new Uint32Array(words);
    let next = new Uint32Array(words);
    d[0] = 1;
    for (let i = 0; i < s.length; i++) {
      let c = s.codePointAt(i)!; // a surrogate pair is one code point (a lone surrogate stays itself)
      if (c > 0xffff) i++;
      if (ci) c = foldCodePoint(c);
      const b = byChar.get(c);
      let carry = 0;
      let alive = 0;
      for (let w = 0; w < words; w++) {
        const cur = d[w];
        const shifted = ((cur << 1) | carry) >>> 0;
        carry = cur >>> 31;
        const v = ((shifted & ((b ? b[w] : 0) | any[w])) | (cur & loops[w])) >>> 0;
        next[w] = v;
        alive |= v;
      }
      if (alive === 0) return false;
      const t = d;
      d = next;
      next = t;
    }
    return (d[acceptWord] & acceptBit) !== 0;
  };
}
