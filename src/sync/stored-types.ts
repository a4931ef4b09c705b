import { ObjectId } from 'mongodb';
import type { SyncDocument } from '@sync/protocol';
import type { FieldType } from '../permission/rules.loader';
import { isObjectIdHex } from './document-id';

/**
 * Values the wire cannot carry as such (an ObjectId reference, a Date, written by Atlas Device Sync
 * or another application) go out as JSON: the ObjectId's 24-hex string, the Date's ISO string. When
 * a client sends such a field back, it keeps its stored BSON type: an incoming value replaces a
 * stored ObjectId with an ObjectId when it is a 24-hex string, a stored Date with a Date when it is
 * an ISO-8601 string as JSON writes it (`2023-01-01T00:00:00.000Z`). Nothing else is converted, and
 * only where the stored document has an ObjectId or a Date at that place (an array element: at the
 * same index, or any index of an array holding only ObjectIds or only Dates), so a string field
 * stays a string. New documents have nothing to compare with: their values are stored as sent,
 * unless the rules file's `fieldTypes` of the collection names the field (fieldTypesTemplate),
 * which then applies to every write (docs/PROTOCOL.md "Document ids").
 */
export function keepStoredTypes(stored: SyncDocument, after: SyncDocument): SyncDocument {
  if (!hasBsonValue(stored, 0)) return after;
  const out: SyncDocument = {};
  for (const [k, v] of Object.entries(after)) out[k] = k === '_id' ? v : keepType(stored[k], v, 0);
  return out;
}

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const MAX_DEPTH = 40;

function keepType(stored: unknown, incoming: unknown, depth: number): unknown {
  if (stored === undefined || stored === null || depth > MAX_DEPTH) return incoming;
  if (incoming instanceof ObjectId || incoming instanceof Date) return incoming; // converted already
  if (typeof incoming === 'string') {
    if (stored instanceof ObjectId) return isObjectIdHex(incoming) ? new ObjectId(incoming) : incoming;
    if (stored instanceof Date && ISO.test(incoming)) {
      const d = new Date(incoming);
      return !Number.isNaN(d.getTime()) && d.toISOString() === incoming ? d : incoming;
    }
    return incoming;
  }
  if (Array.isArray(incoming)) {
    if (!Array.isArray(stored) || stored.length === 0) return incoming;
    const uniform = stored.every((x) => x instanceof ObjectId) || stored.every((x) => x instanceof Date) ? stored[0] : undefined;
    return incoming.map((x, i) => keepType(uniform ?? stored[i], x, depth + 1));
  }
  if (incoming && typeof incoming === 'object' && isPlainRecord(stored)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(incoming)) out[k] = keepType(stored[k], v, depth + 1);
    return out;
  }
  return incoming;
}

/** A plain object (not an array, nor a BSON value such as ObjectId, Binary or Decimal128). */
function isPlainRecord(v: unknown): v is Record<string, unknown> {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Whether a stored value holds an ObjectId or a Date anywhere (most documents do not: nothing to do). */
function hasBsonValue(v: unknown, depth: number): boolean {
  if (v instanceof ObjectId || v instanceof Date) return true;
  if (depth > MAX_DEPTH) return false;
  if (Array.isArray(v)) return v.some((x) => hasBsonValue(x, depth + 1));
  if (isPlainRecord(v)) for (const x of Object.values(v)) if (hasBsonValue(x, depth + 1)) return true;
  return false;
}

const templates = new WeakMap<object, SyncDocument>();
const SOME_OBJECT_ID = new ObjectId('000000000000000000000000');
const SOME_DATE = new Date(0);

/**
 * A stand-in stored document holding an ObjectId or a Date wherever the rules file's `fieldTypes`
 * says (`{ "owner_id": "objectId", "meta.createdAt": "date", "tagIds": "objectId[]" }`), for
 * keepStoredTypes: so the same conversion applies to new documents and new fields. Built once per rule.
 */
export function fieldTypesTemplate(types: Readonly<Record<string, FieldType>>): SyncDocument {
  let t = templates.get(types);
  if (t) return t;
  t = {};
  for (const [path, type] of Object.entries(types)) {
    const parts = path.split('.');
    let node: Record<string, unknown> = t;
    for (const p of parts.slice(0, -1)) {
      const next = node[p];
      node = (next && typeof next === 'object' && !Array.isArray(next) ? next : (node[p] = {})) as Record<string, unknown>;
    }
    const value = type.startsWith('objectId') ? SOME_OBJECT_ID : SOME_DATE;
    node[parts[parts.length - 1]] = type.endsWith('[]') ? [value] : value;
  }
  templates.set(types, t);
  return t;
}
