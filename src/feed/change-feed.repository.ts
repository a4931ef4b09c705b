/* Over 400 lines on purpose: every collection of the feed (entries, idempotency records, commit
 * markers, counters) is read and written here only, so its storage rules stay in one file. */
import { Inject, Injectable, Logger, OnModuleInit, Optional } from '@nestjs/common';
import { InjectConnection } from '@nestjs/mongoose';
import type { Collection, Db } from 'mongodb';
import type { Connection } from 'mongoose';
import type { Operation, SyncDocument } from '@sync/protocol';
import { ensureIndexes } from '../database/indexes';
import { APP_CONFIG } from '../config/config.module';
import type { AppConfig } from '../config/config.schema';

export const FEED_COLLECTION = '_sync_feed';
export const COUNTERS_COLLECTION = '_sync_counters';
/** Where each (author, changeId) went in the feed: `_id` lookups, cheap on every database. */
export const CHANGES_COLLECTION = '_sync_changes';
/** One commit marker per committed batch: its entries (which name it in `commit`) are applied. */
export const COMMITS_COLLECTION = '_sync_commits';

interface CommitMarker {
  /** The batch's commit id (FeedEntry.commit). */
  _id: string;
  /** Highest feed position of the batch: retention drops the marker with that entry. */
  last: number;
  createdAt: Date;
}

interface ChangeRecord {
  /** `${userId}\u0000${changeId}` */
  _id: string;
  pos: number;
  createdAt: Date;
}

const changeKey = (userId: string, changeId: string) => `${userId}\u0000${changeId}`;

/**
 * One entry of the change feed. `_id` is the feed position (a number handed out by an atomic counter).
 * Entries are written `pending` BEFORE the document write (write-ahead), naming their batch's commit
 * id; after the documents one commit marker (`_sync_commits`) makes the whole batch applied without
 * rewriting its entries (insert-only commit). A `pending` entry without a marker is not applied: a
 * crash before the marker is repaired by replaying the entry (see ChangeFeedService). Entries of
 * older versions (and replayed ones) carry `applied` themselves.
 */
export interface FeedEntry {
  _id: number;
  changeId: string;
  /** As stored: a `pending` entry whose `commit` marker exists is applied (see `committed`). */
  state: 'pending' | 'applied' | 'aborted' | 'skip';
  /** The commit id of the entry's batch: applied once the marker `_sync_commits/<commit>` exists. */
  commit?: string;
  collection?: string;
  documentId?: string;
  /** `${collection}:${documentId}` — for the per-document recovery lookup. */
  docKey?: string;
  /** Set when the document's `_id` is an ObjectId (documentId is then its hex form); delivered as is. */
  idType?: 'objectId';
  operation?: Operation;
  /** The document after the change (null for a delete). Kept server-side fields included. */
  after?: SyncDocument | null;
  /** The document before the change (null when missing), for read rules and the audit trail. */
  before?: SyncDocument | null;
  /** sync_updated_at after the change. */
  timestamp?: number;
  /** sync_updated_at the document had before (CAS guard for recovery). */
  prevTimestamp?: number | null;
  userId?: string;
  serverTimestamp?: number;
  clientAddress?: string;
  createdAt: Date;
}

interface CounterDoc {
  _id: string;
  purgedThrough?: number;
  /** Highest feed position written so far (`_id: 'feed'`), raised after each write-ahead insert. */
  highWater?: number;
  /** Every position at or below it is settled (`_id: 'settled'`): raised by the feed walk. */
  settledThrough?: number;
}

export function isDuplicateKeyError(e: unknown): boolean {
  return (e as { code?: number } | null)?.code === 11000;
}

/** Indexes of the write errors in a bulk/insertMany error that are duplicate keys. */
export function duplicateKeyIndexes(e: unknown): Set<number> | null {
  const errs = (e as { writeErrors?: unknown } | null)?.writeErrors;
  if (!errs) return isDuplicateKeyError(e) ? null : new Set();
  const list = (Array.isArray(errs) ? errs : [errs]) as { code?: number; index?: number; err?: { code?: number; index?: number } }[];
  const out = new Set<number>();
  for (const w of list) {
    const code = w.code ?? w.err?.code;
    const index = w.index ?? w.err?.index;
    if (code !== 11000) return new Set([-1]);
    if (typeof index === 'number') out.add(index);
  }
  return out;
}

/** Positions asked for at once by `scan` (FerretDB's pushdown of `$in` stops at 900 values). */
const SCAN_WINDOW = 500;

/** The change feed and its counters (`_sync_feed`, `_sync_counters`). Only this class touches them. */
@Injectable()
export class ChangeFeedRepository implements OnModuleInit {
  private readonly logger = new Logger('ChangeFeedRepository');

  /** maxTimeMS of the read queries (QUERY_MAX_TIME_MS; undefined: none). */
  private readonly maxTimeMS?: number;

  constructor(
    @InjectConnection() private readonly connection: Connection,
    @Optional() @Inject(APP_CONFIG) config?: AppConfig,
  ) {
    this.maxTimeMS = config?.mongodb.queryMaxTimeMS || undefined;
  }

  private get db(): Db {
    return this.connection.db as unknown as Db;
  }
  get feed(): Collection<FeedEntry> {
    return this.db.collection<FeedEntry>(FEED_COLLECTION);
  }
  private get changes(): Collection<ChangeRecord> {
    return this.db.collection<ChangeRecord>(CHANGES_COLLECTION);
  }
  private get counters(): Collection<CounterDoc> {
    return this.db.collection<CounterDoc>(COUNTERS_COLLECTION);
  }
  private get commits(): Collection<CommitMarker> {
    return this.db.collection<CommitMarker>(COMMITS_COLLECTION);
  }

  async onModuleInit(): Promise<void> {
    // idempotency used to be global per changeId; it is per author now. Stale pending entries are
    // found by the feed walk now (committed entries stay stored `pending`): no (state, createdAt) index
    await this.feed.dropIndex('changeId_unique').catch(() => undefined);
    await this.feed.dropIndex('state_createdAt').catch(() => undefined);
    await ensureIndexes(this.feed, [
      { key: { userId: 1, changeId: 1 }, name: 'user_changeId_unique', unique: true },
      { key: { docKey: 1 }, name: 'docKey' },
      { key: { serverTimestamp: 1 }, name: 'serverTimestamp' },
      { key: { createdAt: 1 }, name: 'createdAt' },
    ]);
    // retention deletes the records of purged entries by their position (nothing reads them by date)
    await this.changes.dropIndex('createdAt').catch(() => undefined);
    await ensureIndexes(this.changes, [{ key: { pos: 1 }, name: 'pos' }]);
    // retention deletes the markers of purged batches by their last position
    await ensureIndexes(this.commits, [{ key: { last: 1 }, name: 'last' }]);
    // the high-water mark: created once (from the feed itself when it predates the mark)
    if (!(await this.counters.findOne({ _id: 'feed' }))) {
      const max = await this.maxPosition();
      await this.counters.updateOne({ _id: 'feed' }, { $max: { highWater: max } }, { upsert: true }).catch((e) => {
        if (!isDuplicateKeyError(e)) throw e; // another node created it at the same moment
      });
    }
  }

  private raised = 0;
  private raising: Promise<unknown> = Promise.resolve();

  /**
   * Raises the high-water mark to `pos` (never lowers it). This process's raises are issued one
   * after another in increasing order: FerretDB's `$max` is a read-then-write, so two in flight
   * could land out of order.
   */
  raiseHighWater(pos: number): Promise<unknown> {
    if (pos <= this.raised) return this.raising;
    this.raised = pos;
    this.raising = this.raising
      .catch(() => undefined)
      .then(() => this.counters.updateOne({ _id: 'feed' }, { $max: { highWater: pos } }, { upsert: true }))
      .catch((e) => {
        if (!isDuplicateKeyError(e)) this.logger.warn(`could not raise the feed high-water mark: ${(e as Error).message}`);
      });
    return this.raising;
  }

  /** Highest position written to the feed, as far as the high-water mark (and this process) know. */
  async highWater(): Promise<number> {
    const c = await this.counters.findOne({ _id: 'feed' }, { maxTimeMS: this.maxTimeMS });
    return Math.max(c?.highWater ?? 0, this.raised);
  }

  /** Highest position present in the feed (0 when empty). */
  async maxPosition(): Promise<number> {
    const last = await this.feed
      .find({}, { projection: { _id: 1 } })
      .sort({ _id: -1 })
      .limit(1)
      .toArray();
    return last.length ? last[0]._id : 0;
  }

  async purgedThrough(): Promise<number> {
    const c = await this.counters.findOne({ _id: 'retention' }, { maxTimeMS: this.maxTimeMS });
    return c?.purgedThrough ?? 0;
  }

  /**
   * Inserts entries in order and stops at the first duplicate key (ordered insert: a prefix lands).
   * Returns how many landed. Positions are claimed by inserting them: the unique `_id` is the only
   * arbiter, which is atomic on MongoDB and on FerretDB alike (FerretDB v1's `$inc` is not).
   *
   * FerretDB v1 does not always stop: it inserts in chunks of 100 (`--batch-size`), and after a
   * refused document it goes on with the next chunk (msg_insert.go leaves only the inner loop). Those
   * entries, past the refusal, are removed again before the count is returned (they are this batch's,
   * named by its commit id, unrecorded and without a marker, so no reader has used them): otherwise
   * the caller, which retries the rest, would take each of them for the retry of a change already in
   * the feed and answer it `duplicate` without writing its document, while the batch's marker made
   * the entry applied.
   */
  async insertOrdered(entries: FeedEntry[]): Promise<number> {
    if (entries.length === 0) return 0;
    try {
      await this.feed.insertMany(entries, { ordered: true });
      return entries.length;
    } catch (e) {
      const dups = duplicateKeyIndexes(e);
      if (dups !== null && (dups.has(-1) || dups.size === 0)) throw e;
      const landed = dups === null ? 0 : Math.min(...dups);
      await this.removeStrays(entries.slice(landed + 1));
      return landed;
    }
  }

  /** Deletes those of `entries` (all of one batch) that landed after all: see insertOrdered. */
  private async removeStrays(entries: FeedEntry[]): Promise<void> {
    const commit = entries.find((e) => e.commit !== undefined)?.commit;
    if (commit === undefined) return;
    const removed = await this.feed.deleteMany({ _id: { $in: entries.map((e) => e._id) }, commit });
    if (removed.deletedCount) this.logger.debug(`removed ${removed.deletedCount} feed entries inserted past a refused one`);
  }

  /** Inserts entries ignoring duplicates (gap fillers). */
  async insertEntries(entries: FeedEntry[]): Promise<void> {
    if (entries.length === 0) return;
    try {
      await this.feed.insertMany(entries, { ordered: false });
    } catch (e) {
      const dups = duplicateKeyIndexes(e);
      if (dups !== null && dups.has(-1)) throw e;
    }
  }

  /**
   * The commit of a batch: one marker insert makes every `pending` entry naming `id` applied (see
   * `committed`). `last` is the batch's highest position. Written after the documents.
   */
  async commit(id: string, last: number): Promise<void> {
    await this.commits.insertOne({ _id: id, last, createdAt: new Date() });
  }

  /** Which of these commit ids have their marker (one `_id` lookup). */
  async committed(ids: string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const found = await this.commits.find({ _id: { $in: ids } }, { projection: { _id: 1 }, maxTimeMS: this.maxTimeMS }).toArray();
    return new Set(found.map((m) => m._id));
  }

  /**
   * Gives `pending` entries the state they have: `applied` when their batch's marker exists, or when
   * they lie at or below `settledThrough` (every position there is settled: no lookup). In place.
   */
  async resolveCommitted(entries: FeedEntry[], settledThrough: number): Promise<void> {
    const ask = new Set<string>();
    for (const e of entries) {
      if (e.state !== 'pending' || e.commit === undefined) continue;
      if (e._id <= settledThrough) e.state = 'applied';
      else ask.add(e.commit);
    }
    if (!ask.size) return;
    const done = await this.committed([...ask]);
    for (const e of entries) if (e.state === 'pending' && e.commit !== undefined && done.has(e.commit)) e.state = 'applied';
  }

  /** The entries at these positions, in feed order (`_id` lookups, a window at a time). */
  async entriesAt(positions: number[]): Promise<FeedEntry[]> {
    const out: FeedEntry[] = [];
    for (let i = 0; i < positions.length; i += SCAN_WINDOW) out.push(...(await this.atPositions(positions.slice(i, i + SCAN_WINDOW))));
    return out.sort((a, b) => a._id - b._id);
  }

  /** The entries at up to SCAN_WINDOW positions, in feed order: one `_id: {$in}` query (pushed down on FerretDB too). */
  private async atPositions(ids: number[]): Promise<FeedEntry[]> {
    return (await this.feed.find({ _id: { $in: ids } }, { maxTimeMS: this.maxTimeMS }).toArray()).sort((a, b) => a._id - b._id);
  }

  /** The state of the entry at `pos` (no images), or null: one `_id` lookup. */
  async probe(pos: number): Promise<Pick<FeedEntry, '_id' | 'state' | 'commit' | 'createdAt'> | null> {
    return this.feed.findOne({ _id: pos }, { projection: { _id: 1, state: 1, commit: 1, createdAt: 1 }, maxTimeMS: this.maxTimeMS });
  }

  /** How far the feed is known to be settled (persisted by the feed walk; 0 when never written). */
  async settledThrough(): Promise<number> {
    const c = await this.counters.findOne({ _id: 'settled' }, { maxTimeMS: this.maxTimeMS });
    return c?.settledThrough ?? 0;
  }

  /** Records that every position at or below `pos` is settled (never lowered by this process). */
  async raiseSettled(pos: number): Promise<void> {
    await this.counters.updateOne({ _id: 'settled' }, { $max: { settledThrough: pos } }, { upsert: true }).catch((e) => {
      if (!isDuplicateKeyError(e)) throw e;
    });
  }

  async setState(ids: number[], state: FeedEntry['state'], from: FeedEntry['state'] = 'pending'): Promise<void> {
    if (ids.length === 0) return;
    await this.feed.updateMany({ _id: { $in: ids }, state: from }, { $set: { state } });
  }

  /**
   * Marks pending entries aborted (their document write lost a race) and frees their changeIds, so
   * a retry of the same change gets a feed entry of its own instead of this one's "duplicate".
   */
  async abort(entries: FeedEntry[]): Promise<void> {
    if (entries.length === 0) return;
    await this.feed.bulkWrite(
      entries.map((e) => ({
        updateOne: { filter: { _id: e._id, state: 'pending' }, update: { $set: { state: 'aborted' as const, changeId: `aborted:${e._id}:${e.changeId}` } } },
      })),
      { ordered: false },
    );
    await this.changes.deleteMany({ _id: { $in: entries.filter((e) => e.userId !== undefined).map((e) => changeKey(e.userId!, e.changeId)) } });
  }

  /** Records where the entries went (after they landed in the feed); an existing record is kept. */
  async recordChanges(entries: FeedEntry[]): Promise<void> {
    const real = entries.filter((e) => e.state !== 'skip' && e.userId !== undefined);
    if (!real.length) return;
    try {
      await this.changes.insertMany(
        real.map((e) => ({ _id: changeKey(e.userId!, e.changeId), pos: e._id, createdAt: e.createdAt })),
        { ordered: false },
      );
    } catch (e) {
      const dups = duplicateKeyIndexes(e);
      if (dups === null || dups.has(-1)) throw e;
    }
  }

  /**
   * The feed entries of one author's changes, found through their records (two `_id` lookups).
   * A change whose record is missing (its writer died between the two inserts) is not found here;
   * `findByChangeIds` is the exact, slow way.
   */
  async findRecorded(userId: string, changeIds: string[]): Promise<FeedEntry[]> {
    if (changeIds.length === 0) return [];
    const recs = await this.changes.find({ _id: { $in: changeIds.map((c) => changeKey(userId, c)) } }).toArray();
    if (!recs.length) return [];
    const wanted = new Set(changeIds);
    const entries = await this.feed
      .find({ _id: { $in: recs.map((r) => r.pos) } }, { projection: { _id: 1, changeId: 1, state: 1, timestamp: 1, userId: 1, documentId: 1, collection: 1 } })
      .toArray();
    return entries.filter((e) => e.userId === userId && wanted.has(e.changeId));
  }

  /** Changes of one author by changeId (idempotency is per user: two users may reuse an id). */
  async findByChangeIds(userId: string, changeIds: string[]): Promise<FeedEntry[]> {
    if (changeIds.length === 0) return [];
    return this.feed
      .find({ userId, changeId: { $in: changeIds } }, { projection: { _id: 1, changeId: 1, state: 1, timestamp: 1, documentId: 1, collection: 1 } })
      .toArray();
  }

  /**
   * Entries after `after`, in feed order (at most `limit`). Positions are dense, so a run of them is
   * asked for by `_id` (`$in`): index lookups on MongoDB, and on the embedded FerretDB (with our
   * patch) the only shape it answers without reading the whole feed. The end of the feed is told
   * by the high-water mark, not by a range query (a read of the whole feed on FerretDB).
   */
  async scan(after: number, limit: number): Promise<FeedEntry[]> {
    const window = this.scanWindow(limit);
    const ids = Array.from({ length: window }, (_, i) => after + 1 + i);
    const found = await this.atPositions(ids);
    let run = 0;
    while (run < found.length && found[run]._id === after + 1 + run) run++;
    if (run > 0) return found.slice(0, run);
    // a hole right after `after`: what follows it in the window shows it to the walk
    if (found.length) return found;
    // nothing in the window: the end of the feed, unless the mark says more was written: a hole
    // (batches still being inserted while a later one landed, or a writer that died with positions
    // claimed). The windows up to the mark find what follows it, the first one again (what landed
    // while it was read raised the mark): a few `_id` lookups; the range read is a read of the whole
    // feed on FerretDB, left for a hole wider than 8 windows
    const hw = await this.highWater();
    if (after >= hw) return [];
    for (let from = after; from < hw && from < after + 8 * SCAN_WINDOW; from += SCAN_WINDOW) {
      const next = Array.from({ length: Math.min(SCAN_WINDOW, hw - from) }, (_, i) => from + 1 + i);
      const beyond = await this.atPositions(next);
      if (beyond.length) return beyond;
    }
    return this.feed
      .find({ _id: { $gt: after } }, { maxTimeMS: this.maxTimeMS })
      .sort({ _id: 1 })
      .limit(limit)
      .toArray();
  }

  /** How many positions `scan(after, limit)` asks for at once (a whole window means more may follow). */
  scanWindow(limit: number): number {
    return Math.max(1, Math.min(limit, SCAN_WINDOW));
  }

  /** Fills a gap of positions whose writer never showed up with `skip` entries (ignores races). */
  async fillGap(positions: number[]): Promise<void> {
    const now = new Date();
    await this.insertEntries(positions.map((p) => ({ _id: p, changeId: `skip:${p}`, state: 'skip' as const, createdAt: now })));
  }

  /**
   * The unsettled entries of one document after `after` (a position at or below which everything is
   * settled), in feed order: stored `pending`, without their batch's commit marker.
   */
  async pendingForDoc(docKey: string, after: number): Promise<FeedEntry[]> {
    const entries = await this.feed
      .find({ docKey, state: 'pending', _id: { $gt: after } })
      .sort({ _id: 1 })
      .toArray();
    await this.resolveCommitted(entries, after);
    return entries.filter((e) => e.state === 'pending');
  }

  /** First position whose change was applied strictly after `since` (server clock), or null. */
  async firstAfterServerTime(since: number): Promise<number | null> {
    const e = await this.feed
      .find({ serverTimestamp: { $gt: since } }, { projection: { _id: 1 }, maxTimeMS: this.maxTimeMS })
      .sort({ serverTimestamp: 1 })
      .limit(1)
      .toArray();
    return e.length ? e[0]._id : null;
  }

  /**
   * Deletes entries created before `cutoff`, up to the settled head the feed walk recorded (every
   * position at or below it is settled), with their commit markers and records, and records how far
   * the feed has been purged (cursors at or before it get CURSOR_EXPIRED).
   */
  async purge(cutoff: Date): Promise<number> {
    const last = await this.feed
      .find({ createdAt: { $lt: cutoff } }, { projection: { _id: 1 } })
      .sort({ _id: -1 })
      .limit(1)
      .toArray();
    if (!last.length) return 0;
    const through = Math.min(last[0]._id, await this.settledThrough());
    if (through <= 0) return 0;
    await this.counters.updateOne({ _id: 'retention' }, { $max: { purgedThrough: through } }, { upsert: true });
    const res = await this.feed.deleteMany({ _id: { $lte: through } });
    await this.changes.deleteMany({ pos: { $lte: through } });
    await this.commits.deleteMany({ last: { $lte: through } });
    return res.deletedCount;
  }
}
