import type { SyncDocument } from '../../protocol/src/types';
import { TypedEmitter } from './emitter';
import { withId } from './ids';
import { compileFilter, type DocPredicate } from './matcher';
import { docKey, type DocRecord, type OutboxEntry } from './storage/storage.types';
import { jsonEqual } from './util';

/** Why a visible document changed. */
export type ViewChangeSource =
  | 'local' // the app made a change (optimistic)
  | 'remote' // a change from the server (live or catch-up)
  | 'bootstrap' // a bootstrap page
  | 'ack' // the server acknowledged a local change
  | 'conflict' // a local change lost: the server's winning version replaced it
  | 'rollback' // a local change was refused (FORBIDDEN, INVALID_PAYLOAD, ...) and undone
  | 'reset' // dropped after a fresh bootstrap or an unsubscribe
  | 'load'; // read from storage at start-up

export interface ViewChange {
  collection: string;
  documentId: string;
  /** The document as the app now sees it (null: gone). */
  doc: SyncDocument | null;
  previous: SyncDocument | null;
  /** True while local changes to this document wait for the server. */
  pending: boolean;
  source: ViewChangeSource;
}

export interface LocalViewEvents {
  change: (change: ViewChange) => void;
}

/** A filter for local queries: a predicate, or a query-language string with `$0`… arguments. */
export type ViewFilter = string | DocPredicate;

/**
 * The documents as this client sees them: for each document the last state the server confirmed
 * (its base), with the client's pending changes applied on top in order. Server states replace the
 * base only when they are newer (last write wins on sync_updated_at, the feed position breaking
 * ties), so deliveries may arrive twice or out of order. Documents are plain objects: treat them as
 * read-only.
 */
export class LocalView extends TypedEmitter<LocalViewEvents> {
  private readonly bases = new Map<string, DocRecord>();
  private readonly pending = new Map<string, OutboxEntry[]>();
  private readonly visible = new Map<string, Map<string, SyncDocument>>();
  private readonly shownPending = new Set<string>();

  // ---- reading ---------------------------------------------------------------------------------

  get(collection: string, documentId: string): SyncDocument | undefined {
    return this.visible.get(collection)?.get(documentId);
  }

  /** The visible documents of a collection, optionally filtered, in document-id order. */
  list(collection: string, filter?: ViewFilter, args?: unknown[]): SyncDocument[] {
    const m = this.visible.get(collection);
    if (!m) return [];
    const test = typeof filter === 'string' ? compileFilter(filter, args, true) : filter;
    const out: SyncDocument[] = [];
    for (const id of [...m.keys()].sort()) {
      const d = m.get(id)!;
      if (!test || test(d)) out.push(d);
    }
    return out;
  }

  count(collection: string): number {
    return this.visible.get(collection)?.size ?? 0;
  }

  collections(): string[] {
    return [...this.visible.keys()].filter((c) => this.visible.get(c)!.size > 0).sort();
  }

  isPending(collection: string, documentId: string): boolean {
    return (this.pending.get(docKey(collection, documentId))?.length ?? 0) > 0;
  }

  /** The last server-confirmed state of a document (undefined when none is known). */
  getBase(collection: string, documentId: string): DocRecord | undefined {
    return this.bases.get(docKey(collection, documentId));
  }

  baseRecords(): IterableIterator<DocRecord> {
    return this.bases.values();
  }

  /** Highest timestamp known for a document, pending changes included (for the client's clock). */
  latestTimestamp(collection: string, documentId: string): number {
    const key = docKey(collection, documentId);
    let ts = this.bases.get(key)?.ts ?? 0;
    for (const e of this.pending.get(key) ?? []) ts = Math.max(ts, e.timestamp);
    return ts;
  }

  // ---- updating (the client drives these) ------------------------------------------------------

  /** Replaces everything with stored state (no events but 'load' ones for what becomes visible). */
  load(docs: DocRecord[], outbox: OutboxEntry[]): void {
    this.bases.clear();
    this.pending.clear();
    this.visible.clear();
    this.shownPending.clear();
    for (const d of docs) this.bases.set(docKey(d.collection, d.id), d);
    for (const e of outbox) {
      const key = docKey(e.collection, e.documentId);
      const list = this.pending.get(key) ?? [];
      list.push(e);
      this.pending.set(key, list);
    }
    const keys = new Set<string>([...this.bases.keys(), ...this.pending.keys()]);
    for (const key of keys) {
      const [collection, id] = splitKey(key);
      this.refresh(collection, id, 'load');
    }
  }

  addPending(entry: OutboxEntry): void {
    const key = docKey(entry.collection, entry.documentId);
    const list = this.pending.get(key) ?? [];
    list.push(entry);
    this.pending.set(key, list);
    this.refresh(entry.collection, entry.documentId, 'local');
  }

  /** Removes a pending change (acked or refused); `base` (if given) is offered first, silently. */
  settle(entry: OutboxEntry, source: ViewChangeSource, base?: DocRecord, force = false): boolean {
    const key = docKey(entry.collection, entry.documentId);
    const list = this.pending.get(key);
    if (list) {
      const i = list.findIndex((e) => e.changeId === entry.changeId);
      if (i >= 0) list.splice(i, 1);
      if (!list.length) this.pending.delete(key);
    }
    // an ack's copy is rebuilt from the local change: when the server's own copy of that very change
    // (same version, same feed position) is already here, the server's copy stays (it is complete)
    const took = base ? this.putBase(base, force, source === 'ack') : false;
    this.refresh(entry.collection, entry.documentId, source);
    return took;
  }

  /**
   * Offers a server state of a document; it is taken only when newer than the known one (or
   * always, with `force`). Returns whether it was taken.
   */
  offer(rec: DocRecord, source: ViewChangeSource, force = false): boolean {
    if (!this.putBase(rec, force)) return false;
    this.refresh(rec.collection, rec.id, source);
    return true;
  }

  /** Forgets the server state of a document (pending local changes stay visible). */
  drop(collection: string, documentId: string, source: ViewChangeSource): boolean {
    if (!this.bases.delete(docKey(collection, documentId))) return false;
    this.refresh(collection, documentId, source);
    return true;
  }

  private putBase(rec: DocRecord, force: boolean, yieldOnTie = false): boolean {
    const key = docKey(rec.collection, rec.id);
    const cur = this.bases.get(key);
    if (cur && !force && !isNewer(rec, cur)) return false;
    if (cur && !force && yieldOnTie && cur.ts === rec.ts && cur.cursor !== undefined && cur.cursor === rec.cursor) return false;
    this.bases.set(key, rec);
    return true;
  }

  /** Recomputes the visible document and emits a change event when it differs. */
  private refresh(collection: string, id: string, source: ViewChangeSource): void {
    const key = docKey(collection, id);
    const next = fold(id, this.bases.get(key), this.pending.get(key));
    let col = this.visible.get(collection);
    const previous = col?.get(id) ?? null;
    if (next) {
      if (!col) this.visible.set(collection, (col = new Map()));
      col.set(id, next);
    } else if (col) {
      col.delete(id);
    }
    const pending = this.pending.has(key);
    const wasPending = this.shownPending.has(key);
    if (pending) this.shownPending.add(key);
    else this.shownPending.delete(key);
    if (source === 'load' && !next) return;
    if (jsonEqual(previous, next) && wasPending === pending && source !== 'local') return;
    this.emit('change', { collection, documentId: id, doc: next, previous, pending, source });
  }
}

/** Whether a server state `a` should replace `b` (last write wins; feed position breaks ties). */
export function isNewer(a: DocRecord, b: DocRecord): boolean {
  if (a.ts !== b.ts) return a.ts > b.ts;
  if (a.cursor && b.cursor) return a.cursor >= b.cursor;
  return true;
}

/** The visible document: the base with the pending changes applied in order. */
export function fold(id: string, base: DocRecord | undefined, pending: OutboxEntry[] | undefined): SyncDocument | null {
  let doc: SyncDocument | null = base && base.state === 'live' && base.doc ? withId(base.doc, id) : null;
  for (const e of pending ?? []) {
    if (e.operation === 'delete') doc = null;
    else if (e.operation === 'insert') doc = withId(e.data, id);
    else doc = withId({ ...(doc ?? {}), ...(e.data ?? {}) }, id);
  }
  return doc;
}

function splitKey(key: string): [string, string] {
  const i = key.indexOf('\u0000');
  return [key.slice(0, i), key.slice(i + 1)];
}
