/** The client-side checks of a change (makeChange), mirroring the server's. */
import { ErrorCode } from '../../protocol/src/errors';
import { isUserCollectionName, LIMITS, OPERATIONS, type Operation } from '../../protocol/src/types';
import { SyncClientError } from './client-types';
import { isValidDocumentId } from './ids';
import { isPlainObject } from './util';

/** Client-side checks of a change, mirroring the server's (PROTOCOL.md), so mistakes fail fast. */
export function validateChange(operation: unknown, collection: unknown, documentId: unknown, data: unknown, maxBytes: number): void {
  const bad = (msg: string) => new SyncClientError(ErrorCode.INVALID_PAYLOAD, msg);
  if (!OPERATIONS.includes(operation as Operation)) throw bad(`operation must be insert, update or delete, not "${String(operation)}"`);
  if (!isUserCollectionName(collection)) throw bad(`invalid collection name "${String(collection)}"`);
  if (!isValidDocumentId(documentId)) {
    throw bad(`documentId must be a non-empty string of at most ${LIMITS.documentIdMax} characters`);
  }
  if (operation === 'delete') return;
  if (!isPlainObject(data)) throw bad(`${operation as string} needs a data object`);
  checkKeys(data, 0, bad);
  const size = JSON.stringify(data).length;
  if (size > maxBytes) throw new SyncClientError(ErrorCode.PAYLOAD_TOO_LARGE, `change of ${size} bytes is larger than ${maxBytes}`);
}

function checkKeys(v: unknown, depth: number, bad: (m: string) => Error): void {
  if (depth > LIMITS.maxDepth) throw bad(`data is nested deeper than ${LIMITS.maxDepth} levels`);
  if (Array.isArray(v)) {
    for (const x of v) checkKeys(x, depth + 1, bad);
  } else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      if (k.startsWith('$') || k.includes('.') || k.includes('\\')) throw bad(`field name "${k}" may not start with $ or contain a dot or a backslash`);
      checkKeys(x, depth + 1, bad);
    }
  }
}
