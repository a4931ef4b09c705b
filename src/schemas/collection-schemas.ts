import * as fs from 'node:fs';
import Ajv, { ErrorObject, ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { isUserCollectionName } from '@sync/protocol';

/** Bounds of what a schemas file may hold (it is read and compiled once, at boot). */
export const SCHEMA_LIMITS = { maxFileBytes: 1024 * 1024, maxCollections: 1000 } as const;

/** Fields the server manages: removed before a document is validated (the schema describes the app's fields). */
export const SERVER_FIELDS = ['_id', 'sync_updated_at', '_updated_by', '_sync_field_ts'] as const;

export class CollectionSchemaError extends Error {
  override name = 'CollectionSchemaError';
}

export interface SchemaViolation {
  /** JSON pointer (RFC 6901) into the resulting document, e.g. `/items/2/name`. */
  pointer: string;
  message: string;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function readJson(file: string, what: string): unknown {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new CollectionSchemaError(`${what} ${file}: not found`);
  }
  if (st.size > SCHEMA_LIMITS.maxFileBytes) throw new CollectionSchemaError(`${what} ${file}: larger than ${SCHEMA_LIMITS.maxFileBytes} bytes`);
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new CollectionSchemaError(`${what} ${file}: not valid JSON (${(e as Error).message})`);
  }
}

/**
 * Collects the JSON Schemas per collection: `SYNC_SCHEMAS_FILE` (`{ "collections": { name: schema } }`)
 * and the rules file's `collections.<name>.schema`. A collection given a schema in both is an error.
 */
export function loadCollectionSchemas(opts: { schemasFile?: string; rulesFile?: string }): Map<string, Record<string, unknown>> {
  const out = new Map<string, Record<string, unknown>>();
  const add = (where: string, name: string, schema: unknown) => {
    if (!isUserCollectionName(name)) throw new CollectionSchemaError(`${where}: "${String(name).slice(0, 80)}" is not a valid collection name`);
    if (!isObject(schema)) throw new CollectionSchemaError(`${where}.${name}: a schema must be a JSON Schema object`);
    if (out.has(name)) throw new CollectionSchemaError(`${where}.${name}: this collection already has a schema (in the other file)`);
    if (out.size >= SCHEMA_LIMITS.maxCollections) throw new CollectionSchemaError(`${where}: more than ${SCHEMA_LIMITS.maxCollections} collection schemas`);
    out.set(name, schema);
  };
  if (opts.schemasFile) {
    const json = readJson(opts.schemasFile, 'SYNC_SCHEMAS_FILE');
    if (!isObject(json) || !isObject(json.collections) || Object.keys(json).some((k) => k !== 'collections'))
      throw new CollectionSchemaError(`SYNC_SCHEMAS_FILE ${opts.schemasFile}: expected { "collections": { "<name>": <JSON Schema> } }`);
    for (const [name, schema] of Object.entries(json.collections)) add('collections', name, schema);
  }
  if (opts.rulesFile) {
    const json = readJson(opts.rulesFile, 'SYNC_RULES_FILE');
    const cols = isObject(json) && isObject(json.collections) ? json.collections : {};
    for (const [name, entry] of Object.entries(cols)) if (isObject(entry) && entry.schema !== undefined) add('rules collections', name, entry.schema);
  }
  return out;
}

/** An Ajv for collection schemas: strict (unknown keywords and formats refused), first error only, no remote refs. */
export function createSchemaAjv(): Ajv {
  const ajv = new Ajv({ strict: true, allErrors: false, validateFormats: true, allowUnionTypes: true, loadSchema: undefined, inlineRefs: true });
  addFormats(ajv);
  return ajv;
}

/** Compiles every schema (at boot: a bad schema stops the start with its collection named). */
export function compileCollectionSchemas(schemas: Map<string, Record<string, unknown>>, ajv = createSchemaAjv()): Map<string, ValidateFunction> {
  const out = new Map<string, ValidateFunction>();
  for (const [name, schema] of schemas) {
    try {
      out.set(name, ajv.compile(schema));
    } catch (e) {
      throw new CollectionSchemaError(`the schema of collection "${name}" does not compile: ${(e as Error).message}`);
    }
  }
  return out;
}

const escapePointer = (s: string) => s.replaceAll('~', '~0').replaceAll('/', '~1');

/** The JSON pointer and a sentence for Ajv's first error. */
export function describeViolation(err: ErrorObject): SchemaViolation {
  const p = err.params as Record<string, unknown>;
  let pointer = err.instancePath;
  let message = err.message ?? 'is invalid';
  if (err.keyword === 'required' && typeof p.missingProperty === 'string') {
    pointer += `/${escapePointer(p.missingProperty)}`;
    message = 'is required';
  } else if (err.keyword === 'additionalProperties' && typeof p.additionalProperty === 'string') {
    pointer += `/${escapePointer(p.additionalProperty)}`;
    message = 'is not allowed by the schema';
  }
  return { pointer: pointer || '/', message };
}
