import { Injectable } from '@nestjs/common';
import { ObjectId } from 'mongodb';
import { SyncDocument, UnavailableError } from '@sync/protocol';
import type { StoredState } from '../conflict/conflict.types';
import { ChangeFeedRepository, FeedEntry } from './change-feed.repository';
import { DocumentRepository, DocumentWrite } from './document.repository';

/** The key of a change for idempotency: its author and its changeId. */
export const idemKey = (userId: string, changeId: string) => `${userId}\u0000${changeId}`;

/** A change the write path accepted: its feed entry (`pending`, position not yet given) and, for a delete, the document's last version. */
export interface AcceptedChange {
  entry: FeedEntry;
  lastDoc: SyncDocument | null;
}

/** The write-ahead of accepted changes: their entries are in the feed, `pending`. */
export interface WrittenAhead<T extends AcceptedChange> {
  /** Retries of changes already in the feed, with the entry of their first attempt: answered duplicate. */
  retries: Map<T, FeedEntry>;
  /**
   * Changes of a retry's document resolved on top of it (its record was missing when the group was
   * loaded): not written (their positions are skips), to be answered UNAVAILABLE.
   */
  spoiled: Set<T>;
  /** The others, to write and settle (`writeDocuments`). */
  fresh: T[];
  /** The high-water mark and the idempotency records, landing meanwhile: awaited before the commit. */
  bookkeeping: Promise<unknown>;
  /** The batch's commit id, named by its entries: its marker makes them applied. */
  commit: string;
}

/**
 * The commit of accepted changes: write-ahead feed entries with consecutive positions, the
 * compare-and-set document writes, the settle (see docs/ARCHITECTURE.md, steps 5 to 8). Owns the
 * local position counter.
 */
@Injectable()
export class FeedWriter {
  /** Next feed position this process will try (0 = not known yet). */
  private nextPosition = 0;

  constructor(
    private readonly feedRepo: ChangeFeedRepository,
    private readonly docs: DocumentRepository,
  ) {}

  /** Write-ahead: the feed entries exist (`pending`, naming the batch's commit id) before any document changes. */
  async writeAhead<T extends AcceptedChange>(accepted: T[]): Promise<WrittenAhead<T>> {
    const commit = new ObjectId().toHexString();
    for (const a of accepted) a.entry.commit = commit;
    const inserted = await this.insertPending(accepted.map((a) => a.entry));
    const retries = new Map<T, FeedEntry>();
    const spoiled = new Set<T>();
    for (const a of accepted) {
      const first = inserted.retries.get(a.entry);
      if (first) retries.set(a, first);
      else if (inserted.spoiled.has(a.entry)) spoiled.add(a);
    }
    const fresh = retries.size ? accepted.filter((a) => !retries.has(a) && !spoiled.has(a)) : accepted;
    return { retries, spoiled, fresh, bookkeeping: inserted.bookkeeping, commit };
  }

  /**
   * Writes the documents (one compare-and-set per document, with its final state; `initial` holds
   * the states the outcomes were computed from) and commits: the entries whose document changed
   * meanwhile (another node without the lease) are marked `aborted` first, then one commit marker
   * makes the others applied (insert-only: the entries are not rewritten).
   */
  async writeDocuments<T extends AcceptedChange>(
    ahead: WrittenAhead<T>,
    initial: ReadonlyMap<string, StoredState>,
    serverTimestamp: number,
  ): Promise<{ applied: T[]; lost: T[] }> {
    const lastByKey = new Map<string, T>();
    for (const a of ahead.fresh) lastByKey.set(a.entry.docKey!, a);
    const writes: DocumentWrite[] = [];
    const writeKeys: string[] = [];
    for (const [key, { entry, lastDoc }] of lastByKey) {
      writes.push(documentWrite(entry, initial.get(key)!, lastDoc, serverTimestamp));
      writeKeys.push(key);
    }
    // the documents are written while the high-water mark and the idempotency records land (one round
    // trip less): neither is needed before the commit, and a crash in between is repaired by the
    // replay, which writes the records of the entries it replays
    const [failedWrites] = await Promise.all([this.docs.applyWrites(writes), ahead.bookkeeping]);
    const failedKeys = new Set([...failedWrites].map((i) => writeKeys[i]));

    const applied = ahead.fresh.filter((a) => !failedKeys.has(a.entry.docKey!));
    const lost = ahead.fresh.filter((a) => failedKeys.has(a.entry.docKey!));
    // aborted before the marker: the marker must never cover an entry whose document was not written
    // (rare: another node wrote without the lease)
    if (lost.length) await this.feedRepo.abort(lost.map((a) => a.entry));
    if (applied.length) {
      await this.feedRepo.commit(ahead.commit, Math.max(...applied.map((a) => a.entry._id)));
      for (const a of applied) a.entry.state = 'applied';
    }
    return { applied, lost };
  }

  /**
   * Gives the entries consecutive feed positions and inserts them, in order. Positions come from a
   * local counter; the unique `_id` arbitrates between processes: on a taken position the counter
   * jumps past the feed's highest position and the rest is retried. An entry the unique
   * (userId, changeId) index refuses is the retry of a change already in the feed: it is dropped
   * (returned with the entry of its first attempt, to answer duplicate) and its position gets a
   * `skip` entry, so readers see no gap. The entries after such a retry that change its document were
   * resolved on top of it (a retry whose record was missing when the group was loaded): they are
   * not written either (`spoiled`, skipped alike) and their changes are answered UNAVAILABLE.
   */
  private async insertPending(entries: FeedEntry[]): Promise<{ retries: Map<FeedEntry, FeedEntry>; spoiled: Set<FeedEntry>; bookkeeping: Promise<unknown> }> {
    const retries = new Map<FeedEntry, FeedEntry>();
    const spoiled = new Set<FeedEntry>();
    const retried = new Set<string>();
    const side: Promise<unknown>[] = [];
    let todo = entries;
    let assign = true;
    /** Where this attempt's claim ends (the counter's value right after it). */
    let claimEnd = 0;
    for (let attempt = 0; todo.length; attempt++) {
      if (attempt > 50) throw new UnavailableError('could not claim change feed positions');
      if (assign) {
        if (this.nextPosition === 0) this.nextPosition = Math.max(...(await Promise.all([this.feedRepo.highWater(), this.feedRepo.purgedThrough()]))) + 1;
        const first = this.nextPosition;
        this.nextPosition += todo.length;
        claimEnd = this.nextPosition;
        todo.forEach((e, i) => (e._id = first + i));
      }
      const landed = await this.feedRepo.insertOrdered(todo);
      if (landed > 0) {
        // readers tell the end of the feed by this mark (see ChangeFeedRepository.scan); retries are
        // recognised through the records. Not awaited here: the caller writes the documents meanwhile
        const p = Promise.all([this.feedRepo.raiseHighWater(todo[landed - 1]._id), this.feedRepo.recordChanges(todo.slice(0, landed))]);
        p.catch(() => undefined); // awaited by the caller; never an unhandled rejection meanwhile
        side.push(p);
      }
      if (landed === todo.length) break;
      const rest = todo.slice(landed);
      const real = rest.filter((e) => e.state !== 'skip');
      const asked = real.map((e) => ({ userId: e.userId!, changeId: e.changeId }));
      let known = await this.findRecorded(asked, true);
      // the refused entry is not recorded: its record was lost in a crash, or its position was taken
      if (rest[0].state !== 'skip' && !known.has(idemKey(rest[0].userId!, rest[0].changeId))) known = await this.findRecorded(asked, true, true);
      const firstOf = (e: FeedEntry) => (e.state === 'skip' ? undefined : known.get(idemKey(e.userId!, e.changeId)));
      const isRetry = (e: FeedEntry) => {
        const first = firstOf(e);
        return first !== undefined && first._id !== e._id;
      };
      if (isRetry(rest[0])) {
        todo = rest.map((e) => {
          if (isRetry(e)) {
            retries.set(e, firstOf(e)!);
            retried.add(e.docKey!);
          } else if (e.state !== 'skip' && retried.has(e.docKey!)) spoiled.add(e);
          else return e;
          // named by the batch's commit id like its other entries (see ChangeFeedRepository.insertOrdered)
          return { _id: e._id, changeId: `skip:${e._id}`, state: 'skip' as const, commit: e.commit, createdAt: e.createdAt };
        });
        assign = false;
      } else {
        // the position is taken (another node): new positions past the feed's head. The positions given
        // up must not stay holes (readers, live delivery and acks wait at a hole until it is stale): the
        // counter goes back to the head when nothing of this process claimed after them, and the
        // retry claims them again (it needs as many, from the head on); otherwise they are filled with
        // `skip` entries (the taken one is a duplicate, ignored)
        const head = (await this.feedRepo.maxPosition()) + 1;
        if (this.nextPosition === claimEnd && real.length === rest.length) this.nextPosition = head;
        else {
          this.nextPosition = Math.max(this.nextPosition, head);
          await this.feedRepo.fillGap(rest.map((e) => e._id));
        }
        todo = real;
        assign = true;
      }
    }
    const bookkeeping = Promise.all(side);
    bookkeeping.catch(() => undefined);
    return { retries, spoiled, bookkeeping };
  }

  /**
   * The feed entries of changes already recorded, by author and changeId (keyed by idemKey), one
   * lookup per author. `aborted` entries are left out unless asked for; `exact` reads the feed itself
   * (a change whose record was lost with its writer).
   */
  async findRecorded(asked: { userId: string; changeId: string }[], withAborted: boolean, exact = false): Promise<Map<string, FeedEntry>> {
    const byUser = new Map<string, string[]>();
    for (const { userId, changeId } of asked) {
      const ids = byUser.get(userId) ?? [];
      ids.push(changeId);
      byUser.set(userId, ids);
    }
    const found = await Promise.all(
      [...byUser].map(async ([userId, ids]) => {
        const entries = exact ? await this.feedRepo.findByChangeIds(userId, ids) : await this.feedRepo.findRecorded(userId, ids);
        return entries.map((e) => ({ ...e, userId }));
      }),
    );
    const out = new Map<string, FeedEntry>();
    for (const e of found.flat()) if (withAborted || e.state !== 'aborted') out.set(idemKey(e.userId, e.changeId), e);
    return out;
  }
}

/**
 * The compare-and-set write that puts a feed entry's version in place over `init` (the state it was
 * computed from), tombstone first for a delete: the commit's writes and the replay's.
 */
export function documentWrite(e: FeedEntry, init: StoredState, lastDoc: SyncDocument | null, serverTimestamp: number): DocumentWrite {
  return {
    collection: e.collection!,
    documentId: e.documentId!,
    expected: { exists: init.doc !== null, timestamp: init.doc ? init.timestamp : null },
    dbId: init.dbId,
    after: e.operation === 'delete' ? null : (e.after ?? null),
    tombstone:
      e.operation === 'delete'
        ? { timestamp: e.timestamp!, changeId: e.changeId, userId: e.userId!, deletedAt: new Date(serverTimestamp), lastDoc }
        : undefined,
  };
}
