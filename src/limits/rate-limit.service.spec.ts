import { ErrorCode, RateLimitedError } from '@sync/protocol';
import { loadConfig } from '../config/config.loader';
import { MetricsService } from '../metrics/metrics.service';
import { RateLimitService } from './rate-limit.service';

function service(env: Record<string, string>) {
  return new RateLimitService(loadConfig({ NODE_ENV: 'test', RATE_LIMIT_DISABLED: 'false', ...env }, '/nonexistent'), new MetricsService());
}

async function refused(taking: Promise<void>): Promise<RateLimitedError> {
  try {
    await taking;
  } catch (e) {
    if (e instanceof RateLimitedError) return e;
    throw e;
  }
  throw new Error('expected RATE_LIMITED');
}

describe('RateLimitService', () => {
  const t0 = 1_000_000;

  it('allows SYNC_RATE_LIMIT_MAX changes, then answers RATE_LIMITED with retryAfterMs', async () => {
    const rl = service({ SYNC_RATE_LIMIT_MAX: '10', SYNC_RATE_LIMIT_WINDOW_MS: '1000' });
    for (let i = 0; i < 10; i++) await rl.consume('a', 1, t0);
    const e = await refused(rl.consume('a', 1, t0));
    expect(e.code).toBe(ErrorCode.RATE_LIMITED);
    expect(e.toAck()).toMatchObject({ success: false, code: 'RATE_LIMITED', retryAfterMs: 100 });
    // refilled continuously: one change per 100 ms
    await rl.consume('a', 1, t0 + 100);
    await refused(rl.consume('a', 1, t0 + 150));
    rl.onModuleDestroy();
  });

  it('counts a batch by its size and takes nothing when refused', async () => {
    const rl = service({ SYNC_RATE_LIMIT_MAX: '10', SYNC_RATE_LIMIT_WINDOW_MS: '1000' });
    await rl.consume('a', 7, t0);
    const e = await refused(rl.consume('a', 5, t0));
    expect(e.retryAfterMs).toBe(200); // 2 more tokens at 10/s
    await rl.consume('a', 3, t0); // the refused batch took nothing
    await refused(rl.consume('a', 1, t0));
    rl.onModuleDestroy();
  });

  it('keeps users apart', async () => {
    const rl = service({ SYNC_RATE_LIMIT_MAX: '2', SYNC_RATE_LIMIT_WINDOW_MS: '1000' });
    await rl.consume('a', 2, t0);
    await refused(rl.consume('a', 1, t0));
    await rl.consume('b', 2, t0);
    rl.onModuleDestroy();
  });

  it('accepts a batch larger than the limit only on a full allowance, then makes the user wait it off', async () => {
    const rl = service({ SYNC_RATE_LIMIT_MAX: '10', SYNC_RATE_LIMIT_WINDOW_MS: '1000' });
    await rl.consume('a', 1, t0);
    expect((await refused(rl.consume('a', 25, t0))).retryAfterMs).toBe(100); // until the bucket is full again
    await rl.consume('a', 25, t0 + 100);
    // 15 in debt: 1.5 s until one change may pass
    expect((await refused(rl.consume('a', 1, t0 + 100))).retryAfterMs).toBe(1600);
    await rl.consume('a', 1, t0 + 1700);
    rl.onModuleDestroy();
  });

  it('does nothing with RATE_LIMIT_DISABLED (the development default)', async () => {
    const rl = new RateLimitService(loadConfig({ NODE_ENV: 'development', SYNC_RATE_LIMIT_MAX: '1' }, '/nonexistent'), new MetricsService());
    for (let i = 0; i < 100; i++) await rl.consume('a', 10);
    expect(rl.trackedUsers).toBe(0);
  });

  it('forgets users whose allowance has refilled (no unbounded growth)', async () => {
    const rl = service({ SYNC_RATE_LIMIT_MAX: '10', SYNC_RATE_LIMIT_WINDOW_MS: '1000' });
    for (let i = 0; i < 1000; i++) await rl.consume(`user-${i}`, 5, t0);
    expect(rl.trackedUsers).toBe(1000);
    rl.sweep(t0 + 400);
    expect(rl.trackedUsers).toBe(1000);
    rl.sweep(t0 + 500);
    expect(rl.trackedUsers).toBe(0);
    rl.onModuleDestroy();
  });

  it('treats a nonsensical count as one change', async () => {
    const rl = service({ SYNC_RATE_LIMIT_MAX: '2', SYNC_RATE_LIMIT_WINDOW_MS: '1000' });
    await rl.consume('a', NaN, t0);
    await rl.consume('a', -5, t0);
    await refused(rl.consume('a', 0, t0));
    rl.onModuleDestroy();
  });
});
