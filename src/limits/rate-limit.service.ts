import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { RateLimitedError } from '@sync/protocol';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { MetricsService } from '../metrics/metrics.service';
import { RedisTokenBuckets } from './redis-token-bucket';

interface Bucket {
  /** Changes the user may still send; negative while a batch larger than the limit is paid off. */
  tokens: number;
  at: number;
  /** The limit this bucket belongs to (max and rate), for the sweep. */
  limit: TokenLimit;
}

/** A named token-bucket limit: `max` tokens, refilled continuously at `max` per `windowMs`. */
export interface TokenLimit {
  /** Keeps the keys of different limits apart ('changes', 'reads'). */
  readonly name: string;
  readonly max: number;
  readonly windowMs: number;
  /** The RATE_LIMITED sentence (default: about changes). */
  readonly message?: string;
}

/**
 * Per-user change rate limit: a token bucket holding SYNC_RATE_LIMIT_MAX changes, refilled
 * continuously at SYNC_RATE_LIMIT_MAX per SYNC_RATE_LIMIT_WINDOW_MS. A batch takes its size.
 *
 * A batch larger than the whole allowance would otherwise never pass: it is accepted when the bucket
 * is full and leaves it in debt, so the user's average rate still never exceeds the limit.
 *
 * A full bucket is the same as no bucket, so an entry is deleted as soon as it would be full again
 * (swept every window): memory holds only users who sent changes in the last window.
 *
 * With REDIS_URL the buckets live in Redis (RedisTokenBuckets, same rules), so a user's allowance is
 * one for the whole deployment, however the user's sockets are spread over the nodes. When Redis does
 * not answer, the node falls back to its own local bucket for that call (counted in
 * `sync_rate_limit_fallback_total`): a Redis outage never blocks or refuses changes.
 */
@Injectable()
export class RateLimitService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('RateLimits');
  private readonly buckets = new Map<string, Bucket>();
  private sweeper?: NodeJS.Timeout;
  /** With REDIS_URL: the buckets shared by every node. */
  private shared?: RedisTokenBuckets;
  /** The latest Redis check of each bucket still waiting for its answer (one entry per busy key). */
  private readonly inFlight = new Map<string, Promise<number>>();
  /** Whether the current Redis outage was logged (once per outage). */
  private warned = false;

  private readonly changes: TokenLimit;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly metrics: MetricsService,
  ) {
    this.changes = { name: 'changes', max: config.limits.rateLimitMax, windowMs: config.limits.rateLimitWindowMs };
  }

  /** With REDIS_URL (and the limits on), the buckets are shared by every node. */
  async onModuleInit(): Promise<void> {
    const url = this.config.scale.redisUrl;
    if (!url || this.config.limits.rateLimitDisabled) return;
    const shared = new RedisTokenBuckets(url, this.config.scale.redisChannelPrefix);
    await shared.start();
    this.shared = shared;
  }

  /**
   * Takes `count` changes from the user's allowance; rejects with RateLimitedError (with
   * retryAfterMs) and takes nothing when the allowance is too small. `now` (tests) defaults to the
   * local clock, or Redis's clock for the shared buckets.
   */
  consume(userId: string, count: number, now?: number): Promise<void> {
    return this.consumeFrom(this.changes, userId, count, now);
  }

  /**
   * The same, from `key`'s bucket of another limit (the read budget: ReadBudgetService). With
   * `force`, the tokens are taken even when too few are left (a debt of at most one bucket), for
   * work that must not be refused but must still slow what follows.
   */
  async consumeFrom(limit: TokenLimit, key: string, count: number, now?: number, force = false): Promise<void> {
    if (this.config.limits.rateLimitDisabled) return;
    const n = Number.isFinite(count) && count > 0 ? Math.ceil(count) : 1;
    const shared = this.shared;
    if (shared) {
      const id = `${limit.name}\u0000${key}`;
      const earlier = this.inFlight.get(id); // the check of this bucket sent before this one, if unanswered
      let wait: number | undefined;
      if (shared.ready) {
        const taking = shared.take(limit.name, key, limit.max, limit.windowMs, n, force, now);
        this.inFlight.set(id, taking);
        try {
          wait = await taking;
          this.warned = false;
        } catch (e) {
          this.warnOnce(`rate limit check in Redis failed (${(e as Error).message}): counting per node until it answers`);
        } finally {
          if (this.inFlight.get(id) === taking) this.inFlight.delete(id);
        }
      } else this.warnOnce('Redis is unreachable: rate limits count per node until it is back');
      if (wait !== undefined) {
        if (wait > 0) throw new RateLimitedError(wait, limit.message);
        return;
      }
      // answers keep the order of the requests: a fallback first waits for the earlier check's answer
      if (earlier) await earlier.catch(() => undefined);
      this.metrics.rateLimitFallbacks.inc({ limit: limit.name });
    }
    this.consumeLocal(limit, key, n, now ?? Date.now(), force);
  }

  /** The node's own bucket (no Redis, or Redis not answering). */
  private consumeLocal(limit: TokenLimit, key: string, n: number, now: number, force: boolean): void {
    const max = limit.max;
    const rate = max / limit.windowMs;
    const id = limit === this.changes ? key : `${limit.name}\u0000${key}`;
    const bucket = this.buckets.get(id);
    const tokens = bucket ? Math.min(max, bucket.tokens + (now - bucket.at) * rate) : max;
    const full = tokens >= max;
    if (tokens >= n || (full && n > max) || force) {
      const left = tokens >= n || (full && n > max) ? tokens - n : Math.max(tokens - n, -max); // a forced debt: one bucket at most
      this.buckets.set(id, { tokens: left, at: now, limit });
      this.ensureSweeper();
      return;
    }
    const need = n > max ? max : n; // an oversized batch waits for a full bucket
    throw new RateLimitedError(Math.max(1, Math.ceil((need - tokens) / rate)), limit.message);
  }

  /** Users with a partly used allowance (for tests and /stats). */
  get trackedUsers(): number {
    return this.buckets.size;
  }

  /** Deletes every bucket that has refilled completely. */
  sweep(now = Date.now()): void {
    for (const [id, b] of this.buckets) {
      if (b.tokens + (now - b.at) * (b.limit.max / b.limit.windowMs) >= b.limit.max) this.buckets.delete(id);
    }
    if (!this.buckets.size && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  private ensureSweeper(): void {
    if (this.sweeper) return;
    this.sweeper = setInterval(() => this.sweep(), Math.max(1000, Math.min(this.config.limits.rateLimitWindowMs, 60_000)));
    this.sweeper.unref();
  }

  private warnOnce(message: string): void {
    if (this.warned) return;
    this.warned = true;
    this.logger.warn(message);
  }

  onModuleDestroy(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    this.buckets.clear();
    this.shared?.close();
    this.shared = undefined;
  }
}
