import { Inject, Injectable, Logger } from '@nestjs/common';
import {
  ChangeAck,
  ChangeAckFailure,
  encodeCursor,
  ErrorCode,
  ForbiddenError,
  InvalidPayloadError,
  isSyncError,
  SyncDocument,
  SyncError,
  UnavailableError,
} from '@sync/protocol';
import type { AuthUser } from '../auth/auth.types';
import { AuditRecord, AuditRepository } from '../audit/audit.repository';
import { KeyedMutex } from '../common/keyed-mutex';
import { isUnavailableError, toFailureAck } from '../common/ack';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { CONFLICT_RESOLVER, ConflictStrategy, FIELD_TS, StoredState } from '../conflict/conflict.types';
import { MetricsService } from '../health/metrics.service';
import { PermissionService } from '../permission/permission.service';
import { ChangeFeedRepository, FeedEntry } from './change-feed.repository';
import { ChangeFeedService, publicDoc } from './change-feed.service';
import { normalizeChange, NormalizedChange } from './change.validation';
import { DeliveryService } from './delivery.service';
import { DocumentRepository, DocumentWrite, docKey } from './document.repository';
import { documentIdProblem, IdHint, readIdHint, wireIdType } from './document-id';
import { fieldTypesTemplate, keepStoredTypes } from './stored-types';
import { LockRepository } from './lock.repository';
import { SYNC_TIMINGS, SyncTimings } from './sync.constants';

/** Who sent a set of changes, and from where. */
export interface ChangeOrigin {
  user: AuthUser;
  clientAddress?: string;
  /** The sending socket (it gets no echo unless BROADCAST_TO_SENDER). */
  socketId?: string;
  /** Server-to-server ingest with the service token: write rules do not apply. */
  trusted?: boolean;
}

/** A change as applied: what the delivery step needs to route it. */
export interface AppliedChange {
  entry: FeedEntry;
  originSocketId?: string;
}

interface Work {
  index: number;
  change: NormalizedChange;
  /** The change's optional `idType` (how a new document of an `auto` collection stores its `_id`). */
  idHint?: IdHint;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The write path: validate → idempotency → lease the documents → resolve conflicts (pure strategy)
 * → check write rules → write-ahead feed entries → compare-and-set document writes → settle the
 * entries → deliver. No multi-document transactions: the order of these writes is what keeps a crash
 * at any point from losing an acknowledged change (see docs/ARCHITECTURE.md).
 */
@Injectable()
export class SyncService {
  private readonly logger = new Logger('SyncService');
  private readonly mutex = new KeyedMutex();
  /** changeIds being applied by this process, so a concurrent retry waits for the first answer. */
  private readonly inFlight = new Map<string, Promise<ChangeAck>>();
  /** Next feed position this process will try (0 = not known yet). */
  private nextPosition = 0;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(CONFLICT_RESOLVER) private readonly resolve: ConflictStrategy,
    @Inject(SYNC_TIMINGS) private readonly timings: SyncTimings,
    private readonly feedRepo: ChangeFeedRepository,
    private readonly feed: ChangeFeedService,
    private readonly docs: DocumentRepository,
    private readonly locks: LockRepository,
    private readonly audit: AuditRepository,
    private readonly permissions: PermissionService,
    private readonly delivery: DeliveryService,
    private readonly metrics: MetricsService,
  ) {}

  /** Applies changes in order, each on its own merits; one ack per change. */
  async apply(rawChanges: unknown[], origin: ChangeOrigin): Promise<ChangeAck[]> {
    const n = rawChanges.length;
    const results: (ChangeAck | undefined)[] = new Array(n);
    const auditRecords: AuditRecord[] = [];
    const now = Date.now();
    this.metrics.changesReceived.inc(n);
    this.metrics.pendingChanges.inc(n);
    const timer = this.metrics.applyDuration.startTimer({ kind: n === 1 ? 'single' : 'batch' });
    const reject = (i: number, e: SyncError | ChangeAckFailure, c?: Partial<NormalizedChange>) => {
      const ack = (e instanceof SyncError ? e.toAck() : e) as ChangeAckFailure;
      results[i] = ack;
      this.metrics.changesRejected.inc({ code: ack.code });
      auditRecords.push({
        at: new Date(),
        userId: origin.user.id,
        clientAddress: origin.clientAddress,
        code: ack.code,
        reason: ack.error,
        changeId: c?.changeId,
        operation: c?.operation,
        collection: c?.collection,
        documentId: c?.documentId,
        timestamp: c?.timestamp,
      });
    };

    try {
      // 1. validate
      const work: Work[] = [];
      const firstIndexOf = new Map<string, number>();
      const dupOf = new Map<number, number>();
      for (let i = 0; i < n; i++) {
        try {
          const c = normalizeChange(rawChanges[i], { maxChangeBytes: this.config.limits.maxChangeBytes, maxClockSkewMs: this.config.sync.maxClockSkewMs, now });
          const idHint = this.checkDocumentId(rawChanges[i], c);
          const first = firstIndexOf.get(c.changeId);
          if (first !== undefined) dupOf.set(i, first);
          else {
            firstIndexOf.set(c.changeId, i);
            work.push({ index: i, change: c, idHint });
          }
        } catch (e) {
          if (!isSyncError(e)) throw e;
          const raw = rawChanges[i] as Record<string, unknown> | null;
          reject(i, e, raw && typeof raw === 'object' ? { changeId: typeof raw.changeId === 'string' ? raw.changeId.slice(0, 128) : undefined, documentId: typeof raw.documentId === 'string' ? raw.documentId.slice(0, 256) : undefined } : {});
        }
      }

      // 2. idempotency. A retry being applied right now by this process waits for the first answer.
      // A retry of a change already in the feed is recognised without a query on the way in (that
      // query is a scan of the whole feed on the embedded database): the feed's unique
      // (userId, changeId) index refuses its write-ahead entry, and a retry the resolver or a rule
      // would decline is looked up before it is answered (see applyFresh).
      let fresh = work;
      if (work.length) {
        const waiting: Promise<void>[] = [];
        fresh = [];
        for (const w of work) {
          const running = this.inFlight.get(`${origin.user.id}\u0000${w.change.changeId}`);
          if (running) {
            waiting.push(running.then((ack) => void (results[w.index] = { ...ack, duplicate: true } as ChangeAck)));
            this.metrics.changesDuplicate.inc();
          } else fresh.push(w);
        }
        if (fresh.length) {
          const batchPromise = this.applyFresh(fresh, origin, results, reject);
          for (const w of fresh) {
            // a failed batch is answered below; retries waiting on it get an UNAVAILABLE, never an unhandled rejection
            const p = batchPromise.then(
              () => results[w.index]!,
              () => new UnavailableError('the first attempt of this change failed: retry').toAck() as ChangeAck,
            );
            this.inFlight.set(`${origin.user.id}\u0000${w.change.changeId}`, p);
          }
          try {
            await batchPromise;
          } finally {
            for (const w of fresh) this.inFlight.delete(`${origin.user.id}\u0000${w.change.changeId}`);
          }
        }
        await Promise.all(waiting);
      }
      for (const [i, first] of dupOf) {
        const ack = results[first]!;
        results[i] = ack.success ? { ...ack, duplicate: true } : ack;
      }
    } catch (e) {
      // nothing below was acknowledged: every unanswered change gets the same error
      const ack = toFailureAck(e, 'apply') as ChangeAck;
      for (let i = 0; i < n; i++) if (!results[i]) results[i] = ack;
    } finally {
      this.metrics.pendingChanges.dec(n);
      timer();
    }
    if (auditRecords.length) void this.audit.record(auditRecords).catch((e) => this.logger.warn(`audit write failed: ${(e as Error).message}`));
    return results as ChangeAck[];
  }

  /**
   * The change's optional `idType` hint, after checking that its documentId fits the collection's
   * id type (an `objectId` collection takes only 24-hex ids): INVALID_PAYLOAD otherwise.
   */
  private checkDocumentId(raw: unknown, c: NormalizedChange): IdHint | undefined {
    const hint = readIdHint(raw);
    const problem = typeof hint === 'object' ? hint.error : documentIdProblem(this.permissions.idType(c.collection), c.documentId, hint);
    if (problem) throw new InvalidPayloadError(problem, { changeId: c.changeId });
    return hint as IdHint | undefined;
  }

  /** See stored-types.ts: BSON types of the stored document and of the collection's fieldTypes survive the JSON wire. */
  private keepTypes(collection: string, stored: SyncDocument | null, after: SyncDocument): SyncDocument {
    const types = this.permissions.fieldTypes(collection);
    let out = types ? keepStoredTypes(fieldTypesTemplate(types), after) : after;
    if (stored) out = keepStoredTypes(stored, out);
    return out;
  }

  /** Leases the documents, resolves, writes and delivers. Fills `results` for every item of `work`. */
  private async applyFresh(
    work: Work[],
    origin: ChangeOrigin,
    results: (ChangeAck | undefined)[],
    reject: (i: number, e: SyncError | ChangeAckFailure, c?: Partial<NormalizedChange>) => void,
  ): Promise<void> {
    const keys = [...new Set(work.map((w) => docKey(w.change.collection, w.change.documentId)))];
    const releaseLocal = await this.mutex.acquire(keys);
    let leased: string[] = [];
    try {
      leased = await this.lease(keys);
      const leasedSet = new Set(leased);
      const active = work.filter((w) => {
        if (leasedSet.has(docKey(w.change.collection, w.change.documentId))) return true;
        reject(w.index, new UnavailableError('the document is being changed by another server node: retry'), w.change);
        return false;
      });
      if (!active.length) return;

      // load the stored state of every document, per collection
      const states = new Map<string, StoredState>();
      const byCollection = new Map<string, string[]>();
      const idHints = new Map<string, Map<string, IdHint>>();
      for (const w of active) {
        const ids = byCollection.get(w.change.collection) ?? [];
        ids.push(w.change.documentId);
        byCollection.set(w.change.collection, ids);
        if (w.idHint && !idHints.get(w.change.collection)?.has(w.change.documentId)) {
          idHints.set(w.change.collection, (idHints.get(w.change.collection) ?? new Map<string, IdHint>()).set(w.change.documentId, w.idHint));
        }
      }
      await Promise.all(
        [...byCollection.entries()].map(async ([coll, ids]) => {
          const m = await this.docs.loadStates(coll, [...new Set(ids)], idHints.get(coll));
          for (const [id, s] of m) states.set(docKey(coll, id), s);
        }),
      );
      const initial = new Map(states);

      // resolve in order; several changes to one document fold onto each other
      const serverTimestamp = Date.now();
      let accepted: { w: Work; entry: FeedEntry }[] = [];
      const declined: { w: Work; ack: SyncError | ChangeAckFailure }[] = [];
      for (const w of active) {
        const c = w.change;
        const key = docKey(c.collection, c.documentId);
        const stored = states.get(key)!;
        // A clamped change ("the device's clock is far ahead") is one the device made after
        // everything it knows of: clamped to the server clock it must still come after the stored
        // version, or a fast device would lose its own insert-then-update of one batch (both
        // clamped to the same millisecond). Bounded: stored versions are never beyond now + skew.
        const timestamp = c.clamped && stored.timestamp !== null && stored.timestamp >= c.timestamp ? stored.timestamp + 1 : c.timestamp;
        const outcome = this.resolve(stored, { operation: c.operation, documentId: c.documentId, data: c.data, timestamp, userId: origin.user.id });
        if (outcome.kind === 'conflict') {
          const current = outcome.current ? publicDoc(outcome.current) : null;
          declined.push({ w, ack: { success: false, code: ErrorCode.CONFLICT, changeId: c.changeId, error: `conflict: ${outcome.reason}`, timestamp: outcome.timestamp ?? undefined, current } });
          continue;
        }
        // a stored ObjectId or Date the client sends back as its JSON form stays an ObjectId or a Date
        // (and so do the fields the rules file's fieldTypes names, in new documents too)
        if (outcome.after) outcome.after = this.keepTypes(c.collection, stored.doc, outcome.after);
        const before = stored.doc;
        const after = outcome.after ? (outcome.fieldTimes ? { ...outcome.after, [FIELD_TS]: outcome.fieldTimes } : outcome.after) : null;
        // a delete of a document the server does not have is checked against a document holding only
        // its id: allowed where the write rule does not depend on the document, refused elsewhere
        // (its tombstone would otherwise let anyone void the owner's older offline insert)
        const ruleBefore = before ? publicDoc(before) : c.operation === 'delete' ? ({ _id: c.documentId } as SyncDocument) : null;
        if (!origin.trusted && !this.permissions.canWrite(origin.user, c.collection, ruleBefore, outcome.after)) {
          declined.push({ w, ack: new ForbiddenError(`the write rule of "${c.collection}" does not allow this change`, { changeId: c.changeId }) });
          continue;
        }
        states.set(key, { doc: outcome.after, timestamp: outcome.timestamp, deleted: outcome.after === null, fieldTimes: outcome.fieldTimes });
        accepted.push({
          w,
          entry: {
            _id: 0,
            changeId: c.changeId,
            state: 'pending',
            collection: c.collection,
            documentId: c.documentId,
            docKey: key,
            ...(wireIdType(initial.get(key)!.dbId) ? { idType: 'objectId' as const } : {}),
            operation: c.operation,
            after,
            before: before ? publicDoc(before) : null,
            timestamp: outcome.timestamp,
            prevTimestamp: stored.timestamp,
            userId: origin.user.id,
            serverTimestamp,
            clientAddress: origin.clientAddress,
            createdAt: new Date(serverTimestamp),
          },
        });
      }
      if (declined.length) await this.answerDeclined(declined, origin, results, reject);
      if (!accepted.length) return;

      // write-ahead: the feed entries exist (pending) before any document changes
      const retries = await this.insertPending(accepted.map((a) => a.entry), origin.user.id);
      if (retries.size) {
        // retries of changes already in the feed (applied before, or racing us from another node)
        for (const a of accepted) {
          const first = retries.get(a.entry);
          if (first) results[a.w.index] = this.duplicateAck(first);
        }
        accepted = accepted.filter((x) => !retries.has(x.entry));
        if (!accepted.length) return;
      }

      // one compare-and-set write per document, with its final state
      const lastByKey = new Map<string, FeedEntry>();
      for (const a of accepted) lastByKey.set(a.entry.docKey!, a.entry);
      const writes: DocumentWrite[] = [];
      const writeKeys: string[] = [];
      for (const [key, e] of lastByKey) {
        const init = initial.get(key)!;
        writes.push({
          collection: e.collection!,
          documentId: e.documentId!,
          expected: { exists: init.doc !== null, timestamp: init.doc ? init.timestamp : null },
          dbId: init.dbId,
          after: e.operation === 'delete' ? null : e.after!,
          tombstone: e.operation === 'delete' ? { timestamp: e.timestamp!, changeId: e.changeId, userId: e.userId!, deletedAt: new Date(serverTimestamp) } : undefined,
        });
        writeKeys.push(key);
      }
      const failedWrites = await this.docs.applyWrites(writes);
      const failedKeys = new Set([...failedWrites].map((i) => writeKeys[i]));

      const ok = accepted.filter((a) => !failedKeys.has(a.entry.docKey!));
      const lost = accepted.filter((a) => failedKeys.has(a.entry.docKey!));
      await this.feedRepo.setState(
        ok.map((a) => a.entry._id),
        'applied',
      );
      if (lost.length) {
        await this.feedRepo.abort(lost.map((a) => a.entry));
        for (const a of lost) reject(a.w.index, new UnavailableError('the document changed concurrently on another node: retry'), a.w.change);
      }
      for (const a of ok) {
        results[a.w.index] = { success: true, changeId: a.entry.changeId, timestamp: a.entry.timestamp!, cursor: encodeCursor(a.entry._id) };
      }
      this.metrics.changesApplied.inc(ok.length);
      if (ok.length) this.delivery.publish(ok.map((a) => ({ entry: a.entry, originSocketId: origin.socketId })));
    } catch (e) {
      if (!isUnavailableError(e) && !isSyncError(e)) this.logger.error(`apply failed: ${(e as Error).stack}`);
      throw e;
    } finally {
      if (leased.length) await this.locks.release(leased).catch(() => undefined);
      releaseLocal();
    }
  }

  /**
   * A change the resolver or a write rule declines may be the retry of one applied before (its own
   * write is what it now conflicts with): those get the first ack again, marked duplicate; the
   * others are refused. Two `_id` lookups, only for batches with something to decline. (A retry
   * whose record was lost with a writer that died between inserting its entry and its record gets
   * the decline instead: its change is in the feed, so the client settles on the same state.)
   */
  private async answerDeclined(
    declined: { w: Work; ack: SyncError | ChangeAckFailure }[],
    origin: ChangeOrigin,
    results: (ChangeAck | undefined)[],
    reject: (i: number, e: SyncError | ChangeAckFailure, c?: Partial<NormalizedChange>) => void,
  ): Promise<void> {
    const ids = declined.filter(({ w }) => !w.change.generatedId).map(({ w }) => w.change.changeId);
    const known = new Map((await this.feedRepo.findRecorded(origin.user.id, ids)).filter((e) => e.state !== 'aborted').map((e) => [e.changeId, e]));
    for (const { w, ack } of declined) {
      const e = w.change.generatedId ? undefined : known.get(w.change.changeId);
      if (e) results[w.index] = this.duplicateAck(e);
      else reject(w.index, ack, w.change);
    }
  }

  /** The first ack of a change already in the feed, given again to its retry. */
  private duplicateAck(first: FeedEntry): ChangeAck {
    this.metrics.changesDuplicate.inc();
    return { success: true, changeId: first.changeId, timestamp: first.timestamp!, cursor: encodeCursor(first._id), duplicate: true };
  }

  /**
   * Gives the entries consecutive feed positions and inserts them, in order. Positions come from a
   * local counter; the unique `_id` arbitrates between processes: on a taken position the counter
   * jumps past the feed's highest position and the rest is retried. An entry the unique
   * (userId, changeId) index refuses is the retry of a change already in the feed: it is dropped
   * (returned with the entry of its first attempt, to answer duplicate) and its position gets a
   * `skip` entry, so readers see no gap.
   */
  private async insertPending(entries: FeedEntry[], userId: string): Promise<Map<FeedEntry, FeedEntry>> {
    const retries = new Map<FeedEntry, FeedEntry>();
    let todo = entries;
    let assign = true;
    for (let attempt = 0; todo.length; attempt++) {
      if (attempt > 50) throw new UnavailableError('could not claim change feed positions');
      if (assign) {
        if (this.nextPosition === 0) this.nextPosition = Math.max(await this.feedRepo.highWater(), await this.feedRepo.purgedThrough()) + 1;
        const first = this.nextPosition;
        this.nextPosition += todo.length;
        todo.forEach((e, i) => (e._id = first + i));
      }
      const landed = await this.feedRepo.insertOrdered(todo);
      if (landed > 0) {
        // readers tell the end of the feed by this mark (see ChangeFeedRepository.scan); retries are
        // recognised through the records
        await Promise.all([this.feedRepo.raiseHighWater(todo[landed - 1]._id), this.feedRepo.recordChanges(todo.slice(0, landed))]);
      }
      if (landed === todo.length) break;
      const rest = todo.slice(landed);
      const real = rest.filter((e) => e.state !== 'skip');
      let found = await this.feedRepo.findRecorded(userId, real.map((e) => e.changeId));
      // the refused entry is not recorded: its record was lost in a crash, or its position was taken
      if (rest[0].state !== 'skip' && !found.some((e) => e.changeId === rest[0].changeId)) found = await this.feedRepo.findByChangeIds(userId, real.map((e) => e.changeId));
      const known = new Map(found.map((e) => [e.changeId, e]));
      const isRetry = (e: FeedEntry) => e.state !== 'skip' && known.has(e.changeId) && known.get(e.changeId)!._id !== e._id;
      if (isRetry(rest[0])) {
        todo = rest.map((e) => {
          if (!isRetry(e)) return e;
          retries.set(e, known.get(e.changeId)!);
          return { _id: e._id, changeId: `skip:${e._id}`, state: 'skip' as const, createdAt: e.createdAt };
        });
        assign = false;
      } else {
        // the position is taken (another node): new positions past the feed's head
        todo = real;
        this.nextPosition = Math.max(this.nextPosition, (await this.feedRepo.maxPosition()) + 1);
        assign = true;
      }
    }
    return retries;
  }

  /** Takes the documents' leases; waits for other nodes' leases, replays expired ones. */
  private async lease(keys: string[]): Promise<string[]> {
    const ttl = this.timings.lockTtlMs;
    const deadline = Date.now() + this.timings.lockWaitMs;
    let missing = await this.locks.tryAcquire(keys, ttl);
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
      if (held.size && attempt % 4 === 3) {
        await this.locks.release([...held]);
        held.clear();
        missing = keys;
      }
      await sleep(5 + Math.random() * Math.min(100, 5 * 2 ** Math.min(attempt, 5)));
      const got = await this.locks.tryAcquire(missing, ttl);
      for (const k of missing) if (!got.includes(k)) held.add(k);
      missing = got;
    }
    return [...held];
  }
}
