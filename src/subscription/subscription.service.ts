import { Inject, Injectable, Logger } from '@nestjs/common';
import { BootstrapPage, encodeCursor, EVENTS, LIMITS, PayloadTooLargeError, SyncDocument } from '@sync/protocol';
import type { SubscribeRequestSchema, SubscriptionSpecSchema, UnsubscribeRequestSchema, UpdateSubscriptionsRequestSchema } from '@sync/protocol/schemas';
import type { z } from 'zod/v4';
import { compileQuery, type CompiledQuery } from '@sync/protocol/query';
import type { AuthUser } from '../common/user';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { PermissionService, userVars } from '../permission/permission.service';
import { ChangeFeedService } from '../feed/change-feed.service';
import { publicDoc } from '../feed/feed-entries';
import { documentIdOf, isObjectId } from '../feed/document-id';
import { DocumentRepository } from '../feed/document.repository';
import type { SyncSocket } from '../common/socket-context';
import { closeNow } from '../common/socket-buffer';
import { waitForDrain } from '../common/socket-drain';
import { MetricsService } from '../metrics/metrics.service';
import { BootstrapScheduler } from './bootstrap.scheduler';
import { Subscription, SubscriptionRegistry } from './subscription.registry';

/** About the JSON size of a value (strings by length, no allocation): to cut bootstrap pages by bytes. */
function approxSize(v: unknown, depth = 0): number {
  if (typeof v === 'string') return v.length + 2;
  if (v === null || typeof v !== 'object' || depth > 64) return 8;
  let n = 2;
  if (Array.isArray(v)) for (const e of v) n += approxSize(e, depth + 1) + 1;
  else for (const k in v) n += k.length + 4 + approxSize((v as Record<string, unknown>)[k], depth + 1);
  return n;
}

/** Documents per driver batch of a bootstrap's cursor, at most (memory held per bootstrap in progress). */
const BOOTSTRAP_CURSOR_BATCH_MAX = 5000;

/** One page of a bootstrap's read, and whether it is the last. */
interface BootstrapRead {
  docs: SyncDocument[];
  done: boolean;
}

/** A bootstrap started by a subscribe before its answer (SubscriptionService.subscribe). */
interface EarlyBootstrap {
  /** Called once with the first page read (null: none was read: the socket went away, or the read failed). */
  first: (page: BootstrapRead | null) => void;
  /** Settles once the subscribe has answered (with its count, or with an error): pages go out after it. */
  answered: Promise<void>;
}

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
/** Requests as the protocol's schemas parse them at the edge (src/gateway). */
type SpecInput = z.output<typeof SubscriptionSpecSchema>;
type SubscribeInput = z.output<typeof SubscribeRequestSchema>;
type UnsubscribeInput = z.output<typeof UnsubscribeRequestSchema>;
type UpdateSubscriptionsInput = z.output<typeof UpdateSubscriptionsRequestSchema>;

@Injectable()
export class SubscriptionService {
  private readonly logger = new Logger('Subscriptions');

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    readonly registry: SubscriptionRegistry,
    private readonly permissions: PermissionService,
    private readonly docs: DocumentRepository,
    private readonly feed: ChangeFeedService,
    private readonly scheduler: BootstrapScheduler,
    private readonly metrics: MetricsService,
  ) {}

  private get maxSubscriptions(): number {
    return this.config.limits.maxSubscriptionsPerSocket;
  }

  /**
   * Compiles one subscription, already parsed at the edge with the protocol's schemas (throws
   * PAYLOAD_TOO_LARGE / INVALID_QUERY). `filterKey` names the field in messages (`query` in
   * sync:update_subscriptions).
   */
  compile(user: AuthUser, spec: SpecInput, filterKey: 'filter' | 'query' = 'filter'): SubscriptionSpec {
    const { collection, filter, args } = spec;
    if (typeof filter === 'string' && filter.length > LIMITS.filterMaxLength)
      throw new PayloadTooLargeError(`${filterKey} may be at most ${LIMITS.filterMaxLength} characters`);
    const text = filter ?? '';
    const argList = args ?? [];
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

  /** The number of visible matching documents (a database read: in a fair node slot, see BootstrapScheduler). */
  async count(user: AuthUser, sub: { collection: string; query: CompiledQuery }): Promise<number> {
    const f = this.visibleFilter(user, sub);
    return f === null ? 0 : this.scheduler.withSlot(user.id, () => this.docs.count(sub.collection, f));
  }

  private checkRoom(socketId: string, adding: number): void {
    if (this.registry.count(socketId) + adding > this.maxSubscriptions) {
      this.metrics.readsRefused.inc({ reason: 'subscriptions' });
      throw new PayloadTooLargeError(`a socket may hold at most ${this.maxSubscriptions} subscriptions`);
    }
  }

  /**
   * sync:subscribe. Registers first (live changes flow from now on), then counts; with a bootstrap,
   * schedules it. When the socket has no bootstrap queued, the bootstrap starts at once and reads its
   * first page while the answer is prepared: a first page that is also the last gives the count (no
   * count query: the documents the cursor returned are the matching ones), otherwise the count query
   * runs while the bootstrap holds that page. The pages go out only after the answer (see bootstrap).
   */
  async subscribe(socket: SyncSocket, user: AuthUser, req: SubscribeInput): Promise<{ sub: Subscription; count: number }> {
    const spec = this.compile(user, req);
    const bootstrap = req.bootstrap;
    this.checkRoom(socket.id, 1);
    const sub = this.registry.add(socket.id, user, spec.collection, spec.filter, spec.query, spec.sig);
    const early = bootstrap !== false && this.scheduler.idle(socket.id);
    let answer = () => {};
    try {
      let count: number;
      if (early) {
        const answered = new Promise<void>((resolve) => (answer = resolve));
        const first = new Promise<BootstrapRead | null>((resolve) => {
          this.scheduler.enqueue(socket.id, () => this.bootstrap(socket, sub, { first: resolve, answered }));
        });
        const page = await first;
        count = page?.done ? page.docs.length : await this.count(user, sub);
      } else count = await this.count(user, sub);
      if (bootstrap !== false && !early) this.scheduleBootstrap(socket, [sub]);
      return { sub, count };
    } catch (e) {
      this.registry.remove(sub); // a bootstrap already started ends at its next step
      throw e;
    } finally {
      answer();
    }
  }

  /** Several subscriptions at once, all compiled before anything changes (sync:join, sync:update_subscriptions). */
  compileAll(user: AuthUser, list: readonly SpecInput[], filterKey: 'filter' | 'query'): SubscriptionSpec[] {
    if (list.length > this.maxSubscriptions) throw new PayloadTooLargeError(`a socket may hold at most ${this.maxSubscriptions} subscriptions`);
    return list.map((spec) => this.compile(user, spec, filterKey));
  }

  addAll(socket: SyncSocket, user: AuthUser, specs: SubscriptionSpec[]): Subscription[] {
    this.checkRoom(socket.id, specs.length);
    return specs.map((s) => this.registry.add(socket.id, user, s.collection, s.filter, s.query, s.sig));
  }

  /** sync:unsubscribe: by id, or every subscription of a collection (with that filter, when given). */
  unsubscribe(socket: SyncSocket, req: UnsubscribeInput): number {
    const { subscriptionId, collection, filter } = req;
    if (subscriptionId !== undefined && subscriptionId !== null) {
      const sub = this.registry.get(socket.id, subscriptionId);
      if (sub) this.registry.remove(sub);
    } else {
      // the schema has checked: a collection name, and a string filter or none
      for (const sub of this.registry.list(socket.id))
        if (sub.collection === collection && (typeof filter !== 'string' || sub.filter === filter.trim())) this.registry.remove(sub);
    }
    return this.registry.count(socket.id);
  }

  /** sync:update_subscriptions: replaces the whole set (all validated first); returns the new ones to bootstrap. */
  async replace(
    socket: SyncSocket,
    user: AuthUser,
    req: UpdateSubscriptionsInput,
    payForNew?: (count: number) => Promise<void> | void,
  ): Promise<{ version: number; added: Subscription[] }> {
    const specs = this.compileAll(
      user,
      req.subscriptions.map((s) => ({ collection: s.collection, filter: s.query, args: s.args })),
      'query',
    );
    const current = () => {
      const keep = new Map<string, Subscription[]>();
      for (const sub of this.registry.list(socket.id)) {
        const l = keep.get(sub.sig) ?? [];
        l.push(sub);
        keep.set(sub.sig, l);
      }
      return keep;
    };
    if (payForNew) {
      const left = new Map([...current()].map(([sig, l]) => [sig, l.length]));
      let fresh = 0;
      for (const spec of specs) {
        const n = left.get(spec.sig) ?? 0;
        if (n > 0) left.set(spec.sig, n - 1);
        else fresh++;
      }
      if (fresh) await payForNew(fresh); // throws RATE_LIMITED before anything changes
    }
    const keep = current(); // read after the payment: the socket may have changed its set meanwhile
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

  /**
   * Emits the subscriptions' bootstrap pages after the current ack went out: queued behind the
   * socket's earlier bootstraps (one at a time per socket, see BootstrapScheduler).
   */
  scheduleBootstrap(socket: SyncSocket, subs: Subscription[]): void {
    for (const sub of subs) this.scheduler.enqueue(socket.id, () => this.bootstrap(socket, sub));
  }

  /**
   * Pages of at most BOOTSTRAP_PAGE_SIZE documents, read through one database cursor; always at
   * least one page (the last with done: true). `cursor` is the feed head taken before the read:
   * every change at or before it is in the data, later ones arrive live (or through get_changes
   * from that cursor).
   *
   * Backpressure: each page is sent only once the socket has less than BOOTSTRAP_BUFFER_BYTES
   * queued (the client took the earlier pages); the next page is read from the database while this
   * one is encoded and sent (read-ahead of one page), so a client that stops reading costs the server
   * at most that plus two pages. One that reads nothing for BOOTSTRAP_DRAIN_TIMEOUT_MS is
   * disconnected (it bootstraps again after reconnecting).
   */
  async bootstrap(socket: SyncSocket, sub: Subscription, early?: EarlyBootstrap): Promise<void> {
    const size = this.config.sync.bootstrapPageSize;
    const maxBytes = this.config.limits.bootstrapBufferBytes;
    const alive = () => socket.connected && this.registry.get(socket.id, sub.id) === sub;
    let first: BootstrapRead | null = null;
    let rows: ReturnType<DocumentRepository['stream']> | null = null;
    let ahead: Promise<BootstrapRead> | null = null;
    try {
      if (!alive() || !socket.data.user) return;
      const user = socket.data.user;
      const cursor = encodeCursor(await this.scheduler.withSlot(user.id, () => this.feed.head()));
      if (!alive() || socket.data.user !== user) return;
      const filter = this.visibleFilter(user, sub);
      // the driver's batches hold about two pages: a getMore every other page, not one per page
      rows = filter === null ? null : this.docs.stream(sub.collection, filter, Math.min(2 * size + 1, BOOTSTRAP_CURSOR_BATCH_MAX));
      const stream = rows;
      let buffered: SyncDocument[] = [];
      let exhausted = stream === null;
      /** The next page's documents (in a node slot), and whether it is the last. */
      const readPage = async (): Promise<BootstrapRead> => {
        // one document beyond the page tells whether this page is the last; a page also ends
        // once it holds about BOOTSTRAP_BUFFER_BYTES (large documents: fewer per page)
        let take = 0;
        let bytes = 0;
        const full = () => take >= size || (take > 0 && bytes >= maxBytes);
        while (take < buffered.length && !full()) bytes += approxSize(buffered[take++]);
        if (stream && !exhausted && (!full() || buffered.length === take)) {
          await this.scheduler.withSlot(user.id, async () => {
            while (!full()) {
              const next = await stream.next();
              if (!next) return void (exhausted = true);
              buffered.push(next);
              bytes += approxSize(next);
              take++;
            }
            if (buffered.length === take) {
              const next = await stream.next(); // the one beyond
              if (next) buffered.push(next);
              else exhausted = true;
            }
          });
        }
        const done = buffered.length <= take;
        const docs = done ? buffered : buffered.slice(0, take);
        buffered = done ? [] : buffered.slice(take);
        return { docs, done };
      };
      let held: BootstrapRead | null = null;
      if (early) {
        // a subscribe's bootstrap: the first page is read before the answer (it may give the count),
        // then the second while the subscribe counts: the current page and the one read ahead, as in
        // the loop below (same bound); both held until the answer went out
        try {
          held = first = await readPage();
        } finally {
          early.first(first); // null: the subscribe counts with a query
        }
        if (!held.done) {
          ahead = readPage();
          ahead.catch(() => undefined); // awaited in the loop, or dropped with the bootstrap
        }
        await early.answered;
        // the ack is sent by the promise chain the answer settles (microtasks only): after this
        // macrotask turn it is on the socket, ahead of every page
        await new Promise((resolve) => setImmediate(resolve));
      }
      for (let page = 1; ; page++) {
        if (!(await this.drained(socket))) return;
        if (!alive()) return;
        let read: BootstrapRead;
        if (held) [read, held] = [held, null];
        else [read, ahead] = [await (ahead ?? readPage()), null];
        const { docs, done } = read;
        const current = socket.data.user;
        if (!alive() || !current) return;
        // the next page is read while this one is filtered, encoded and sent
        if (!done && !ahead) {
          ahead = readPage();
          ahead.catch(() => undefined); // awaited next round, or dropped with the bootstrap
        }
        const visible = docs.filter((d) => this.permissions.canRead(current, sub.collection, d));
        // ObjectId _ids go out as their hex form, listed in objectIds (docs/PROTOCOL.md "Document ids")
        const objectIds = visible.filter((d) => isObjectId(d._id)).map((d) => documentIdOf(d._id));
        const data = visible.map((d) => publicDoc(isObjectId(d._id) ? { ...d, _id: documentIdOf(d._id) } : d));
        const msg: BootstrapPage = { subscriptionId: sub.id, collection: sub.collection, data, page, done, cursor, ...(objectIds.length ? { objectIds } : {}) };
        socket.emit(EVENTS.bootstrap, msg);
        if (done) return;
      }
    } finally {
      if (early && !first) early.first(null); // the subscribe counts with a query
      // a read still in flight uses the cursor: close it after that read
      await ahead?.catch(() => undefined);
      await rows?.close().catch(() => undefined);
    }
  }

  /** Waits for the client to take what is queued; false (and the socket closed) when it does not. */
  private async drained(socket: SyncSocket): Promise<boolean> {
    const limits = this.config.limits;
    const r = await waitForDrain(socket, limits.bootstrapBufferBytes, limits.bootstrapDrainTimeoutMs);
    if (r === 'drained') return true;
    if (r === 'timeout') {
      this.metrics.readsRefused.inc({ reason: 'bootstrap_stalled' });
      this.logger.warn(`socket ${socket.id} took no bootstrap page for ${limits.bootstrapDrainTimeoutMs} ms: disconnected`);
      closeNow(socket);
    }
    return false;
  }

  /** Forgets a socket (disconnect, or a join as another user): its subscriptions and queued bootstraps. */
  drop(socketId: string): void {
    this.registry.drop(socketId);
    this.scheduler.forget(socketId);
  }
}
