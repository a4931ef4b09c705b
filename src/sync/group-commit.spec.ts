import { ChangeAck } from '@sync/protocol';
import { GroupCommit } from './group-commit';

/** The queue's rules, on a fake apply (the e2e suite test/group-commit.e2e-spec.ts runs the real write path). */
describe('GroupCommit', () => {
  const ack = (n: number): ChangeAck => ({ success: true, changeId: `c${n}`, timestamp: n, cursor: `p${n}` });

  it('changes arriving in one turn of the event loop make one group, answered each on its own ack', async () => {
    const calls: { items: number[]; kind: string }[] = [];
    const q = new GroupCommit<number>(
      () => 500,
      (items, kind) => {
        calls.push({ items, kind });
        return Promise.resolve(items.map(ack));
      },
    );
    const acks = await Promise.all([1, 2, 3, 4, 5].map((n) => q.push(n)));
    expect(calls).toEqual([{ items: [1, 2, 3, 4, 5], kind: 'group' }]);
    expect(acks.map((a) => a.changeId)).toEqual(['c1', 'c2', 'c3', 'c4', 'c5']);
  });

  it('a lone change is applied alone, without waiting for anything', async () => {
    const calls: number[][] = [];
    const q = new GroupCommit<number>(
      () => 500,
      (items) => {
        calls.push(items);
        return Promise.resolve(items.map(ack));
      },
    );
    await expect(q.push(7)).resolves.toMatchObject({ changeId: 'c7' });
    expect(calls).toEqual([[7]]);
  });

  it('while two groups are in flight the queue fills; the next group takes what queued, in arrival order, up to the largest size', async () => {
    const calls: number[][] = [];
    const release: (() => void)[] = [];
    const q = new GroupCommit<number>(
      () => 3,
      (items) => {
        calls.push(items);
        return new Promise((resolve) => release.push(() => resolve(items.map(ack))));
      },
    );
    const first = [1, 2, 3, 4, 5].map((n) => q.push(n)); // two groups: [1,2,3] and [4,5]
    await new Promise((r) => setImmediate(r));
    expect(calls).toEqual([
      [1, 2, 3],
      [4, 5],
    ]);
    const later = [6, 7, 8, 9].map((n) => q.push(n)); // both groups busy: queued
    await new Promise((r) => setImmediate(r));
    expect(calls).toHaveLength(2);
    release[0]();
    await Promise.all(first.slice(0, 3));
    await new Promise((r) => setImmediate(r));
    expect(calls[2]).toEqual([6, 7, 8]);
    release[1]();
    release[2]();
    await Promise.all(first);
    await new Promise((r) => setImmediate(r));
    expect(calls[3]).toEqual([9]);
    release[3]();
    expect((await Promise.all(later)).map((a) => a.changeId)).toEqual(['c6', 'c7', 'c8', 'c9']);
  });
});
