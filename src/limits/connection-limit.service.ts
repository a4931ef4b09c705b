import { Inject, Injectable, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { RateLimitedError } from '@sync/protocol';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { MetricsService } from '../metrics/metrics.service';
import { RedisConnectionCounter } from './redis-connection-counter';
import { ConnectionSlot, SocketSessions } from '../common/socket-session';

/** How long a client refused by a connection limit is told to wait before trying again. */
export const CONNECTION_RETRY_AFTER_MS = 10_000;

/** A connection limit was hit; `reason` is the metrics label and the client-facing sentence. */
export class ConnectionLimitError extends RateLimitedError {
  constructor(
    readonly reason: 'per_ip' | 'per_user',
    message: string,
  ) {
    super(CONNECTION_RETRY_AFTER_MS);
    this.message = message;
  }
}

/**
 * Live connections per user and per client address (MAX_CONNECTIONS_PER_USER,
 * MAX_CONNECTIONS_PER_IP). Every count is a set of socket ids, so taking a slot twice is harmless and
 * releasing is idempotent; an empty set is deleted at once, so the maps only hold what is connected.
 * A socket's own slot (what it counts for) is on its session (`SocketSession.slot`), released by
 * `release` in the gateway's disconnect handler.
 *
 * Authenticated sockets count first: when an address is full and an authenticated socket asks for a
 * slot, the oldest unauthenticated socket of that address is evicted in its favour (the caller
 * disconnects it), so sockets that never authenticate (and are disconnected after JOIN_TIMEOUT_MS
 * anyway) cannot lock the users behind a shared address out. An address full of authenticated
 * sockets refuses everyone.
 */
@Injectable()
export class ConnectionLimitService implements OnModuleInit, OnModuleDestroy {
  /** Sessions holding a slot (stats). */
  private slotCount = 0;
  private readonly byAddress = new Map<string, Set<string>>();
  private readonly byUser = new Map<string, Set<string>>();
  /** With REDIS_URL: the per-user count over every node (see RedisConnectionCounter). */
  private shared?: RedisConnectionCounter;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly metrics: MetricsService,
    private readonly sessions: SocketSessions = new SocketSessions(),
  ) {}

  /**
   * Counts `socketId` for `address`. When the address is full: an authenticated socket takes the
   * slot of the oldest unauthenticated one, whose id is returned (the caller must disconnect it: its
   * slot is already released); otherwise throws ConnectionLimitError (nothing taken).
   */
  takeAddress(socketId: string, address: string, authenticated = false): string | undefined {
    const slot = this.slot(socketId);
    if (authenticated) slot.authenticated = true;
    if (slot.address === address) return undefined;
    const set = this.byAddress.get(address);
    const max = this.config.limits.maxConnectionsPerIp;
    let evicted: string | undefined;
    if (set && set.size >= max) {
      evicted = slot.authenticated ? this.oldestUnauthenticated(set) : undefined;
      if (evicted === undefined) {
        this.dropIfEmpty(socketId);
        throw this.refusal('per_ip', max);
      }
      this.release(evicted);
      this.metrics.connectionsRefused.inc({ reason: 'evicted_unauthenticated' });
    }
    if (slot.address) this.remove(this.byAddress, slot.address, socketId);
    this.add(this.byAddress, address, socketId);
    slot.address = address;
    return evicted;
  }

  /** The socket authenticated (a join after an anonymous handshake): it now counts first at its address. */
  markAuthenticated(socketId: string): void {
    const slot = this.slotOf(socketId);
    if (slot) slot.authenticated = true;
  }

  /**
   * takeAddress, and with Redis the same limit over every node. Resolves the sockets evicted for this
   * one (the caller disconnects them: their slots are already released). At an address full over the
   * deployment, an authenticated socket takes the slot of this node's oldest unauthenticated socket
   * of that address; without one (the unauthenticated sockets may all be on other nodes, which
   * disconnect them after JOIN_TIMEOUT_MS) it is refused like any other: ConnectionLimitError,
   * nothing taken.
   */
  async takeAddressShared(socketId: string, address: string, authenticated = false): Promise<string[]> {
    const before = this.slotOf(socketId)?.address;
    const local = this.takeAddress(socketId, address, authenticated);
    const evicted = local === undefined ? [] : [local];
    if (!this.shared || before === address) return evicted;
    const max = this.config.limits.maxConnectionsPerIp;
    const set = this.byAddress.get(address);
    const victim = authenticated && set ? this.oldestUnauthenticated(set) : undefined;
    const r = await this.shared.takeOrReplace('ip', address, socketId, max, victim);
    if (r === 'replaced' && victim !== undefined) {
      // the victim's shared slot is ours now; its local one goes too (if it has not left meanwhile)
      if (this.slotOf(victim)?.address === address) {
        this.release(victim);
        evicted.push(victim);
      }
      this.metrics.connectionsRefused.inc({ reason: 'evicted_unauthenticated' });
    }
    const slot = this.slotOf(socketId);
    if (r !== 'refused') {
      // released while Redis answered (the client hung up): give the shared slot back too
      if (slot?.address !== address) this.shared.release('ip', address, socketId);
      return evicted;
    }
    this.giveBack('address', address, socketId);
    throw this.refusal('per_ip', max);
  }

  private oldestUnauthenticated(set: Set<string>): string | undefined {
    let oldest: string | undefined;
    let since = Infinity;
    for (const id of set) {
      const s = this.slotOf(id);
      if (s && !s.authenticated && s.since < since) {
        oldest = id;
        since = s.since;
      }
    }
    return oldest;
  }

  /** Counts `socketId` for `userId` (moving it from another user); throws when the user is full. */
  takeUser(socketId: string, userId: string): void {
    const slot = this.slot(socketId);
    if (slot.userId === userId) return;
    const set = this.byUser.get(userId);
    const max = this.config.limits.maxConnectionsPerUser;
    if (set && set.size >= max) {
      this.dropIfEmpty(socketId);
      throw this.refusal('per_user', max);
    }
    if (slot.userId) this.remove(this.byUser, slot.userId, socketId);
    this.add(this.byUser, userId, socketId);
    slot.userId = userId;
  }

  /** With REDIS_URL, the per-user and per-address limits count over every node. */
  async onModuleInit(): Promise<void> {
    const url = this.config.scale.redisUrl;
    if (!url) return;
    const counter = new RedisConnectionCounter(url, this.config.scale.redisChannelPrefix, this.config.limits.nodeLeaseMs);
    await counter.start();
    this.shareThrough(counter);
  }

  async onModuleDestroy(): Promise<void> {
    const counter = this.shared;
    this.shared = undefined;
    await counter?.close();
  }

  /** Counts users over every node from now on (LimitsModule, when REDIS_URL is set). */
  shareThrough(counter: RedisConnectionCounter | undefined): void {
    this.shared = counter;
  }

  /**
   * takeUser, and with Redis the same limit over every node: throws ConnectionLimitError (nothing
   * taken) when this node or the deployment already holds MAX_CONNECTIONS_PER_USER of the user's sockets.
   */
  async takeUserShared(socketId: string, userId: string): Promise<void> {
    const before = this.slotOf(socketId)?.userId;
    this.takeUser(socketId, userId);
    if (!this.shared || before === userId) return;
    const max = this.config.limits.maxConnectionsPerUser;
    if (await this.shared.take('user', userId, socketId, max)) {
      // released while Redis answered (the client hung up): give the shared slot back too
      if (this.slotOf(socketId)?.userId !== userId) this.shared.release('user', userId, socketId);
      return;
    }
    this.giveBack('userId', userId, socketId);
    throw this.refusal('per_user', max);
  }

  /** The deployment refused what the socket took on this node (its `address` or `userId`): gives the local slot back. */
  private giveBack(field: 'address' | 'userId', key: string, socketId: string): void {
    const slot = this.slotOf(socketId);
    if (slot?.[field] !== key) return;
    this.remove(field === 'address' ? this.byAddress : this.byUser, key, socketId);
    slot[field] = undefined;
    this.dropIfEmpty(socketId);
  }

  /** Counts a refusal and builds its error (the caller throws it). */
  private refusal(reason: 'per_ip' | 'per_user', max: number): ConnectionLimitError {
    this.metrics.connectionsRefused.inc({ reason });
    const what = reason === 'per_ip' ? 'from this address' : 'for this user';
    return new ConnectionLimitError(reason, `too many connections ${what} (at most ${max})`);
  }

  /** Frees every slot of the socket. Safe to call any number of times. */
  release(socketId: string): void {
    const session = this.sessions.get(socketId);
    const slot = session?.slot;
    if (!session || !slot) return;
    if (slot.userId && this.shared) this.shared.release('user', slot.userId, socketId);
    if (slot.address && this.shared) this.shared.release('ip', slot.address, socketId);
    if (slot.address) this.remove(this.byAddress, slot.address, socketId);
    if (slot.userId) this.remove(this.byUser, slot.userId, socketId);
    session.slot = undefined;
    this.slotCount--;
  }

  countForUser(userId: string): number {
    return this.byUser.get(userId)?.size ?? 0;
  }

  countForAddress(address: string): number {
    return this.byAddress.get(address)?.size ?? 0;
  }

  /** Sizes of the internal maps (tests assert they return to zero). */
  stats(): { sockets: number; addresses: number; users: number } {
    return { sockets: this.slotCount, addresses: this.byAddress.size, users: this.byUser.size };
  }

  private slotOf(socketId: string): ConnectionSlot | undefined {
    return this.sessions.get(socketId)?.slot;
  }

  /** The socket's slot, created on its session (a session is opened for a bare id: unit tests). */
  private slot(socketId: string): ConnectionSlot {
    const session = this.sessions.open(socketId);
    if (!session.slot) {
      session.slot = { address: undefined, userId: undefined, authenticated: false, since: Date.now() }; // every field in the object itself, none added later (a 40 B property store)
      this.slotCount++;
    }
    return session.slot;
  }

  private dropIfEmpty(socketId: string): void {
    const session = this.sessions.get(socketId);
    const slot = session?.slot;
    if (session && slot && !slot.address && !slot.userId) {
      session.slot = undefined;
      this.slotCount--;
    }
  }

  private add(map: Map<string, Set<string>>, key: string, socketId: string): void {
    let set = map.get(key);
    if (!set) {
      set = new Set();
      map.set(key, set);
    }
    set.add(socketId);
  }

  private remove(map: Map<string, Set<string>>, key: string, socketId: string): void {
    const set = map.get(key);
    if (!set) return;
    set.delete(socketId);
    if (!set.size) map.delete(key);
  }
}
