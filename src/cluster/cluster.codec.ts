import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { BSON } from 'mongodb';
import type { FeedEntry } from '../sync/change-feed.repository';

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
/**
 * Signed messages (what the bus sends): `SBS2` + HMAC-SHA256(key, `SBS2` + body) + body, where body
 * is the BSON document `{ v: 2, node, t: <sent at, epoch ms>, entries }`. A node drops (and counts)
 * every message that is unsigned, signed with another key, or older than BUS_MESSAGE_MAX_AGE_MS
 * (a replay of a message recorded earlier).
 */
export const CLUSTER_SIGNED_WIRE_VERSION = 2;
const SIGNED_MAGIC = Buffer.from('SBS2', 'latin1');
const MAC_BYTES = 32;
const SIGNED_OVERHEAD = SIGNED_MAGIC.length + MAC_BYTES;
/** How old (or how far ahead, for clock skew between nodes) a signed message may be. */
export const BUS_MESSAGE_MAX_AGE_MS = 5 * 60_000;

/** The key that signs the bus: derived (HKDF-SHA256) from a secret all nodes share. */
export interface BusKey {
  readonly key: Buffer;
}

export function deriveBusKey(secret: string, channel: string): BusKey {
  return { key: Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), Buffer.from(channel, 'utf8'), 'sync cluster bus v2', 32)) };
}

function mac(key: BusKey, body: Uint8Array): Buffer {
  return createHmac('sha256', key.key).update(SIGNED_MAGIC).update(body).digest();
}

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
    readonly reason: 'too_large' | 'unparsable' | 'unsigned' | 'forged' | 'stale',
  ) {
    super(message);
    this.name = 'ClusterCodecError';
  }
}

function serialize(node: string, entries: FeedEntry[], key?: BusKey, now = Date.now()): Buffer {
  if (!key) {
    const bytes = BSON.serialize({ v: CLUSTER_WIRE_VERSION, node, entries }, { ignoreUndefined: true, checkKeys: false });
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  const body = BSON.serialize({ v: CLUSTER_SIGNED_WIRE_VERSION, node, t: now, entries }, { ignoreUndefined: true, checkKeys: false });
  return Buffer.concat([SIGNED_MAGIC, mac(key, body), body]);
}

/**
 * Encodes a batch of applied entries into as few messages as fit under `maxBytes` (a batch that is
 * too large is halved until its parts fit, keeping the order). An entry too large on its own is
 * reported in `dropped`: the other nodes' clients then get it from the change feed.
 */
export function encodeBatch(node: string, entries: FeedEntry[], maxBytes: number, key?: BusKey): EncodedBatch {
  const out: EncodedBatch = { messages: [], dropped: [] };
  const encode = (part: FeedEntry[]) => {
    if (part.length === 0) return;
    let buf: Buffer | undefined;
    let error: string | undefined;
    try {
      buf = serialize(node, part, key);
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
 * With `key`, only messages signed with it are accepted (the signature is checked before anything
 * is parsed): unsigned ones throw `unsigned`, a wrong signature `forged`, an old one `stale`.
 */
export function decodeMessage(buf: Buffer, maxBytes: number, key?: BusKey, now = Date.now()): DecodedMessage {
  if (buf.length > maxBytes) throw new ClusterCodecError(`message of ${buf.length} bytes is over the ${maxBytes}-byte cap`, 'too_large');
  let body: Buffer = buf;
  if (key) {
    if (buf.length < SIGNED_OVERHEAD + 5 || !buf.subarray(0, SIGNED_MAGIC.length).equals(SIGNED_MAGIC))
      throw new ClusterCodecError('unsigned message refused (the bus is signed)', 'unsigned');
    body = buf.subarray(SIGNED_OVERHEAD);
    if (!timingSafeEqual(buf.subarray(SIGNED_MAGIC.length, SIGNED_OVERHEAD), mac(key, body)))
      throw new ClusterCodecError('message with a wrong signature refused (another key: forged, or a node with another SERVER_SECRET)', 'forged');
  }
  let doc: Record<string, unknown>;
  try {
    doc = BSON.deserialize(body, { promoteBuffers: false, promoteLongs: true, promoteValues: true });
  } catch (e) {
    throw new ClusterCodecError(`not a BSON message: ${(e as Error).message}`, 'unparsable');
  }
  const version = key ? CLUSTER_SIGNED_WIRE_VERSION : CLUSTER_WIRE_VERSION;
  if (doc.v !== version) throw new ClusterCodecError(`unknown message version ${JSON.stringify(doc.v)}`, 'unparsable');
  if (key && (!isNum(doc.t) || Math.abs(now - doc.t) > BUS_MESSAGE_MAX_AGE_MS))
    throw new ClusterCodecError('signed message too old or too far ahead (a replay, or clocks far apart)', 'stale');
  if (!isStr(doc.node)) throw new ClusterCodecError('message without a node id', 'unparsable');
  if (!Array.isArray(doc.entries)) throw new ClusterCodecError('message without entries', 'unparsable');
  const entries = doc.entries.filter(isDeliverableEntry);
  return { node: doc.node, entries, invalid: doc.entries.length - entries.length };
}
