import { BSON } from 'mongodb';
import type { FeedEntry } from '../feed/change-feed.repository';

/**
 * Wire format of the cluster bus: one BSON document per message,
 * `{ v: 1, node: <sender node id>, entries: FeedEntry[] }`.
 *
 * BSON (not JSON) so that an entry arrives exactly as the sending node held it: `createdAt` stays a
 * Date, binary fields stay BSON Binary, ObjectId / Decimal128 / Date fields of documents that other
 * applications wrote straight into MongoDB keep their types, numbers stay numbers. Properties that
 * are `undefined` are left out (as JSON would). What toDelivered() and the ChangeRouter read
 * (`_id`, changeId, operation, collection, documentId, before, after, timestamp, userId,
 * serverTimestamp) is checked on receipt; an entry that lacks it is dropped, never delivered half.
 */
export const CLUSTER_WIRE_VERSION = 1;

const OPERATIONS = new Set(['insert', 'update', 'delete']);

export interface EncodedBatch {
  /** Messages to publish, in order; each at most `maxBytes` long. */
  messages: Buffer[];
  /** Entries that could not be sent: alone they exceed `maxBytes`, or BSON refused them. */
  dropped: { entry: FeedEntry; reason: 'too_large' | 'unserializable'; bytes?: number; error?: string }[];
}

export interface DecodedMessage {
  node: string;
  entries: FeedEntry[];
  /** Entries of the message that were malformed and left out. */
  invalid: number;
}

export class ClusterCodecError extends Error {
  constructor(
    message: string,
    readonly reason: 'too_large' | 'unparsable',
  ) {
    super(message);
    this.name = 'ClusterCodecError';
  }
}

function serialize(node: string, entries: FeedEntry[]): Buffer {
  const bytes = BSON.serialize({ v: CLUSTER_WIRE_VERSION, node, entries }, { ignoreUndefined: true, checkKeys: false });
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Encodes a batch of applied entries into as few messages as fit under `maxBytes` (a batch that is
 * too large is halved until its parts fit, keeping the order). An entry too large on its own is
 * reported in `dropped`: the other nodes' clients then get it from the change feed.
 */
export function encodeBatch(node: string, entries: FeedEntry[], maxBytes: number): EncodedBatch {
  const out: EncodedBatch = { messages: [], dropped: [] };
  const encode = (part: FeedEntry[]) => {
    if (part.length === 0) return;
    let buf: Buffer | undefined;
    let error: string | undefined;
    try {
      buf = serialize(node, part);
    } catch (e) {
      error = (e as Error).message;
    }
    if (buf && buf.length <= maxBytes) {
      out.messages.push(buf);
      return;
    }
    if (part.length > 1) {
      const mid = part.length >> 1;
      encode(part.slice(0, mid));
      encode(part.slice(mid));
      return;
    }
    out.dropped.push(buf ? { entry: part[0], reason: 'too_large', bytes: buf.length } : { entry: part[0], reason: 'unserializable', error });
  };
  encode(entries);
  return out;
}

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isStr = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
const isDocOrNull = (v: unknown) => v === undefined || v === null || isObj(v);

/** True when an entry carries everything delivery reads, with the right types. */
export function isDeliverableEntry(e: unknown): e is FeedEntry {
  if (!isObj(e)) return false;
  return (
    isNum(e._id) &&
    isStr(e.changeId) &&
    typeof e.operation === 'string' &&
    OPERATIONS.has(e.operation) &&
    isStr(e.collection) &&
    isStr(e.documentId) &&
    isNum(e.timestamp) &&
    isNum(e.serverTimestamp) &&
    typeof e.userId === 'string' &&
    isDocOrNull(e.after) &&
    isDocOrNull(e.before)
  );
}

/**
 * Decodes one message. Throws ClusterCodecError when it is over `maxBytes` or not a message of this
 * protocol at all; malformed entries inside a valid message are left out and counted in `invalid`.
 */
export function decodeMessage(buf: Buffer, maxBytes: number): DecodedMessage {
  if (buf.length > maxBytes) throw new ClusterCodecError(`message of ${buf.length} bytes is over the ${maxBytes}-byte cap`, 'too_large');
  let doc: Record<string, unknown>;
  try {
    doc = BSON.deserialize(buf, { promoteBuffers: false, promoteLongs: true, promoteValues: true });
  } catch (e) {
    throw new ClusterCodecError(`not a BSON message: ${(e as Error).message}`, 'unparsable');
  }
  if (doc.v !== CLUSTER_WIRE_VERSION) throw new ClusterCodecError(`unknown message version ${JSON.stringify(doc.v)}`, 'unparsable');
  if (!isStr(doc.node)) throw new ClusterCodecError('message without a node id', 'unparsable');
  if (!Array.isArray(doc.entries)) throw new ClusterCodecError('message without entries', 'unparsable');
  const entries = doc.entries.filter(isDeliverableEntry);
  return { node: doc.node, entries, invalid: doc.entries.length - entries.length };
}
