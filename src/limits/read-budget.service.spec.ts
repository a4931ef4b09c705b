import { RateLimitedError } from '@sync/protocol';
import { loadConfig } from '../config/config.loader';
import { MetricsService } from '../metrics/metrics.service';
import { RateLimitService } from './rate-limit.service';
import { SocketSession } from '../common/socket-session';
import { MAX_READS_IN_FLIGHT_PER_SOCKET, READ_COST, ReadBudgetService } from './read-budget.service';

function setup(env: Record<string, string> = {}) {
  const config = loadConfig(
    { NODE_ENV: 'test', RATE_LIMIT_DISABLED: 'false', READ_RATE_LIMIT_MAX: '100', READ_RATE_LIMIT_WINDOW_MS: '1000', SYNC_RATE_LIMIT_MAX: '5', ...env },
    '/nonexistent',
  );
  const metrics = new MetricsService();
  const rl = new RateLimitService(config, metrics);
  return { rl, reads: new ReadBudgetService(config, rl, metrics) };
}

describe('ReadBudgetService', () => {
  it('charges reads by cost per user, apart from the change limit, and answers RATE_LIMITED with retryAfterMs and its own sentence', async () => {
    const { rl, reads } = setup();
    for (let i = 0; i < 4; i++) await reads.charge({ userId: 'u' }, READ_COST.subscribe + READ_COST.bootstrap); // 84
    let err: unknown;
    try {
      await reads.charge({ userId: 'u' }, ReadBudgetService.getChangesCost(5000)); // 51 more
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RateLimitedError);
    expect((err as RateLimitedError).toAck()).toMatchObject({ code: 'RATE_LIMITED', retryAfterMs: expect.any(Number) });
    expect((err as Error).message).toMatch(/Too many reads/);
    await reads.charge({ userId: 'v' }, 100); // another user: a full budget
    await rl.consume('u', 5); // the change limit is another bucket
    rl.onModuleDestroy();
  });

  it('keys sockets that have not joined by address', async () => {
    const { rl, reads } = setup();
    await reads.charge({ address: '10.0.0.1' }, 100);
    await expect(reads.charge({ address: '10.0.0.1' }, 1)).rejects.toThrow(RateLimitedError);
    await reads.charge({ address: '10.0.0.2' }, 1);
    await reads.charge({ userId: '10.0.0.1' }, 1); // a user named like an address is another key
    rl.onModuleDestroy();
  });

  it("a forced charge (a join's subscriptions) never refuses, and leaves a debt of at most one budget", async () => {
    const { rl, reads } = setup();
    await reads.charge({ userId: 'u' }, 90);
    await reads.charge({ userId: 'u' }, 500, true);
    const e = await (async () => {
      try {
        await reads.charge({ userId: 'u' }, 1);
      } catch (err) {
        return err as RateLimitedError;
      }
      throw new Error('expected RATE_LIMITED');
    })();
    // -100 tokens at 100 per second: 1 token back after 1.01 s
    expect(e.retryAfterMs).toBeGreaterThan(1000);
    expect(e.retryAfterMs).toBeLessThanOrEqual(1010);
    rl.onModuleDestroy();
  });

  it('costs a get_changes by its limit', () => {
    expect(ReadBudgetService.getChangesCost(undefined)).toBe(6);
    expect(ReadBudgetService.getChangesCost(100)).toBe(2);
    expect(ReadBudgetService.getChangesCost(5000)).toBe(51);
    expect(ReadBudgetService.getChangesCost(1e9)).toBe(51);
  });

  it(`lets a socket have at most ${MAX_READS_IN_FLIGHT_PER_SOCKET} reads in flight`, async () => {
    const { reads } = setup();
    const [s1, s2] = [new SocketSession('s1'), new SocketSession('s2')];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const running = Array.from({ length: MAX_READS_IN_FLIGHT_PER_SOCKET }, () => reads.exclusive(s1, () => gate));
    await expect(reads.exclusive(s1, async () => 1)).rejects.toBeInstanceOf(RateLimitedError);
    await expect(reads.exclusive(s2, async () => 2)).resolves.toBe(2);
    release();
    await Promise.all(running);
    await expect(reads.exclusive(s1, async () => 3)).resolves.toBe(3);
  });
});
