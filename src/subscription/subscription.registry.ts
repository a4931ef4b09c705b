import { randomBytes } from 'node:crypto';
import type { SyncDocument } from '@sync/protocol';
import type { CompiledQuery, MatchBudget } from '@sync/protocol/query';
import type { AuthUser } from '../common/user';
import { SessionSubscriptions, SocketSessions } from '../common/socket-session';

export interface Subscription {
  readonly id: string;
  readonly socketId: string;
  readonly collection: string;
  /** The filter text as the client sent it ('' when none), to unsubscribe by filter. */
  readonly filter: string;
  /** collection + filter + args: identical subscriptions survive sync:update_subscriptions. */
  readonly sig: string;
  readonly query: CompiledQuery;
  /** The equality this subscription is indexed under (null: in the collection's scan list). */
  readonly key: { path: string; value: string } | null;
}

type SocketEntry = SessionSubscriptions<Subscription>;

/**
 * Up to this many subscriptions a socket's are an exact-size array (copied on change: an idle socket
 * with one subscription holds 56 B instead of a Map's ~200 B, or a grown array's ~180 B); beyond, a
 * Map by id, so a socket with thousands stays linear.
 */
const SMALL = 8;
const NONE: readonly Subscription[] = Object.freeze([]);

/** A socket's subscriptions, in the order they were added. */
export function subscriptionsOf(entry: SessionSubscriptions<Subscription> | undefined): Iterable<Subscription> {
  const subs = entry?.subs;
  return subs === undefined ? NONE : subs instanceof Map ? subs.values() : subs;
}

/** Subscriptions of one collection: those with a top-level equality by (path, value), the rest in a list. */
interface CollectionIndex {
  scan: Set<Subscription>;
  byPath: Map<string, Map<string, Set<Subscription>>>;
  size: number;
}

const valueKey = (v: unknown): string => (v === null || v === undefined ? 'null' : `${typeof v}:${String(v)}`);

/**
 * Every value reachable at `path` in `doc` with MongoDB's array semantics, as index keys (always
 * including 'null', since a missing value matches `== null`). A superset is enough: every candidate
 * is checked with the full predicate.
 */
function keysAt(doc: SyncDocument, path: string, out: Set<string>): void {
  out.add('null');
  const segs = path.split('.');
  const visit = (v: unknown, i: number): void => {
    if (i === segs.length) {
      if (Array.isArray(v)) for (const e of v) out.add(valueKey(e));
      else if (v === null || typeof v !== 'object') out.add(valueKey(v));
      return;
    }
    if (Array.isArray(v)) {
      for (const e of v) if (e !== null && typeof e === 'object' && !Array.isArray(e)) visit(e, i);
      return;
    }
    if (v === null || typeof v !== 'object') return;
    const o = v as Record<string, unknown>;
    if (Object.hasOwn(o, segs[i])) visit(o[segs[i]], i + 1);
  };
  visit(doc, 0);
}

/**
 * The key under which identical subscriptions share their compiled query: the signature (collection,
 * filter text, args: SubscriptionService.compile), when the filter cannot name a `%user` variable
 * (no `%` in its text: the compiled query is then the same for every user). Undefined: not shared.
 */
function sharedKey(sig: string, filter: string): string | undefined {
  return sig !== '' && !filter.includes('%') ? sig : undefined;
}

/**
 * Per-socket subscriptions, indexed by collection and by a top-level equality (path, value) so that
 * routing a change only tests the subscriptions that can match it. Bounded: at most
 * MAX_SUBSCRIPTIONS_PER_SOCKET per socket (checked by SubscriptionService), and a socket's entries
 * go when it disconnects (`drop`, in the gateway's disconnect handler). A socket's own subscriptions
 * are on its session (`SocketSession.subscriptions`); the registry keeps the indexes only.
 */
export class SubscriptionRegistry {
  private readonly collections = new Map<string, CollectionIndex>();
  /** Joined sockets that never subscribed: they receive every change their user may read (compatibility). */
  readonly unsubscribed = new Set<string>();
  /**
   * Compiled queries shared by identical subscriptions (same collection, filter text and args, see
   * `sharedKey`): a compiled query is about 1 KB of closures and objects, more than the rest of an
   * idle subscribed socket's own state. Counted, and gone with its last subscription.
   */
  private readonly queries = new Map<string, { query: CompiledQuery; refs: number }>();

  constructor(private readonly sessions = new SocketSessions()) {}

  private entry(socketId: string): SocketEntry | undefined {
    return this.sessions.get(socketId)?.subscriptions as SocketEntry | undefined;
  }

  /** A socket joined: until it subscribes, it gets every readable change. */
  joined(socketId: string): void {
    if (!this.entry(socketId)) this.unsubscribed.add(socketId);
  }

  static newId(): string {
    return randomBytes(12).toString('base64url');
  }

  /** Whether the socket has ever subscribed (it then only receives what its subscriptions match). */
  has(socketId: string): boolean {
    return this.entry(socketId) !== undefined;
  }

  user(socketId: string): AuthUser | undefined {
    return this.entry(socketId)?.user;
  }

  count(socketId: string): number {
    const subs = this.entry(socketId)?.subs;
    return subs === undefined ? 0 : subs instanceof Map ? subs.size : subs.length;
  }

  list(socketId: string): Subscription[] {
    return [...subscriptionsOf(this.entry(socketId))];
  }

  get(socketId: string, id: string): Subscription | undefined {
    const subs = this.entry(socketId)?.subs;
    if (subs === undefined) return undefined;
    return subs instanceof Map ? subs.get(id) : subs.find((s) => s.id === id);
  }

  /** Marks the socket as subscription-driven (with no subscription yet) for `user`. */
  ensure(socketId: string, user: AuthUser): SocketEntry {
    const session = this.sessions.open(socketId);
    let e = session.subscriptions as SocketEntry | undefined;
    this.unsubscribed.delete(socketId);
    if (!e) session.subscriptions = e = { user, subs: NONE, version: 0 };
    else e.user = user;
    return e;
  }

  add(socketId: string, user: AuthUser, collection: string, filter: string, query: CompiledQuery, sig = ''): Subscription {
    const entry = this.ensure(socketId, user);
    const key = sharedKey(sig, filter);
    if (key !== undefined) {
      const shared = this.queries.get(key);
      if (shared) {
        shared.refs++;
        query = shared.query;
      } else this.queries.set(key, { query, refs: 1 });
    }
    const eq = query.equalities[0];
    const sub: Subscription = Object.freeze({
      id: SubscriptionRegistry.newId(),
      socketId,
      collection,
      filter,
      sig,
      query,
      key: eq ? { path: eq.path, value: valueKey(eq.value) } : null,
    });
    const subs = entry.subs;
    if (subs instanceof Map) subs.set(sub.id, sub);
    else if (subs.length < SMALL)
      entry.subs = subs.concat(sub); // exact size: a spread or a push reserves 17 slots
    else entry.subs = new Map([...subs, sub].map((s) => [s.id, s]));
    let idx = this.collections.get(collection);
    if (!idx) this.collections.set(collection, (idx = { scan: new Set(), byPath: new Map(), size: 0 }));
    idx.size++;
    if (!sub.key) idx.scan.add(sub);
    else {
      let byValue = idx.byPath.get(sub.key.path);
      if (!byValue) idx.byPath.set(sub.key.path, (byValue = new Map()));
      let set = byValue.get(sub.key.value);
      if (!set) byValue.set(sub.key.value, (set = new Set()));
      set.add(sub);
    }
    return sub;
  }

  /** Removes one subscription; removing it again (or after its socket's `drop`) changes nothing. */
  remove(sub: Subscription): void {
    const entry = this.entry(sub.socketId);
    let held = false;
    if (entry) {
      const subs = entry.subs;
      if (subs instanceof Map) held = subs.get(sub.id) === sub && subs.delete(sub.id);
      else {
        const i = subs.indexOf(sub);
        held = i >= 0;
        if (held) entry.subs = subs.length === 1 ? NONE : subs.slice(0, i).concat(subs.slice(i + 1)); // exact size (unlike filter)
      }
    }
    // its reference to a shared compiled query is given back once, with the subscription itself
    const key = held ? sharedKey(sub.sig, sub.filter) : undefined;
    const shared = key === undefined ? undefined : this.queries.get(key);
    if (shared?.query === sub.query && --shared.refs <= 0) this.queries.delete(key!);
    const idx = this.collections.get(sub.collection);
    if (!idx) return;
    if (!sub.key) {
      if (idx.scan.delete(sub)) idx.size--;
    } else {
      const byValue = idx.byPath.get(sub.key.path);
      const set = byValue?.get(sub.key.value);
      if (set?.delete(sub)) {
        idx.size--;
        if (!set.size) byValue!.delete(sub.key.value);
        if (!byValue!.size) idx.byPath.delete(sub.key.path);
      }
    }
    if (idx.size <= 0) this.collections.delete(sub.collection);
  }

  /** Removes every subscription of the socket but keeps it subscription-driven. Returns the new version. */
  clear(socketId: string): void {
    for (const sub of this.list(socketId)) this.remove(sub);
  }

  bumpVersion(socketId: string): number {
    const e = this.entry(socketId);
    return e ? ++e.version : 0;
  }

  /** Forgets the socket entirely (disconnect, or a join as another user). */
  drop(socketId: string): void {
    this.clear(socketId);
    const session = this.sessions.get(socketId);
    if (session) session.subscriptions = undefined;
    this.unsubscribed.delete(socketId);
  }

  /**
   * The subscriptions of `collection` whose query matches `doc` (indexed candidates, then the
   * predicate). Each predicate runs on its own: one that throws (or exceeds its budget) is handed
   * to `failed` and counts as not matching, and the others are still tested. Without `failed`,
   * the error propagates.
   */
  matching(
    collection: string,
    doc: SyncDocument,
    visit: (sub: Subscription) => void,
    budgetOf?: (sub: Subscription) => MatchBudget | undefined,
    failed?: (sub: Subscription, error: unknown) => void,
  ): void {
    const idx = this.collections.get(collection);
    if (!idx) return;
    const check = (sub: Subscription) => {
      let hit: boolean;
      try {
        hit = sub.query.test(doc, budgetOf?.(sub));
      } catch (e) {
        if (!failed) throw e;
        failed(sub, e);
        return;
      }
      if (hit) visit(sub);
    };
    // (`failed` may remove a subscription meanwhile: Set and Map iteration allows deletion)
    for (const sub of idx.scan) check(sub);
    if (!idx.byPath.size) return;
    const keys = new Set<string>();
    for (const [path, byValue] of idx.byPath) {
      keys.clear();
      keysAt(doc, path, keys);
      for (const k of keys) {
        const set = byValue.get(k);
        if (set) for (const sub of set) check(sub);
      }
    }
  }

  /** For tests and metrics: `sockets` have subscribed (sessions), `subscriptions` are indexed. */
  stats(): { sockets: number; collections: number; subscriptions: number; unsubscribed: number; queries: number } {
    let sockets = 0;
    for (const s of this.sessions.values()) if (s.subscriptions) sockets++;
    let subscriptions = 0;
    for (const idx of this.collections.values()) subscriptions += idx.size;
    return { sockets, collections: this.collections.size, subscriptions, unsubscribed: this.unsubscribed.size, queries: this.queries.size };
  }
}
