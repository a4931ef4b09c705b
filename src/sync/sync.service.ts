import { Inject, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
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
import { afterIfApplied } from '../conflict/conflict.strategies';
import { CONFLICT_RESOLVER, ConflictStrategy, FIELD_TS, IncomingChange, Outcome, StoredState } from '../conflict/conflict.types';
import { MetricsService } from '../health/metrics.service';
import { PermissionService } from '../permission/permission.service';
import { CollectionSchemaService } from '../schemas/collection-schema.service';
import { Traced } from '../telemetry/traced';
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

/** One change to apply and who sent it (a group may hold changes of many senders). */
interface Item {
  raw: unknown;
  origin: ChangeOrigin;
}

interface Work {
  index: number;
  change: NormalizedChange;
  origin: ChangeOrigin;
  /** The change's optional `idType` (how a new document of an `auto` collection stores its `_id`). */
  idHint?: IdHint;
}

type Reject = (i: number, e: SyncError | ChangeAckFailure, c?: Partial<NormalizedChange>) => void;

/** Groups of single changes applied at once (group commit): while one is in flight the next fills. */
const GROUPS_IN_FLIGHT = 2;
const idemKey = (userId: string, changeId: string) => `${userId}\u0000${changeId}`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The changes that a later change of their document in `work` folds onto (server-made changeIds excepted: never retries). */
function foldedOnto(work: Work[]): { userId: string; changeId: string }[] {
  const last = new Map<string, number>();
  work.forEach((w, i) => last.set(docKey(w.change.collection, w.change.documentId), i));
  return work
    .filter((w, i) => !w.change.generatedId && i < last.get(docKey(w.change.collection, w.change.documentId))!)
    .map((w) => ({ userId: w.origin.user.id, changeId: w.change.changeId }));
}

/**
 * The write path: validate → idempotency → lease the documents → resolve conflicts (pure strategy)
 * → check write rules → write-ahead feed entries → compare-and-set document writes → settle the
 * entries → deliver. No multi-document transactions: the order of these writes is what keeps a crash
 * at any point from losing an acknowledged change (see docs/ARCHITECTURE.md).
 */
@Injectable()
export class SyncService implements OnModuleDestroy {
  private readonly logger = new Logger('SyncService');
  private readonly mutex = new KeyedMutex();
  /** changeIds being applied by this process, so a concurrent retry waits for the first answer. */
  private readonly inFlight = new Map<string, Promise<ChangeAck>>();
  /** Lease releases in flight (awaited at shutdown, so a clean stop leaves no lease behind). */
  private readonly releasing = new Set<Promise<void>>();
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
    private readonly schemas: CollectionSchemaService,
  ) {}

  async onModuleDestroy(): Promise<void> {
    await Promise.allSettled([...this.releasing]);
  }

  /**
   * Applies changes in order, each on its own merits; one ack per change. A single change joins the
   * next group commit: the single changes of every socket that arrive while earlier ones are being
   * applied go through the batch path together (one lease, one load, one feed insert, one bulk of
   * document writes for all), each answered on its own ack.
   */
  async apply(rawChanges: unknown[], origin: ChangeOrigin): Promise<ChangeAck[]> {
    if (rawChanges.length === 1) return [await this.enqueue({ raw: rawChanges[0], origin })];
    return this.applyItems(rawChanges.map((raw) => ({ raw, origin })), 'batch');
  }

  private readonly queue: { item: Item; resolve: (ack: ChangeAck) => void }[] = [];
  private groupsInFlight = 0;

  private enqueue(item: Item): Promise<ChangeAck> {
    return new Promise((resolve) => {
      this.queue.push({ item, resolve });
      this.drain();
    });
  }

  /** Starts groups while fewer than GROUPS_IN_FLIGHT are being applied (at once when idle). */
  private drain(): void {
    while (this.groupsInFlight < GROUPS_IN_FLIGHT && this.queue.length) {
      const group = this.queue.splice(0, this.config.limits.maxBatchSize);
      this.groupsInFlight++;
      void this.applyItems(
        group.map((g) => g.item),
        group.length === 1 ? 'single' : 'group',
      )
        .then(async (acks) => {
          // an unexpected error fails a whole group: each of its changes is tried again on its own, so
          // that one sender's change that breaks something never costs the others theirs
          if (group.length > 1 && acks.some((a) => !a.success && a.code === ErrorCode.INTERNAL)) acks = await Promise.all(group.map(async (g) => (await this.applyItems([g.item], 'single'))[0]));
          group.forEach((g, i) => g.resolve(acks[i]));
        })
        .catch((e) => {
          const ack = toFailureAck(e, 'apply') as ChangeAck;
          for (const g of group) g.resolve(ack);
        })
        .finally(() => {
          this.groupsInFlight--;
          this.drain();
        });
    }
  }

  /** Applies items in order, each on its own merits (and with its own sender); one ack per item. */
  @Traced(
    'sync.apply',
    (items: Item[], kind: string) => ({ 'sync.changes': items.length, 'sync.kind': kind }),
    (acks: ChangeAck[]) => ({ 'sync.refused': acks.filter((a) => !a.success).length }),
  )
  private async applyItems(items: Item[], kind: 'single' | 'group' | 'batch'): Promise<ChangeAck[]> {
    const n = items.length;
    const results: (ChangeAck | undefined)[] = new Array(n);
    const auditRecords: AuditRecord[] = [];
    const now = Date.now();
    this.metrics.changesReceived.inc(n);
    this.metrics.pendingChanges.inc(n);
    const timer = this.metrics.applyDuration.startTimer({ kind });
    const reject: Reject = (i, e, c) => {
      const ack = (e instanceof SyncError ? e.toAck() : e) as ChangeAckFailure;
      const origin = items[i].origin;
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
          const { raw, origin } = items[i];
          const c = normalizeChange(raw, { maxChangeBytes: this.config.limits.maxChangeBytes, maxClockSkewMs: this.config.sync.maxClockSkewMs, now });
          const idHint = this.checkDocumentId(raw, c);
          const key = idemKey(origin.user.id, c.changeId);
          const first = firstIndexOf.get(key);
          if (first !== undefined) dupOf.set(i, first);
          else {
            firstIndexOf.set(key, i);
            work.push({ index: i, change: c, origin, idHint });
          }
        } catch (e) {
          if (!isSyncError(e)) throw e;
          const raw = items[i].raw as Record<string, unknown> | null;
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
          const running = this.inFlight.get(idemKey(w.origin.user.id, w.change.changeId));
          if (running) {
            waiting.push(running.then((ack) => void (results[w.index] = { ...ack, duplicate: true } as ChangeAck)));
            this.metrics.changesDuplicate.inc();
          } else fresh.push(w);
        }
        if (fresh.length) {
          const batchPromise = this.applyFresh(fresh, results, reject);
          for (const w of fresh) {
            // a failed batch is answered below; retries waiting on it get an UNAVAILABLE, never an unhandled rejection
            const p = batchPromise.then(
              () => results[w.index]!,
              () => new UnavailableError('the first attempt of this change failed: retry').toAck() as ChangeAck,
            );
            this.inFlight.set(idemKey(w.origin.user.id, w.change.changeId), p);
          }
          try {
            await batchPromise;
          } finally {
            for (const w of fresh) this.inFlight.delete(idemKey(w.origin.user.id, w.change.changeId));
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
  private async applyFresh(work: Work[], results: (ChangeAck | undefined)[], reject: Reject): Promise<void> {
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
      // alongside: the records of the changes that later changes of their document fold onto. A retry of
      // a change applied before must be known before the fold: resolved again (without a timestamp, or
      // clamped, it comes after the stored version and wins), the changes after it would be built on
      // it, while the feed's unique index then drops the retry itself
      const [recorded] = await Promise.all([
        this.findRecorded(foldedOnto(active), false),
        ...[...byCollection.entries()].map(async ([coll, ids]) => {
          const m = await this.docs.loadStates(coll, [...new Set(ids)], idHints.get(coll));
          for (const [id, s] of m) states.set(docKey(coll, id), s);
        }),
      ]);
      const initial = new Map(states);

      // resolve in order; several changes to one document fold onto each other
      const serverTimestamp = Date.now();
      let accepted: { w: Work; entry: FeedEntry; lastDoc: SyncDocument | null }[] = [];
      const declined: { w: Work; ack: SyncError | ChangeAckFailure }[] = [];
      for (const w of active) {
        const { change: c, origin } = w;
        const first = recorded.get(idemKey(origin.user.id, c.changeId));
        if (first) {
          results[w.index] = this.duplicateAck(first);
          continue;
        }
        const key = docKey(c.collection, c.documentId);
        const stored = states.get(key)!;
        // A change whose timestamp the server chose (none was sent) or clamped ("the device's clock
        // is far ahead") is one the device made after everything it knows of: it must come after the
        // stored version, or a device would lose its own rapid edits (several in one millisecond of
        // the server's clock) or its insert-then-update of one batch (both clamped to the same
        // millisecond). Bounded: stored versions are never beyond now + skew.
        const timestamp = (c.clamped || c.serverTime) && stored.timestamp !== null && stored.timestamp >= c.timestamp ? stored.timestamp + 1 : c.timestamp;
        const incoming: IncomingChange = { operation: c.operation, documentId: c.documentId, data: c.data, timestamp, userId: origin.user.id };
        const before = stored.doc;
        // The write rule first, before the conflict is resolved, against the stored document (a
        // deleted one's last version) and the document the change would produce: a change the user
        // may not make is FORBIDDEN, answered the same whether the id exists, is deleted or is free,
        // and whether the change would win or lose. A delete of a document the server never had is
        // checked against a document holding only its id: allowed where the write rule does not
        // depend on the document, refused elsewhere (its tombstone would otherwise let anyone void
        // the owner's older offline insert).
        const ruleBefore = before ? publicDoc(before) : (stored.lastDoc ?? (c.operation === 'delete' ? ({ _id: c.documentId } as SyncDocument) : null));
        const candidate = afterIfApplied(stored, incoming);
        if (!origin.trusted && !this.permissions.canWrite(origin.user, c.collection, ruleBefore, candidate && this.keepTypes(c.collection, stored.doc, candidate))) {
          declined.push({ w, ack: this.forbidden(c) });
          continue;
        }
        const outcome = this.resolve(stored, incoming);
        if (outcome.kind === 'conflict') {
          declined.push({ w, ack: this.conflictAck(origin, c, stored, outcome) });
          continue;
        }
        // a stored ObjectId or Date the client sends back as its JSON form stays an ObjectId or a Date
        // (and so do the fields the rules file's fieldTypes names, in new documents too)
        if (outcome.after) outcome.after = this.keepTypes(c.collection, stored.doc, outcome.after);
        const after = outcome.after ? (outcome.fieldTimes ? { ...outcome.after, [FIELD_TS]: outcome.fieldTimes } : outcome.after) : null;
        // and the document the strategy really produced (a custom strategy may produce another one)
        if (!origin.trusted && !this.permissions.canWrite(origin.user, c.collection, ruleBefore, outcome.after)) {
          declined.push({ w, ack: this.forbidden(c) });
          continue;
        }
        const violation = this.schemas.check(c.collection, outcome.after, c.changeId);
        if (violation) {
          declined.push({ w, ack: violation });
          continue;
        }
        const lastDoc = outcome.after === null ? (before ? publicDoc(before) : (stored.lastDoc ?? null)) : null;
        states.set(key, { doc: outcome.after, timestamp: outcome.timestamp, deleted: outcome.after === null, fieldTimes: outcome.fieldTimes, author: origin.user.id, lastDoc, dbId: stored.dbId });
        accepted.push({
          w,
          lastDoc,
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
            clientAddress: w.origin.clientAddress,
            createdAt: new Date(serverTimestamp),
          },
        });
      }
      if (declined.length) await this.answerDeclined(declined, results, reject);
      if (!accepted.length) return;

      // write-ahead: the feed entries exist (pending) before any document changes
      const { retries, spoiled, bookkeeping } = await this.insertPending(accepted.map((a) => a.entry));
      if (retries.size) {
        // retries of changes already in the feed (applied before, or racing us from another node)
        for (const a of accepted) {
          const first = retries.get(a.entry);
          if (first) results[a.w.index] = this.duplicateAck(first);
          else if (spoiled.has(a.entry)) reject(a.w.index, new UnavailableError('a retry of a change applied before was resolved with this one: retry'), a.w.change);
        }
        accepted = accepted.filter((x) => !retries.has(x.entry) && !spoiled.has(x.entry));
        if (!accepted.length) {
          await bookkeeping;
          return;
        }
      }

      // one compare-and-set write per document, with its final state
      const lastByKey = new Map<string, (typeof accepted)[number]>();
      for (const a of accepted) lastByKey.set(a.entry.docKey!, a);
      const writes: DocumentWrite[] = [];
      const writeKeys: string[] = [];
      for (const [key, { entry: e, lastDoc }] of lastByKey) {
        const init = initial.get(key)!;
        writes.push({
          collection: e.collection!,
          documentId: e.documentId!,
          expected: { exists: init.doc !== null, timestamp: init.doc ? init.timestamp : null },
          dbId: init.dbId,
          after: e.operation === 'delete' ? null : e.after!,
          tombstone: e.operation === 'delete' ? { timestamp: e.timestamp!, changeId: e.changeId, userId: e.userId!, deletedAt: new Date(serverTimestamp), lastDoc } : undefined,
        });
        writeKeys.push(key);
      }
      // the documents are written while the high-water mark and the idempotency records land (one round
      // trip less): neither is needed before the settle, and a crash in between is repaired by the
      // replay, which writes the records of the entries it replays
      const [failedWrites] = await Promise.all([this.docs.applyWrites(writes), bookkeeping]);
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
      if (ok.length) this.delivery.publish(ok.map((a) => ({ entry: a.entry, originSocketId: a.w.origin.socketId })));
    } catch (e) {
      if (!isUnavailableError(e) && !isSyncError(e)) this.logger.error(`apply failed: ${(e as Error).stack}`);
      throw e;
    } finally {
      // The acks go out without waiting for the leases' release (one round trip less); this process's
      // next writer of these documents waits for it (the in-process lock is held until it is done)
      if (leased.length) {
        const released: Promise<void> = this.locks
          .release(leased)
          .catch((e) => this.logger.warn(`lease release failed (they expire): ${(e as Error).message}`))
          .finally(() => {
            releaseLocal();
            this.releasing.delete(released);
          });
        this.releasing.add(released);
      } else releaseLocal();
    }
  }

  /**
   * A change the resolver or a write rule declines may be the retry of one applied before (its own
   * write is what it now conflicts with): those get the first ack again, marked duplicate; the
   * others are refused. Two `_id` lookups, only for batches with something to decline. (A retry
   * whose record was lost with a writer that died between inserting its entry and its record gets
   * the decline instead: its change is in the feed, so the client settles on the same state.)
   */
  private async answerDeclined(declined: { w: Work; ack: SyncError | ChangeAckFailure }[], results: (ChangeAck | undefined)[], reject: Reject): Promise<void> {
    const asked = declined.filter(({ w }) => !w.change.generatedId).map(({ w }) => ({ userId: w.origin.user.id, changeId: w.change.changeId }));
    const known = await this.findRecorded(asked, false);
    for (const { w, ack } of declined) {
      const e = w.change.generatedId ? undefined : known.get(idemKey(w.origin.user.id, w.change.changeId));
      if (e) results[w.index] = this.duplicateAck(e);
      else reject(w.index, ack, w.change);
    }
  }

  /**
   * The refusal of a change the write rule does not allow: one text and one set of fields, whatever
   * the document's state, so that it tells nothing about other users' documents.
   */
  private forbidden(c: NormalizedChange): ForbiddenError {
    return new ForbiddenError(`the write rule of "${c.collection}" does not allow this change`, { changeId: c.changeId });
  }

  /**
   * The answer to a change that lost its conflict. The winning version (`current`, its timestamp and
   * the reason) goes only to a user whose read rule matches it (for a deleted document: its last
   * version, or a document holding only its id); anyone else gets `current: null` and a fixed text,
   * which an honest client handles as "drop it locally" (it may not see that document anyway).
   */
  private conflictAck(origin: ChangeOrigin, c: NormalizedChange, stored: StoredState, outcome: Extract<Outcome, { kind: 'conflict' }>): ChangeAckFailure {
    const current = outcome.current ? publicDoc(outcome.current) : null;
    const seen = current ?? stored.lastDoc ?? ({ _id: c.documentId } as SyncDocument);
    if (origin.trusted || this.permissions.canRead(origin.user, c.collection, seen)) {
      return { success: false, code: ErrorCode.CONFLICT, changeId: c.changeId, error: `conflict: ${outcome.reason}`, timestamp: outcome.timestamp ?? undefined, current };
    }
    return { success: false, code: ErrorCode.CONFLICT, changeId: c.changeId, error: 'conflict: a newer version of this document is stored', current: null };
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
    const bookkeeping = Promise.all(side);
    bookkeeping.catch(() => undefined);
    return { retries, spoiled, bookkeeping };
  }

  /**
   * The feed entries of changes already recorded, by author and changeId (keyed by idemKey), one
   * lookup per author. `aborted` entries are left out unless asked for; `exact` reads the feed itself
   * (a change whose record was lost with its writer).
   */
  private async findRecorded(asked: { userId: string; changeId: string }[], withAborted: boolean, exact = false): Promise<Map<string, FeedEntry>> {
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
