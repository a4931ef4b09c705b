import type { DocRecord, OutboxEntry, StorageWrite, StoredState, SyncMeta, SyncStorage } from './storage.types';

export interface IndexedDbStorageOptions {
  /** The IndexedDB factory (default: globalThis.indexedDB; pass fake-indexeddb's in Node tests). */
  indexedDB?: IDBFactory;
}

const VERSION = 1;
const OUTBOX = 'outbox';
const DOCS = 'docs';
const META = 'meta';

/**
 * Browser storage: one IndexedDB database per name, with an `outbox`, a `docs` and a `meta` store.
 * Every write is one readwrite transaction over the three stores (durability "strict" where the
 * browser supports it) and resolves when the transaction has committed.
 */
export class IndexedDbStorage implements SyncStorage {
  readonly kind = 'indexeddb';
  readonly durable = true;
  readonly dbName: string;
  private readonly factory: IDBFactory;
  private db?: IDBDatabase;

  constructor(name: string, opts: IndexedDbStorageOptions = {}) {
    this.dbName = `sync-client:${name}`;
    const f = opts.indexedDB ?? (globalThis as { indexedDB?: IDBFactory }).indexedDB;
    if (!f) throw new Error('IndexedDB is not available here: use MemoryStorage (or FileStorage in Node)');
    this.factory = f;
  }

  private open(): Promise<IDBDatabase> {
    if (this.db) return Promise.resolve(this.db);
    return new Promise((resolve, reject) => {
      const req = this.factory.open(this.dbName, VERSION);
      req.onupgradeneeded = () => {
        const db = req.result;
        if (!db.objectStoreNames.contains(OUTBOX)) db.createObjectStore(OUTBOX, { keyPath: 'changeId' });
        if (!db.objectStoreNames.contains(DOCS)) db.createObjectStore(DOCS, { keyPath: ['collection', 'id'] });
        if (!db.objectStoreNames.contains(META)) db.createObjectStore(META, { keyPath: 'key' });
      };
      req.onsuccess = () => {
        this.db = req.result;
        // another tab upgrading the schema: let it, and reopen on next use
        this.db.onversionchange = () => {
          this.db?.close();
          this.db = undefined;
        };
        resolve(req.result);
      };
      req.onerror = () => reject(req.error);
      req.onblocked = () => reject(new Error(`IndexedDB ${this.dbName} is blocked by another tab`));
    });
  }

  private transaction(db: IDBDatabase, mode: IDBTransactionMode): IDBTransaction {
    try {
      return db.transaction([OUTBOX, DOCS, META], mode, { durability: 'strict' } as IDBTransactionOptions);
    } catch {
      return db.transaction([OUTBOX, DOCS, META], mode);
    }
  }

  async load(): Promise<StoredState> {
    const db = await this.open();
    const tx = this.transaction(db, 'readonly');
    const all = <T>(store: string) =>
      new Promise<T[]>((resolve, reject) => {
        const r = tx.objectStore(store).getAll();
        r.onsuccess = () => resolve(r.result as T[]);
        r.onerror = () => reject(r.error);
      });
    const [outbox, docs, metaRows] = await Promise.all([all<OutboxEntry>(OUTBOX), all<DocRecord>(DOCS), all<{ key: string; value: unknown }>(META)]);
    const meta: SyncMeta = {};
    for (const row of metaRows) (meta as Record<string, unknown>)[row.key] = row.value;
    outbox.sort((a, b) => a.seq - b.seq);
    return { outbox, docs, meta };
  }

  async write(w: StorageWrite): Promise<void> {
    const db = await this.open();
    await new Promise<void>((resolve, reject) => {
      const tx = this.transaction(db, 'readwrite');
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
      const outbox = tx.objectStore(OUTBOX);
      const docs = tx.objectStore(DOCS);
      const meta = tx.objectStore(META);
      if (w.clearDocs) docs.clear();
      for (const id of w.deleteOutbox ?? []) outbox.delete(id);
      for (const e of w.putOutbox ?? []) outbox.put(e);
      for (const d of w.deleteDocs ?? []) docs.delete([d.collection, d.id]);
      for (const d of w.putDocs ?? []) docs.put(d);
      for (const [key, value] of Object.entries(w.meta ?? {})) {
        if (value === undefined) meta.delete(key);
        else meta.put({ key, value });
      }
    });
  }

  async close(): Promise<void> {
    this.db?.close();
    this.db = undefined;
  }

  /** Deletes the whole database (e.g. on sign-out). */
  async destroy(): Promise<void> {
    await this.close();
    await new Promise<void>((resolve, reject) => {
      const req = this.factory.deleteDatabase(this.dbName);
      req.onsuccess = () => resolve();
      req.onerror = () => reject(req.error);
    });
  }
}
