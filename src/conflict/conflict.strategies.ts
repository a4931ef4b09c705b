import type { SyncDocument } from '@sync/protocol';
import { ConflictStrategy, FIELD_TS, IncomingChange, MISSING_TIMESTAMP, Outcome, StoredState, SYNC_TS, UPDATED_BY } from './conflict.types';

/** Clamps a client timestamp that is too far in the future to the server's clock. */
export function clampTimestamp(ts: number, now: number, maxSkewMs: number): number {
  return ts > now + maxSkewMs ? now : ts;
}

/** Fields a client may set: everything but `_id` and the server-owned bookkeeping fields. */
export function userFields(data: SyncDocument | undefined): SyncDocument {
  const out: SyncDocument = {};
  if (!data) return out;
  for (const [k, v] of Object.entries(data)) {
    if (k === '_id' || k === UPDATED_BY || k === SYNC_TS || k === FIELD_TS) continue;
    out[k] = v;
  }
  return out;
}

function withMeta(base: SyncDocument, change: IncomingChange, timestamp: number): SyncDocument {
  return { ...base, _id: change.documentId, [SYNC_TS]: timestamp, [UPDATED_BY]: change.userId };
}

/** The document a winning change produces (insert/update merge into the stored fields). */
function applied(stored: StoredState, change: IncomingChange, timestamp: number): Outcome {
  if (change.operation === 'delete') return { kind: 'apply', after: null, timestamp };
  const { _id, [SYNC_TS]: _ts, [UPDATED_BY]: _by, [FIELD_TS]: _ft, ...kept } = stored.doc ?? {};
  void _id;
  void _ts;
  void _by;
  void _ft;
  // An insert over an existing document is resolved like an update: fields it does not name are kept.
  return { kind: 'apply', after: withMeta({ ...kept, ...userFields(change.data) }, change, timestamp), timestamp };
}

function conflict(stored: StoredState, reason: string): Outcome {
  return { kind: 'conflict', current: stored.doc, timestamp: stored.timestamp, reason };
}

/**
 * Whether a change made at `ts` beats a stored version written at `storedTs`: a newer timestamp wins;
 * on a tie the later-arriving change wins only over a version of its own author (one device's rapid
 * edits within one millisecond all apply, in the order they arrive).
 */
function beats(ts: number, storedTs: number | null, stored: StoredState, change: IncomingChange): boolean {
  if (storedTs === null || ts > storedTs) return true;
  return ts === storedTs && typeof stored.author === 'string' && stored.author === change.userId;
}

/**
 * The document a change would produce if it won (null for a delete), whatever the strategy decides:
 * what a write rule is checked against before the conflict is resolved.
 */
export function afterIfApplied(stored: StoredState, change: IncomingChange): SyncDocument | null {
  const out = applied(stored, change, change.timestamp);
  return out.kind === 'apply' ? out.after : null;
}

/**
 * Default: per-document last write wins on sync_updated_at; a tie keeps the stored version, unless
 * the stored version has the same author (then the later-arriving change wins).
 */
export const lastWriteWins: ConflictStrategy = (stored, change) => {
  if (beats(change.timestamp, stored.timestamp, stored, change)) return applied(stored, change, change.timestamp);
  return conflict(
    stored,
    change.timestamp === stored.timestamp
      ? 'a version with the same sync_updated_at by another author is already stored (ties keep the stored version)'
      : stored.deleted
        ? 'the document was deleted by a newer change'
        : 'the stored version is newer',
  );
};

/** The stored version always stays (one without sync metadata too); a change applies only to a document never seen before. */
export const serverWins: ConflictStrategy = (stored, change) =>
  stored.timestamp === null && stored.doc === null ? applied(stored, change, change.timestamp) : conflict(stored, 'server-wins: the stored version is kept');

/**
 * The incoming change always applies. Its timestamp is moved past the stored one when older, so that
 * every client (which orders versions by timestamp) accepts the result.
 */
export const clientWins: ConflictStrategy = (stored, change) => {
  const ts = stored.timestamp === null ? change.timestamp : Math.max(change.timestamp, stored.timestamp + 1);
  return applied(stored, change, ts);
};

/**
 * Per-field last write wins: each top-level field keeps its own timestamp, and an update overwrites
 * only the fields it is newer on, so concurrent edits of different fields both survive. Inserts and
 * deletes are whole-document operations resolved on the document's timestamp. A tie on a field goes
 * to the later-arriving change when the document's last author (`_updated_by`) is the change's author
 * (authors are kept per document, not per field).
 */
export const fieldLastWriteWins: ConflictStrategy = (stored, change) => {
  if (change.operation === 'delete' || stored.doc === null) {
    const out = lastWriteWins(stored, change);
    if (out.kind === 'apply' && out.after) out.fieldTimes = Object.fromEntries(Object.keys(userFields(change.data)).map((k) => [k, change.timestamp]));
    return out;
  }
  // a document without sync_updated_at: each of its fields is older than any change
  const docTs = stored.timestamp ?? MISSING_TIMESTAMP;
  const times = stored.fieldTimes ?? {};
  const incoming = userFields(change.data);
  const won: SyncDocument = {};
  // Pin every stored field's timestamp before the document timestamp moves, so that a field this
  // change does not touch keeps the time it was really written at.
  const fieldTimes: Record<string, number> = {};
  for (const k of Object.keys(userFields(stored.doc))) fieldTimes[k] = times[k] ?? docTs;
  let any = false;
  for (const [k, v] of Object.entries(incoming)) {
    const current = times[k] ?? docTs;
    if (beats(change.timestamp, current, stored, change)) {
      won[k] = v;
      fieldTimes[k] = change.timestamp;
      any = true;
    }
  }
  if (!any) return conflict(stored, 'every field of the change has a newer stored version (or an equal one by another author)');
  const timestamp = Math.max(docTs, change.timestamp);
  const { _id, [SYNC_TS]: _ts, [UPDATED_BY]: _by, [FIELD_TS]: _ft, ...kept } = stored.doc;
  void _id;
  void _ts;
  void _by;
  void _ft;
  return { kind: 'apply', after: withMeta({ ...kept, ...won }, change, timestamp), timestamp, fieldTimes };
};

export const STRATEGIES: Record<string, ConflictStrategy> = {
  lww: lastWriteWins,
  field: fieldLastWriteWins,
  'server-wins': serverWins,
  'client-wins': clientWins,
};
