import * as fs from 'node:fs';
import { InvalidQueryError } from '@sync/protocol';
import { parseQuery, walkQuery, type QueryNode } from '@sync/protocol/query';

/** One collection's rule: the parsed read and write filters (bound per user when they use %user). */
export interface CollectionRule {
  readonly name: string;
  readonly read: QueryNode;
  readonly write: QueryNode;
}

export interface Rules {
  readonly default: CollectionRule;
  /** A Map, so that names like `__proto__` or `constructor` never reach Object.prototype. */
  readonly collections: ReadonlyMap<string, CollectionRule>;
}

/** The rules file is missing, is not JSON, has the wrong shape, or holds a rule that does not parse. */
export class RulesFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RulesFileError';
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const KINDS = ['read', 'write'] as const;

function parseRule(where: string, text: unknown): QueryNode {
  if (typeof text !== 'string') throw new RulesFileError(`${where}: must be a string (a filter in the query language), got ${text === null ? 'null' : typeof text}`);
  let node: QueryNode;
  try {
    node = parseQuery(text);
  } catch (e) {
    if (e instanceof InvalidQueryError) throw new RulesFileError(`${where}: ${e.message}`);
    throw e;
  }
  let hasArg = false;
  walkQuery(node, (n) => {
    if (n.kind === 'arg') hasArg = true;
  });
  if (hasArg) throw new RulesFileError(`${where}: rules cannot use arguments ($0, $1, ...); use %user.<claim>`);
  return node;
}

function parseEntry(where: string, name: string, v: unknown, fallback?: CollectionRule): CollectionRule {
  if (!isObject(v)) throw new RulesFileError(`${where}: must be an object { "read": "...", "write": "..." }`);
  // "schema": the collection's JSON Schema, read by CollectionSchemaService (src/schemas)
  for (const k of Object.keys(v)) if (!(KINDS as readonly string[]).includes(k) && k !== 'schema') throw new RulesFileError(`${where}: unknown key "${k}" (expected "read", "write" and "schema")`);
  const pick = (k: 'read' | 'write'): QueryNode => {
    if (Object.hasOwn(v, k)) return parseRule(`${where}.${k}`, v[k]);
    if (fallback) return fallback[k];
    throw new RulesFileError(`${where}.${k}: missing`);
  };
  return Object.freeze({ name, read: pick('read'), write: pick('write') });
}

const CLOSED: CollectionRule = Object.freeze({ name: '(default)', read: parseQuery('FALSEPREDICATE'), write: parseQuery('FALSEPREDICATE') });

/**
 * Parses the rules (already JSON-decoded): `{ default?: {read, write}, collections?: { name: {read, write} } }`.
 * A missing `default` closes every unlisted collection; a collection's missing `read`/`write` falls
 * back to the default's.
 */
export function parseRules(json: unknown): Rules {
  if (!isObject(json)) throw new RulesFileError('the rules must be a JSON object { "default": {...}, "collections": {...} }');
  for (const k of Object.keys(json)) if (k !== 'default' && k !== 'collections') throw new RulesFileError(`unknown top-level key "${k}" (expected "default" and "collections")`);
  const def = Object.hasOwn(json, 'default') ? parseEntry('default', '(default)', json.default) : CLOSED;
  const collections = new Map<string, CollectionRule>();
  if (Object.hasOwn(json, 'collections')) {
    const cols = json.collections;
    if (!isObject(cols)) throw new RulesFileError('collections: must be an object mapping collection names to { "read", "write" }');
    for (const name of Object.keys(cols)) collections.set(name, parseEntry(`collections.${name}`, name, cols[name], def));
  }
  return Object.freeze({ default: def, collections });
}

/** Reads and parses a rules file; every problem is a RulesFileError naming the file. */
export function loadRulesFile(file: string): Rules {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new RulesFileError(`SYNC_RULES_FILE ${file}: cannot be read (${(e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new RulesFileError(`SYNC_RULES_FILE ${file}: not valid JSON (${(e as Error).message})`);
  }
  try {
    return parseRules(json);
  } catch (e) {
    if (e instanceof RulesFileError) throw new RulesFileError(`SYNC_RULES_FILE ${file}: ${e.message}`);
    throw e;
  }
}

/** The rule of a collection (the default one for names not listed). */
export function ruleFor(rules: Rules, collection: string): CollectionRule {
  return rules.collections.get(collection) ?? rules.default;
}
