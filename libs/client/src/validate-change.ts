/** The client-side checks of a change (makeChange): the protocol's schemas, so mistakes fail fast. */
import { ErrorCode } from '../../protocol/src/errors';
import { collectionName, documentData, DocumentIdSchema, OperationSchema } from '../../protocol/src/schemas';
import type { Operation, SyncDocument } from '../../protocol/src/types';
import { SyncClientError } from './client-types';

const COLLECTION = collectionName();
const DATA = documentData();

/** Throws INVALID_PAYLOAD unless `collection` is a user collection name (the protocol's schema). */
export function checkCollection(collection: unknown): void {
  if (!COLLECTION.safeParse(collection).success) throw new SyncClientError(ErrorCode.INVALID_PAYLOAD, `invalid collection name "${String(collection)}"`);
}

/**
 * Checks a change with the schemas the server checks it with (PROTOCOL.md) and returns its data as
 * it will be sent (its JSON form: `undefined` fields dropped, dates as strings), or undefined for a
 * delete. Throws a SyncClientError (INVALID_PAYLOAD, or PAYLOAD_TOO_LARGE over `maxBytes`).
 */
export function checkChange(operation: unknown, collection: unknown, documentId: unknown, data: unknown, maxBytes: number): SyncDocument | undefined {
  const bad = (msg: string) => new SyncClientError(ErrorCode.INVALID_PAYLOAD, msg);
  if (!OperationSchema.safeParse(operation).success) throw bad(`operation must be insert, update or delete, not "${String(operation)}"`);
  checkCollection(collection);
  const id = DocumentIdSchema.safeParse(documentId);
  if (!id.success) throw bad(id.error.issues[0].message);
  if (operation === 'delete') return undefined;
  const json = data === undefined ? undefined : JSON.stringify(data);
  const body: unknown = json === undefined ? undefined : JSON.parse(json);
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw bad(`${operation as Operation} needs a data object`);
  const r = DATA.safeParse(body);
  if (!r.success) throw bad(r.error.issues[0].message);
  if (json!.length > maxBytes) throw new SyncClientError(ErrorCode.PAYLOAD_TOO_LARGE, `change of ${json!.length} bytes is larger than ${maxBytes}`);
  return body as SyncDocument;
}

/** Client-side checks of a change, as the server makes them (PROTOCOL.md), so mistakes fail fast. */
export function validateChange(operation: unknown, collection: unknown, documentId: unknown, data: unknown, maxBytes: number): void {
  checkChange(operation, collection, documentId, data, maxBytes);
}
