/**
 * The bound form of a query: arguments and variables substituted, constants folded, negations
 * pushed down to the comparisons (negation normal form). Both the MongoDB filter and the in-memory
 * predicate are generated from this one form, which is what keeps them in agreement.
 */
import type { StringOp } from './query.ast';

export type Scalar = string | number | boolean;
export type RangeOp = '$gt' | '$gte' | '$lt' | '$lte';

/** `*` or `?` in a LIKE pattern. */
export const ANY_ONE = 0 as const;
/** A run of literal text or a single-character wildcard. */
export type GlobPart = string | typeof ANY_ONE;
/**
 * A string pattern: segments separated by `*` (any run of characters), the first anchored at the
 * start of the string and the last at its end. BEGINSWITH 'a' is ['a'] + ['']; ENDSWITH 'a' is
 * [''] + ['a']; CONTAINS 'a' is [''] + ['a'] + ['']; ==[c] 'a' is ['a'].
 */
export type Glob = ReadonlyArray<ReadonlyArray<GlobPart>>;

export type Matcher =
  /** Some value at the path equals v (same type; numbers by value). */
  | { readonly t: 'eq'; readonly v: Scalar }
  /** The path resolves to nothing, or some value at it is null. */
  | { readonly t: 'null' }
  /** Some value at the path is one of vs (non-null, at least two, no duplicates). */
  | { readonly t: 'in'; readonly vs: readonly Scalar[] }
  /** Some value at the path of v's type compares with v by op. */
  | { readonly t: 'range'; readonly op: RangeOp; readonly v: Scalar }
  /** Some string at the path matches the pattern. `source` keeps the operator and operand for messages. */
  | { readonly t: 'glob'; readonly glob: Glob; readonly ci: boolean; readonly source: { op: StringOp | '=='; value: string } };

export interface LeafIR {
  readonly k: 'leaf';
  /** The comparison is negated (`!=`, NOT pushed down): the document matches when the matcher does not. */
  readonly neg: boolean;
  readonly path: string;
  readonly segments: readonly string[];
  readonly m: Matcher;
}

export type IR =
  { readonly k: 'const'; readonly v: boolean } | { readonly k: 'and'; readonly c: readonly IR[] } | { readonly k: 'or'; readonly c: readonly IR[] } | LeafIR;

export const TRUE_IR: IR = { k: 'const', v: true };
export const FALSE_IR: IR = { k: 'const', v: false };

export function constIR(v: boolean): IR {
  return v ? TRUE_IR : FALSE_IR;
}

/** AND with constant folding and flattening. */
export function andIR(children: readonly IR[]): IR {
  const out: IR[] = [];
  for (const c of children) {
    if (c.k === 'const') {
      if (!c.v) return FALSE_IR;
      continue;
    }
    if (c.k === 'and') out.push(...c.c);
    else out.push(c);
  }
  if (out.length === 0) return TRUE_IR;
  return out.length === 1 ? out[0] : { k: 'and', c: out };
}

/** OR with constant folding and flattening. */
export function orIR(children: readonly IR[]): IR {
  const out: IR[] = [];
  for (const c of children) {
    if (c.k === 'const') {
      if (c.v) return TRUE_IR;
      continue;
    }
    if (c.k === 'or') out.push(...c.c);
    else out.push(c);
  }
  if (out.length === 0) return FALSE_IR;
  return out.length === 1 ? out[0] : { k: 'or', c: out };
}
