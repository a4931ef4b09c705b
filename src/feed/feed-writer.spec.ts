import type { ChangeFeedRepository, FeedEntry } from './change-feed.repository';
import type { DocumentRepository } from './document.repository';
import { AcceptedChange, FeedWriter } from './feed-writer';

/**
 * Claiming feed positions against another node (positions are taken by unique `_id` inserts): the
 * positions a writer gives up after losing one must never stay holes (readers, live delivery and acks
 * wait at a hole until it is stale). An in-memory feed with the repository's contract; the real
 * database is covered by test/single-node.e2e-spec.ts and the cluster suites.
 */
class MemoryFeed {
  readonly entries = new Map<number, FeedEntry>();
  /** Runs before each ordered insert (another node acting meanwhile). */
  beforeInsert?: () => void | Promise<void>;
  highWater = () => Promise.resolve(Math.max(0, ...[...this.entries.keys()]));
  purgedThrough = () => Promise.resolve(0);
  maxPosition = () => Promise.resolve(Math.max(0, ...[...this.entries.keys()]));
  raiseHighWater = () => Promise.resolve();
  recordChanges = () => Promise.resolve();
  findRecorded = () => Promise.resolve([]);
  findByChangeIds = () => Promise.resolve([]);
  insertOrdered = async (entries: FeedEntry[]): Promise<number> => {
    await this.beforeInsert?.();
    for (let i = 0; i < entries.length; i++) {
      if (this.entries.has(entries[i]._id)) return i;
      this.entries.set(entries[i]._id, { ...entries[i] });
    }
    return entries.length;
  };
  fillGap = (positions: number[]): Promise<void> => {
    for (const p of positions) if (!this.entries.has(p)) this.entries.set(p, { _id: p, changeId: `skip:${p}`, state: 'skip', createdAt: new Date() });
    return Promise.resolve();
  };
  other(p: number): void {
    this.entries.set(p, { _id: p, changeId: `other-${p}`, state: 'applied', userId: 'other', createdAt: new Date() });
  }
  /** Positions 1..max: [position, state, changeId], holes as 'hole'. */
  layout(): [number, string, string][] {
    const max = Math.max(0, ...this.entries.keys());
    return Array.from({ length: max }, (_, i) => {
      const e = this.entries.get(i + 1);
      return [i + 1, e?.state ?? 'hole', e?.changeId ?? ''];
    });
  }
}

let n = 0;
const changes = (count: number): AcceptedChange[] =>
  Array.from({ length: count }, () => {
    const id = `c${++n}`;
    return { entry: { _id: 0, changeId: id, userId: 'u', state: 'pending', docKey: `t:${id}`, createdAt: new Date() }, lastDoc: null };
  });

describe('FeedWriter: positions given up after losing one to another node', () => {
  let feed: MemoryFeed;
  let writer: FeedWriter;
  beforeEach(() => {
    feed = new MemoryFeed();
    writer = new FeedWriter(feed as unknown as ChangeFeedRepository, {} as DocumentRepository);
  });

  it('a batch whose first position was taken claims the positions after it again: no hole, no skip', async () => {
    await writer.writeAhead(changes(1)); // position 1; this writer's counter is now at 2
    feed.other(2); // another node wrote position 2
    const batch = changes(10);
    await writer.writeAhead(batch);
    expect(batch.map((a) => a.entry._id)).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(feed.layout().filter(([, state]) => state === 'hole' || state === 'skip')).toEqual([]);
    expect(feed.layout()).toHaveLength(12);
  });

  it('with another group of this process claimed after it, the positions it gives up are filled with skips', async () => {
    await writer.writeAhead(changes(1)); // position 1
    const g1 = changes(5); // positions 2..6
    const g2 = changes(3); // positions 7..9
    let first = true;
    feed.beforeInsert = () => {
      if (!first) return;
      first = false;
      feed.other(4); // another node takes position 4 while group 1 is on its way
    };
    await Promise.all([writer.writeAhead(g1), writer.writeAhead(g2)]);
    expect(g2.map((a) => a.entry._id)).toEqual([7, 8, 9]);
    const states = feed.layout();
    expect(states.filter(([, state]) => state === 'hole')).toEqual([]);
    // 2 and 3 landed, 4 is the other node's, 5 and 6 were given up (skips), the rest of group 1 went after group 2
    expect(states.filter(([, state]) => state === 'skip').map(([p]) => p)).toEqual([5, 6]);
    expect(g1.map((a) => a.entry._id)).toEqual([2, 3, 10, 11, 12]);
  });
});
