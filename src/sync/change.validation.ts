import { randomUUID } from 'node:crypto';
import {
  InvalidPayloadError,
  isUserCollectionName,
  LIMITS,
  Operation,
  OPERATIONS,
  PayloadTooLargeError,
  SyncDocument,
} from '@sync/protocol';
import { clampTimestamp } from '../conflict/conflict.strategies';

/** A client change after validation: aliases resolved, timestamp chosen and clamped. */
export interface NormalizedChange {
  changeId: string;
  /** True when the client sent no changeId and the server made one (no idempotency possible). */
  generatedId: boolean;
  operation: Operation;
  collection: string;
  documentId: string;
  data?: SyncDocument;
  timestamp: number;
  /** True when the timestamp was more than MAX_CLOCK_SKEW_MS ahead and was clamped. */
  clamped: boolean;
  /** True when the change carried no timestamp and got the server's clock. */
  serverTime: boolean;
}

export interface ValidationOptions {
  maxChangeBytes: number;
  maxClockSkewMs: number;
  now: number;
}

const FORBIDDEN_KEYS = new Set(['__proto__']);

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * Checks that a value is plain JSON data that is safe to store: no `$`-prefixed or dotted keys at any
 * depth (no operator injection), no `__proto__`, bounded depth and array sizes, finite numbers only.
 */
export function assertSafeData(value: unknown, path = 'data', depth = 0): void {
  if (depth > LIMITS.maxDepth) throw new InvalidPayloadError(`${path}: nested deeper than ${LIMITS.maxDepth} levels`);
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new InvalidPayloadError(`${path}: numbers must be finite`);
    return;
  }
  if (Array.isArray(value)) {
    if (value.length > LIMITS.maxArrayLength) throw new InvalidPayloadError(`${path}: arrays may hold at most ${LIMITS.maxArrayLength} items`);
    for (let i = 0; i < value.length; i++) assertSafeData(value[i], `${path}[${i}]`, depth + 1);
    return;
  }
  if (isPlainObject(value)) {
    for (const key of Object.keys(value)) {
      if (key.startsWith('$')) throw new InvalidPayloadError(`${path}: key "${key.slice(0, 40)}" may not start with "$"`);
      if (key.includes('.')) throw new InvalidPayloadError(`${path}: key "${key.slice(0, 40)}" may not contain "."`);
      if (FORBIDDEN_KEYS.has(key)) throw new InvalidPayloadError(`${path}: key "${key}" is not allowed`);
      if (key.length > 256) throw new InvalidPayloadError(`${path}: keys are limited to 256 characters`);
      if (key.includes('\u0000')) throw new InvalidPayloadError(`${path}: keys may not contain NUL`);
      assertSafeData(value[key], `${path}.${key.slice(0, 40)}`, depth + 1);
    }
    return;
  }
  throw new InvalidPayloadError(`${path}: only JSON values are allowed (got ${value === undefined ? 'undefined' : typeof value})`);
}

function approxBytes(v: unknown): number {
  try {
    return Buffer.byteLength(JSON.stringify(v) ?? '');
  } catch {
    throw new InvalidPayloadError('change is not serialisable JSON');
  }
}

function pickString(obj: Record<string, unknown>, ...keys: string[]): unknown {
  for (const k of keys) if (obj[k] !== undefined) return obj[k];
  return undefined;
}

/** Validates and normalises one change as sent by a client (PROTOCOL.md "A change sent by a client"). */
export function normalizeChange(raw: unknown, opts: ValidationOptions): NormalizedChange {
  if (!isPlainObject(raw)) throw new InvalidPayloadError('a change must be an object');
  const bytes = approxBytes(raw);
  if (bytes > opts.maxChangeBytes) throw new PayloadTooLargeError(`change is ${bytes} bytes; the limit is ${opts.maxChangeBytes}`);

  const changeIdRaw = pickString(raw, 'changeId', 'id', 'patchId');
  let changeId: string;
  let generatedId = false;
  if (changeIdRaw === undefined || changeIdRaw === null) {
    changeId = randomUUID();
    generatedId = true;
  } else if (typeof changeIdRaw !== 'string' || changeIdRaw.length === 0 || changeIdRaw.length > LIMITS.changeIdMax) {
    throw new InvalidPayloadError(`changeId must be a non-empty string of at most ${LIMITS.changeIdMax} characters`);
  } else changeId = changeIdRaw;

  const operation = raw.operation;
  if (typeof operation !== 'string' || !OPERATIONS.includes(operation as Operation))
    throw new InvalidPayloadError('operation must be "insert", "update" or "delete"', { changeId });

  const collection = pickString(raw, 'collection', 'collectionName');
  if (!isUserCollectionName(collection))
    throw new InvalidPayloadError(
      'collection must be 1-64 letters, digits, "_", "-" or "." and may not be a system collection (system.*, _sync*)',
      { changeId },
    );

  const documentId = raw.documentId;
  if (typeof documentId !== 'string' || documentId.length === 0 || documentId.length > LIMITS.documentIdMax)
    throw new InvalidPayloadError(`documentId must be a non-empty string of at most ${LIMITS.documentIdMax} characters`, { changeId });

  let data: SyncDocument | undefined;
  if (operation !== 'delete') {
    if (raw.data === undefined || raw.data === null) {
      if (operation === 'insert') data = {};
      else throw new InvalidPayloadError('an update needs a data object', { changeId });
    } else if (!isPlainObject(raw.data)) throw new InvalidPayloadError('data must be an object', { changeId });
    else {
      try {
        assertSafeData(raw.data);
      } catch (e) {
        if (e instanceof InvalidPayloadError) throw new InvalidPayloadError(e.message, { changeId });
        throw e;
      }
      data = raw.data;
    }
  }

  let ts: number;
  let serverTime = false;
  const t = raw.timestamp;
  const dataTs = data?.sync_updated_at;
  if (t !== undefined && t !== null) {
    if (typeof t !== 'number' || !Number.isFinite(t) || t < 0) throw new InvalidPayloadError('timestamp must be a non-negative number (UTC ms)', { changeId });
    ts = t;
  } else if (typeof dataTs === 'number' && Number.isFinite(dataTs) && dataTs >= 0) ts = dataTs;
  else {
    ts = opts.now;
    serverTime = true;
  }
  ts = Math.floor(ts);
  const clamped = clampTimestamp(ts, opts.now, opts.maxClockSkewMs);
  return {
    changeId,
    generatedId,
    operation: operation as Operation,
    collection,
    documentId,
    data,
    timestamp: clamped,
    clamped: clamped !== ts,
    serverTime,
  };
}
