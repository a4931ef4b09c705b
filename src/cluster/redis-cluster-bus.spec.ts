import { Logger } from '@nestjs/common';
import { MetricsService } from '../health/metrics.service';
import type { FeedEntry } from '../sync/change-feed.repository';
import { encodeBatch } from './cluster.codec';
import { RecentPositions, redactRedisUrl, RedisClusterBus } from './redis-cluster-bus';

const entry = (id: number): FeedEntry => ({
  _id: id,
  changeId: `c${id}`,
  state: 'applied',
  collection: 'tasks',
  documentId: `d${id}`,
  operation: 'insert',
  after: { _id: `d${id}`, n: id },
  before: null,
  timestamp: 1,
  userId: 'u',
  serverTimestamp: 2,
  createdAt: new Date(2),
});

describe('RecentPositions', () => {
  it('remembers positions, refuses repeats, forgets the oldest beyond its capacity', () => {
    const r = new RecentPositions(3);
    expect([1, 2, 3].map((n) => r.add(n))).toEqual([true, true, true]);
    expect(r.add(2)).toBe(false);
    expect(r.add(4)).toBe(true); // forgets 1
    expect(r.has(1)).toBe(false);
    expect([2, 3, 4].every((n) => r.has(n))).toBe(true);
    expect(r.add(1)).toBe(true); // forgets 2
    expect(r.has(2)).toBe(false);
  });
});

describe('redactRedisUrl', () => {
  it('hides the password', () => {
    expect(redactRedisUrl('redis://:s3cret@cache:6380/0')).toBe('redis://:***@cache:6380/0');
    expect(redactRedisUrl('rediss://user:pw@host')).not.toContain('pw');
    expect(redactRedisUrl('redis://host:6379')).toBe('redis://host:6379');
  });
});

describe('RedisClusterBus without a server (never connected)', () => {
  let metrics: MetricsService;
  let bus: RedisClusterBus;
  const deliver = (b: RedisClusterBus, buf: Buffer) => (b as unknown as { onMessage(c: Buffer, m: Buffer): void }).onMessage(Buffer.from('ch'), buf);
  const value = async (name: string, labels?: Record<string, string>) => {
    const m = (await metrics.registry.getSingleMetric(name)!.get()).values;
    return m.find((v) => !labels || Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value;
  };

  beforeAll(() => Logger.overrideLogger(false)); // the drops log on purpose here
  beforeEach(() => {
    metrics = new MetricsService();
    // lazyConnect: nothing connects until onModuleInit, which these tests never call
    bus = new RedisClusterBus({ url: 'redis://127.0.0.1:1', channel: 'ch', nodeId: 'me', maxMessageBytes: 64 * 1024, metrics });
  });
  afterEach(() => bus.onModuleDestroy());

  it('publish while down neither throws nor queues: it counts the changes as not sent', async () => {
    expect(() => bus.publish([entry(1), entry(2)])).not.toThrow();
    expect(await value('sync_cluster_changes_dropped_total', { reason: 'bus_down' })).toBe(2);
    expect(await value('sync_cluster_bus_connected')).toBe(0);
    expect(bus.health()).toMatchObject({ kind: 'redis', status: 'down', nodeId: 'me', channel: 'ch', subscribed: false });
  });

  it('on receipt: ignores its own messages, delivers others once, survives garbage and a throwing handler', async () => {
    const got: number[][] = [];
    bus.onRemote((es) => got.push(es.map((e) => e._id)));
    deliver(bus, encodeBatch('me', [entry(1)], 1 << 20).messages[0]);
    deliver(bus, encodeBatch('other', [entry(2), entry(3)], 1 << 20).messages[0]);
    deliver(bus, encodeBatch('other', [entry(3), entry(4)], 1 << 20).messages[0]); // 3 already delivered
    deliver(bus, Buffer.from('garbage'));
    deliver(bus, Buffer.alloc(65 * 1024));
    bus.publish([entry(5)]); // applied here: delivered locally, never again from the bus
    deliver(bus, encodeBatch('other', [entry(5)], 1 << 20).messages[0]);
    expect(got).toEqual([[2, 3], [4]]);
    expect(await value('sync_cluster_changes_dropped_total', { reason: 'received_unparsable' })).toBe(1);
    expect(await value('sync_cluster_changes_dropped_total', { reason: 'received_too_large' })).toBe(1);
    bus.onRemote(() => {
      throw new Error('boom');
    });
    expect(() => deliver(bus, encodeBatch('other', [entry(6)], 1 << 20).messages[0])).not.toThrow();
  });
});
