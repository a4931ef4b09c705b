import type { Operation, SyncDocument } from '@sync/protocol';

/** What the database holds for one document before a change is resolved. */
export interface StoredState {
  /** The live document (user fields + sync_updated_at + _updated_by), or null when missing/deleted. */
  doc: SyncDocument | null;
  /** sync_updated_at of the live document, or of the tombstone when deleted; null when never seen. */
  timestamp: number | null;
  /** True when the document is deleted and a tombstone is on record. */
  deleted: boolean;
  /** Per-field timestamps (CONFLICT_STRATEGY=field); absent fields fall back to `timestamp`. */
  fieldTimes?: Record<string, number>;
  /**
   * Who wrote the stored version (`_updated_by`, or the tombstone's author); null or absent when
   * unknown. On a timestamp tie the later-arriving change of the same author wins.
   */
  author?: string | null;
  /**
   * A deleted document's last version, kept with its tombstone (absent for tombstones written before
   * it was kept, or for deletes of a document the server never had). Write rules are checked against
   * it, so a deleted document's id stays its owner's, and a probe of it is answered like one of a
   * live document.
   */
  lastDoc?: SyncDocument | null;
  /**
   * The `_id` the document has in the database, or gets when it is created (an ObjectId, or the
   * documentId string): opaque to the strategies, carried from the load to the write.
   */
  dbId?: unknown;
}

/** A validated change, with its timestamp already clamped against clock skew. */
export interface IncomingChange {
  operation: Operation;
  documentId: string;
  data?: SyncDocument;
  timestamp: number;
  userId: string;
}

export type Outcome =
  | {
      kind: 'apply';
      /** The document after the change, or null for a delete. */
      after: SyncDocument | null;
      /** The document's sync_updated_at after the change. */
      timestamp: number;
      fieldTimes?: Record<string, number>;
    }
  | {
      kind: 'conflict';
      /** The winning stored document (null when deleted or missing). */
      current: SyncDocument | null;
      timestamp: number | null;
      reason: string;
    };

/** A conflict strategy: pure, deterministic, no I/O. */
export type ConflictStrategy = (stored: StoredState, change: IncomingChange) => Outcome;

/**
 * Nest provider token of the resolver the sync engine uses. Provide your own ConflictStrategy under
 * this token in a global module passed to createApp's `extensions` to replace it (docs/EXTENDING.md).
 */
export const CONFLICT_RESOLVER = Symbol('CONFLICT_RESOLVER');

/** Field names the server owns on every synced document. */
export const SYNC_TS = 'sync_updated_at';
export const UPDATED_BY = '_updated_by';
/** Per-field timestamps (field strategy only); stripped from every document sent to clients. */
export const FIELD_TS = '_sync_field_ts';
/**
 * The time of a document that has no sync_updated_at (written by another application, or left by
 * Atlas Device Sync): older than any change (change timestamps are never negative).
 */
export const MISSING_TIMESTAMP = -1;
