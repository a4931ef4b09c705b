/**
 * ObjectId document ids, without a bson dependency (docs/PROTOCOL.md "Document ids").
 *
 * On the wire and in this SDK a documentId is a string: an ObjectId `_id` is its 24-character
 * lowercase hex form (what `ObjectId.toHexString()` gives). Wherever the SDK takes a documentId it
 * also takes an ObjectId-like value: a `BSON.ObjectId` of the `bson` package / Realm (anything with
 * `toHexString()`), or the extended-JSON shape `{ $oid: "<hex>" }`; the change then asks the server
 * for an ObjectId `_id` (`idType: "objectId"`) when the document is new. The server tells which
 * documents have ObjectId `_id`s (`idType` on changes, `objectIds` on bootstrap pages): see
 * `SyncClient.idTypeOf`.
 */

/** A documentId: a string, or an ObjectId-like value (BSON.ObjectId, `{ $oid }`). */
export type DocumentIdInput = string | { $oid: string } | { toHexString(): string };

export type IdType = 'objectId' | 'string';

const HEX24 = /^[0-9a-f]{24}$/;

/** True for the canonical (lowercase) 24-hex form of an ObjectId. */
export function isObjectIdHex(id: unknown): id is string {
  return typeof id === 'string' && id.length === 24 && HEX24.test(id);
}

/**
 * The documentId string of an id the app gives, and whether it names an ObjectId. An ObjectId-like
 * value must give 24 hex characters (upper case is lowered, as BSON prints it).
 */
export function toDocumentId(input: DocumentIdInput): { id: string; idType?: 'objectId' } {
  if (typeof input === 'string') return { id: input };
  let hex: unknown;
  if (input && typeof input === 'object') {
    if ('$oid' in input) hex = input.$oid;
    else if (typeof (input as { toHexString?: unknown }).toHexString === 'function') hex = (input as { toHexString(): unknown }).toHexString();
  }
  const id = typeof hex === 'string' ? hex.toLowerCase() : '';
  if (!isObjectIdHex(id)) throw new TypeError('an ObjectId document id must give 24 hex characters ({ $oid } or toHexString())');
  return { id, idType: 'objectId' };
}

let counter = -1;
let processBytes: Uint8Array | undefined;

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  const c = (globalThis as { crypto?: { getRandomValues?(a: Uint8Array): Uint8Array } }).crypto;
  if (c?.getRandomValues) c.getRandomValues(out);
  else for (let i = 0; i < n; i++) out[i] = Math.floor(Math.random() * 256);
  return out;
}

/**
 * A new ObjectId, as its hex string (the MongoDB layout: 4 bytes of seconds, 5 random bytes per
 * process, a 3-byte counter). `makeChange('insert', c, { $oid: newObjectId() }, data)` creates a
 * document with an ObjectId `_id`.
 */
export function newObjectId(now: number = Date.now()): string {
  processBytes ??= randomBytes(5);
  if (counter < 0) {
    const r = randomBytes(3);
    counter = (r[0] << 16) | (r[1] << 8) | r[2];
  }
  counter = (counter + 1) % 0x1000000;
  const bytes = new Uint8Array(12);
  const secs = Math.floor(now / 1000) >>> 0;
  bytes[0] = secs >>> 24;
  bytes[1] = (secs >>> 16) & 0xff;
  bytes[2] = (secs >>> 8) & 0xff;
  bytes[3] = secs & 0xff;
  bytes.set(processBytes, 4);
  bytes[9] = counter >>> 16;
  bytes[10] = (counter >>> 8) & 0xff;
  bytes[11] = counter & 0xff;
  let hex = '';
  for (const b of bytes) hex += b.toString(16).padStart(2, '0');
  return hex;
}

/** The creation time an ObjectId carries (UTC ms), like `ObjectId.getTimestamp()`. */
export function objectIdTime(hex: string): number {
  if (!isObjectIdHex(hex)) throw new TypeError('not an ObjectId hex string');
  return parseInt(hex.slice(0, 8), 16) * 1000;
}
