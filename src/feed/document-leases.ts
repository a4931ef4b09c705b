import { Inject, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { KeyedMutex } from '../common/keyed-mutex';
import { ChangeFeedService } from './change-feed.service';
import { LockRepository } from './lock.repository';
import { SYNC_TIMINGS, SyncTimings } from './sync.constants';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Documents remembered as unfinished at most (a database away for long while writes keep failing):
 * beyond, a failed roll-forward is left to the feed walk's replay of stale entries, as before.
 */
export const MAX_UNFINISHED = 10_000;

/** The documents a writer holds: those it leased (the others are held by another node). */
export interface HeldDocuments {
  leased: string[];
  /** Gives the documents back: the leases in the background (see DocumentLeases.acquire), then the in-process lock. */
  release(): void;
  /**
   * For a writer that failed after its write-ahead (before its commit marker): replays what it wrote
   * ahead for these documents (its positions, by document) now, so that neither a retry (answered
   * from the entry) nor the next writer of the document (resolving against its stored state) meets a
   * change that is in the feed and not in the document. A document that cannot be finished now
   * keeps its lease (not given back by `release`): this process's next writer of it renews the lease
   * and replays it first, and another node's takes the lease only once it expired, which replays it
   * first as well.
   */
  finish(ahead: ReadonlyMap<string, number[]>): Promise<void>;
}

/**
 * Who may write a document now: an in-process mutex per document, then a lease in `_sync_locks`
 * per document (so two nodes never resolve one document at once). An expired lease of a dead holder
 * is stolen, and its pending feed entries for that document are replayed first.
 */
@Injectable()
export class DocumentLeases implements OnModuleDestroy {
  private readonly logger = new Logger('DocumentLeases');
  private readonly mutex = new KeyedMutex();
  /** Lease releases in flight (awaited at shutdown, so a clean stop leaves no lease behind). */
  private readonly releasing = new Set<Promise<void>>();
  /**
   * Documents whose writer failed between its write-ahead and its commit, not replayed yet, with the
   * positions it wrote ahead for them (see HeldDocuments.finish).
   */
  private readonly unfinished = new Map<string, number[]>();

  constructor(
    @Inject(SYNC_TIMINGS) private readonly timings: SyncTimings,
    private readonly locks: LockRepository,
    private readonly feed: ChangeFeedService,
  ) {}

  async onModuleDestroy(): Promise<void> {
    await Promise.allSettled([...this.releasing]);
  }

  /**
   * Waits for this process's earlier writers of the documents, then leases them. `release()` lets
   * the caller answer without waiting for the leases' release (one round trip less): this process's
   * next writer of these documents waits for it (the in-process lock is held until it is done).
   */
  async acquire(keys: string[]): Promise<HeldDocuments> {
    const releaseLocal = await this.mutex.acquire(keys);
    let leased: string[] = [];
    try {
      leased = await this.lease(keys);
      if (this.unfinished.size) await this.finish(leased.filter((k) => this.unfinished.has(k)).map((k) => [k, []]));
    } catch (e) {
      const give = leased.filter((k) => !this.unfinished.has(k)); // an unfinished document keeps its lease
      if (give.length) await this.locks.release(give).catch(() => undefined); // or they expire
      releaseLocal();
      throw e;
    }
    return {
      leased,
      finish: (ahead) => {
        const mine = new Set(leased);
        return this.finish([...ahead].filter(([k]) => mine.has(k)));
      },
      release: () => {
        const give = this.unfinished.size ? leased.filter((k) => !this.unfinished.has(k)) : leased;
        if (!give.length) return releaseLocal();
        const released: Promise<void> = this.locks
          .release(give)
          .catch((e) => this.logger.warn(`lease release failed (they expire): ${(e as Error).message}`))
          .finally(() => {
            releaseLocal();
            this.releasing.delete(released);
          });
        this.releasing.add(released);
      },
    };
  }

  /**
   * Replays what writers of this process that failed wrote ahead for these documents (held by the
   * caller): the positions given, and those of earlier failures; those that fail stay unfinished.
   */
  private async finish(ahead: [string, number[]][]): Promise<void> {
    for (const [k, positions] of ahead) {
      const known = this.unfinished.get(k);
      if (known) known.push(...positions);
      else if (this.unfinished.size < MAX_UNFINISHED) this.unfinished.set(k, [...positions]);
    }
    for (const [k, positions] of ahead) {
      await this.feed.replayAt(k, this.unfinished.get(k) ?? positions);
      this.unfinished.delete(k);
    }
  }

  /** How many documents are remembered as unfinished (bounded by MAX_UNFINISHED). */
  get unfinishedCount(): number {
    return this.unfinished.size;
  }

  /** Takes the documents' leases; waits for other nodes' leases, replays expired ones. */
  private async lease(keys: string[]): Promise<string[]> {
    const ttl = this.timings.lockTtlMs;
    const deadline = Date.now() + this.timings.lockWaitMs;
    // the leases this process kept for unfinished documents are renewed, not waited for
    const kept = new Set<string>();
    if (this.unfinished.size) for (const k of keys) if (this.unfinished.has(k) && (await this.locks.reclaim(k, ttl))) kept.add(k);
    let missing = await this.locks.tryAcquire(kept.size ? keys.filter((k) => !kept.has(k)) : keys, ttl);
    const held = new Set(keys.filter((k) => !missing.includes(k)));
    for (let attempt = 0; missing.length && Date.now() < deadline; attempt++) {
      for (const k of missing) {
        if (await this.locks.steal(k, ttl)) {
          // the previous holder died: finish what it wrote ahead before touching the document
          await this.feed.replayPending(k);
          held.add(k);
        }
      }
      missing = missing.filter((k) => !held.has(k));
      if (!missing.length) break;
      // release what we hold while waiting, so two nodes never wait on each other
      if (held.size > kept.size && attempt % 4 === 3) {
        await this.locks.release([...held].filter((k) => !kept.has(k)));
        held.clear();
        for (const k of kept) held.add(k);
        missing = keys.filter((k) => !kept.has(k));
      }
      await sleep(5 + Math.random() * Math.min(100, 5 * 2 ** Math.min(attempt, 5)));
      const got = await this.locks.tryAcquire(missing, ttl);
      for (const k of missing) if (!got.includes(k)) held.add(k);
      missing = got;
    }
    return [...held];
  }
}
