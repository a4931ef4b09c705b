/** Local evaluation of subscription filters (the protocol's query language), compiled once and cached. */
import { compileQuery } from '../../protocol/src/query';

export type DocPredicate = (doc: Record<string, unknown>) => boolean;

export type QueryCompiler = (text: string, args?: unknown[]) => { test(doc: Record<string, unknown>): boolean };

let compiler: QueryCompiler | undefined = compileQuery;

/** Replaces the query-language compiler (default: the protocol library's `compileQuery`). */
export function setQueryCompiler(c: QueryCompiler | undefined): void {
  compiler = c;
  cache.clear();
}

const cache = new Map<string, DocPredicate | null>();

/**
 * Compiles a filter to a predicate. Returns undefined when there is nothing to test (no filter,
 * or no compiler available and `strict` is false: the server filters anyway). Throws on a filter
 * that does not parse.
 */
export function compileFilter(filter: string | undefined, args: unknown[] | undefined, strict = false): DocPredicate | undefined {
  if (!filter || !filter.trim()) return undefined;
  const key = JSON.stringify([filter, args ?? []]);
  if (cache.has(key)) return cache.get(key) ?? undefined;
  if (!compiler) {
    if (strict) throw new Error('no query compiler installed: filter with a function instead');
    return undefined;
  }
  const q = compiler(filter, args);
  const p: DocPredicate = (doc) => q.test(doc);
  if (cache.size > 500) cache.clear();
  cache.set(key, p);
  return p;
}
