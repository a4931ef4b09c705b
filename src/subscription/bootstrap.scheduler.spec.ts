import { loadConfig } from '../config/config.loader';
import { SocketSessions } from '../common/socket-session';
import { BootstrapScheduler } from './bootstrap.scheduler';

const tick = () => new Promise((r) => setImmediate(r));

describe('BootstrapScheduler', () => {
  it('runs at most MAX_CONCURRENT_BOOTSTRAPS reads at once and hands freed slots to users in turn', async () => {
    const s = new BootstrapScheduler(loadConfig({ NODE_ENV: 'test', MAX_CONCURRENT_BOOTSTRAPS: '2' }, '/nonexistent'));
    const order: string[] = [];
    const gates: (() => void)[] = [];
    const read = (user: string, name: string) =>
      s.withSlot(user, async () => {
        order.push(name);
        await new Promise<void>((r) => gates.push(r));
      });
    const all = [...Array.from({ length: 10 }, (_, i) => read('mallory', `m${i}`)), read('alice', 'a0'), read('bob', 'b0')];
    await tick();
    expect(order).toEqual(['m0', 'm1']);
    expect(s.stats()).toMatchObject({ running: 2, waiting: 10 });
    gates.shift()!();
    await tick();
    gates.shift()!();
    await tick();
    gates.shift()!();
    await tick();
    // mallory's queue is one user in turn: alice and bob come right after her next read
    expect(order.slice(2)).toEqual(['m2', 'a0', 'b0']);
    while (gates.length) {
      gates.shift()!();
      await tick();
    }
    await Promise.all(all);
    expect(order).toHaveLength(12);
    expect(s.stats()).toMatchObject({ running: 0, waiting: 0 });
  });

  it("runs one socket's bootstraps one after another, each socket on its own", async () => {
    const sessions = new SocketSessions();
    sessions.open('s1');
    sessions.open('s2');
    const s = new BootstrapScheduler(loadConfig({ NODE_ENV: 'test' }, '/nonexistent'), sessions);
    const log: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    s.enqueue('s1', async () => {
      log.push('s1 first start');
      await gate;
      log.push('s1 first end');
    });
    s.enqueue('s1', async () => {
      log.push('s1 second');
    });
    s.enqueue('s2', async () => {
      throw new Error('boom'); // a failing bootstrap ends only itself
    });
    s.enqueue('s2', async () => {
      log.push('s2 after the failure');
    });
    for (let i = 0; i < 5; i++) await tick();
    expect(log).toEqual(['s1 first start', 's2 after the failure']);
    release();
    for (let i = 0; i < 5; i++) await tick();
    expect(log).toEqual(['s1 first start', 's2 after the failure', 's1 first end', 's1 second']);
    expect(s.stats().sockets).toBe(0);
  });
});
