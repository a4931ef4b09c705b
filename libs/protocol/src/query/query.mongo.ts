/**
 * The bound query as a MongoDB filter: a plain object using only operators that both MongoDB and
 * FerretDB v1 implement the same way ($eq by value, $ne, $gt, $gte, $lt, $lte, $in, $nin, $and,
 * $or, $not, $regex, $exists, $type). Never $expr or $where.
 */
import { ANY_ONE, type Glob, type IR, type LeafIR } from './query.ir';

export type MongoFilter = Record<string, unknown>;

export function toMongoFilter(ir: IR): MongoFilter {
  switch (ir.k) {
    case 'const':
      // FALSEPREDICATE: every document has an `_id`, and `$in: []` matches nothing.
      return ir.v ? {} : { _id: { $in: [] } };
    case 'or':
      return { $or: ir.c.map(toMongoFilter) };
    case 'and': {
      const parts = ir.c.map(toMongoFilter);
      // { a: .., b: .. } when the parts use distinct keys, and { a: { $gte: 1, $lte: 5 } } when
      // they use distinct operators on one top-level key: more readable, same meaning. Not on a
      // dotted key: FerretDB v1 then wants one array element to satisfy all the operators, where
      // MongoDB (and the predicate) let each operator match a different element.
      const merged: MongoFilter = {};
      for (const p of parts) {
        for (const key of Object.keys(p)) {
          if (!Object.hasOwn(merged, key)) setOwn(merged, key, p[key]);
          else if (key === '$nor') merged.$nor = [...(merged.$nor as unknown[]), ...(p.$nor as unknown[])];
          else if (!key.includes('.') && isOperatorObject(merged[key]) && isOperatorObject(p[key]) && disjoint(merged[key], p[key])) {
            merged[key] = { ...merged[key], ...p[key] };
          } else return { $and: parts };
        }
      }
      return merged;
    }
    case 'leaf':
      return leafFilter(ir);
  }
}

/** obj[key] = value, also for a field named `__proto__` (which plain assignment would not create). */
function setOwn(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  else obj[key] = value;
}

function isOperatorObject(v: unknown): v is MongoFilter {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).every((k) => k.startsWith('$'));
}

function disjoint(a: MongoFilter, b: MongoFilter): boolean {
  return Object.keys(b).every((k) => !Object.hasOwn(a, k));
}

function leafFilter(leaf: LeafIR): MongoFilter {
  if (leaf.neg && leaf.segments.length > 1) {
    // FerretDB v1 applies $ne, $nin and $not to each element of an array met along a dotted path
    // (so { 'a.b': { $ne: 1 } } matches { a: [{ b: 1 }, { b: 2 }] }), unlike MongoDB; $nor is the
    // negation of the whole match on both.
    const positive = leafFilter({ ...leaf, neg: false });
    return { $nor: Object.keys(positive).length === 1 && Array.isArray(positive.$or) ? positive.$or : [positive] };
  }
  const { path, m, neg } = leaf;
  switch (m.t) {
    case 'eq':
      return { [path]: neg ? { $ne: m.v } : m.v };
    case 'in':
      return { [path]: neg ? { $nin: [...m.vs] } : { $in: [...m.vs] } };
    case 'range':
      return { [path]: neg ? { $not: { [m.op]: m.v } } : { [m.op]: m.v } };
    case 'glob': {
      const re: MongoFilter = { $regex: globToRegexSource(m.glob) };
      if (m.ci) re.$options = 'i';
      return { [path]: neg ? { $not: re } : re };
    }
    case 'null':
      if (leaf.segments.length === 1) return { [path]: neg ? { $ne: null } : null };
      // { 'a.b': null } differs between servers when `a` is an array whose objects lack `b` in
      // part, so the dotted form spells out "resolves to nothing, or to a null somewhere".
      return { $or: [{ [path]: { $exists: false } }, { [path]: { $type: 'null' } }] };
  }
}

/** Characters special in PCRE (MongoDB) and RE2 (FerretDB) regular expressions. */
const REGEX_META = /[\\^$.*+?()[\]{}|]/g;

function escapeRegexLiteral(s: string): string {
  let out = s.replace(REGEX_META, '\\$&');
  // Control characters as \x{..} (a NUL byte cannot appear in a MongoDB regular expression).
  if (/[\x00-\x1f\x7f]/.test(out)) {
    out = out.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x{${c.charCodeAt(0).toString(16)}}`);
  }
  return out;
}

/**
 * The pattern as a regular expression anchored with ^ and \z (not $, which PCRE lets match before a
 * final newline); wildcards as [\s\S] (unlike '.', it also matches a newline).
 */
export function globToRegexSource(glob: Glob): string {
  const body = glob
    .map((seg) => seg.map((p) => (p === ANY_ONE ? '[\\s\\S]' : escapeRegexLiteral(p))).join(''))
    .filter((s, i, all) => s !== '' || i === 0 || i === all.length - 1)
    .join('[\\s\\S]*');
  let src = `^${body}\\z`;
  if (glob.length > 1 && glob[0].length === 0) src = src.slice(1 + '[\\s\\S]*'.length);
  if (glob.length > 1 && glob[glob.length - 1].length === 0) src = src.slice(0, src.length - '[\\s\\S]*\\z'.length);
  return src === '' ? '^' : src;
}

/** A deep copy of a filter (plain objects, arrays, primitives), so callers cannot alter a shared one. */
export function cloneFilter<T>(value: T): T {
  if (Array.isArray(value)) return value.map(cloneFilter) as T;
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) setOwn(out, k, cloneFilter(v));
    return out as T;
  }
  return value;
}
