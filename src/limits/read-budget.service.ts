import { Inject, Injectable } from '@nestjs/common';
import { LIMITS, RateLimitedError } from '@sync/protocol';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { MetricsService } from '../metrics/metrics.service';
import { RateLimitService, TokenLimit } from './rate-limit.service';
import type { SocketSession } from '../common/socket-session';

/**
 * What each read costs, in tokens of the read budget. A read's cost follows the work it can cause
 * on the database: a get_changes by the number of changes it may return (it scans up to 20 times
 * as many feed entries), a subscription by the bootstrap it starts.
 */
export const READ_COST = {
  getChanges: (limit: number) => 1 + Math.ceil(limit / 100),
  subscribe: 1,
  bootstrap: 20,
  unsubscribe: 1,
  /** An event from a socket that has not joined (refused, but it still cost an answer). */
  anonymous: 1,
} as const;

/** sync:get_changes requests one socket may have in flight at once. */
export const MAX_READS_IN_FLIGHT_PER_SOCKET = 4;

/**
 * The read budget: a token bucket per user (per address for a socket that has not joined yet),
 * READ_RATE_LIMIT_MAX tokens refilled over READ_RATE_LIMIT_WINDOW_MS, through the same
 * RateLimitService as the change rate limit (so whatever backs it, e.g. a store shared by the
 * nodes, backs this too). A read over budget is RATE_LIMITED with `retryAfterMs`; nothing of it
 * runs. Off with RATE_LIMIT_DISABLED (the default outside production), like the change limit.
 */
@Injectable()
export class ReadBudgetService {
  private readonly limit: TokenLimit;

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    private readonly rateLimit: RateLimitService,
    private readonly metrics: MetricsService,
  ) {
    this.limit = {
      name: 'reads',
      max: config.limits.readRateLimitMax,
      windowMs: config.limits.readRateLimitWindowMs,
      message: 'Too many reads (subscriptions, bootstraps, get_changes)',
    };
  }

  /**
   * Takes `cost` tokens from the user's budget (the address's when `userId` is undefined). With
   * `force` (the subscriptions of a sync:join, which must not fail the join) it never refuses and
   * leaves the budget in debt instead.
   */
  async charge(who: { userId?: string; address?: string }, cost: number, force = false): Promise<void> {
    const key = who.userId !== undefined ? `u:${who.userId}` : `a:${who.address ?? '?'}`;
    try {
      await this.rateLimit.consumeFrom(this.limit, key, cost, undefined, force);
    } catch (e) {
      if (e instanceof RateLimitedError) this.metrics.readsRefused.inc({ reason: 'budget' });
      throw e;
    }
  }

  /**
   * Runs `fn` unless the socket already has MAX_READS_IN_FLIGHT_PER_SOCKET reads running
   * (RATE_LIMITED). The count is on the socket's session (`readsInFlight`): nothing to release.
   */
  async exclusive<T>(session: Pick<SocketSession, 'readsInFlight'>, fn: () => Promise<T>): Promise<T> {
    if (session.readsInFlight >= MAX_READS_IN_FLIGHT_PER_SOCKET) {
      this.metrics.readsRefused.inc({ reason: 'in_flight' });
      throw new RateLimitedError(100, `At most ${MAX_READS_IN_FLIGHT_PER_SOCKET} get_changes at once per socket`);
    }
    session.readsInFlight++;
    try {
      return await fn();
    } finally {
      session.readsInFlight--;
    }
  }

  /** The cost of a get_changes asking for `limit` changes (the protocol's default when absent). */
  static getChangesCost(limit: number | undefined): number {
    return READ_COST.getChanges(Math.min(limit ?? LIMITS.defaultGetChangesLimit, LIMITS.maxGetChangesLimit));
  }
}
