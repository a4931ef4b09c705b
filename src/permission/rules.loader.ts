import * as fs from 'node:fs';
import { InvalidQueryError } from '@sync/protocol';
import { parseQuery, walkQuery, type QueryNode } from '@sync/protocol/query';

/** One collection's rule: the parsed read and write filters (bound per user when they use %user). */
export interface CollectionRule {
  readonly name: string;
  readonly read: QueryNode;
  readonly write: QueryNode;
  /** How the collection's `_id`s are stored (see src/feed/document-id.ts); default `auto`. */
  readonly idType: IdType;
  /** BSON types of fields that clients send as strings (see src/feed/stored-types.ts); none by default. */
  readonly fieldTypes?: Readonly<Record<string, FieldType>>;
}

/** A field stored as an ObjectId or a Date (or an array of them) although clients send strings. */
export type FieldType = 'objectId' | 'date' | 'objectId[]' | 'date[]';
export const FIELD_TYPES: readonly FieldType[] = ['objectId', 'date', 'objectId[]', 'date[]'];
const MAX_FIELD_TYPES = 200;
const FIELD_PATH = /^[A-Za-z_][A-Za-z0-9_]{0,127}(\.[A-Za-z_][A-Za-z0-9_]{0,127}){0,7}$/;

/** How a collection's `_id`s are stored: strings, ObjectIds, or whichever a document already has. */
export type IdType = 'string' | 'objectId' | 'auto';
export const ID_TYPES: readonly IdType[] = ['string', 'objectId', 'auto'];
export const DEFAULT_ID_TYPE: IdType = 'auto';

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
// "schema": the collection's JSON Schema, read by CollectionSchemaService (src/schemas)
const ENTRY_KEYS: readonly string[] = [...KINDS, 'idType', 'fieldTypes', 'schema'];

function parseRule(where: string, text: unknown): QueryNode {
  if (typeof text !== 'string')
    throw new RulesFileError(`${where}: must be a string (a filter in the query language), got ${text === null ? 'null' : typeof text}`);
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
  for (const k of Object.keys(v))
    if (!ENTRY_KEYS.includes(k)) throw new RulesFileError(`${where}: unknown key "${k}" (expected "read", "write", "idType", "fieldTypes" and "schema")`);
  const pick = (k: 'read' | 'write'): QueryNode => {
    if (Object.hasOwn(v, k)) return parseRule(`${where}.${k}`, v[k]);
    if (fallback) return fallback[k];
    throw new RulesFileError(`${where}.${k}: missing`);
  };
  let idType = fallback?.idType ?? DEFAULT_ID_TYPE;
  if (Object.hasOwn(v, 'idType')) {
    if (!ID_TYPES.includes(v.idType as IdType)) throw new RulesFileError(`${where}.idType: must be "objectId", "string" or "auto"`);
    idType = v.idType as IdType;
  }
  const fieldTypes = Object.hasOwn(v, 'fieldTypes') ? parseFieldTypes(`${where}.fieldTypes`, v.fieldTypes) : fallback?.fieldTypes;
  return Object.freeze({ name, read: pick('read'), write: pick('write'), idType, ...(fieldTypes ? { fieldTypes } : {}) });
}

function parseFieldTypes(where: string, v: unknown): Readonly<Record<string, FieldType>> {
  if (!isObject(v)) throw new RulesFileError(`${where}: must be an object mapping field paths to "objectId", "date", "objectId[]" or "date[]"`);
  const keys = Object.keys(v);
  if (keys.length > MAX_FIELD_TYPES) throw new RulesFileError(`${where}: at most ${MAX_FIELD_TYPES} fields`);
  const out: Record<string, FieldType> = Object.create(null) as Record<string, FieldType>;
  for (const k of keys) {
    if (!FIELD_PATH.test(k) || k === '_id' || k.split('.').includes('__proto__'))
      throw new RulesFileError(`${where}: "${k.slice(0, 60)}" is not a field path (names of letters, digits and "_", dotted, not _id)`);
    if (!FIELD_TYPES.includes(v[k] as FieldType)) throw new RulesFileError(`${where}.${k}: must be "objectId", "date", "objectId[]" or "date[]"`);
    out[k] = v[k] as FieldType;
  }
  return Object.freeze(out);
}

const CLOSED: CollectionRule = Object.freeze({
  name: '(default)',
  read: parseQuery('FALSEPREDICATE'),
  write: parseQuery('FALSEPREDICATE'),
  idType: DEFAULT_ID_TYPE,
});

/**
 * Parses the rules (already JSON-decoded): `{ default?: {read, write}, collections?: { name: {read, write} } }`.
 * A missing `default` closes every unlisted collection; a collection's missing `read`/`write` falls
 * back to the default's.
 */
export function parseRules(json: unknown): Rules {
  if (!isObject(json)) throw new RulesFileError('the rules must be a JSON object { "default": {...}, "collections": {...} }');
  for (const k of Object.keys(json))
    if (k !== 'default' && k !== 'collections') throw new RulesFileError(`unknown top-level key "${k}" (expected "default" and "collections")`);
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
