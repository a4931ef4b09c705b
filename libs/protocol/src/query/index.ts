/**
 * The query language of filters and rules (a subset of Realm Query Language): one parser, one
 * syntax tree, compiled to a MongoDB filter and to an in-memory predicate that agree on every
 * document. README.md in this folder describes the grammar and the semantics.
 *
 *   const q = compileQuery('status == $0 AND owner.id == %user.id', ['open'], { user });
 *   collection.find(q.mongo);      // bootstrap, get_changes
 *   q.test(doc);                   // live delivery
 */
import type { QueryNode } from './query.ast';
import { bindToIR, type QueryVars } from './query.binder';
import { formatQuery } from './query.format';
import type { IR } from './query.ir';
import type { MatchBudget } from './query.glob';
import { compilePredicate, type DocPredicate } from './query.matcher';
import { cloneFilter, toMongoFilter } from './query.mongo';
import { parseQuery, sourceText } from './query.parser';

export type { QueryNode, QueryPrimitive } from './query.ast';
export { MAX_QUERY_DEPTH, usesUserVars, walkQuery } from './query.ast';
export type { QueryVars } from './query.binder';
export { formatQuery } from './query.format';
export { MatchBudgetExceededError, type MatchBudget } from './query.glob';
export { parseQuery } from './query.parser';

export interface QueryEquality {
  readonly path: string;
  readonly value: string | number | boolean | null;
}

export interface CompiledQuery {
  /**
   * The MongoDB filter (`{}` for TRUEPREDICATE, `{ _id: { $in: [] } }` for FALSEPREDICATE). Each
   * read returns a fresh copy, so a caller (or Mongoose casting) cannot alter a shared query.
   */
  readonly mongo: Record<string, unknown>;
  /**
   * The in-memory predicate, compiled once into closures: agrees with `mongo` on every document.
   * With `budget`, string patterns charge their work to it and throw MatchBudgetExceededError
   * rather than exceed it (see query.glob.ts); without, matching is unbounded (but still linear).
   */
  test(doc: Record<string, unknown>, budget?: MatchBudget): boolean;
  /** Matches every document (TRUEPREDICATE, or folded to it). */
  readonly alwaysTrue: boolean;
  /** Matches no document (FALSEPREDICATE, or folded to it, e.g. a comparison with a missing %user claim). */
  readonly alwaysFalse: boolean;
  /**
   * Top-level AND-ed equality constraints, usable to index subscriptions: a document can only
   * match if, for each entry, some value at `path` equals `value` (with MongoDB's array semantics:
   * an array field matches if one of its elements does, and a path through an array of objects
   * reaches every element). `value: null` means the path resolves to nothing or to a null.
   * Case-sensitive equality only (`==[c]` is not listed).
   */
  readonly equalities: ReadonlyArray<QueryEquality>;
  /** The query text (the source when parsed by parseQuery, otherwise the tree printed back). */
  readonly text: string;
}

/**
 * Binds arguments and variables and compiles the tree. Throws InvalidQueryError when an argument
 * is missing or is not a string, number, boolean or null (or, for IN, an array of those), and
 * PayloadTooLargeError when an argument, or the text and its arguments together, exceed LIMITS.
 */
export function bindQuery(node: QueryNode, args?: unknown[], vars?: QueryVars): CompiledQuery {
  const text = sourceText(node) ?? formatQuery(node);
  const ir = bindToIR(node, args, vars, text.length);
  return compiledFromIR(ir, text);
}

/** parseQuery + bindQuery. */
export function compileQuery(text: string, args?: unknown[], vars?: QueryVars): CompiledQuery {
  return bindQuery(parseQuery(text), args, vars);
}

const EMPTY_DOC: Record<string, unknown> = Object.freeze({});
const NO_EQUALITIES: ReadonlyArray<QueryEquality> = Object.freeze([]);

/**
 * A compiled query as a class (frozen instances of one shape, `mongo` and `test` on the prototype)
 * rather than a frozen object literal with a getter: V8 keeps such a literal in dictionary mode and
 * `test` needed a closure of its own, ~0.5 KB more per query (BENCHMARKS.md, "Memory per socket").
 */
class Compiled implements CompiledQuery {
  readonly alwaysTrue: boolean;
  readonly alwaysFalse: boolean;

  constructor(
    private readonly filter: Record<string, unknown>,
    private readonly predicate: DocPredicate,
    readonly equalities: ReadonlyArray<QueryEquality>,
    readonly text: string,
    ir: IR,
  ) {
    this.alwaysTrue = ir.k === 'const' && ir.v;
    this.alwaysFalse = ir.k === 'const' && !ir.v;
    Object.freeze(this);
  }

  get mongo(): Record<string, unknown> {
    return cloneFilter(this.filter);
  }

  test(doc: Record<string, unknown>, budget?: MatchBudget): boolean {
    // A missing document (a delete's data) is tested as an empty one.
    return this.predicate(doc !== null && typeof doc === 'object' ? doc : EMPTY_DOC, budget);
  }
}

function compiledFromIR(ir: IR, text: string): CompiledQuery {
  const eqs = equalitiesOf(ir);
  return new Compiled(toMongoFilter(ir), compilePredicate(ir), eqs.length ? Object.freeze(eqs) : NO_EQUALITIES, text, ir);
}

function equalitiesOf(ir: IR): QueryEquality[] {
  const conjuncts = ir.k === 'and' ? ir.c : [ir];
  const out: QueryEquality[] = [];
  for (const c of conjuncts) {
    if (c.k !== 'leaf' || c.neg) continue;
    if (c.m.t === 'eq') out.push(Object.freeze({ path: c.path, value: c.m.v }));
    else if (c.m.t === 'null') out.push(Object.freeze({ path: c.path, value: null }));
  }
  return out;
}
