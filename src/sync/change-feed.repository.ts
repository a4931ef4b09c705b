import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { InjectConnection } from '@nestjs/mongoose';
import type { Collection, Db } from 'mongodb';
import type { Connection } from 'mongoose';
import type { Operation, SyncDocument } from '@sync/protocol';

export const FEED_COLLECTION = '_sync_feed';
export const COUNTERS_COLLECTION = '_sync_counters';

/**
 * One entry of the change feed. `_id` is the feed position (a number handed out by an atomic counter).
 * Entries are written `pending` BEFORE the document write (write-ahead) and flipped to `applied`
 * after it, so a crash in between is repaired by replaying the entry (see ChangeFeedService).
 */
export interface FeedEntry {
  _id: number;
  changeId: string;
  state: 'pending' | 'applied' | 'aborted' | 'skip';
  collection?: string;
  documentId?: string;
  /** `${collection}:${documentId}` — for the per-document recovery lookup. */
  docKey?: string;
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
  seq?: number;
  purgedThrough?: number;
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

/** The change feed and its counters (`_sync_feed`, `_sync_counters`). Only this class touches them. */
@Injectable()
export class ChangeFeedRepository implements OnModuleInit {
  private readonly logger = new Logger('ChangeFeedRepository');

  constructor(@InjectConnection() private readonly connection: Connection) {}

  private get db(): Db {
    return this.connection.db as unknown as Db;
  }
  get feed(): Collection<FeedEntry> {
    return this.db.collection<FeedEntry>(FEED_COLLECTION);
  }
  private get counters(): Collection<CounterDoc> {
    return this.db.collection<CounterDoc>(COUNTERS_COLLECTION);
  }

  async onModuleInit(): Promise<void> {
    await this.feed.createIndexes([
      { key: { changeId: 1 }, name: 'changeId_unique', unique: true },
      { key: { state: 1, createdAt: 1 }, name: 'state_createdAt' },
      { key: { docKey: 1 }, name: 'docKey' },
      { key: { serverTimestamp: 1 }, name: 'serverTimestamp' },
      { key: { createdAt: 1 }, name: 'createdAt' },
    ]);
  }

  /** Reserves `n` consecutive feed positions; returns the first. */
  async reserve(n: number): Promise<number> {
    const res = await this.counters.findOneAndUpdate({ _id: 'feed' }, { $inc: { seq: n } }, { upsert: true, returnDocument: 'after' });
    const end = res?.seq;
    if (typeof end !== 'number') throw new Error('feed counter missing after $inc');
    return end - n + 1;
  }

  /** Highest position ever handed out (0 when none). */
  async allocatedHead(): Promise<number> {
    const c = await this.counters.findOne({ _id: 'feed' });
    return c?.seq ?? 0;
  }

  async purgedThrough(): Promise<number> {
    const c = await this.counters.findOne({ _id: 'retention' });
    return c?.purgedThrough ?? 0;
  }

  /**
   * Inserts entries; returns the indexes that failed on a duplicate `_id` (the position was taken by a
   * gap filler) or duplicate changeId (a concurrent retry of the same change). Other errors throw.
   */
  async insertEntries(entries: FeedEntry[]): Promise<Set<number>> {
    if (entries.length === 0) return new Set();
    try {
      await this.feed.insertMany(entries, { ordered: false });
      return new Set();
    } catch (e) {
      const dups = duplicateKeyIndexes(e);
      if (dups === null) return new Set([0]);
      if (dups.has(-1)) throw e;
      return dups;
    }
  }

  async setState(ids: number[], state: FeedEntry['state'], from: FeedEntry['state'] = 'pending'): Promise<void> {
    if (ids.length === 0) return;
    await this.feed.updateMany({ _id: { $in: ids }, state: from }, { $set: { state } });
  }

  async findByChangeIds(changeIds: string[]): Promise<FeedEntry[]> {
    if (changeIds.length === 0) return [];
    return this.feed
      .find({ changeId: { $in: changeIds } }, { projection: { _id: 1, changeId: 1, state: 1, timestamp: 1, documentId: 1, collection: 1 } })
      .toArray();
  }

  /** Entries after `after`, in feed order. */
  async scan(after: number, limit: number): Promise<FeedEntry[]> {
    return this.feed.find({ _id: { $gt: after } }).sort({ _id: 1 }).limit(limit).toArray();
  }

  /** Fills a gap of positions whose writer never showed up with `skip` entries (ignores races). */
  async fillGap(positions: number[]): Promise<void> {
    const now = new Date();
    await this.insertEntries(positions.map((p) => ({ _id: p, changeId: `skip:${p}`, state: 'skip' as const, createdAt: now })));
  }

  async stalePending(olderThan: Date, limit = 500): Promise<FeedEntry[]> {
    return this.feed.find({ state: 'pending', createdAt: { $lt: olderThan } }).sort({ _id: 1 }).limit(limit).toArray();
  }

  async pendingForDoc(docKey: string): Promise<FeedEntry[]> {
    return this.feed.find({ docKey, state: 'pending' }).sort({ _id: 1 }).toArray();
  }

  /** First position whose change was applied strictly after `since` (server clock), or null. */
  async firstAfterServerTime(since: number): Promise<number | null> {
    const e = await this.feed.find({ serverTimestamp: { $gt: since } }, { projection: { _id: 1 } }).sort({ serverTimestamp: 1 }).limit(1).toArray();
    return e.length ? e[0]._id : null;
  }

  async oldestServerTime(): Promise<number | null> {
    const e = await this.feed.find({ state: 'applied' }, { projection: { serverTimestamp: 1 } }).sort({ _id: 1 }).limit(1).toArray();
    return e.length ? (e[0].serverTimestamp ?? null) : null;
  }

  /**
   * Deletes settled entries created before `cutoff`, up to the last contiguous settled position, and
   * records how far the feed has been purged (cursors at or before it get CURSOR_EXPIRED).
   */
  async purge(cutoff: Date): Promise<number> {
    const last = await this.feed.find({ createdAt: { $lt: cutoff } }, { projection: { _id: 1 } }).sort({ _id: -1 }).limit(1).toArray();
    if (!last.length) return 0;
    let through = last[0]._id;
    const pending = await this.feed.find({ state: 'pending', _id: { $lte: through } }, { projection: { _id: 1 } }).sort({ _id: 1 }).limit(1).toArray();
    if (pending.length) through = pending[0]._id - 1;
    if (through <= 0) return 0;
    await this.counters.updateOne({ _id: 'retention' }, { $max: { purgedThrough: through } }, { upsert: true });
    const res = await this.feed.deleteMany({ _id: { $lte: through } });
    return res.deletedCount;
  }
}
