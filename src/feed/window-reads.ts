import type { ChangeFeedRepository, FeedEntry } from './change-feed.repository';

/** Reading the feed's next windows before they are needed: how many, and while how many entries are still wanted. */
export interface ReadAhead {
  /** Windows in flight beyond the one being visited (0: none). */
  depth: number;
  /** Entries the reader may still take (an upper bound: reading ahead stops once a window would exceed it). */
  wanted: () => number;
}

/**
 * The window reads of one walk. With a read-ahead, once a window comes back whole (a full run of
 * consecutive positions) the next `depth` windows are asked for at once, so the database reads them
 * while this one is visited (and, on a database that serves several readers at once, in parallel).
 * A window read ahead is used only if the walk continues exactly where it starts; otherwise (a hole,
 * a pending entry, a repair, the end) it is dropped. Using it is as safe as reading it then: it was
 * read after everything before it, and the walk still stops at its first pending entry or hole.
 */
export class WindowReads {
  private readonly queue: { from: number; rows: Promise<FeedEntry[]> }[] = [];

  constructor(
    private readonly feed: ChangeFeedRepository,
    private readonly maxScan: number,
    private readonly ahead?: ReadAhead,
  ) {}

  async next(pos: number, scanned: number): Promise<FeedEntry[]> {
    const limit = Math.min(1000, this.maxScan - scanned + 1);
    const head = this.queue.shift();
    if (head && head.from !== pos) this.queue.length = 0;
    const batch = await (head && head.from === pos ? head.rows : this.feed.scan(pos, limit));
    const window = this.feed.scanWindow(limit);
    const whole = batch.length === window && batch[0]._id === pos + 1 && batch[batch.length - 1]._id === pos + window;
    if (!whole) this.queue.length = 0;
    else if (this.ahead && this.ahead.depth > 0) {
      // the next windows, as long as the reader may still want them and the walk may scan them
      let from = this.queue.length ? this.queue[this.queue.length - 1].from + window : pos + window;
      while (this.queue.length < this.ahead.depth && from - pos < this.ahead.wanted() && scanned + (from - pos) + window <= this.maxScan) {
        const rows = this.feed.scan(from, window);
        rows.catch(() => undefined); // dropped unused: its failure is nobody's
        this.queue.push({ from, rows });
        from += window;
      }
    }
    return batch;
  }
}
