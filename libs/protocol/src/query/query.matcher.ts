/**
 * The in-memory predicate: the bound query compiled once into closures, with MongoDB's matching
 * semantics (README.md, "Semantics"). Runs per change × per subscription, so a call walks the
 * document without reparsing or allocating. String patterns never use regular expressions: see
 * query.glob.ts (linear in the text, charged to an optional MatchBudget).
 */
import { compileGlob, type MatchBudget } from './query.glob';
import type { IR, LeafIR, Matcher, RangeOp, Scalar } from './query.ir';

/** `budget`, when given, bounds the work spent on string patterns (MatchBudgetExceededError beyond it). */
export type DocPredicate = (doc: Record<string, unknown>, budget?: MatchBudget) => boolean;
type ValueTest = (v: unknown, budget: MatchBudget | undefined) => boolean;

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
        return (doc, budget) => a(doc, budget) && b(doc, budget);
      }
      return (doc, budget) => {
        for (let i = 0; i < cs.length; i++) if (!cs[i](doc, budget)) return false;
        return true;
      };
    }
    case 'or': {
      const cs = ir.c.map(compilePredicate);
      if (cs.length === 2) {
        const [a, b] = cs;
        return (doc, budget) => a(doc, budget) || b(doc, budget);
      }
      return (doc, budget) => {
        for (let i = 0; i < cs.length; i++) if (cs[i](doc, budget)) return true;
        return false;
      };
    }
    case 'leaf': {
      const p = compileLeaf(ir);
      return ir.neg ? (doc, budget) => !p(doc, budget) : p;
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
    return (doc, budget) => {
      if (!hasOwn(doc, key)) return false;
      const v = doc[key];
      if (isArray(v)) {
        for (let i = 0; i < v.length; i++) if (test(v[i], budget)) return true;
        return false;
      }
      return test(v, budget);
    };
  }
  return (doc, budget) => anyAt(doc, segs, 0, test, budget);
}

/**
 * True when some value the path reaches passes the test. Like MongoDB: an array met before the
 * last segment is traversed into its elements that are objects; the value at the end of the path
 * is tested itself and, if an array, element by element. (The tests never accept an array, since
 * queries compare with primitives only.)
 */
function anyAt(v: unknown, segs: readonly string[], i: number, test: ValueTest, budget: MatchBudget | undefined): boolean {
  for (; i < segs.length; i++) {
    if (v === null || typeof v !== 'object') return false;
    if (isArray(v)) {
      for (let j = 0; j < v.length; j++) {
        const e = v[j];
        if (e !== null && typeof e === 'object' && !isArray(e) && anyAt(e, segs, i, test, budget)) return true;
      }
      return false;
    }
    const key = segs[i];
    v = hasOwn(v, key) ? (v as Record<string, unknown>)[key] : undefined;
  }
  if (isArray(v)) {
    for (let j = 0; j < v.length; j++) if (test(v[j], budget)) return true;
    return false;
  }
  return v !== undefined && test(v, budget);
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
      return (v, budget) => typeof v === 'string' && match(v, budget);
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

export { compileGlob } from './query.glob';
