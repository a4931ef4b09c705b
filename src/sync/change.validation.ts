import { randomUUID } from 'node:crypto';
import { InvalidPayloadError, Operation, PayloadTooLargeError, SyncDocument } from '@sync/protocol';
import { ChangeIdSchema, ClientChangeSchema, isPlainObject } from '@sync/protocol/schemas';
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

/** Plain-object and safe-data checks live with the schemas in libs/protocol (re-exported for the server). */
export { isPlainObject };

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

  // the shape, at the edge, with the protocol's schema (its messages are the answers)
  const parsed = ClientChangeSchema.safeParse(raw);
  if (!parsed.success) {
    const cid = pickString(raw, 'changeId', 'id', 'patchId');
    const ok = typeof cid === 'string' && ChangeIdSchema.safeParse(cid).success;
    throw new InvalidPayloadError(parsed.error.issues[0]?.message ?? 'invalid change', ok ? { changeId: cid } : {});
  }
  const shape = parsed.data;
  const changeIdRaw = shape.changeId ?? shape.id ?? shape.patchId;
  const generatedId = changeIdRaw === undefined || changeIdRaw === null;
  const changeId = generatedId ? randomUUID() : changeIdRaw;
  const operation = shape.operation;
  const collection = (shape.collection ?? shape.collectionName)!;
  const documentId = shape.documentId;

  let data: SyncDocument | undefined;
  if (operation !== 'delete') {
    // raw.data, not a copy: the schema checked it in place (plain object, safe keys, bounded)
    if (raw.data === undefined || raw.data === null) {
      if (operation === 'insert') data = {};
      else throw new InvalidPayloadError('an update needs a data object', { changeId });
    } else data = raw.data as SyncDocument;
  }

  let ts: number;
  let serverTime = false;
  const t = raw.timestamp;
  const dataTs = data?.sync_updated_at;
  // the schema checked the timestamp: a number here is a non-negative finite one
  if (typeof t === 'number') ts = t;
  else if (typeof dataTs === 'number' && Number.isFinite(dataTs) && dataTs >= 0) ts = dataTs;
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
