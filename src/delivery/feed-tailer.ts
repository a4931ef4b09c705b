import { Logger } from '@nestjs/common';
import type { FeedEntry } from '../feed/change-feed.repository';

/** One applied change to deliver, with the socket that wrote it when it was written through this node. */
export interface Offered {
  entry: FeedEntry;
  originSocketId?: string;
}

/** The feed reads the tailer needs (ChangeFeedService provides them). */
export interface FeedSource {
  /** The settled head: every position at or before it is settled. */
  head(): Promise<number>;
  /** Highest position written (an upper bound of what may become visible). */
  highWater(): Promise<number>;
  /**
   * The applied entries after `after`, in feed order, gap-aware like the catch-up reader: stops at a
   * pending entry or a hole (repairing it once stale). `position` is how far every position is settled.
   */
  tail(after: number, maxScan: number): Promise<{ entries: FeedEntry[]; position: number }>;
}

export interface FeedTailerOptions {
  /** How often the feed is read when nothing woke the tailer (the safety net for lost bus messages). */
  pollMs: number;
  /**
   * An applied entry found in the feed that nobody offered is delivered from the feed only after this
   * long: its writer (this node, after its settle) or the bus normally offers it within milliseconds,
   * with the writing socket (no echo) and without a second read.
   */
  graceMs: number;
  /** Entries offered ahead of the delivered position that are kept in memory (beyond: read from the feed). */
  maxAhead: number;
  /** Positions read from the feed at once. */
  maxScan: number;
}

/** How long a gap before offered changes is given to fill before the feed is read (and between reads). */
const GAP_WAIT_MS = 25;
/** One poll in this many reads the feed even when the high-water mark says there is nothing new. */
const FULL_READ_EVERY = 8;

export const DEFAULT_TAILER_OPTIONS: FeedTailerOptions = { pollMs: 250, graceMs: 150, maxAhead: 2000, maxScan: 200 };

/**
 * Live delivery in feed order, per node. Keeps `position`: every change at or before it has been
 * handed to `deliver` (routed to this node's sockets) exactly once, and nothing after it has. Changes
 * written through this node and changes the bus brings are offered to it; it delivers them in position
 * order, reading from the feed what nobody offered (a lost bus message, the bus down, a node that died
 * before publishing): the same positional, gap-aware walk as the catch-up reader, so it waits at a
 * pending entry or a hole and passes it only once settled or repaired. A client therefore never gets a
 * live change at position p before every earlier change it should see, and a cursor a live change or
 * an ack carries never lets it skip one.
 */
export class FeedTailer {
  private readonly logger = new Logger('FeedTailer');
  private pos = -1;
  private readonly ahead = new Map<number, Offered>();
  /** When an un-offered applied entry was first seen in the feed (it is delivered from there after graceMs). */
  private readonly firstSeen = new Map<number, number>();
  private running = false;
  /** The poll (or a retry) asks for a read of the feed even when nothing was offered. */
  private pollDue = false;
  /** Where the current gap began to be waited for, and since when. */
  private gapPos = -1;
  private gapSince = 0;
  private polls = 0;
  private again = false;
  private poll?: NodeJS.Timeout;
  private retry?: NodeJS.Timeout;
  private stopped = false;
  private waiters: { pos: number; resolve: (ok: boolean) => void; timer?: NodeJS.Timeout }[] = [];
  /**
   * Positions this node has written ahead and is settling now: their writer offers them (or says it is
   * done with them) within the same write, so a gap at one of them is never a reason to read the feed.
   */
  private readonly writing = new Set<number>();

  constructor(
    private readonly source: FeedSource,
    private readonly deliver: (batch: Offered[], fromFeed: number) => void,
    private readonly opts: FeedTailerOptions = DEFAULT_TAILER_OPTIONS,
  ) {}

  /** Every change at or before this has been delivered on this node (-1 before start). */
  get position(): number {
    return this.pos;
  }

  get started(): boolean {
    return this.pos >= 0;
  }

  /** Starts at the feed's settled head: changes after it are delivered live. */
  async start(): Promise<void> {
    if (this.started || this.stopped) return;
    let head: number;
    for (let attempt = 0; ; attempt++) {
      try {
        head = await this.source.head();
        break;
      } catch (e) {
        if (this.stopped) return;
        if (attempt % 20 === 0) this.logger.warn(`cannot read the feed head yet: ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, Math.min(1000, 50 * 2 ** Math.min(attempt, 5))).unref());
      }
    }
    if (this.stopped) return;
    this.pos = head;
    for (const p of this.ahead.keys()) if (p <= head) this.ahead.delete(p);
    this.pollDue = true;
    this.poll = setInterval(() => {
      this.pollDue = true;
      this.kick();
    }, this.opts.pollMs);
    this.poll.unref();
    this.resolveWaiters();
    this.kick();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.poll);
    clearTimeout(this.retry);
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.resolve(this.pos >= w.pos);
    }
    this.waiters = [];
    this.ahead.clear();
    this.writing.clear();
  }

  /**
   * This node's writer has inserted these positions (pending) and will offer those it settles: until
   * `written`, the tailer waits for that offer instead of reading the feed after GAP_WAIT_MS (a read
   * that, under load, competes with the very writes it waits for).
   */
  writingAt(positions: readonly number[]): void {
    if (this.stopped) return;
    for (const p of positions) if (p > this.pos) this.writing.add(p);
  }

  /**
   * The writer is done with these positions: offered, or not applied (a retry's `skip`, an `aborted`
   * entry), which the feed now shows settled: read at once rather than after GAP_WAIT_MS.
   */
  written(positions: readonly number[]): void {
    if (!positions.length) return;
    for (const p of positions) {
      this.writing.delete(p);
      if (this.started && p > this.pos && !this.ahead.has(p)) this.pollDue = true;
    }
    this.kick();
  }

  /** Changes known to be applied (written here, or from the bus); delivered in order, once. */
  offer(items: Offered[]): void {
    for (const it of items) {
      const p = it.entry._id;
      if (this.started && p <= this.pos) continue;
      const known = this.ahead.get(p);
      if (known) {
        // the writer's own offer carries the origin socket (no echo): it wins over the bus's copy
        if (it.originSocketId !== undefined && known.originSocketId === undefined) this.ahead.set(p, it);
        continue;
      }
      if (this.ahead.size >= this.opts.maxAhead) continue; // read from the feed when its turn comes
      this.ahead.set(p, it);
    }
    // the next positions, offered: delivered now, even while a feed read is in flight (the pump
    // re-checks the position after every read)
    if (this.started && !this.stopped) this.drainOffered();
    this.kick();
  }

  /** Resolves true once every position up to `pos` is delivered on this node; false after `timeoutMs`. */
  whenDelivered(pos: number, timeoutMs: number): Promise<boolean> {
    if (this.stopped || (this.started && this.pos >= pos)) return Promise.resolve(this.pos >= pos);
    return new Promise((resolve) => {
      const w: (typeof this.waiters)[number] = { pos, resolve };
      w.timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        resolve(false);
      }, timeoutMs);
      w.timer.unref?.();
      this.waiters.push(w);
    });
  }

  /** Runs the pump now, or once more after the current run. */
  kick(): void {
    if (this.stopped || !this.started) return;
    if (this.running) {
      this.again = true;
      return;
    }
    void this.pump();
  }

  private async pump(): Promise<void> {
    this.running = true;
    try {
      do {
        this.again = false;
        await this.step();
      } while (this.again && !this.stopped);
    } catch (e) {
      this.logger.warn(`reading the feed for live delivery failed: ${(e as Error).message} (retrying)`);
    } finally {
      this.running = false;
    }
  }

  /**
   * Delivers what is known in order, then reads the feed where something is missing: when an offer
   * left a gap (a change nobody offered yet: in flight, lost by the bus, a skip), or on the poll.
   */
  private async step(): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      this.drainOffered();
      // the next position is being settled by this node's own writer: nothing can be delivered before
      // its offer (or its `written`), which runs the pump again; a read now would find it pending
      if (this.writing.has(this.pos + 1)) return;
      const gap = this.ahead.size > 0;
      if (!gap && !this.pollDue) return;
      if (!this.pollDue) {
        // a gap before offered changes: usually a write of this node settling out of order or a bus
        // message on its way, filled by an offer within milliseconds; read the feed only if it lasts
        const now = Date.now();
        if (this.gapPos !== this.pos) {
          this.gapPos = this.pos;
          this.gapSince = now;
        }
        const wait = this.gapSince + GAP_WAIT_MS - now;
        if (wait > 0) {
          this.scheduleRetry(wait);
          return;
        }
      }
      const polled = this.pollDue;
      this.pollDue = false;
      // idle feed: one lookup of the high-water mark, no scan; every FULL_READ_EVERY polls a real read
      // (an entry a writer inserted but died before raising the mark with is found by it once replayed)
      if (polled && !gap && ++this.polls % FULL_READ_EVERY !== 0 && (await this.source.highWater()) <= this.pos) return;
      if (this.stopped) return;
      const from = this.pos;
      const { entries, position } = await this.source.tail(from, this.opts.maxScan);
      if (this.stopped) return;
      this.drainOffered(); // offered meanwhile (never past what the feed shows settled)
      const batch: Offered[] = [];
      let fromFeed = 0;
      let reached = position;
      const now = Date.now();
      for (const e of entries) {
        if (e._id <= this.pos) continue;
        const offered = this.ahead.get(e._id);
        if (offered) {
          batch.push(offered);
          continue;
        }
        const seen = this.firstSeen.get(e._id);
        if (seen === undefined || now - seen < this.opts.graceMs) {
          // give its writer or the bus a moment to offer it (with the writing socket)
          if (seen === undefined) this.firstSeen.set(e._id, now);
          reached = e._id - 1;
          this.scheduleRetry(this.opts.graceMs);
          break;
        }
        batch.push({ entry: e });
        fromFeed++;
      }
      const before = this.pos;
      this.advance(batch, reached, fromFeed);
      if (this.pos <= before) {
        // blocked (a pending entry, a hole, or an entry within its grace): the poll, a retry, or an
        // offer that fills the gap moves on; offers alone read again only after GAP_WAIT_MS
        this.gapPos = this.pos;
        this.gapSince = Date.now();
        return;
      }
    }
  }

  /** Delivers the contiguous run of offered changes after the position. */
  private drainOffered(): void {
    if (!this.ahead.has(this.pos + 1)) return;
    const batch: Offered[] = [];
    let p = this.pos;
    for (let next = this.ahead.get(p + 1); next; next = this.ahead.get(p + 1)) {
      batch.push(next);
      p++;
    }
    this.advance(batch, p, 0);
  }

  private advance(batch: Offered[], to: number, fromFeed: number): void {
    if (to <= this.pos) return;
    try {
      if (batch.length) this.deliver(batch, fromFeed);
    } catch (e) {
      // a routing failure must not stop delivery to everyone else
      this.logger.error(`delivery of ${batch.length} change(s) failed: ${(e as Error).stack}`);
    }
    for (let p = this.pos + 1; p <= to; p++) {
      this.ahead.delete(p);
      this.firstSeen.delete(p);
      this.writing.delete(p);
    }
    this.pos = to;
    if (this.firstSeen.size > 10_000) for (const p of this.firstSeen.keys()) if (p <= to) this.firstSeen.delete(p);
    this.resolveWaiters();
  }

  private scheduleRetry(ms: number): void {
    if (this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      this.pollDue = true;
      this.kick();
    }, ms);
    this.retry.unref();
  }

  private resolveWaiters(): void {
    if (!this.waiters.length) return;
    const keep: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (this.pos >= w.pos) {
        clearTimeout(w.timer);
        w.resolve(true);
      } else keep.push(w);
    }
    this.waiters = keep;
  }
}
