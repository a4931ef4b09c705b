import { Inject, Injectable, OnModuleDestroy } from '@nestjs/common';
import { RateLimitedError } from '@sync/protocol';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';

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
 */
@Injectable()
export class RateLimitService implements OnModuleDestroy {
  private readonly buckets = new Map<string, Bucket>();
  private sweeper?: NodeJS.Timeout;

  private readonly changes: TokenLimit;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    this.changes = { name: 'changes', max: config.limits.rateLimitMax, windowMs: config.limits.rateLimitWindowMs };
  }

  /**
   * Takes `count` changes from the user's allowance; throws RateLimitedError (with retryAfterMs)
   * and takes nothing when the allowance is too small.
   */
  consume(userId: string, count: number, now = Date.now()): void {
    this.consumeFrom(this.changes, userId, count, now);
  }

  /**
   * The same, from `key`'s bucket of another limit (the read budget: ReadBudgetService). With
   * `force`, the tokens are taken even when too few are left (a debt of at most one bucket), for
   * work that must not be refused but must still slow what follows.
   */
  consumeFrom(limit: TokenLimit, key: string, count: number, now = Date.now(), force = false): void {
    if (this.config.limits.rateLimitDisabled) return;
    const max = limit.max;
    const rate = max / limit.windowMs;
    const id = limit === this.changes ? key : `${limit.name}\u0000${key}`;
    const n = Number.isFinite(count) && count > 0 ? Math.ceil(count) : 1;
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

  onModuleDestroy(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    this.buckets.clear();
  }
}
