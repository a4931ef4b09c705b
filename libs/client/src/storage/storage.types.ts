import type { ChangeFields, SyncDocument } from '../../../protocol/src/types';

/**
 * One change the app made that the server has not acknowledged yet. Its `changeId` (a UUID) is
 * reused by every retry so the server applies the change once; its `timestamp` is never lower than
 * the client's previous one.
 */
export interface OutboxEntry extends ChangeFields {
  /** Order of the change in this client's outbox (strictly increasing). */
  seq: number;
  /** When makeChange was called (UTC ms). */
  createdAt: number;
  /** The app gave an ObjectId as documentId: a new document gets an ObjectId `_id` (object-id.ts). */
  idType?: 'objectId';
}

/** What this client last learned from the server about one document (the base under pending changes). */
export interface DocRecord {
  collection: string;
  id: string;
  /** live: `doc` is the document; deleted: a tombstone; hidden: exists but left this client's view. */
  state: 'live' | 'deleted' | 'hidden';
  doc: SyncDocument | null;
  /** The document's sync_updated_at for that state (last write wins on it). */
  ts: number;
  /** Feed position that state came from, when known (breaks timestamp ties). */
  cursor?: string;
  /** The server stores this document's `_id` as an ObjectId (`id` is its hex form). */
  idType?: 'objectId';
}

/** A subscription the app asked for, kept so that it is renewed on every reconnect. */
export interface StoredSubscription {
  key: string;
  collection: string;
  filter?: string;
  args?: unknown[];
  /** True once a bootstrap of this subscription has completed into the stored documents. */
  bootstrapped: boolean;
}

export interface SyncMeta {
  /** The user and server this state belongs to. */
  userId?: string;
  serverUrl?: string;
  /** Feed position up to which every change has been read (only ever set from get_changes / join). */
  cursor?: string | null;
  /** Last time (UTC ms) the client finished a catch-up or had changes acknowledged. */
  lastSyncTimestamp?: number;
  /** Highest sync_updated_at this client has used (keeps the clock monotonic across restarts). */
  lastTimestamp?: number;
  /** Highest outbox seq used. */
  lastSeq?: number;
  subscriptions?: StoredSubscription[];
}

export interface StoredState {
  outbox: OutboxEntry[];
  docs: DocRecord[];
  meta: SyncMeta;
}

/** One atomic update of the stored state: either all of it is durable afterwards, or none. */
export interface StorageWrite {
  putOutbox?: OutboxEntry[];
  deleteOutbox?: string[];
  putDocs?: DocRecord[];
  deleteDocs?: { collection: string; id: string }[];
  /** Drop every stored document first (a fresh bootstrap). */
  clearDocs?: boolean;
  meta?: Partial<SyncMeta>;
}

/**
 * Where a client keeps its outbox, its documents and its cursor. `write` resolves only once the
 * write is durable (for a durable storage): the client reports a change as made only after that.
 */
export interface SyncStorage {
  readonly kind: string;
  /** Whether the state survives the process (or page) ending. */
  readonly durable: boolean;
  load(): Promise<StoredState>;
  write(w: StorageWrite): Promise<void>;
  close(): Promise<void>;
}

export const docKey = (collection: string, id: string) => `${collection}\u0000${id}`;

/** The stored state as maps, with the one function that applies a write (shared by the storages). */
export class StateImage {
  readonly outbox = new Map<string, OutboxEntry>();
  readonly docs = new Map<string, DocRecord>();
  meta: SyncMeta = {};

  static from(state: StoredState): StateImage {
    const img = new StateImage();
    for (const e of state.outbox) img.outbox.set(e.changeId, e);
    for (const d of state.docs) img.docs.set(docKey(d.collection, d.id), d);
    img.meta = { ...state.meta };
    return img;
  }

  apply(w: StorageWrite): void {
    if (w.clearDocs) this.docs.clear();
    for (const id of w.deleteOutbox ?? []) this.outbox.delete(id);
    for (const e of w.putOutbox ?? []) this.outbox.set(e.changeId, e);
    for (const d of w.deleteDocs ?? []) this.docs.delete(docKey(d.collection, d.id));
    for (const d of w.putDocs ?? []) this.docs.set(docKey(d.collection, d.id), d);
    if (w.meta) this.meta = { ...this.meta, ...w.meta };
  }

  toState(): StoredState {
    return {
      outbox: [...this.outbox.values()].sort((a, b) => a.seq - b.seq),
      docs: [...this.docs.values()],
      meta: { ...this.meta },
    };
  }
}

/** Deep copy of JSON-like data (so that a storage never shares objects with the app). */
export function cloneJson<T>(v: T): T {
  return v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T);
}
