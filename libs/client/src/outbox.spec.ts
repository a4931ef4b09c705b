import { Outbox, toWire } from './outbox';
import type { OutboxEntry } from './storage/storage.types';

const e = (seq: number, size = 10): OutboxEntry => ({
  seq,
  changeId: `c${seq}`,
  operation: 'insert',
  collection: 'tasks',
  documentId: `d${seq}`,
  data: { pad: 'x'.repeat(size) },
  timestamp: seq,
  createdAt: seq,
});

describe('Outbox', () => {
  it('batches are a prefix of durable entries, in order', () => {
    const o = new Outbox();
    o.load([e(3), e(1), e(2)]);
    o.add(e(4));
    o.add(e(5));
    o.markDurable('c5'); // durable, but after a non-durable one: must wait (order)
    expect(o.nextBatch(10, Infinity).map((x) => x.seq)).toEqual([1, 2, 3]);
    o.markDurable('c4');
    expect(o.nextBatch(10, Infinity).map((x) => x.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(o.nextBatch(2, Infinity).map((x) => x.seq)).toEqual([1, 2]);
  });

  it('limits a batch by bytes but always sends at least one change', () => {
    const o = new Outbox();
    o.load([e(1, 1000), e(2, 1000), e(3, 1000)]);
    const one = JSON.stringify(toWire(e(1, 1000))).length;
    expect(o.nextBatch(10, one * 2 + 40)).toHaveLength(2);
    expect(o.nextBatch(10, 5)).toHaveLength(1);
  });

  it('removes settled entries', () => {
    const o = new Outbox();
    o.load([e(1), e(2), e(3)]);
    o.remove(['c2', 'c1']);
    expect(o.size).toBe(1);
    expect(o.has('c3')).toBe(true);
    expect(o.nextBatch(10, Infinity).map((x) => x.seq)).toEqual([3]);
  });

  it('puts the wire form together (no data on a delete)', () => {
    expect(toWire({ ...e(1), operation: 'delete' })).toEqual({ changeId: 'c1', operation: 'delete', collection: 'tasks', documentId: 'd1', timestamp: 1 });
  });
});
