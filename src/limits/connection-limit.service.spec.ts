import { ErrorCode } from '@sync/protocol';
import { loadConfig } from '../config/config.loader';
import { MetricsService } from '../metrics/metrics.service';
import { ConnectionLimitError, ConnectionLimitService } from './connection-limit.service';

function service(perUser = '2', perIp = '3') {
  const metrics = new MetricsService();
  const config = loadConfig({ NODE_ENV: 'test', MAX_CONNECTIONS_PER_USER: perUser, MAX_CONNECTIONS_PER_IP: perIp }, '/nonexistent');
  return { limits: new ConnectionLimitService(config, metrics), metrics };
}

function refusal(fn: () => void): ConnectionLimitError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConnectionLimitError) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

describe('ConnectionLimitService', () => {
  it('refuses the N+1th socket of an address, and accepts again after a release', async () => {
    const { limits, metrics } = service();
    for (const id of ['s1', 's2', 's3']) limits.takeAddress(id, '1.2.3.4');
    const e = refusal(() => limits.takeAddress('s4', '1.2.3.4'));
    expect(e.code).toBe(ErrorCode.RATE_LIMITED);
    expect(e.reason).toBe('per_ip');
    expect(e.message).toBe('too many connections from this address (at most 3)');
    expect(e.toAck()).toMatchObject({ code: 'RATE_LIMITED', retryAfterMs: expect.any(Number) });
    limits.takeAddress('s5', '5.6.7.8');
    limits.release('s2');
    limits.takeAddress('s4', '1.2.3.4');
    expect(limits.countForAddress('1.2.3.4')).toBe(3);
    expect((await metrics.connectionsRefused.get()).values).toEqual([expect.objectContaining({ labels: { reason: 'per_ip' }, value: 1 })]);
  });

  it('refuses the N+1th socket of a user; taking the same slot twice counts once', () => {
    const { limits } = service();
    limits.takeUser('s1', 'alice');
    limits.takeUser('s1', 'alice');
    limits.takeUser('s2', 'alice');
    expect(limits.countForUser('alice')).toBe(2);
    expect(refusal(() => limits.takeUser('s3', 'alice')).message).toBe('too many connections for this user (at most 2)');
    limits.takeUser('s3', 'bob');
  });

  it('returns every map to empty after releases (idempotent)', () => {
    const { limits } = service('10', '10');
    for (let i = 0; i < 100; i++) {
      limits.takeAddress(`s${i}`, `10.0.0.${i % 50}`);
      limits.takeUser(`s${i}`, `user-${i % 40}`);
    }
    expect(limits.stats()).toEqual({ sockets: 100, addresses: 50, users: 40 });
    for (let i = 0; i < 100; i++) {
      limits.release(`s${i}`);
      limits.release(`s${i}`);
    }
    expect(limits.stats()).toEqual({ sockets: 0, addresses: 0, users: 0 });
  });

  it('keeps nothing for a refused socket', () => {
    const { limits } = service();
    for (const id of ['a', 'b', 'c']) limits.takeAddress(id, '1.1.1.1');
    refusal(() => limits.takeAddress('d', '1.1.1.1'));
    expect(limits.stats().sockets).toBe(3);
  });

  it('lets an authenticated socket evict the oldest unauthenticated one of a full address', () => {
    const { limits } = service('5', '3');
    limits.takeAddress('anon1', '1.1.1.1');
    limits.takeAddress('anon2', '1.1.1.1');
    limits.takeAddress('joined', '1.1.1.1');
    limits.markAuthenticated('joined');
    expect(refusal(() => limits.takeAddress('anon3', '1.1.1.1')).reason).toBe('per_ip');
    expect(limits.takeAddress('user1', '1.1.1.1', true)).toBe('anon1');
    expect(limits.takeAddress('user2', '1.1.1.1', true)).toBe('anon2');
    expect(refusal(() => limits.takeAddress('user3', '1.1.1.1', true)).reason).toBe('per_ip');
    expect(limits.countForAddress('1.1.1.1')).toBe(3);
    expect(limits.stats().sockets).toBe(3);
  });
});
