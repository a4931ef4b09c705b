/**
 * Document ids in the SDK, in one place: how an id is read from the wire (a document's `_id`, a
 * change's `documentId`) and how it is put back on a document. Ids are strings in the local view;
 * support for other id types (MongoDB ObjectIds of data left by Atlas Device Sync) plugs in here.
 */
import type { SyncDocument } from '../../protocol/src/types';

/** The local id of a wire id (a document's `_id` or a change's `documentId`); undefined when missing. */
export function idOf(raw: unknown): string | undefined {
  if (raw === undefined || raw === null) return undefined;
  return String(raw);
}

/** `doc` with its `_id` set to the document's id (a new object). */
export function withId(doc: SyncDocument | null | undefined, id: string): SyncDocument {
  return { ...(doc ?? {}), _id: id };
}
