/**
 * The downloader: reads the change feed from the stored cursor (sync:get_changes), applies live
 * changes (sync:changes) and bootstrap pages (sync:bootstrap), and performs a client reset when the
 * cursor expired (CURSOR_EXPIRED). It owns the cursor.
 */
import { ErrorCode } from '../../protocol/src/errors';
import type { SyncDocument } from '../../protocol/src/types';
import { SyncClientError, type ClientResetMode, type SyncClientLogger, type SyncClientOptions } from './client-types';
import { numberOr, publicChange, validHint, type PartDeps } from './client-internals';
import { idOf, withId } from './ids';
import type { LocalView } from './local-view';
import type { Outbox } from './outbox';
import { docKey, type DocRecord, type OutboxEntry, type StorageWrite } from './storage/storage.types';
import type { AnswerOf, BootstrapPageIn, DeliveredChangeIn } from './server-messages';
import type { SubscriptionSet } from './subscriptions';
import { backoffDelay } from './util';

/** What the downloader needs from the client, its connection and its uploader. */
export interface DownloaderDeps extends PartDeps {
  readonly outbox: Outbox;
  readonly view: LocalView;
  readonly subs: SubscriptionSet;
  readonly log: SyncClientLogger | null;
  readonly getChangesLimit: number;
  readonly clientResetMode: SyncClientOptions['clientResetMode'];
  join(s: AbortSignal): Promise<unknown>;
  /** Forgets the uploader's notes on an outbox entry a client reset discarded. */
  forget(changeId: string): void;
}

export class Downloader {
  /** The stored feed position (catch-up starts there). */
  cursor: string | null = null;
  /** During a client reset: the documents no bootstrap page or change has confirmed yet. */
  private staleKeys?: Set<string>;

  constructor(private readonly d: DownloaderDeps) {}

  /** The server confirmed this document (it is not stale after a client reset). */
  confirmed(collection: string, id: string): void {
    this.staleKeys?.delete(docKey(collection, id));
  }

  // ---- receiving bootstrap pages ------------------------------------------------------------------

  async onBootstrapPage(page: BootstrapPageIn): Promise<void> {
    const sub = this.d.subs.byId(page.subscriptionId);
    if (!sub) {
      // the page overtook the subscribe ack: keep it until the ack tells which subscription it is
      this.d.subs.holdEarly(page);
      return;
    }
    const collection = page.collection;
    const puts: DocRecord[] = [];
    for (const doc of page.data as SyncDocument[]) {
      const id = idOf(doc._id);
      if (id === undefined) continue;
      const rec: DocRecord = { collection, id, state: 'live', doc, ts: numberOr(doc.sync_updated_at, 0), cursor: page.cursor || undefined };
      if (page.objectIds?.includes(id)) rec.idType = 'objectId';
      this.staleKeys?.delete(docKey(collection, id));
      if (this.d.view.offer(rec, 'bootstrap')) puts.push(rec);
    }
    const w: StorageWrite = { putDocs: puts };
    if (page.done) {
      sub.bootstrapped = true;
      w.meta = { subscriptions: this.d.subs.stored() };
    }
    this.d.emit('bootstrap', { collection, subscriptionId: page.subscriptionId, page: page.page, count: page.data.length, done: page.done });
    await this.d.persist(w);
    if (page.done) {
      sub.done?.();
      sub.done = undefined;
    }
  }

  // ---- receiving changes ---------------------------------------------------------------------------

  /** The base record a delivered change leads to, or null when it is of no interest here. */
  private recordOf(c: DeliveredChangeIn, fromFeed: boolean): DocRecord | null {
    const id = idOf(c.documentId);
    if (id === undefined) return null;
    const known = !!this.d.view.getBase(c.collection, id) || this.d.view.isPending(c.collection, id);
    if (!known && !this.d.subs.isSubscribed(c.collection)) return null;
    const ts = c.timestamp;
    const cursor = c.cursor || undefined;
    const rec = this.recordOfChange(c, id, known, fromFeed, ts, cursor);
    if (rec && c.idType === 'objectId') rec.idType = 'objectId';
    return rec;
  }

  private recordOfChange(c: DeliveredChangeIn, id: string, known: boolean, fromFeed: boolean, ts: number, cursor: string | undefined): DocRecord | null {
    if (c.operation === 'delete') return { collection: c.collection, id, state: 'deleted', doc: null, ts, cursor };
    if (c.outOfView) return known ? { collection: c.collection, id, state: 'hidden', doc: null, ts, cursor } : null;
    const doc: SyncDocument = withId(c.data, id);
    if (fromFeed && this.d.subs.isSubscribed(c.collection) && !this.d.subs.matches(c.collection, doc)) {
      return known ? { collection: c.collection, id, state: 'hidden', doc: null, ts, cursor } : null;
    }
    return { collection: c.collection, id, state: 'live', doc, ts, cursor };
  }

  private applyDelivered(changes: DeliveredChangeIn[], fromFeed: boolean): DocRecord[] {
    const puts: DocRecord[] = [];
    for (const c of changes) {
      const rec = this.recordOf(c, fromFeed);
      if (!rec) continue;
      this.staleKeys?.delete(docKey(rec.collection, rec.id));
      if (this.d.view.offer(rec, 'remote')) puts.push(rec);
    }
    return puts;
  }

  /** Live changes: applied at once (idempotent, newest wins); the stored cursor does not move. */
  onLiveChanges(changes: DeliveredChangeIn[]): void {
    const puts = this.applyDelivered(changes, false);
    if (puts.length) void this.d.persist({ putDocs: puts });
  }

  /**
   * Reads the change feed from the stored cursor until it is exhausted. Returns false when it could
   * not finish (offline, refused).
   */
  async catchUp(s: AbortSignal): Promise<boolean> {
    if (!this.cursor) return true;
    let idle = 0;
    let attempt = 0;
    while (!s.aborted) {
      let ack: AnswerOf<'sync:get_changes'>;
      try {
        ack = await this.d.request('sync:get_changes', { cursor: this.cursor, limit: this.d.getChangesLimit });
      } catch (e) {
        if (s.aborted) return false;
        await this.d.sleep(this.d.retryDelay(attempt++), s);
        continue;
      }
      if (s.aborted) return false;
      if (ack.success !== true) {
        const code = ack.code;
        if (code === ErrorCode.CURSOR_EXPIRED) {
          await this.resetAfterExpiry(s);
          if (!this.cursor) return true;
          continue;
        }
        if (code === ErrorCode.UNAUTHENTICATED) {
          await this.d.rejoin(s);
          continue;
        }
        if (code === ErrorCode.RATE_LIMITED || code === ErrorCode.UNAVAILABLE || code === ErrorCode.INTERNAL) {
          await this.d.sleep(validHint(ack.retryAfterMs) ?? this.d.retryDelay(attempt++), s);
          continue;
        }
        this.d.emit('error', new SyncClientError(code, `get_changes refused: ${ack.error}`));
        return false;
      }
      attempt = 0;
      const changes = ack.changes;
      const puts = this.applyDelivered(changes, true);
      const moved = !!ack.cursor && ack.cursor !== this.cursor;
      if (moved) this.cursor = ack.cursor;
      if (puts.length || moved) await this.d.persist({ putDocs: puts, meta: { cursor: this.cursor } });
      if (!ack.hasMore) return true;
      if (!changes.length && !moved) await this.d.sleep(backoffDelay(idle++, 100, 5_000), s);
      else idle = 0;
    }
    return false;
  }

  /**
   * Client reset (CURSOR_EXPIRED): bootstrap every subscription again from a fresh cursor, and
   * drop the documents that no longer exist. Unsent changes are kept (recoverUnsyncedChanges) or
   * rolled back and removed from the outbox (discardUnsyncedChanges), as clientResetMode says.
   */
  private async resetAfterExpiry(s: AbortSignal): Promise<void> {
    const option = this.d.clientResetMode ?? 'recoverUnsyncedChanges';
    let mode: ClientResetMode = 'recoverUnsyncedChanges';
    try {
      mode = typeof option === 'function' ? await option({ pending: this.d.outbox.all().map(publicChange) }) : option;
    } catch (e) {
      this.d.emit('error', e as Error);
    }
    if (s.aborted) return;
    const discarded: OutboxEntry[] = mode === 'discardUnsyncedChanges' ? this.d.outbox.durableEntries() : [];
    if (discarded.length) {
      this.d.outbox.remove(discarded.map((e) => e.changeId));
      for (const e of discarded) {
        this.d.view.settle(e, 'rollback');
        this.d.forget(e.changeId);
      }
      await this.d.persist({ deleteOutbox: discarded.map((e) => e.changeId) });
      this.d.emit('pending', this.d.outbox.size);
    }
    this.d.log?.warn(
      `sync-client: the stored cursor expired: bootstrapping again (${mode}${discarded.length ? `, ${discarded.length} unsent changes discarded` : ''})`,
    );
    this.d.emit('reset', { reason: 'CURSOR_EXPIRED', mode, discarded: discarded.map(publicChange) });
    this.staleKeys = new Set([...this.d.view.baseRecords()].map((r) => docKey(r.collection, r.id)));
    for (const sub of this.d.subs.values()) {
      if (sub.id) await this.d.request('sync:unsubscribe', { subscriptionId: sub.id }).catch(() => undefined);
      this.d.subs.unbind(sub);
    }
    this.cursor = null;
    await this.d.persist({ meta: { cursor: null, subscriptions: this.d.subs.stored() } });
    if (s.aborted) return;
    await this.d.join(s);
    if (s.aborted) return;
    await Promise.all([...this.d.subs.values()].map((sub) => this.d.subs.send(s, sub, false)));
    if (s.aborted) return;
    const drops: { collection: string; id: string }[] = [];
    for (const key of this.staleKeys) {
      const i = key.indexOf('\u0000');
      const collection = key.slice(0, i);
      const id = key.slice(i + 1);
      if (this.d.view.drop(collection, id, 'reset')) drops.push({ collection, id });
    }
    this.staleKeys = undefined;
    if (drops.length) await this.d.persist({ deleteDocs: drops });
  }
}
