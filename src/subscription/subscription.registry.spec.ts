import { compileQuery } from '@sync/protocol/query';
import { SocketSessions } from '../common/socket-session';
import { SubscriptionRegistry } from './subscription.registry';

const alice = { id: 'alice' } as never;
const bob = { id: 'bob' } as never;
const sig = (collection: string, filter: string, args: unknown[] = []) => JSON.stringify([collection, filter, args]);

describe('SubscriptionRegistry', () => {
  it("keeps a socket's subscriptions on its session and only indexes in the registry", () => {
    const sessions = new SocketSessions();
    const registry = new SubscriptionRegistry(sessions);
    const sub = registry.add('s1', alice, 'notes', 'done == false', compileQuery('done == false'), sig('notes', 'done == false'));
    expect(sessions.get('s1')?.subscriptions?.subs.get(sub.id)).toBe(sub);
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
});
