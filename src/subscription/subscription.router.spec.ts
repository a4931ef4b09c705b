import type { Server } from 'socket.io';
import { compileQuery, type CompiledQuery } from '@sync/protocol/query';
import { loadConfig } from '../config/config.loader';
import { MetricsService } from '../health/metrics.service';
import { PermissionService } from '../permission/permission.service';
import type { FeedEntry } from '../sync/change-feed.repository';
import { SubscriptionRegistry } from './subscription.registry';
import { SubscriptionRouter } from './subscription.router';

function setup(budget = 100_000) {
  const registry = new SubscriptionRegistry();
  const metrics = new MetricsService();
  const router = new SubscriptionRouter(
    registry,
    new PermissionService(),
    loadConfig({ NODE_ENV: 'test', QUERY_MATCH_BUDGET: String(budget) }, '/nonexistent'),
    metrics,
  );
  const sockets = new Map<string, { data: { user: { id: string } } }>();
  const server = { sockets: { sockets } } as unknown as Server;
  const join = (socketId: string, userId: string, filter: string, args: unknown[] = [], query?: CompiledQuery) => {
    const user = { id: userId };
    sockets.set(socketId, { data: { user } });
    return registry.add(socketId, user as never, 'notes', filter, query ?? compileQuery(filter, args));
  };
  let pos = 0;
  const insert = (after: Record<string, unknown>): FeedEntry =>
    ({
      _id: ++pos,
      changeId: `c${pos}`,
      state: 'applied',
      collection: 'notes',
      documentId: String(after._id),
      operation: 'insert',
      after,
      before: null,
      createdAt: new Date(),
    }) as FeedEntry;
  const failures = async (reason: string) => (await metrics.subscriptionMatchFailures.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
  return { registry, router, server, join, insert, failures };
}

describe('SubscriptionRouter isolation', () => {
  it('a subscription whose predicate throws is dropped; every other socket still gets the change', async () => {
    const { registry, router, server, join, insert, failures } = setup();
    const good = compileQuery('');
    const poisoned = {
      ...good,
      test: () => {
        throw new Error('poisoned');
      },
    } as CompiledQuery;
    const bad = join('evil', 'mallory', 'x', [], poisoned);
    join('a', 'alice', '');
    join('b', 'bob', 'text CONTAINS "hi"');
    expect(new Set(router.route(insert({ _id: 'd1', text: 'hi there' }), server).inView)).toEqual(new Set(['a', 'b']));
    expect(registry.get('evil', bad.id)).toBeUndefined();
    expect(await failures('error')).toBe(1);
    expect(router.route(insert({ _id: 'd2', text: 'hi again' }), server).inView).toHaveLength(2);
  });

  it("patterns past the user's budget do not match (that change only); other users are unaffected", async () => {
    const { router, server, join, insert, failures } = setup(100_000);
    for (let i = 0; i < 5; i++) join(`m${i}`, 'mallory', 'text LIKE[c] $0', ['*' + 'a?'.repeat(100) + 'b']);
    join('a', 'alice', 'text LIKE[c] $0', ['*b']);
    const big = insert({ _id: 'big', text: 'a'.repeat(50_000) + 'b' });
    const r = router.route(big, server);
    expect(r.inView).toContain('a');
    expect(await failures('budget')).toBeGreaterThan(0);
    // a small document stays within budget: mallory's subscriptions match it
    const small = router.route(insert({ _id: 'small', text: 'a?'.repeat(100) + 'b' }), server);
    expect(small.inView).toEqual(expect.arrayContaining(['m0', 'a']));
  });

  it("many changes in one second cannot multiply a user's cost: the per-second budget runs out", async () => {
    const { router, server, join, insert, failures } = setup(100_000);
    join('m', 'mallory', 'text CONTAINS[c] $0', ['zzz']);
    join('a', 'alice', 'text BEGINSWITH $0', ['y']); // cheap: no search
    // fold 20,000 + search 3 × 20,000: ~80,000 units each, the second holds 400,000
    const doc = (i: number) => insert({ _id: `d${i}`, text: 'y'.repeat(20_000) });
    let t = 1_000_000_000;
    router.now = () => t;
    for (let i = 0; i < 4; i++) router.route(doc(i), server);
    expect(await failures('budget')).toBe(0);
    for (let i = 4; i < 20; i++) expect(router.route(doc(i), server).inView).toEqual(['a']); // alice: her own budget
    const refused = await failures('budget');
    expect(refused).toBeGreaterThan(10);
    t += 1000; // the next second: mallory's budget is full again
    router.route(doc(99), server);
    expect(await failures('budget')).toBe(refused);
  });
});
