/**
 * SyncClient, the SDK's public class: a facade over a Connection (socket, session, reconnects), an
 * Uploader (the outbox), a Downloader (the feed, bootstraps, the cursor) and a SubscriptionSet;
 * LocalView, Outbox and the storage stay here, with the session loop that drives the parts.
 *
 * Over ~400 lines on purpose: it carries the whole public API (every method, documented for the
 * SDK's users), and each method is a few lines delegating to the parts.
 */
import { ErrorCode } from '../../protocol/src/errors';
import { LIMITS, type Operation, type SyncDocument } from '../../protocol/src/types';
import { TypedEmitter } from './emitter';
import { LocalView, type ViewFilter } from './local-view';
import { Outbox } from './outbox';
import { MemoryStorage } from './storage/memory-storage';
import { type OutboxEntry, type StorageWrite, type SyncStorage } from './storage/storage.types';
import { publicChange, Wakeup, type PartDeps } from './client-internals';
import { Uploader } from './uploader';
import { SubscriptionSet } from './subscriptions';
import { Downloader } from './downloader';
import { Connection } from './connection';
import { checkChange, checkCollection } from './validate-change';

export { validateChange } from './validate-change';
import { uuid } from './util';
import { type DocumentIdInput, toDocumentId } from './object-id';
import {
  SyncClientError,
  type InspectReport,
  type OutboxEntryState,
  type PendingChange,
  type Subscription,
  type SyncClientEvents,
  type SyncClientLogger,
  type SyncClientOptions,
} from './client-types';

// the public types of the client (options, events, errors, the inspector's report)
export * from './client-types';

/** Resolves a storage given as a string (set by the Node and the browser entry points). */
export type StringStorageResolver = (spec: string, userId: string, logger: SyncClientLogger | null) => SyncStorage;
let stringStorageResolver: StringStorageResolver | undefined;
export function setStringStorageResolver(r: StringStorageResolver): void {
  stringStorageResolver = r;
}

/**
 * The sync client: an optimistic local view, a durable outbox, and the protocol conversation that
 * keeps both in step with the server (see docs/SDK.md).
 */
export class SyncClient extends TypedEmitter<SyncClientEvents> {
  readonly serverUrl: string;
  readonly userId: string;
  readonly storage: SyncStorage;
  /** The documents as this client sees them (synced state + pending local changes). */
  readonly view = new LocalView();

  private readonly opts: Required<
    Pick<
      SyncClientOptions,
      | 'maxBatchSize'
      | 'maxBatchBytes'
      | 'maxChangeBytes'
      | 'getChangesLimit'
      | 'ackTimeoutMs'
      | 'connectTimeoutMs'
      | 'catchUpIntervalMs'
      | 'watchNetwork'
      | 'reconnectDelayMs'
      | 'maxRetryDelayMs'
    >
  >;
  private readonly options: SyncClientOptions;
  private readonly log: SyncClientLogger | null;
  private readonly now: () => number;
  private readonly outbox = new Outbox();
  private readonly subs: SubscriptionSet;
  private readonly wake = new Wakeup();
  private readonly uploader: Uploader;
  private readonly conn: Connection;
  /** The current socket (the connection's; tests and debugging reach it here). */
  private get socket(): Connection['socket'] {
    return this.conn.socket;
  }
  private lastError: InspectReport['lastError'] = null;

  private initPromise?: Promise<void>;
  private lastSyncTimestamp = 0;
  private lastTimestamp = 0;
  private lastSeq = 0;
  private nextCatchUp = 0;
  /** Catch-ups started so far, and the number of the one the last 'synced' event reports. */
  private catchUpsStarted = 0;
  private syncedCatchUp = 0;
  private readonly downloader: Downloader;
  private writes = new Set<Promise<unknown>>();
  private readonly connectWaiters = new Set<(err?: Error) => void>();

  /**
   * @param serverUrl the sync server (e.g. http://localhost:3000)
   * @param userId    the user (dev mode joins with it; with a token it must match the token's subject)
   * @param storage   where the outbox and documents live: a SyncStorage, or a string (Node: a
   *                  directory for FileStorage; browser: an IndexedDB name). A `mongodb://` URI (the
   *                  old SDK's local MongoDB) is not used: it gets a warning and a FileStorage in
   *                  ./.sync-client/<database>/<userId>. Default: MemoryStorage (not durable).
   */
  constructor(serverUrl: string, userId: string, storage?: SyncStorage | string | null, options: SyncClientOptions = {}) {
    super();
    this.serverUrl = serverUrl;
    this.userId = userId ?? '';
    this.options = options;
    this.log = options.logger === null ? null : (options.logger ?? console);
    this.now = options.now ?? Date.now;
    this.opts = {
      maxBatchSize: options.maxBatchSize ?? LIMITS.defaultMaxBatchSize,
      maxBatchBytes: options.maxBatchBytes ?? 768 * 1024,
      maxChangeBytes: options.maxChangeBytes ?? LIMITS.defaultMaxChangeBytes,
      getChangesLimit: options.getChangesLimit ?? LIMITS.defaultGetChangesLimit,
      ackTimeoutMs: options.ackTimeoutMs ?? 20_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 15_000,
      catchUpIntervalMs: options.catchUpIntervalMs ?? 30_000,
      watchNetwork: options.watchNetwork ?? true,
      reconnectDelayMs: options.reconnectDelayMs ?? 1_000,
      maxRetryDelayMs: options.maxRetryDelayMs ?? 300_000,
    };
    // what the parts share: the client's events and storage, the connection's requests and timers
    const part: PartDeps = {
      emit: (event, ...args) => this.emit(event, ...args),
      persist: (w) => this.persist(w),
      request: (event, payload) => this.conn.request(event, payload),
      sleep: (ms, s) => this.conn.sleep(ms, s),
      retryDelay: (attempt) => this.conn.retryDelay(attempt),
      rejoin: (s) => this.conn.rejoin(s),
    };
    this.uploader = new Uploader({
      outbox: this.outbox,
      view: this.view,
      log: this.log,
      maxBatchSize: this.opts.maxBatchSize,
      maxBatchBytes: this.opts.maxBatchBytes,
      ...part,
      confirmed: (collection, id) => this.downloader.confirmed(collection, id),
      applied: () => {
        this.lastSyncTimestamp = this.now();
        // read the feed soon: it carries the full documents after our updates (and what we raced with)
        this.nextCatchUp = Math.min(this.nextCatchUp, this.now() + 200);
      },
    });
    this.conn = new Connection({
      serverUrl,
      userId: this.userId,
      options,
      opts: this.opts,
      log: this.log,
      emit: (event, ...args) => this.emit(event, ...args),
      onConnect: () => this.runSession(),
      sessionEnded: () => {
        this.subs.endSession();
        this.wake.notify();
      },
      afterJoin: async (ack) => {
        if (!this.downloader.cursor && ack.cursor) {
          this.downloader.cursor = ack.cursor;
          await this.persist({ meta: { cursor: this.downloader.cursor } });
        }
      },
      onLiveChanges: (changes) => this.downloader.onLiveChanges(changes),
      onBootstrapPage: (page) => this.downloader.onBootstrapPage(page),
    });
    if (typeof storage === 'string') {
      if (!stringStorageResolver) throw new Error('a storage given as a string needs the Node or browser entry point of the SDK');
      this.storage = stringStorageResolver(storage, this.userId, this.log);
    } else {
      this.storage = storage ?? new MemoryStorage();
    }
    this.subs = new SubscriptionSet({
      ...part,
      onPage: (page) => this.downloader.onBootstrapPage(page),
      unsubscribe: (key) => this.unsubscribe(key),
    });
    this.downloader = new Downloader({
      outbox: this.outbox,
      view: this.view,
      subs: this.subs,
      log: this.log,
      getChangesLimit: this.opts.getChangesLimit,
      clientResetMode: options.clientResetMode,
      ...part,
      join: (s) => this.conn.join(s),
      forget: (changeId) => this.uploader.forget(changeId),
    });
    for (const s of options.subscriptions ?? []) this.subs.add(s.collection, s.filter, s.args);
    this.view.on('change', (c) => this.emit('change', c));
    this.on('error', (e) => (this.lastError = { code: (e as SyncClientError).code ?? 'ERROR', message: e.message, at: Date.now() }));
    this.on('rejected', (r) => (this.lastError = { code: r.code, message: r.error, at: Date.now() }));
  }

  protected override onListenerError(event: keyof SyncClientEvents, error: unknown): void {
    this.log?.error(`sync-client: a '${String(event)}' listener threw`, error);
  }

  // ---- the SEED API --------------------------------------------------------------------------------

  /** Loads the stored outbox, documents and cursor. Called by connect()/makeChange() when needed. */
  initialize(): Promise<void> {
    if (!this.initPromise) this.initPromise = this.load();
    return this.initPromise;
  }

  /**
   * Connects, joins, renews the subscriptions, sends the outbox and reads the change feed. Resolves
   * once that first sync is done; rejects after `connectTimeoutMs` (the client keeps trying in the
   * background: local changes are queued meanwhile).
   */
  async connect(): Promise<void> {
    if (this.conn.closed) throw new SyncClientError('CLOSED', 'this client was closed');
    await this.initialize();
    this.conn.wantOnline = true;
    const synced = new Promise<void>((resolve, reject) => {
      const finish = (err?: Error) => {
        offS();
        clearTimeout(timer);
        this.connectWaiters.delete(finish);
        if (err) reject(err);
        else resolve();
      };
      const offS = this.once('synced', () => finish());
      const timer = setTimeout(
        () => finish(new SyncClientError('TIMEOUT', `not connected to ${this.serverUrl} after ${this.opts.connectTimeoutMs} ms (still trying)`)),
        this.opts.connectTimeoutMs,
      );
      this.connectWaiters.add(finish);
    });
    if (this.options.negotiateUrl) {
      if (this.conn.socket?.connected) {
        if (this.conn.joined) this.requestCatchUp();
      } else void this.conn.openNegotiated();
    } else {
      if (!this.conn.socket) this.conn.createSocket();
      if (!this.conn.socket!.connected && !this.conn.socket!.active) this.conn.socket!.connect();
      else if (this.conn.joined) this.requestCatchUp();
    }
    this.conn.watchNetwork();
    return synced;
  }

  /**
   * Makes a change: applied to the local view at once, stored in the outbox (durably, for a durable
   * storage) before this resolves, then sent. The client sets `sync_updated_at` (and the change's
   * timestamp) to the current time, never lower than its previous one nor than the document's.
   */
  async makeChange(operation: Operation, collection: string, id: DocumentIdInput, data?: SyncDocument): Promise<PendingChange> {
    if (this.conn.closed) throw new SyncClientError('CLOSED', 'this client was closed');
    const { documentId, idType } = this.documentIdOf(id);
    const checked = checkChange(operation, collection, documentId, data, this.opts.maxChangeBytes);
    await this.initialize();
    const now = this.now();
    let ts = Math.max(now, this.lastTimestamp);
    const docTs = this.view.latestTimestamp(collection, documentId);
    if (ts <= docTs) ts = docTs + 1;
    this.lastTimestamp = ts;
    let body: SyncDocument | undefined;
    if (checked) {
      body = checked;
      delete body._id;
      delete body._updated_by;
      body.sync_updated_at = ts;
    }
    const entry: OutboxEntry = {
      seq: ++this.lastSeq,
      changeId: uuid(),
      operation,
      collection,
      documentId,
      ...(body ? { data: body } : {}),
      timestamp: ts,
      createdAt: now,
      ...(idType ? { idType } : {}),
    };
    this.outbox.add(entry);
    this.view.addPending(entry);
    this.emit('pending', this.outbox.size);
    try {
      await this.persist({ putOutbox: [entry], meta: { lastTimestamp: ts, lastSeq: entry.seq } }, false);
    } catch (e) {
      this.outbox.remove([entry.changeId]);
      this.view.settle(entry, 'rollback');
      this.emit('pending', this.outbox.size);
      throw e;
    }
    this.outbox.markDurable(entry.changeId);
    this.wake.notify();
    return publicChange(entry);
  }

  /** True while connected and joined. */
  isOnline(): boolean {
    return this.conn.joined && !!this.conn.socket?.connected;
  }

  /** Changes made locally that the server has not acknowledged yet. */
  getPendingChangesCount(): number {
    return this.outbox.size;
  }

  /** When (UTC ms) the client last finished reading the feed or had changes acknowledged; 0 if never. */
  getLastSyncTimestamp(): number {
    return this.lastSyncTimestamp;
  }

  /** Disconnects (local changes keep being accepted and queued). connect() again to resume. */
  async disconnect(): Promise<void> {
    this.conn.wantOnline = false;
    clearTimeout(this.conn.reconnectTimer);
    this.conn.networkCleanup?.();
    this.conn.networkCleanup = undefined;
    for (const finish of [...this.connectWaiters]) finish(new SyncClientError('OFFLINE', 'disconnect() was called'));
    this.conn.cancelOpening();
    if (this.conn.socket) {
      this.conn.socket.disconnect();
      this.conn.endSession();
    }
    await this.idle();
  }

  /** Disconnects and closes the storage. The client cannot be used afterwards. */
  async close(): Promise<void> {
    if (this.conn.closed) return;
    await this.disconnect();
    this.conn.closed = true;
    this.conn.socket?.removeAllListeners();
    this.conn.socket = undefined;
    await this.idle();
    if (this.initPromise) await this.initPromise.catch(() => undefined);
    await this.storage.close();
  }

  // ---- subscriptions and the local view ------------------------------------------------------------

  /**
   * Subscribes to a collection (optionally filtered with the query language and `$0`… arguments).
   * Kept across reconnects and restarts. When online, resolves after the bootstrap has been applied.
   */
  async subscribe(collection: string, filter?: string, args?: unknown[]): Promise<Subscription> {
    checkCollection(collection);
    await this.initialize();
    const sub = this.subs.add(collection, filter, args);
    await this.persist({ meta: { subscriptions: this.subs.stored() } });
    if (this.isOnline() && !sub.id) await this.subs.send(this.conn.sessionAbort.signal, sub);
    return this.subs.handle(sub);
  }

  /** Drops a subscription, and the local documents no remaining subscription covers. */
  async unsubscribe(sub: Subscription | string): Promise<void> {
    const key = typeof sub === 'string' ? sub : sub.key;
    const s = this.subs.get(key);
    if (!s) return;
    this.subs.remove(s);
    if (s.id && this.isOnline()) {
      await this.conn.request('sync:unsubscribe', { subscriptionId: s.id }).catch(() => undefined);
    }
    const drops: { collection: string; id: string }[] = [];
    for (const rec of [...this.view.baseRecords()]) {
      if (rec.collection !== s.collection) continue;
      if (rec.doc && this.subs.matches(rec.collection, rec.doc)) continue;
      if (this.view.drop(rec.collection, rec.id, 'reset')) drops.push({ collection: rec.collection, id: rec.id });
    }
    await this.persist({ deleteDocs: drops, meta: { subscriptions: this.subs.stored() } });
  }

  subscriptions(): Subscription[] {
    return [...this.subs.values()].map((s) => this.subs.handle(s));
  }

  /** A visible document (synced state with pending local changes applied). */
  getDocument(collection: string, id: DocumentIdInput): SyncDocument | undefined {
    return this.view.get(collection, this.documentIdOf(id).documentId);
  }

  /**
   * Whether the server stores a document's `_id` as an ObjectId (`objectId`; its documentId and
   * `_id` here are the 24-hex form: `new BSON.ObjectId(doc._id)` gives the BSON value) or as the
   * string itself (`string`); undefined when this client knows nothing of it.
   */
  idTypeOf(collection: string, id: DocumentIdInput): 'objectId' | 'string' | undefined {
    const { documentId } = this.documentIdOf(id);
    const rec = this.view.getBase(collection, documentId);
    if (rec) return rec.idType ?? 'string';
    // not confirmed by the server yet: what the pending changes asked for
    const pending = this.outbox.all().filter((e) => e.collection === collection && e.documentId === documentId);
    if (!pending.length) return undefined;
    return pending.some((e) => e.idType) ? 'objectId' : 'string';
  }

  /** A documentId the app gave (a string, or an ObjectId-like value: see object-id.ts) as the wire's string. */
  private documentIdOf(id: DocumentIdInput): { documentId: string; idType?: 'objectId' } {
    if (typeof id === 'string') return { documentId: id };
    try {
      const { id: documentId, idType } = toDocumentId(id);
      return { documentId, idType };
    } catch (e) {
      throw new SyncClientError(ErrorCode.INVALID_PAYLOAD, (e as Error).message);
    }
  }

  /** The visible documents of a collection, optionally filtered (a predicate, or a query string). */
  getDocuments(collection: string, filter?: ViewFilter, args?: unknown[]): SyncDocument[] {
    return this.view.list(collection, filter, args);
  }

  /**
   * Calls `listener` with the collection's documents now and after every change to them (changes in
   * one tick are coalesced). Returns a function that stops watching.
   */
  watch(collection: string, listener: (docs: SyncDocument[]) => void, filter?: ViewFilter, args?: unknown[]): () => void {
    let scheduled = false;
    const fire = () => {
      scheduled = false;
      listener(this.view.list(collection, filter, args));
    };
    const off = this.view.on('change', (c) => {
      if (c.collection !== collection || scheduled) return;
      scheduled = true;
      queueMicrotask(fire);
    });
    fire();
    return off;
  }

  /** Unacknowledged local changes, oldest first. */
  getPendingChanges(): PendingChange[] {
    return this.outbox.all().map(publicChange);
  }

  /** The stored feed position (null before the first join). */
  getCursor(): string | null {
    return this.downloader.cursor;
  }

  /**
   * A snapshot of the client's state, to see why something has not synced: each outbox entry with
   * its state, attempts and last error; the cursor; each subscription and its bootstrap state; the
   * local document counts; the reconnect backoff; the last error.
   */
  inspect(): InspectReport {
    const durable = new Set(this.outbox.durableEntries().map((e) => e.changeId));
    const documents: Record<string, number> = {};
    for (const c of this.view.collections()) documents[c] = this.view.count(c);
    return {
      userId: this.userId,
      serverUrl: this.serverUrl,
      online: this.isOnline(),
      cursor: this.downloader.cursor,
      lastSyncTimestamp: this.lastSyncTimestamp,
      storage: { kind: this.storage.kind, durable: this.storage.durable },
      reconnect: { attempt: this.conn.reconnectAttempt, nextAt: this.conn.reconnectAt },
      connection: this.options.negotiateUrl
        ? this.conn.negotiated
          ? {
              via: this.conn.negotiated.via,
              endpoint: this.conn.negotiated.endpoint,
              path: this.conn.negotiated.path,
              expiresAt: this.conn.negotiated.expiresAt ?? null,
            }
          : null
        : { via: 'direct', endpoint: this.serverUrl, path: (this.options.socketOptions?.path as string | undefined) ?? '/socket.io', expiresAt: null },
      outbox: this.outbox.all().map((e) => {
        const { sending, info } = this.uploader.entryState(e.changeId);
        const state: OutboxEntryState = !durable.has(e.changeId) ? 'storing' : sending ? 'sending' : info ? 'retrying' : 'queued';
        return {
          changeId: e.changeId,
          seq: e.seq,
          operation: e.operation,
          collection: e.collection,
          documentId: e.documentId,
          timestamp: e.timestamp,
          createdAt: e.createdAt,
          state,
          attempts: info?.attempts ?? 0,
          lastError: info?.lastError ?? null,
        };
      }),
      subscriptions: [...this.subs.values()].map((sub) => ({
        key: sub.key,
        collection: sub.collection,
        ...(sub.filter ? { filter: sub.filter } : {}),
        ...(sub.args ? { args: sub.args } : {}),
        id: sub.id ?? null,
        count: sub.count ?? null,
        state: sub.bootstrapped ? 'bootstrapped' : sub.id ? 'bootstrapping' : 'pending',
      })),
      documents,
      lastError: this.lastError,
    };
  }

  /**
   * Resolves once the outbox is empty and the change feed has been read up to now (asks for a
   * catch-up at once). Rejects on timeout.
   */
  whenSynced(timeoutMs = 30_000): Promise<void> {
    // a catch-up already under way may have read the feed before now: wait for one that starts later
    const startedBefore = this.catchUpsStarted;
    return new Promise((resolve, reject) => {
      const off = this.on('synced', (info) => {
        if (info.pending > 0 || this.syncedCatchUp <= startedBefore) return;
        off();
        clearTimeout(timer);
        resolve();
      });
      const timer = setTimeout(() => {
        off();
        reject(new SyncClientError('TIMEOUT', `not synced within ${timeoutMs} ms (${this.outbox.size} pending, online: ${this.isOnline()})`));
      }, timeoutMs);
      this.requestCatchUp();
    });
  }

  // ---- loading and storage -------------------------------------------------------------------------

  private async load(): Promise<void> {
    const state = await this.storage.load();
    const meta = state.meta;
    if (meta.userId && this.userId && meta.userId !== this.userId) {
      throw new Error(`this storage holds the data of user "${meta.userId}", not "${this.userId}": use one storage per user`);
    }
    let docs = state.docs;
    let cursor = meta.cursor ?? null;
    const storedSubs = meta.subscriptions ?? [];
    if (meta.serverUrl && meta.serverUrl !== this.serverUrl) {
      // another server: its feed positions mean nothing here; keep the outbox, start the view afresh
      docs = [];
      cursor = null;
      for (const s of storedSubs) s.bootstrapped = false;
      await this.storage.write({ clearDocs: true, meta: { cursor: null, subscriptions: storedSubs } });
    }
    this.downloader.cursor = cursor;
    this.lastSyncTimestamp = meta.lastSyncTimestamp ?? 0;
    this.lastSeq = Math.max(meta.lastSeq ?? 0, ...state.outbox.map((e) => e.seq));
    this.lastTimestamp = Math.max(meta.lastTimestamp ?? 0, ...state.outbox.map((e) => e.timestamp));
    for (const s of storedSubs) {
      const sub = this.subs.add(s.collection, s.filter, s.args);
      sub.bootstrapped = s.bootstrapped && !!cursor;
    }
    this.outbox.load(state.outbox);
    this.view.load(docs, state.outbox);
    if (meta.userId !== this.userId || meta.serverUrl !== this.serverUrl || (this.subs.size && !storedSubs.length)) {
      await this.storage.write({ meta: { userId: this.userId, serverUrl: this.serverUrl, subscriptions: this.subs.stored() } });
    }
    if (this.outbox.size) this.emit('pending', this.outbox.size);
  }

  /** Writes to storage; errors are reported (and rethrown when `report` is false). */
  private persist(w: StorageWrite, report = true): Promise<void> {
    const p = this.storage.write(w);
    this.writes.add(p);
    const done = p.finally(() => this.writes.delete(p));
    if (!report) return done;
    return done.catch((e) => {
      this.log?.error(`sync-client: storage write failed: ${(e as Error).message}`);
      this.emit('error', e as Error);
    });
  }

  private async idle(): Promise<void> {
    while (this.writes.size) await Promise.allSettled([...this.writes]);
  }

  private requestCatchUp(): void {
    this.nextCatchUp = 0;
    this.wake.notify();
  }

  // ---- one connected session -----------------------------------------------------------------------

  private async runSession(): Promise<void> {
    this.conn.endSession();
    const s = this.conn.sessionAbort.signal;
    this.conn.sessionRunning = true;
    try {
      await this.conn.join(s);
      if (s.aborted) return;
      this.conn.joined = true;
      this.emit('online', true);
      await Promise.all([...this.subs.values()].map((sub) => this.subs.send(s, sub, false)));
      // a reset that may discard unsent changes must be found before they are sent: read first
      const resetMode = this.options.clientResetMode;
      if (resetMode && resetMode !== 'recoverUnsyncedChanges' && this.outbox.size) await this.downloader.catchUp(s);
      this.nextCatchUp = 0;
      while (!s.aborted) {
        await this.uploader.flush(s);
        if (s.aborted) break;
        if (this.now() >= this.nextCatchUp) {
          const run = ++this.catchUpsStarted;
          // set before reading: a catch-up asked for meanwhile (whenSynced, an ack) must not be lost
          this.nextCatchUp = this.opts.catchUpIntervalMs > 0 ? this.now() + this.opts.catchUpIntervalMs : Infinity;
          const ok = await this.downloader.catchUp(s);
          if (s.aborted) break;
          if (ok) {
            this.conn.reconnectAttempt = 0;
            this.syncedCatchUp = run;
            this.lastSyncTimestamp = this.now();
            void this.persist({ meta: { lastSyncTimestamp: this.lastSyncTimestamp } });
            this.emit('synced', { cursor: this.downloader.cursor, pending: this.outbox.size, timestamp: this.lastSyncTimestamp });
          }
        }
        if (this.outbox.nextBatch(1, Infinity).length) continue;
        await this.wake.wait(Math.min(this.nextCatchUp - this.now(), 2 ** 31 - 1));
      }
    } catch (e) {
      if (s.aborted) return;
      const err = e as Error;
      this.log?.warn(`sync-client: sync session failed: ${err.message}`);
      this.emit('error', err);
      // start over on a fresh connection, after a pause
      this.conn.socket?.disconnect();
      this.conn.endSession();
      if (this.conn.wantOnline) this.conn.scheduleReconnect();
    }
  }
}
