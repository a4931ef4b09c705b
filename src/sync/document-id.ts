import { ObjectId } from 'mongodb';
import type { IdType } from '../permission/rules.loader';

/**
 * How a collection's `_id`s are stored (the rules file's per-collection `idType`, see
 * docs/PROTOCOL.md "Document ids"). On the wire a documentId is always a string; an ObjectId `_id`
 * travels as its 24-character lowercase hex form.
 *
 * - `string`: `_id` is the documentId string, as it always was.
 * - `objectId`: every `_id` is an ObjectId; a documentId must be 24 lowercase hex characters.
 * - `auto` (the default): a 24-hex documentId names the ObjectId document when one exists (else a
 *   tombstone that recorded an ObjectId, else the string one); a new document gets an ObjectId `_id`
 *   only when the change asks for it (`idType: "objectId"`), a string `_id` otherwise.
 */
export type { IdType } from '../permission/rules.loader';

/** The optional hint a client change may carry for a new document of an `auto` collection. */
export type IdHint = 'objectId' | 'string';

/** The `_id` as stored in a synced collection. */
export type DbId = string | ObjectId;

const HEX24 = /^[0-9a-f]{24}$/;

/** True for the canonical (lowercase) hex form of an ObjectId: only that form maps to one. */
export function isObjectIdHex(id: string): boolean {
  return id.length === 24 && HEX24.test(id);
}

export function isObjectId(v: unknown): v is ObjectId {
  return v instanceof ObjectId;
}

/** The documentId (wire form) of a stored `_id`. */
export function documentIdOf(dbId: unknown): string {
  return isObjectId(dbId) ? dbId.toHexString() : String(dbId);
}

/** The optional wire flag of a stored `_id`: `objectId`, or undefined for a string. */
export function wireIdType(dbId: unknown): 'objectId' | undefined {
  return isObjectId(dbId) ? 'objectId' : undefined;
}

/** Reads the optional `idType` hint of a raw client change (anything else than the two values is refused). */
export function readIdHint(raw: unknown): IdHint | undefined | { error: string } {
  if (!raw || typeof raw !== 'object') return undefined;
  const v = (raw as Record<string, unknown>).idType;
  if (v === undefined || v === null) return undefined;
  if (v === 'objectId' || v === 'string') return v;
  return { error: 'idType must be "objectId" or "string"' };
}

/**
 * Why a change's documentId (and hint) cannot be used in a collection of this id type, or null when
 * it can. Checked with the other validation, so the answer is INVALID_PAYLOAD before any write.
 */
export function documentIdProblem(idType: IdType, documentId: string, hint: IdHint | undefined): string | null {
  if (idType === 'objectId') {
    if (!isObjectIdHex(documentId)) return 'this collection stores ObjectId _ids: documentId must be 24 lowercase hex characters';
    if (hint === 'string') return 'this collection stores ObjectId _ids: idType "string" is not allowed';
    return null;
  }
  if (hint === 'objectId') {
    if (idType === 'string') return 'this collection stores string _ids: idType "objectId" is not allowed';
    if (!isObjectIdHex(documentId)) return 'idType "objectId" needs a documentId of 24 lowercase hex characters';
  }
  return null;
}

/** The `_id` values a documentId may be stored under (one query looks them all up). */
export function candidateDbIds(idType: IdType, documentId: string): DbId[] {
  if (idType === 'string' || !isObjectIdHex(documentId)) return [documentId];
  if (idType === 'objectId') return [new ObjectId(documentId)];
  return [new ObjectId(documentId), documentId];
}

/**
 * The `_id` a document gets when it does not exist yet. Deterministic: it depends only on the
 * collection's id type, the documentId, the id type its tombstone recorded and the change's hint.
 */
export function newDbId(idType: IdType, documentId: string, tombstoneIdType: IdHint | undefined, hint: IdHint | undefined): DbId {
  if (!isObjectIdHex(documentId) || idType === 'string') return documentId;
  if (idType === 'objectId') return new ObjectId(documentId);
  return (tombstoneIdType ?? hint) === 'objectId' ? new ObjectId(documentId) : documentId;
}

/** Among stored documents found for one documentId (auto: both forms may exist), the one it names: the ObjectId. */
export function preferredDoc<T extends { _id: unknown }>(a: T | undefined, b: T): T {
  if (!a) return b;
  return isObjectId(b._id) && !isObjectId(a._id) ? b : a;
}
