import { compileQuery } from '@sync/protocol/query';
import { SocketSessions } from '../common/socket-session';
import { SubscriptionRegistry, subscriptionsOf } from './subscription.registry';

const alice = { id: 'alice' } as never;
const bob = { id: 'bob' } as never;
const sig = (collection: string, filter: string, args: unknown[] = []) => JSON.stringify([collection, filter, args]);

describe('SubscriptionRegistry', () => {
  it("keeps a socket's subscriptions on its session and only indexes in the registry", () => {
    const sessions = new SocketSessions();
    const registry = new SubscriptionRegistry(sessions);
    const sub = registry.add('s1', alice, 'notes', 'done == false', compileQuery('done == false'), sig('notes', 'done == false'));
    const held = [...subscriptionsOf(sessions.get('s1')?.subscriptions as never)];
    expect(held).toHaveLength(1);
    expect(held[0]).toBe(sub);
    expect(registry.get('s1', sub.id)).toBe(sub);
    registry.drop('s1');
    expect(sessions.get('s1')?.subscriptions).toBeUndefined();
    expect(registry.stats()).toEqual({ sockets: 0, collections: 0, subscriptions: 0, unsubscribed: 0, queries: 0 });
  });

  it('shares one compiled query between identical subscriptions of any users, until the last one goes', () => {
    const registry = new SubscriptionRegistry(new SocketSessions());
    const f = 'status == $0';
    const a = registry.add('s1', alice, 'notes', f, compileQuery(f, ['open']), sig('notes', f, ['open']));
    const b = registry.add('s2', bob, 'notes', f, compileQuery(f, ['open']), sig('notes', f, ['open']));
    const other = registry.add('s3', bob, 'notes', f, compileQuery(f, ['closed']), sig('notes', f, ['closed']));
    expect(b.query).toBe(a.query);
    expect(other.query).not.toBe(a.query);
    expect(registry.stats().queries).toBe(2);
    registry.remove(a);
    expect(registry.stats().queries).toBe(2);
    registry.drop('s2');
    registry.drop('s3');
    expect(registry.stats()).toMatchObject({ queries: 0, subscriptions: 0 });
  });

  it('gives a shared query back once per subscription, however often it is removed', () => {
    const registry = new SubscriptionRegistry(new SocketSessions());
    const f = 'status == $0';
    const a = registry.add('s1', alice, 'notes', f, compileQuery(f, ['open']), sig('notes', f, ['open']));
    const b = registry.add('s2', bob, 'notes', f, compileQuery(f, ['open']), sig('notes', f, ['open']));
    registry.remove(a);
    registry.remove(a);
    registry.drop('s1');
    expect(registry.stats().queries).toBe(1);
    // the query b holds is still the shared one: a third identical subscription reuses it
    const c = registry.add('s3', alice, 'notes', f, compileQuery(f, ['open']), sig('notes', f, ['open']));
    expect(c.query).toBe(b.query);
    registry.drop('s2');
    registry.drop('s3');
    expect(registry.stats().queries).toBe(0);
  });

  it('never shares a query that names %user (bound per user)', () => {
    const registry = new SubscriptionRegistry(new SocketSessions());
    const f = 'owner == %user.id';
    const a = registry.add('s1', alice, 'notes', f, compileQuery(f, [], { user: { id: 'alice' } }), sig('notes', f));
    const b = registry.add('s2', bob, 'notes', f, compileQuery(f, [], { user: { id: 'bob' } }), sig('notes', f));
    expect(b.query).not.toBe(a.query);
    expect(a.query.test({ owner: 'alice' })).toBe(true);
    expect(b.query.test({ owner: 'alice' })).toBe(false);
    expect(registry.stats().queries).toBe(0);
  });

  it('keeps count, get, list and routing right from one subscription to many and back (array, then Map)', () => {
    const registry = new SubscriptionRegistry(new SocketSessions());
    const subs = Array.from({ length: 20 }, (_, i) => registry.add('s1', alice, 'notes', `n == ${i}`, compileQuery(`n == ${i}`), sig('notes', `n == ${i}`)));
    expect(registry.count('s1')).toBe(20);
    expect(registry.list('s1')).toEqual(subs);
    for (const sub of subs) expect(registry.get('s1', sub.id)).toBe(sub);
    for (const sub of subs.filter((_, i) => i % 2 === 0)) registry.remove(sub);
    const left = subs.filter((_, i) => i % 2 === 1);
    expect(registry.count('s1')).toBe(10);
    expect(registry.list('s1')).toEqual(left);
    expect(registry.get('s1', subs[0].id)).toBeUndefined();
    const hits: string[] = [];
    registry.matching('notes', { _id: 'x', n: 3 } as never, (s) => hits.push(s.id));
    expect(hits).toEqual([subs[3].id]);
    registry.clear('s1');
    expect(registry.count('s1')).toBe(0);
    expect(registry.has('s1')).toBe(true);

    const a = registry.add('s2', bob, 'notes', '', compileQuery(''), sig('notes', ''));
    const b = registry.add('s2', bob, 'notes', 'n == 1', compileQuery('n == 1'), sig('notes', 'n == 1'));
    registry.remove(a);
    registry.remove(a); // twice: nothing more goes
    expect(registry.list('s2')).toEqual([b]);
    expect(registry.get('s2', a.id)).toBeUndefined();
    registry.remove(b);
    expect(registry.count('s2')).toBe(0);
    expect(registry.stats()).toMatchObject({ subscriptions: 0, queries: 0 });
  });
});
