/**
 * The subscription set: the app's subscriptions (kept across reconnects and restarts), their server
 * ids in the current session, the bootstrap pages that overtook a subscribe ack, and the
 * sync:subscribe conversation that renews them on every session.
 */
import { ErrorCode } from '../../protocol/src/errors';
import type { SyncDocument } from '../../protocol/src/types';
import { SyncClientError, type Subscription } from './client-types';
import { validHint, type PartDeps } from './client-internals';
import { compileFilter } from './matcher';
import type { AnswerOf, BootstrapPageIn } from './server-messages';
import type { StoredSubscription } from './storage/storage.types';

export interface SubState extends StoredSubscription {
  id?: string;
  count?: number;
  done?: () => void;
  /** The sync:subscribe under way in this session, if any. */
  sending?: { session: AbortSignal; promise: Promise<void> };
}

/** What the subscription set needs from the client and its connection. */
export interface SubscriptionDeps extends PartDeps {
  /** Applies a bootstrap page (the downloader's). */
  onPage(page: BootstrapPageIn): Promise<void>;
  /** The client's unsubscribe (for the handles). */
  unsubscribe(key: string): Promise<void>;
}

export class SubscriptionSet {
  private readonly subs = new Map<string, SubState>();
  private readonly subsById = new Map<string, SubState>();
  private readonly earlyPages = new Map<string, BootstrapPageIn[]>();

  constructor(private readonly d: SubscriptionDeps) {}

  get size(): number {
    return this.subs.size;
  }

  values(): IterableIterator<SubState> {
    return this.subs.values();
  }

  get(key: string): SubState | undefined {
    return this.subs.get(key);
  }

  /** The subscription the server knows by this id in this session. */
  byId(id: string): SubState | undefined {
    return this.subsById.get(id);
  }

  add(collection: string, filter?: string, args?: unknown[]): SubState {
    const f = filter && filter.trim() ? filter : undefined;
    const a = args && args.length ? args : undefined;
    const key = JSON.stringify([collection, f ?? '', a ?? []]);
    let sub = this.subs.get(key);
    if (!sub) {
      sub = { key, collection, filter: f, args: a, bootstrapped: false };
      this.subs.set(key, sub);
    }
    return sub;
  }

  /** Drops a subscription (unsubscribe). */
  remove(sub: SubState): void {
    this.subs.delete(sub.key);
    if (sub.id) this.subsById.delete(sub.id);
  }

  /** Forgets the server's id and the stored bootstrap (a client reset bootstraps again). */
  unbind(sub: SubState): void {
    if (sub.id) this.subsById.delete(sub.id);
    sub.id = undefined;
    sub.bootstrapped = false;
  }

  /** The session ended: server ids and early pages mean nothing any more; bootstraps stop waiting. */
  endSession(): void {
    this.subsById.clear();
    this.earlyPages.clear();
    for (const s of this.subs.values()) {
      s.id = undefined;
      s.done?.();
      s.done = undefined;
    }
  }

  /** A bootstrap page that overtook the subscribe ack: kept until the ack tells whose it is. */
  holdEarly(page: BootstrapPageIn): void {
    const list = this.earlyPages.get(page.subscriptionId) ?? [];
    list.push(page);
    this.earlyPages.set(page.subscriptionId, list);
  }

  stored(): StoredSubscription[] {
    return [...this.subs.values()].map(({ key, collection, filter, args, bootstrapped }) => ({
      key,
      collection,
      ...(filter ? { filter } : {}),
      ...(args ? { args } : {}),
      bootstrapped,
    }));
  }

  handle(sub: SubState): Subscription {
    return {
      key: sub.key,
      collection: sub.collection,
      filter: sub.filter,
      args: sub.args,
      get id() {
        return sub.id;
      },
      get count() {
        return sub.count;
      },
      unsubscribe: () => this.d.unsubscribe(sub.key),
    };
  }

  /**
   * Sends sync:subscribe (with a bootstrap unless this subscription's data is already stored) and
   * waits for the bootstrap to finish. `throwOnRefusal`: a refused filter rejects (subscribe()) or is
   * only reported (reconnects).
   */
  send(s: AbortSignal, sub: SubState, throwOnRefusal = true): Promise<void> {
    if (sub.sending?.session === s) return sub.sending.promise;
    const promise = this.doSubscribe(s, sub, throwOnRefusal).finally(() => {
      if (sub.sending?.promise === promise) sub.sending = undefined;
    });
    sub.sending = { session: s, promise };
    return promise;
  }

  private async doSubscribe(s: AbortSignal, sub: SubState, throwOnRefusal: boolean): Promise<void> {
    const bootstrap = !sub.bootstrapped;
    let ack: AnswerOf<'sync:subscribe'>;
    for (let attempt = 0; ; attempt++) {
      ack = await this.d.request('sync:subscribe', {
        collection: sub.collection,
        ...(sub.filter ? { filter: sub.filter } : {}),
        ...(sub.args ? { args: sub.args } : {}),
        bootstrap,
      });
      if (s.aborted) return;
      if (ack.success === true) break;
      const code = ack.code;
      if (code === ErrorCode.RATE_LIMITED || code === ErrorCode.UNAVAILABLE) {
        await this.d.sleep(validHint(ack.retryAfterMs) ?? this.d.retryDelay(attempt), s);
        if (s.aborted) return;
        continue;
      }
      if (code === ErrorCode.UNAUTHENTICATED && attempt === 0) {
        await this.d.rejoin(s);
        continue;
      }
      // a filter the server refuses: drop the subscription rather than retry it forever
      const err = new SyncClientError(code, `subscription to ${sub.collection} refused: ${ack.error}`);
      this.subs.delete(sub.key);
      await this.d.persist({ meta: { subscriptions: this.stored() } });
      if (throwOnRefusal) throw err;
      this.d.emit('error', err);
      return;
    }
    sub.id = ack.subscriptionId;
    sub.count = ack.count;
    this.subsById.set(sub.id, sub);
    if (!bootstrap) return;
    const done = new Promise<void>((resolve) => (sub.done = resolve));
    const early = this.earlyPages.get(sub.id);
    this.earlyPages.delete(sub.id);
    for (const p of early ?? []) await this.d.onPage(p);
    if (!sub.bootstrapped) await done;
  }

  /** Whether a document is in view of some subscription to its collection (true: none to check). */
  matches(collection: string, doc: SyncDocument): boolean {
    let any = false;
    for (const s of this.subs.values()) {
      if (s.collection !== collection) continue;
      any = true;
      try {
        const test = compileFilter(s.filter, s.args);
        if (!test || test(doc)) return true;
      } catch {
        return true; // cannot evaluate it here: the server filtered already
      }
    }
    return !any;
  }

  isSubscribed(collection: string): boolean {
    for (const s of this.subs.values()) if (s.collection === collection) return true;
    return false;
  }
}
