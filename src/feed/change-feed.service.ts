import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { CursorExpiredError, decodeCursor, DeliveredChange, InvalidPayloadError } from '@sync/protocol';
import type { AuthUser } from '../common/user';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { PermissionService } from '../permission/permission.service';
import { ChangeFeedRepository, FeedEntry } from './change-feed.repository';
import { holds, toDelivered } from './feed-entries';
import { documentWrite } from './feed-writer';
import { DocumentRepository } from './document.repository';
import { LockRepository } from './lock.repository';
import { SYNC_TIMINGS, SyncTimings } from './sync.constants';
import { type ReadAhead, WindowReads } from './window-reads';

export interface FeedPage {
  changes: DeliveredChange[];
  /** Position to continue from (everything at or before it has been considered). */
  position: number;
  hasMore: boolean;
  latestTimestamp: number;
}

type Visit = 'take' | 'pass' | 'stop';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The read side of the change feed: gap-free paging, the safe head position, and the repair of
 * entries a crashed writer left behind (replay of write-ahead entries, skipping of lost positions).
 *
 * Invariant: a reader never moves past a position whose change may still become visible. Positions
 * are handed out before the write, so a later position can be visible while an earlier one is still
 * being written: the walk stops at the first pending entry or hole, until it is settled or repaired.
 */
@Injectable()
export class ChangeFeedService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('ChangeFeed');
  /** Every position at or below this is settled (cached, only grows). */
  private settled = 0;
  /** The settled head last recorded in the database (`ChangeFeedRepository.raiseSettled`). */
  private recordedSettled = 0;
  /** The first read of the settled floor from the database (shared by concurrent walks; retried after a failure). */
  private floorLoad?: Promise<void>;
  private janitor?: NodeJS.Timeout;
  private recovering = false;

  constructor(
    private readonly feed: ChangeFeedRepository,
    private readonly docs: DocumentRepository,
    private readonly locks: LockRepository,
    private readonly permissions: PermissionService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(SYNC_TIMINGS) private readonly timings: SyncTimings,
  ) {}

  onApplicationBootstrap(): void {
    // repair what a previous crash left, then keep looking
    void this.recoverStale(true).catch((e) => this.logger.warn(`start-up recovery failed: ${(e as Error).message}`));
    this.janitor = setInterval(() => void this.recoverStale(false).catch(() => undefined), this.timings.janitorIntervalMs);
    this.janitor.unref();
  }

  onModuleDestroy(): void {
    clearInterval(this.janitor);
  }

  /**
   * Walks the feed after `after` in order, calling `visit` for each applied entry. Stops at a pending
   * entry or a hole (repairing it when stale), when `visit` says stop, or after `maxScan` entries.
   */
  private async walk(
    after: number,
    visit: (e: FeedEntry) => Visit,
    maxScan: number,
    ahead?: ReadAhead,
  ): Promise<{ pos: number; reason: 'end' | 'blocked' | 'stopped' | 'scanned' }> {
    let pos = after;
    let scanned = 0;
    await this.settledFloor();
    const reads = new WindowReads(this.feed, maxScan, ahead);
    for (;;) {
      const batch = await reads.next(pos, scanned);
      if (!batch.length) return { pos, reason: 'end' };
      // pending entries of committed batches are applied (one marker lookup per window, none at or
      // below the settled head)
      await this.feed.resolveCommitted(batch, this.settled);
      for (const e of batch) {
        if (e._id !== pos + 1) {
          if (await this.repairGap(pos + 1, e)) {
            break; // repaired: scan again from pos
          }
          return { pos, reason: 'blocked' };
        }
        if (e.state === 'pending') {
          if (Date.now() - e.createdAt.getTime() > this.timings.staleAfterMs) {
            const replayed = await this.recoverEntry(e).catch((err) => {
              this.logger.warn(`recovery of #${e._id} failed: ${(err as Error).message}`);
              return false;
            });
            if (replayed) break; // repaired: scan again from pos
            return { pos, reason: 'blocked' }; // someone else is replaying it
          }
          return { pos, reason: 'blocked' };
        }
        if (e.state === 'applied') {
          const v = visit(e);
          if (v === 'stop') return { pos, reason: 'stopped' };
        }
        pos = e._id;
        if (pos > this.settled && pos === this.settled + 1) this.settled = pos;
        if (++scanned >= maxScan) return { pos, reason: 'scanned' };
      }
    }
  }

  /** A hole at `missing`..first._id-1: repaired (filled with skips) only when it is old. */
  private async repairGap(missing: number, first: FeedEntry): Promise<boolean> {
    if (Date.now() - first.createdAt.getTime() <= this.timings.staleAfterMs) return false;
    const positions: number[] = [];
    for (let p = missing; p < first._id && positions.length < 10_000; p++) positions.push(p);
    this.logger.warn(`feed positions ${missing}..${first._id - 1} were never written (a writer died); skipping them`);
    await this.feed.fillGap(positions);
    return true;
  }

  /** The highest position such that every position at or before it is settled. */
  async head(): Promise<number> {
    await this.settledFloor();
    const { pos } = await this.walk(this.settled, () => 'pass', Number.MAX_SAFE_INTEGER);
    if (pos > this.settled) this.settled = pos;
    return this.settled;
  }

  /** The settled head as known so far: from the database (what retention purged, what a walk recorded) on first use. */
  private async settledFloor(): Promise<number> {
    this.floorLoad ??= Promise.all([this.feed.purgedThrough(), this.feed.settledThrough()]).then(
      ([purged, recorded]) => {
        this.recordedSettled = Math.max(this.recordedSettled, recorded);
        this.settled = Math.max(this.settled, purged, recorded);
      },
      (e: unknown) => {
        this.floorLoad = undefined;
        throw e;
      },
    );
    await this.floorLoad;
    return this.settled;
  }

  /** Records the settled head (retention purges up to it; a restarted node's walks start there). */
  private async recordSettled(): Promise<void> {
    const pos = this.settled;
    if (pos <= this.recordedSettled) return;
    await this.feed.raiseSettled(pos);
    this.recordedSettled = pos;
  }

  /**
   * Live delivery's read (FeedTailer): the applied entries after `after`, in feed order, and the
   * position up to which every entry is settled; waits at a pending entry or a hole like `read`.
   */
  async tail(after: number, maxScan: number): Promise<{ entries: FeedEntry[]; position: number }> {
    // the tailer reads when a position is missing: usually a batch still being written, whose first
    // entry blocks the walk anyway. Probed alone (a small `_id` lookup), it spares reading a window
    // of full entries (as costly as the batch's write-ahead insert on FerretDB); anything else (a
    // settled or stale entry, a hole) goes on to the walk
    if (await this.blockedAt(after + 1)) return { entries: [], position: after };
    const entries: FeedEntry[] = [];
    const { pos } = await this.walk(
      after,
      (e) => {
        entries.push(e);
        return 'take';
      },
      maxScan,
    );
    return { entries, position: pos };
  }

  /** Whether the entry at `pos` exists, is pending without its commit marker, and is not stale yet: a walk would stop before it. */
  private async blockedAt(pos: number): Promise<boolean> {
    await this.settledFloor();
    if (pos <= this.settled) return false;
    const e = await this.feed.probe(pos);
    if (!e || e.state !== 'pending' || Date.now() - e.createdAt.getTime() > this.timings.staleAfterMs) return false;
    return e.commit === undefined || !(await this.feed.committed([e.commit])).has(e.commit);
  }

  /** Highest feed position written (the end of the feed as far as readers may tell). */
  highWater(): Promise<number> {
    return this.feed.highWater();
  }

  /** Resolves a get_changes request's starting point (parsed at the edge): cursor, else since, else the beginning. */
  async startPosition(cursor: string | null | undefined, since: number | null | undefined): Promise<number> {
    const purged = await this.feed.purgedThrough();
    if (cursor !== undefined && cursor !== null && cursor !== '') {
      const pos = decodeCursor(cursor);
      if (pos === null) throw new InvalidPayloadError('cursor is not a cursor this server issued');
      if (pos < purged) throw new CursorExpiredError();
      return pos;
    }
    if (since !== undefined && since !== null) {
      const horizon = Date.now() - this.config.sync.changeRetentionDays * 86_400_000;
      if (purged > 0 && since < horizon) throw new CursorExpiredError('since is older than the change retention window: bootstrap again');
      const first = await this.feed.firstAfterServerTime(since);
      return first === null ? await this.head() : Math.max(purged, first - 1);
    }
    if (purged > 0) throw new CursorExpiredError('the change feed no longer starts at the beginning: bootstrap first, then follow its cursor');
    return 0;
  }

  /** One page of the changes after `after` that `user` may read, in feed order. */
  async read(user: AuthUser, after: number, limit: number, collection?: string): Promise<FeedPage> {
    const changes: DeliveredChange[] = [];
    let latestTimestamp = 0;
    const maxScan = Math.max(2000, limit * 20);
    const visit = (e: FeedEntry): Visit => {
      if (collection !== undefined && e.collection !== collection) return 'pass';
      const delivered = this.visible(user, e);
      if (!delivered) return 'pass';
      if (changes.length >= limit) return 'stop';
      changes.push(delivered);
      if (e.serverTimestamp! > latestTimestamp) latestTimestamp = e.serverTimestamp!;
      return 'take';
    };
    // windows are read ahead while the page is short of `limit` (every entry may be taken)
    const ahead: ReadAhead = { depth: this.config.sync.feedReadAhead, wanted: () => limit - changes.length };
    let res = await this.walk(after, visit, maxScan, ahead);
    // a writer is between reserving a position and settling it: that takes milliseconds, so wait a
    // little rather than hand back an empty page
    for (let i = 0; i < 10 && res.reason === 'blocked' && changes.length < limit; i++) {
      await sleep(10 + i * 5);
      res = await this.walk(res.pos, visit, maxScan, ahead);
    }
    return { changes, position: res.pos, hasMore: res.reason !== 'end', latestTimestamp };
  }

  /** The change as `user` may see it: whole, as outOfView, or not at all. */
  visible(user: AuthUser, e: FeedEntry): DeliveredChange | null {
    const coll = e.collection!;
    if (e.operation === 'delete') {
      if (e.before) return this.permissions.canRead(user, coll, e.before) ? toDelivered(e) : null;
      // a delete of a document the server did not have (never created, or deleted already): there is
      // no before-image, so it is included where the read rule does not depend on the document
      return this.permissions.canRead(user, coll, { _id: e.documentId }) ? toDelivered(e) : null;
    }
    if (e.after && this.permissions.canRead(user, coll, e.after)) return toDelivered(e);
    if (e.before && this.permissions.canRead(user, coll, e.before)) return toDelivered(e, true);
    return null;
  }

  // ---------------------------------------------------------------- repair after a crash

  /**
   * Replays pending entries older than the stale limit: the janitor (and the start-up) walks the feed
   * from the settled head, which replays stale entries and fills stale holes on its way: unsettled
   * entries can only lie beyond it (entries stay stored `pending` once committed, so a query for
   * `state: 'pending'` would find the whole feed), and the walk reads positions by `_id`. The head
   * reached is recorded for retention and for the next start.
   */
  async recoverStale(startup: boolean): Promise<number> {
    if (this.recovering) return 0;
    this.recovering = true;
    try {
      const from = startup ? await this.settledFloor() : this.settled;
      const head = await this.head();
      await this.recordSettled();
      return head - from;
    } finally {
      this.recovering = false;
    }
  }

  /**
   * Takes the document's lease (stealing it once expired) and replays its pending entries. False when
   * a live holder has the lease (a writer, or another process replaying it).
   */
  async recoverEntry(e: FeedEntry): Promise<boolean> {
    const key = e.docKey!;
    const missed = await this.locks.tryAcquire([key], this.timings.lockTtlMs);
    if (missed.length && !(await this.locks.steal(key, this.timings.lockTtlMs))) return false;
    try {
      this.logger.warn(`replaying change #${e._id} on ${key}, left pending by a stopped writer`);
      await this.replayPending(key);
      return true;
    } finally {
      await this.locks.release([key]);
    }
  }

  /**
   * Replays every pending entry of one document, in feed order. The caller holds the document's lease.
   * An entry is written only if the document does not already hold that version or a newer one.
   */
  async replayPending(key: string): Promise<void> {
    await this.replayEntries(key, await this.feed.pendingForDoc(key, await this.settledFloor()));
  }

  /**
   * Replays the entries of one document a failed writer of this process wrote ahead at `positions`
   * (`_id` lookups: no query for the document's pending entries, which is a read of the whole feed on
   * the embedded database), those still uncommitted. The caller holds the document's lease.
   */
  async replayAt(key: string, positions: number[]): Promise<void> {
    const entries = (await this.feed.entriesAt(positions)).filter((e) => e.docKey === key);
    await this.feed.resolveCommitted(entries, await this.settledFloor());
    const uncommitted = entries.filter((e) => e.state === 'pending');
    await this.replayEntries(key, uncommitted);
  }

  /** Replays pending entries of one document (in feed order); see replayPending. */
  private async replayEntries(key: string, entries: FeedEntry[]): Promise<void> {
    // the dead writer may have gone before recording them: a retry must still be recognised
    await this.feed.recordChanges(entries);
    for (const e of entries) {
      const coll = e.collection!;
      const id = e.documentId!;
      // the entry says whether a new document gets an ObjectId _id (auto collections)
      const state = (await this.docs.loadStates(coll, [id], e.idType ? new Map([[id, e.idType]]) : undefined)).get(id)!;
      // in place: the document is at a newer version, or at this one. Several versions may share a
      // timestamp (one author's edits within a millisecond): then only its content tells them apart
      const newerOrSame = state.timestamp !== null && (state.timestamp > e.timestamp! || (state.timestamp === e.timestamp && holds(state, e)));
      if (!newerOrSame) {
        const failed = await this.docs.applyWrites([documentWrite(e, state, e.before ?? state.lastDoc ?? null, e.serverTimestamp!)]);
        if (failed.size) throw new Error(`document ${key} changed during replay`);
      }
      await this.feed.setState([e._id], 'applied');
      this.logger.log(`replayed change ${e.changeId} (#${e._id}) on ${key}${newerOrSame ? ' (already in place)' : ''}`);
    }
  }
}
