/** Feed entries as they leave the server, and the check that a stored state is an entry's result. */
import { type DeliveredChange, encodeCursor, type SyncDocument } from '@sync/protocol';
import { FIELD_TS, type StoredState } from '../conflict/conflict.types';
import type { FeedEntry } from './change-feed.repository';

/** Strips server-only bookkeeping from a stored document before it leaves the server. */
export function publicDoc(doc: SyncDocument): SyncDocument {
  if (!(FIELD_TS in doc)) return doc;
  const { [FIELD_TS]: _f, ...rest } = doc;
  void _f;
  return rest;
}

/** JSON with sorted keys: equal for equal documents whatever their key order. */
function canonical(v: unknown): string {
  if (v === null || typeof v !== 'object' || typeof (v as { toJSON?: unknown }).toJSON === 'function') return JSON.stringify(v) ?? 'undefined';
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
    .join(',')}}`;
}

/** Whether a stored state is the one a feed entry produced (same timestamp assumed). */
export function holds(state: StoredState, e: FeedEntry): boolean {
  if (e.operation === 'delete') return state.doc === null;
  if (state.doc === null || !e.after) return false;
  return canonical(publicDoc(state.doc)) === canonical(publicDoc(e.after));
}

export function toDelivered(e: FeedEntry, outOfView = false): DeliveredChange {
  const out: DeliveredChange = {
    changeId: e.changeId,
    operation: e.operation!,
    collection: e.collection!,
    documentId: e.documentId!,
    timestamp: e.timestamp!,
    userId: e.userId!,
    serverTimestamp: e.serverTimestamp!,
    cursor: encodeCursor(e._id),
  };
  if (e.idType === 'objectId') out.idType = 'objectId';
  if (outOfView) out.outOfView = true;
  else if (e.operation !== 'delete' && e.after) out.data = publicDoc(e.after);
  return out;
}
