import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';

/** How long a bucket update may take before the caller falls back to its node's own bucket. */
export const REDIS_BUCKET_TIMEOUT_MS = 500;

/**
 * Token buckets in Redis (REDIS_URL), so that a rate limit holds for the deployment, not per node:
 * one hash per bucket (`<prefix>:limits:rate:<limit>:<key>`, fields `t` tokens and `at` last update
 * in ms), read, refilled and taken in one Lua script, with the same rules as RateLimitService's
 * local bucket (an oversized batch passes on a full bucket and leaves a debt; a forced take leaves a
 * debt of at most one bucket). A full bucket is the same as no bucket, so each key expires when it
 * would be full again: Redis holds only the users who used part of their allowance recently.
 *
 * The clock is Redis's (TIME), so nodes with skewed clocks share one refill; a caller may pass its
 * own `now` instead (tests). One key per script call: works on Redis Cluster too.
 *
 * `take` rejects when Redis does not answer (down, or slower than REDIS_BUCKET_TIMEOUT_MS): the caller
 * falls back to a local bucket, it never waits for Redis to come back.
 */
export class RedisTokenBuckets {
  private readonly redis: Redis;

  constructor(
    url: string,
    private readonly prefix: string,
  ) {
    this.redis = new Redis(url, {
      lazyConnect: true,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      commandTimeout: REDIS_BUCKET_TIMEOUT_MS,
      connectionName: `sync-rate-${randomBytes(3).toString('hex')}`,
    });
    this.redis.on('error', () => undefined); // the caller counts and reports the failures
    this.redis.defineCommand('takeTokens', { numberOfKeys: 1, lua: TAKE_TOKENS_SCRIPT });
  }

  /** Connects (a failure is not fatal: takes fail, and ioredis keeps reconnecting). */
  async start(): Promise<void> {
    await this.redis.connect().catch(() => undefined);
  }

  /** True while the connection is up: otherwise a take would fail at once, so callers skip it. */
  get ready(): boolean {
    return this.redis.status === 'ready';
  }

  /**
   * Takes `n` tokens of the bucket `limit`/`key` (`max` tokens, refilled at `max` per `windowMs`).
   * Resolves 0 when taken, else the milliseconds until they could be (nothing taken).
   */
  async take(limit: string, key: string, max: number, windowMs: number, n: number, force: boolean, now?: number): Promise<number> {
    const r = await (this.redis as Redis & { takeTokens(k: string, ...a: (string | number)[]): Promise<number> }).takeTokens(
      `${this.prefix}:limits:rate:${limit}:${key}`,
      max,
      windowMs,
      n,
      force ? 1 : 0,
      now === undefined ? '' : Math.floor(now),
    );
    return Number(r);
  }

  close(): void {
    this.redis.disconnect();
  }
}

/**
 * KEYS[1] the bucket; ARGV: max, windowMs, n, force (1/0), now in ms ('' = Redis TIME).
 * Returns 0 (taken) or the wait in ms (nothing taken). Tokens are stored with 17 significant digits.
 */
const TAKE_TOKENS_SCRIPT = `
local max = tonumber(ARGV[1])
local rate = max / tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local force = ARGV[4] == '1'
local now = tonumber(ARGV[5])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local tokens = max
local v = redis.call('HMGET', KEYS[1], 't', 'at')
if v[1] and v[2] then
  tokens = math.min(max, tonumber(v[1]) + math.max(0, now - tonumber(v[2])) * rate)
end
local full = tokens >= max
local fits = tokens >= n or (full and n > max)
if fits or force then
  local left = tokens - n
  if not fits then left = math.max(left, -max) end
  redis.call('HSET', KEYS[1], 't', string.format('%.17g', left), 'at', string.format('%d', now))
  redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((max - left) / rate)))
  return 0
end
local need = n
if n > max then need = max end
return math.max(1, math.ceil((need - tokens) / rate))
`;
