import { Inject, Injectable } from '@nestjs/common';
import { RateLimitedError } from '@sync/protocol';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { MetricsService } from '../metrics/metrics.service';

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

interface Slot {
  address?: string;
  userId?: string;
  since: number;
}

/**
 * Live connections per user and per client address (MAX_CONNECTIONS_PER_USER,
 * MAX_CONNECTIONS_PER_IP). Every count is a set of socket ids, so taking a slot twice is harmless and
 * releasing is idempotent; an empty set is deleted at once, so the maps only hold what is connected.
 */
@Injectable()
export class ConnectionLimitService {
  private readonly slots = new Map<string, Slot>();
  private readonly byAddress = new Map<string, Set<string>>();
  private readonly byUser = new Map<string, Set<string>>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly metrics: MetricsService,
  ) {}

  /** Counts `socketId` for `address`; throws ConnectionLimitError (nothing taken) when the address is full. */
  takeAddress(socketId: string, address: string): void {
    const slot = this.slot(socketId);
    if (slot.address === address) return;
    const set = this.byAddress.get(address);
    const max = this.config.limits.maxConnectionsPerIp;
    if (set && set.size >= max) {
      this.dropIfEmpty(socketId);
      this.metrics.connectionsRefused.inc({ reason: 'per_ip' });
      throw new ConnectionLimitError('per_ip', `too many connections from this address (at most ${max})`);
    }
    if (slot.address) this.remove(this.byAddress, slot.address, socketId);
    this.add(this.byAddress, address, socketId);
    slot.address = address;
  }

  /** Counts `socketId` for `userId` (moving it from another user); throws when the user is full. */
  takeUser(socketId: string, userId: string): void {
    const slot = this.slot(socketId);
    if (slot.userId === userId) return;
    const set = this.byUser.get(userId);
    const max = this.config.limits.maxConnectionsPerUser;
    if (set && set.size >= max) {
      this.dropIfEmpty(socketId);
      this.metrics.connectionsRefused.inc({ reason: 'per_user' });
      throw new ConnectionLimitError('per_user', `too many connections for this user (at most ${max})`);
    }
    if (slot.userId) this.remove(this.byUser, slot.userId, socketId);
    this.add(this.byUser, userId, socketId);
    slot.userId = userId;
  }

  /** Frees every slot of the socket. Safe to call any number of times. */
  release(socketId: string): void {
    const slot = this.slots.get(socketId);
    if (!slot) return;
    if (slot.address) this.remove(this.byAddress, slot.address, socketId);
    if (slot.userId) this.remove(this.byUser, slot.userId, socketId);
    this.slots.delete(socketId);
  }

  /** Releases every socket for which `isLive` is false and that is older than `minAgeMs` (a safety net). */
  sweep(isLive: (socketId: string) => boolean, minAgeMs: number, now = Date.now()): number {
    let n = 0;
    for (const [id, slot] of this.slots) {
      if (now - slot.since >= minAgeMs && !isLive(id)) {
        this.release(id);
        n++;
      }
    }
    return n;
  }

  countForUser(userId: string): number {
    return this.byUser.get(userId)?.size ?? 0;
  }

  countForAddress(address: string): number {
    return this.byAddress.get(address)?.size ?? 0;
  }

  /** Sizes of the internal maps (tests assert they return to zero). */
  stats(): { sockets: number; addresses: number; users: number } {
    return { sockets: this.slots.size, addresses: this.byAddress.size, users: this.byUser.size };
  }

  private slot(socketId: string): Slot {
    let slot = this.slots.get(socketId);
    if (!slot) {
      slot = { since: Date.now() };
      this.slots.set(socketId, slot);
    }
    return slot;
  }

  private dropIfEmpty(socketId: string): void {
    const slot = this.slots.get(socketId);
    if (slot && !slot.address && !slot.userId) this.slots.delete(socketId);
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
