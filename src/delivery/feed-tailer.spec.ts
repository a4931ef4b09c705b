import { Logger } from '@nestjs/common';
import type { FeedEntry } from '../feed/change-feed.repository';
import { FeedSource, FeedTailer, Offered } from './feed-tailer';

/**
 * The tailer's ordering rules against an in-memory feed with the same contract as ChangeFeedService's
 * walk (applied entries in order, stopping at a pending entry or a hole). The walk itself, on the real
 * database, is covered by the e2e suites (multinode-convergence, cluster, change-feed).
 */
class MemoryFeed implements FeedSource {
  readonly entries = new Map<number, FeedEntry>();
  reads = 0;
  highWaterReads = 0;
  head(): Promise<number> {
    let p = 0;
    while (this.entries.get(p + 1) && this.entries.get(p + 1)!.state !== 'pending') p++;
    return Promise.resolve(p);
  }
  highWater(): Promise<number> {
    this.highWaterReads++;
    return Promise.resolve(Math.max(0, ...this.entries.keys()));
  }
  tail(after: number, maxScan: number): Promise<{ entries: FeedEntry[]; position: number }> {
    this.reads++;
    const out: FeedEntry[] = [];
    let pos = after;
    for (let n = 0; n < maxScan; n++) {
      const e = this.entries.get(pos + 1);
      if (!e || e.state === 'pending') break;
      if (e.state === 'applied') out.push(e);
      pos++;
    }
    return Promise.resolve({ entries: out, position: pos });
  }
  put(pos: number, state: FeedEntry['state'] = 'applied'): FeedEntry {
    const e: FeedEntry = { _id: pos, changeId: `c${pos}`, state, collection: 'x', documentId: `d${pos}`, operation: 'insert', createdAt: new Date() };
    this.entries.set(pos, e);
    return e;
  }
}

const until = async (cond: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('FeedTailer', () => {
  let feed: MemoryFeed;
  let delivered: { pos: number; origin?: string }[];
  let fromFeedTotal: number;
  let tailer: FeedTailer;
  const start = async (opts: Partial<{ pollMs: number; graceMs: number; maxAhead: number }> = {}) => {
    tailer = new FeedTailer(
      feed,
      (batch: Offered[], fromFeed: number) => {
        fromFeedTotal += fromFeed;
        for (const o of batch) delivered.push({ pos: o.entry._id, origin: o.originSocketId });
      },
      { pollMs: opts.pollMs ?? 40, graceMs: opts.graceMs ?? 30, maxAhead: opts.maxAhead ?? 100, maxScan: 50 },
    );
    await tailer.start();
  };
  beforeAll(() => Logger.overrideLogger(false));
  beforeEach(() => {
    feed = new MemoryFeed();
    delivered = [];
    fromFeedTotal = 0;
  });
  afterEach(() => tailer?.stop());

  it('starts at the settled head: earlier changes are not delivered live', async () => {
    feed.put(1);
    feed.put(2);
    await start();
    expect(tailer.position).toBe(2);
    feed.put(3);
    tailer.offer([{ entry: feed.entries.get(3)! }]);
    expect(delivered.map((d) => d.pos)).toEqual([3]);
  });

  it('delivers offers in position order, once, whatever order they settle in', async () => {
    await start();
    const e = [1, 2, 3, 4].map((p) => feed.put(p, 'pending'));
    for (const p of [3, 4]) feed.entries.get(p)!.state = 'applied';
    tailer.offer([{ entry: e[2], originSocketId: 's3' }, { entry: e[3] }]);
    expect(delivered).toEqual([]); // 1 and 2 are still pending
    feed.entries.get(2)!.state = 'applied';
    tailer.offer([{ entry: e[1] }]);
    feed.entries.get(1)!.state = 'applied';
    tailer.offer([{ entry: e[0] }, { entry: e[2] }]); // 3 again (the bus's copy): ignored
    await until(() => delivered.length === 4);
    expect(delivered.map((d) => [d.pos, d.origin])).toEqual([
      [1, undefined],
      [2, undefined],
      [3, 's3'],
      [4, undefined],
    ]);
    expect(tailer.position).toBe(4);
  });

  it('reads from the feed what nobody offered (lost bus message, skip entries), after the grace', async () => {
    await start();
    feed.put(1); // applied elsewhere, its bus message lost
    feed.put(2, 'skip');
    const e3 = feed.put(3);
    tailer.offer([{ entry: e3, originSocketId: 'w' }]);
    await until(() => delivered.length === 2);
    expect(delivered.map((d) => [d.pos, d.origin])).toEqual([
      [1, undefined],
      [3, 'w'],
    ]);
    expect(fromFeedTotal).toBe(1);
  });

  it('the poll finds changes when nothing is offered at all (bus down)', async () => {
    await start();
    feed.put(1);
    feed.put(2);
    await until(() => delivered.length === 2);
    expect(delivered.map((d) => d.pos)).toEqual([1, 2]);
  });

  it('waits at a pending entry: nothing after it is delivered until it settles', async () => {
    await start();
    feed.put(1, 'pending');
    const e2 = feed.put(2);
    tailer.offer([{ entry: e2 }]);
    await new Promise((r) => setTimeout(r, 150)); // several polls and grace periods
    expect(delivered).toEqual([]);
    const acked = tailer.whenDelivered(2, 5000);
    feed.entries.get(1)!.state = 'applied';
    await until(() => delivered.length === 2);
    expect(delivered.map((d) => d.pos)).toEqual([1, 2]);
    await expect(acked).resolves.toBe(true);
  });

  it("a gap at a position this node is writing waits for the writer's offer, without a feed read, and the ack is answered at once", async () => {
    await start({ pollMs: 20 });
    await until(() => feed.highWaterReads > 0); // started, first poll done
    feed.put(1, 'pending');
    const e2 = feed.put(2);
    tailer.writingAt([1]);
    tailer.offer([{ entry: e2, originSocketId: 'w2' }]); // a later write of this node settled first
    const reads = feed.reads;
    const highWaterReads = feed.highWaterReads;
    await new Promise((r) => setTimeout(r, 150)); // several polls and gap waits
    expect(feed.reads).toBe(reads);
    expect(feed.highWaterReads).toBe(highWaterReads);
    expect(delivered).toEqual([]);
    const acked = tailer.whenDelivered(2, 5000);
    feed.entries.get(1)!.state = 'applied';
    tailer.offer([{ entry: feed.entries.get(1)!, originSocketId: 'w1' }]);
    // delivered in order by the offer itself, no timer in between
    expect(delivered.map((d) => [d.pos, d.origin])).toEqual([
      [1, 'w1'],
      [2, 'w2'],
    ]);
    tailer.written([1]);
    await expect(acked).resolves.toBe(true);
  });

  it('a position its writer gives up without an offer (aborted) is read from the feed once written, without the gap wait', async () => {
    await start({ pollMs: 5000, graceMs: 5000 });
    feed.put(1, 'pending');
    const e2 = feed.put(2);
    tailer.writingAt([1]);
    tailer.offer([{ entry: e2 }]);
    await new Promise((r) => setTimeout(r, 100));
    expect(delivered).toEqual([]);
    feed.entries.get(1)!.state = 'aborted';
    const reads = feed.reads;
    tailer.written([1]);
    await new Promise((r) => setImmediate(r)); // before any timer: no GAP_WAIT_MS, no poll
    expect(feed.reads).toBe(reads + 1);
    expect(delivered.map((d) => d.pos)).toEqual([2]);
    expect(tailer.position).toBe(2);
  });

  it('whenDelivered gives up after its timeout while blocked', async () => {
    await start();
    feed.put(1, 'pending');
    await expect(tailer.whenDelivered(1, 60)).resolves.toBe(false);
  });

  it('holds at most maxAhead offers; the rest is read from the feed in its turn', async () => {
    await start({ maxAhead: 3 });
    feed.put(1, 'pending');
    const later = [2, 3, 4, 5, 6].map((p) => feed.put(p));
    tailer.offer(later.map((entry) => ({ entry, originSocketId: 'w' })));
    feed.entries.get(1)!.state = 'applied';
    await until(() => delivered.length === 6);
    expect(delivered.map((d) => d.pos)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('an idle poll reads only the high-water mark', async () => {
    await start({ pollMs: 20 });
    await new Promise((r) => setTimeout(r, 120));
    expect(feed.highWaterReads).toBeGreaterThan(1);
    expect(feed.reads).toBeLessThanOrEqual(1); // the 8th poll's full read at most
  });

  it('a delivery that throws does not stop the next ones', async () => {
    let n = 0;
    tailer = new FeedTailer(
      feed,
      (batch) => {
        if (n++ === 0) throw new Error('router bug');
        delivered.push(...batch.map((o) => ({ pos: o.entry._id })));
      },
      { pollMs: 40, graceMs: 30, maxAhead: 100, maxScan: 50 },
    );
    await tailer.start();
    tailer.offer([{ entry: feed.put(1) }]);
    tailer.offer([{ entry: feed.put(2) }]);
    expect(delivered.map((d) => d.pos)).toEqual([2]);
    expect(tailer.position).toBe(2);
  });
});
