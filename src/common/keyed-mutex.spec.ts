import { KeyedMutex } from './keyed-mutex';

const tick = () => new Promise((r) => setImmediate(r));

describe('KeyedMutex', () => {
  it('serialises callers that share a key and frees memory afterwards', async () => {
    const m = new KeyedMutex();
    const order: string[] = [];
    const r1 = await m.acquire(['a']);
    const p2 = m.acquire(['a']).then((r) => {
      order.push('second');
      r();
    });
    await tick();
    order.push('first');
    r1();
    await p2;
    expect(order).toEqual(['first', 'second']);
    expect(m.size).toBe(0);
  });

  it('does not deadlock on overlapping key sets taken in different orders', async () => {
    const m = new KeyedMutex();
    const runs = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        m.acquire(i % 2 ? ['x', 'y', 'z'] : ['z', 'y', 'x']).then(async (r) => {
          await tick();
          r();
          return i;
        }),
      ),
    );
    expect(runs).toHaveLength(50);
    expect(m.size).toBe(0);
  });

  it('serves every key in call order, also when key sets overlap (a later caller never overtakes on a shared key)', async () => {
    const m = new KeyedMutex();
    const order: string[] = [];
    const held = await m.acquire(['a']);
    const first = m.acquire(['a', 'b']).then((r) => {
      order.push('first (a, b)');
      r();
    });
    const second = m.acquire(['b']).then((r) => {
      order.push('second (b)');
      r();
    });
    await tick();
    expect(order).toEqual([]); // 'b' is promised to the first caller, who waits for 'a'
    held();
    await Promise.all([first, second]);
    expect(order).toEqual(['first (a, b)', 'second (b)']);
    expect(m.size).toBe(0);
  });

  it('lets different keys run concurrently', async () => {
    const m = new KeyedMutex();
    const r1 = await m.acquire(['a']);
    const r2 = await m.acquire(['b']);
    r1();
    r2();
    expect(m.size).toBe(0);
  });
});
