/**
 * The in-memory predicate: the bound query compiled once into closures, with MongoDB's matching
 * semantics (README.md, "Semantics"). Runs per change × per subscription, so a call walks the
 * document without reparsing or allocating (string patterns use regular expressions compiled once,
 * made of single-character atoms and searched segment by segment, so a hostile LIKE pattern cannot
 * cause catastrophic backtracking).
 */
import { ANY_ONE, type Glob, type IR, type LeafIR, type Matcher, type RangeOp, type Scalar } from './query.ir';

export type DocPredicate = (doc: Record<string, unknown>) => boolean;
type ValueTest = (v: unknown) => boolean;

const hasOwn = Object.hasOwn as (o: object, key: string) => boolean;
const isArray = Array.isArray;

export function compilePredicate(ir: IR): DocPredicate {
  switch (ir.k) {
    case 'const': {
      const v = ir.v;
      return () => v;
    }
    case 'and': {
      const cs = ir.c.map(compilePredicate);
      if (cs.length === 2) {
        const [a, b] = cs;
        return (doc) => a(doc) && b(doc);
      }
      return (doc) => {
        for (let i = 0; i < cs.length; i++) if (!cs[i](doc)) return false;
        return true;
      };
    }
    case 'or': {
      const cs = ir.c.map(compilePredicate);
      if (cs.length === 2) {
        const [a, b] = cs;
        return (doc) => a(doc) || b(doc);
      }
      return (doc) => {
        for (let i = 0; i < cs.length; i++) if (cs[i](doc)) return true;
        return false;
      };
    }
    case 'leaf': {
      const p = compileLeaf(ir);
      return ir.neg ? (doc) => !p(doc) : p;
    }
  }
}

function compileLeaf(leaf: LeafIR): DocPredicate {
  const segs = leaf.segments;
  if (leaf.m.t === 'null') {
    // Matches when the path resolves to nothing, or to a null (also inside a terminal array).
    if (segs.length === 1) {
      const key = segs[0];
      return (doc) => {
        const v = hasOwn(doc, key) ? doc[key] : undefined;
        if (v == null) return true;
        if (isArray(v)) {
          for (let i = 0; i < v.length; i++) if (v[i] == null) return true;
        }
        return false;
      };
    }
    return (doc) => nullState(doc, segs, 0) !== FOUND_VALUES;
  }
  const test = valueTest(leaf.m);
  if (segs.length === 1) {
    const key = segs[0];
    return (doc) => {
      if (!hasOwn(doc, key)) return false;
      const v = doc[key];
      if (isArray(v)) {
        for (let i = 0; i < v.length; i++) if (test(v[i])) return true;
        return false;
      }
      return test(v);
    };
  }
  return (doc) => anyAt(doc, segs, 0, test);
}

/**
 * True when some value the path reaches passes the test. Like MongoDB: an array met before the
 * last segment is traversed into its elements that are objects; the value at the end of the path
 * is tested itself and, if an array, element by element. (The tests never accept an array, since
 * queries compare with primitives only.)
 */
function anyAt(v: unknown, segs: readonly string[], i: number, test: ValueTest): boolean {
  for (; i < segs.length; i++) {
    if (v === null || typeof v !== 'object') return false;
    if (isArray(v)) {
      for (let j = 0; j < v.length; j++) {
        const e = v[j];
        if (e !== null && typeof e === 'object' && !isArray(e) && anyAt(e, segs, i, test)) return true;
      }
      return false;
    }
    const key = segs[i];
    v = hasOwn(v, key) ? (v as Record<string, unknown>)[key] : undefined;
  }
  if (isArray(v)) {
    for (let j = 0; j < v.length; j++) if (test(v[j])) return true;
    return false;
  }
  return v !== undefined && test(v);
}

const NOTHING = 0;
const FOUND_VALUES = 1;
const FOUND_NULL = 2;

/** What a path resolves to: nothing, only non-null values, or (somewhere) a null. */
function nullState(v: unknown, segs: readonly string[], i: number): number {
  for (; i < segs.length; i++) {
    if (v === null || typeof v !== 'object') return NOTHING;
    if (isArray(v)) {
      let best = NOTHING;
      for (let j = 0; j < v.length; j++) {
        const e = v[j];
        if (e === null || typeof e !== 'object' || isArray(e)) continue;
        const s = nullState(e, segs, i);
        if (s === FOUND_NULL) return FOUND_NULL;
        if (s > best) best = s;
      }
      return best;
    }
    const key = segs[i];
    v = hasOwn(v, key) ? (v as Record<string, unknown>)[key] : undefined;
  }
  if (v === undefined) return NOTHING;
  if (v === null) return FOUND_NULL;
  if (isArray(v)) {
    for (let j = 0; j < v.length; j++) if (v[j] == null) return FOUND_NULL;
  }
  return FOUND_VALUES;
}

function valueTest(m: Exclude<Matcher, { t: 'null' }>): ValueTest {
  switch (m.t) {
    case 'eq': {
      const want = m.v;
      return (v) => v === want;
    }
    case 'in': {
      const set = new Set<unknown>(m.vs);
      return (v) => set.has(v);
    }
    case 'range':
      return rangeTest(m.op, m.v);
    case 'glob': {
      const match = compileGlob(m.glob, m.ci);
      return (v) => typeof v === 'string' && match(v);
    }
  }
}

function rangeTest(op: RangeOp, want: Scalar): ValueTest {
  // Comparisons only within a type bracket, like MongoDB: a number is never > a string.
  if (typeof want === 'number') {
    switch (op) {
      case '$gt':
        return (v) => typeof v === 'number' && v > want;
      case '$gte':
        return (v) => typeof v === 'number' && v >= want;
      case '$lt':
        return (v) => typeof v === 'number' && v < want;
      case '$lte':
        return (v) => typeof v === 'number' && v <= want;
    }
  }
  if (typeof want === 'string') {
    switch (op) {
      case '$gt':
        return (v) => typeof v === 'string' && compareStrings(v, want) > 0;
      case '$gte':
        return (v) => typeof v === 'string' && compareStrings(v, want) >= 0;
      case '$lt':
        return (v) => typeof v === 'string' && compareStrings(v, want) < 0;
      case '$lte':
        return (v) => typeof v === 'string' && compareStrings(v, want) <= 0;
    }
  }
  // booleans: false < true
  const w = want ? 1 : 0;
  switch (op) {
    case '$gt':
      return (v) => typeof v === 'boolean' && +v > w;
    case '$gte':
      return (v) => typeof v === 'boolean' && +v >= w;
    case '$lt':
      return (v) => typeof v === 'boolean' && +v < w;
    case '$lte':
      return (v) => typeof v === 'boolean' && +v <= w;
  }
}

/**
 * Compares strings by Unicode code point, which is MongoDB's (binary UTF-8) order. JavaScript's
 * `<` compares UTF-16 code units, which puts characters above U+FFFF before U+E000..U+FFFF.
 */
export function compareStrings(a: string, b: string): number {
  if (a === b) return 0;
  const n = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && x <= 0xdfff) x += 0x10000;
    if (y >= 0xd800 && y <= 0xdfff) y += 0x10000;
    return x - y;
  }
  return a.length - b.length;
}

const JS_META = /[\\^$.*+?()[\]{}|/]/g;

function segmentSource(seg: ReadonlyArray<string | typeof ANY_ONE>): string {
  let s = '';
  for (const part of seg) s += part === ANY_ONE ? '[\\s\\S]' : part.replace(JS_META, '\\$&');
  return s;
}

/** A string pattern as a function. See Glob in query.ir.ts. */
export function compileGlob(glob: Glob, ci: boolean): (s: string) => boolean {
  const plain = !ci && glob.every((seg) => seg.every((p) => p !== ANY_ONE));
  const texts = plain ? glob.map((seg) => seg.join('')) : [];
  if (glob.length === 1) {
    if (plain) {
      const want = texts[0];
      return (s) => s === want;
    }
    const re = new RegExp(`^${segmentSource(glob[0])}$`, ci ? 'iu' : 'u');
    return (s) => re.test(s);
  }
  const last = glob.length - 1;
  if (plain) {
    const first = texts[0];
    const end = texts[last];
    const middles = texts.slice(1, last).filter((t) => t !== '');
    if (middles.length === 0) {
      if (first === '') return end === '' ? () => true : (s) => s.endsWith(end);
      if (end === '') return (s) => s.startsWith(first);
    }
    if (first === '' && end === '' && middles.length === 1) {
      const m = middles[0];
      return (s) => s.includes(m);
    }
    return (s) => {
      if (!s.startsWith(first)) return false;
      let pos = first.length;
      for (let i = 0; i < middles.length; i++) {
        const at = s.indexOf(middles[i], pos);
        if (at < 0) return false;
        pos = at + middles[i].length;
      }
      return s.length - end.length >= pos && s.endsWith(end);
    };
  }
  // Segment by segment: the first must match at the start, each middle one at its leftmost place
  // after the previous, the last at the end after that. Each regex is a fixed sequence of
  // single-character atoms, so matching never backtracks more than one segment's length.
  const flags = ci ? 'iu' : 'u';
  const firstRe = glob[0].length ? new RegExp(segmentSource(glob[0]), flags + 'y') : null;
  const middleRes = glob
    .slice(1, last)
    .filter((seg) => seg.length > 0)
    .map((seg) => new RegExp(segmentSource(seg), flags + 'g'));
  const lastRe = glob[last].length ? new RegExp(`(?:${segmentSource(glob[last])})$`, flags + 'g') : null;
  return (s) => {
    let pos = 0;
    if (firstRe) {
      firstRe.lastIndex = 0;
      if (!firstRe.test(s)) return false;
      pos = firstRe.lastIndex;
    }
    for (let i = 0; i < middleRes.length; i++) {
      const re = middleRes[i];
      re.lastIndex = pos;
      if (!re.test(s)) return false;
      pos = re.lastIndex;
    }
    if (lastRe) {
      lastRe.lastIndex = pos;
      return lastRe.test(s);
    }
    return true;
  };
}
