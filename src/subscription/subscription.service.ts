import { Inject, Injectable, Logger } from '@nestjs/common';
import {
  BootstrapPage,
  encodeCursor,
  EVENTS,
  InvalidPayloadError,
  isUserCollectionName,
  LIMITS,
  PayloadTooLargeError,
  SyncDocument,
} from '@sync/protocol';
import { compileQuery, type CompiledQuery } from '@sync/protocol/query';
import type { AuthUser } from '../auth/auth.types';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { PermissionService, userVars } from '../permission/permission.service';
import { ChangeFeedService, publicDoc } from '../sync/change-feed.service';
import { documentIdOf, isObjectId } from '../sync/document-id';
import { DocumentRepository } from '../sync/document.repository';
import type { SyncSocket } from '../sync/socket-context';
import { MAX_SUBSCRIPTIONS_PER_SOCKET, Subscription, SubscriptionRegistry } from './subscription.registry';

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** A validated, compiled subscription request (nothing registered yet). */
export interface SubscriptionSpec {
  collection: string;
  filter: string;
  query: CompiledQuery;
  sig: string;
}

/**
 * Subscriptions of sockets: validation and compilation of filters, the registry the router reads,
 * counts and paged bootstrap (one database cursor, with the feed position the snapshot reflects).
 */
@Injectable()
export class SubscriptionService {
  private readonly logger = new Logger('Subscriptions');

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    readonly registry: SubscriptionRegistry,
    private readonly permissions: PermissionService,
    private readonly docs: DocumentRepository,
    private readonly feed: ChangeFeedService,
  ) {}

  /** Validates and compiles one `{ collection, filter|query, args }` (throws INVALID_PAYLOAD / INVALID_QUERY). */
  compile(user: AuthUser, raw: unknown, filterKey: 'filter' | 'query' = 'filter'): SubscriptionSpec {
    if (!isObject(raw)) throw new InvalidPayloadError('a subscription must be an object { collection, filter?, args? }');
    const { collection, args } = raw;
    const filter = raw[filterKey];
    if (!isUserCollectionName(collection)) throw new InvalidPayloadError('collection is not a valid collection name');
    if (filter !== undefined && filter !== null && typeof filter !== 'string') throw new InvalidPayloadError(`${filterKey} must be a string`);
    if (typeof filter === 'string' && filter.length > LIMITS.filterMaxLength)
      throw new PayloadTooLargeError(`${filterKey} may be at most ${LIMITS.filterMaxLength} characters`);
    if (args !== undefined && args !== null && !Array.isArray(args)) throw new InvalidPayloadError('args must be an array');
    const text = typeof filter === 'string' ? filter : '';
    const argList = Array.isArray(args) ? args : [];
    const query = compileQuery(text, argList, userVars(user));
    let sig: string;
    try {
      sig = JSON.stringify([collection, text.trim(), argList]);
    } catch {
      sig = `${collection}\u0000${text}\u0000${Math.random()}`;
    }
    return { collection, filter: text.trim(), query, sig };
  }

  /** The MongoDB filter of what a subscription shows its user (null: nothing). */
  private visibleFilter(user: AuthUser, sub: { collection: string; query: CompiledQuery }): Record<string, unknown> | null {
    if (sub.query.alwaysFalse) return null;
    const read = this.permissions.readFilter(user, sub.collection);
    if (read === null) return null;
    const mine = sub.query.mongo;
    if (!Object.keys(read).length) return mine;
    if (!Object.keys(mine).length) return read;
    return { $and: [mine, read] };
  }

  async count(user: AuthUser, sub: { collection: string; query: CompiledQuery }): Promise<number> {
    const f = this.visibleFilter(user, sub);
    return f === null ? 0 : this.docs.count(sub.collection, f);
  }

  private checkRoom(socketId: string, adding: number): void {
    if (this.registry.count(socketId) + adding > MAX_SUBSCRIPTIONS_PER_SOCKET)
      throw new PayloadTooLargeError(`a socket may hold at most ${MAX_SUBSCRIPTIONS_PER_SOCKET} subscriptions`);
  }

  /** sync:subscribe. Registers first (live changes flow from now on), then counts. */
  async subscribe(socket: SyncSocket, user: AuthUser, body: unknown): Promise<{ sub: Subscription; count: number; bootstrap: boolean }> {
    const spec = this.compile(user, body);
    const bootstrap = (body as Record<string, unknown>).bootstrap;
    if (bootstrap !== undefined && bootstrap !== null && typeof bootstrap !== 'boolean') throw new InvalidPayloadError('bootstrap must be a boolean');
    this.checkRoom(socket.id, 1);
    const sub = this.registry.add(socket.id, user, spec.collection, spec.filter, spec.query, spec.sig);
    try {
      return { sub, count: await this.count(user, sub), bootstrap: bootstrap !== false };
    } catch (e) {
      this.registry.remove(sub);
      throw e;
    }
  }

  /** Several subscriptions at once, all validated first (sync:join). */
  compileAll(user: AuthUser, list: unknown, filterKey: 'filter' | 'query'): SubscriptionSpec[] {
    if (!Array.isArray(list)) throw new InvalidPayloadError('subscriptions must be an array');
    if (list.length > MAX_SUBSCRIPTIONS_PER_SOCKET) throw new PayloadTooLargeError(`a socket may hold at most ${MAX_SUBSCRIPTIONS_PER_SOCKET} subscriptions`);
    return list.map((raw) => this.compile(user, raw, filterKey));
  }

  addAll(socket: SyncSocket, user: AuthUser, specs: SubscriptionSpec[]): Subscription[] {
    this.checkRoom(socket.id, specs.length);
    return specs.map((s) => this.registry.add(socket.id, user, s.collection, s.filter, s.query, s.sig));
  }

  /** sync:unsubscribe: by id, or every subscription of a collection (with that filter, when given). */
  unsubscribe(socket: SyncSocket, body: unknown): number {
    if (!isObject(body)) throw new InvalidPayloadError('expected { subscriptionId } or { collection, filter? }');
    const { subscriptionId, collection, filter } = body;
    if (subscriptionId !== undefined && subscriptionId !== null) {
      if (typeof subscriptionId !== 'string') throw new InvalidPayloadError('subscriptionId must be a string');
      const sub = this.registry.get(socket.id, subscriptionId);
      if (sub) this.registry.remove(sub);
    } else if (collection !== undefined && collection !== null) {
      if (!isUserCollectionName(collection)) throw new InvalidPayloadError('collection is not a valid collection name');
      if (filter !== undefined && filter !== null && typeof filter !== 'string') throw new InvalidPayloadError('filter must be a string');
      for (const sub of this.registry.list(socket.id))
        if (sub.collection === collection && (typeof filter !== 'string' || sub.filter === filter.trim())) this.registry.remove(sub);
    } else throw new InvalidPayloadError('expected { subscriptionId } or { collection, filter? }');
    return this.registry.count(socket.id);
  }

  /** sync:update_subscriptions: replaces the whole set (all validated first); returns the new ones to bootstrap. */
  replace(socket: SyncSocket, user: AuthUser, body: unknown): { version: number; added: Subscription[] } {
    if (!isObject(body)) throw new InvalidPayloadError('expected { subscriptions: [...] }');
    const specs = this.compileAll(user, body.subscriptions, 'query');
    const keep = new Map<string, Subscription[]>();
    for (const sub of this.registry.list(socket.id)) {
      const l = keep.get(sub.sig) ?? [];
      l.push(sub);
      keep.set(sub.sig, l);
    }
    this.registry.ensure(socket.id, user);
    const added: Subscription[] = [];
    for (const spec of specs) {
      const same = keep.get(spec.sig)?.shift();
      if (same) continue; // unchanged: keeps its id, no new bootstrap
      added.push(this.registry.add(socket.id, user, spec.collection, spec.filter, spec.query, spec.sig));
    }
    for (const rest of keep.values()) for (const sub of rest) this.registry.remove(sub);
    return { version: this.registry.bumpVersion(socket.id), added };
  }

  /** Emits a subscription's bootstrap pages, after the current ack went out. */
  scheduleBootstrap(socket: SyncSocket, subs: Subscription[]): void {
    if (!subs.length) return;
    setImmediate(() => {
      void (async () => {
        for (const sub of subs) await this.bootstrap(socket, sub);
      })().catch((e) => this.logger.warn(`bootstrap failed: ${(e as Error).message}`));
    });
  }

  /**
   * Pages of at most BOOTSTRAP_PAGE_SIZE documents, read through one database cursor; always at
   * least one page (the last with done: true). `cursor` is the feed head taken before the read:
   * every change at or before it is in the data, later ones arrive live (or through get_changes
   * from that cursor).
   */
  async bootstrap(socket: SyncSocket, sub: Subscription): Promise<void> {
    const size = this.config.sync.bootstrapPageSize;
    const cursor = encodeCursor(await this.feed.head());
    const alive = () => socket.connected && this.registry.get(socket.id, sub.id) === sub;
    const user = socket.data.user;
    if (!user || !alive()) return;
    const filter = this.visibleFilter(user, sub);
    const rows = filter === null ? null : this.docs.stream(sub.collection, filter, size + 1);
    try {
      let buffered: SyncDocument[] = [];
      for (let page = 1; ; page++) {
        // one document beyond the page tells whether this page is the last
        while (rows && buffered.length <= size) {
          const next = await rows.next();
          if (!next) break;
          buffered.push(next);
        }
        const done = buffered.length <= size;
        const slice = done ? buffered : buffered.slice(0, size);
        buffered = done ? [] : buffered.slice(size);
        const current = socket.data.user;
        if (!alive() || !current) return;
        const visible = slice.filter((d) => this.permissions.canRead(current, sub.collection, d));
        // ObjectId _ids go out as their hex form, listed in objectIds (docs/PROTOCOL.md "Document ids")
        const objectIds = visible.filter((d) => isObjectId(d._id)).map((d) => documentIdOf(d._id));
        const data = visible.map((d) => publicDoc(isObjectId(d._id) ? { ...d, _id: documentIdOf(d._id) } : d));
        const msg: BootstrapPage = { subscriptionId: sub.id, collection: sub.collection, data, page, done, cursor, ...(objectIds.length ? { objectIds } : {}) };
        socket.emit(EVENTS.bootstrap, msg);
        if (done) return;
      }
    } finally {
      await rows?.close().catch(() => undefined);
    }
  }

  /** Forgets a socket (disconnect, or a join as another user). */
  drop(socketId: string): void {
    this.registry.drop(socketId);
  }
}
