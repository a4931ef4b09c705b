import { Inject, Injectable, Logger } from '@nestjs/common';
import { ChangeAck, ChangeAckFailure, encodeCursor, InvalidPayloadError, isSyncError, SyncError, UnavailableError } from '@sync/protocol';
import { AuditRecord, AuditRepository } from '../audit/audit.repository';
import { isUnavailableError, toFailureAck } from '../common/ack';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { MetricsService } from '../metrics/metrics.service';
import { PermissionService } from '../permission/permission.service';
import { Traced } from '../telemetry/traced';
import type { FeedEntry } from '../feed/change-feed.repository';
import { normalizeChange, NormalizedChange } from './change.validation';
import { ChangeDecider, Declined as DeclinedChange } from './change-decider';
import { GroupCommit } from './group-commit';
import type { ChangeOrigin } from './sync.types';
import { DeliveryService } from '../delivery/delivery.service';
import { DocumentRepository, docKey } from '../feed/document.repository';
import { documentIdProblem, IdHint, readIdHint } from '../feed/document-id';
import { DocumentLeases } from '../feed/document-leases';
import { AcceptedChange, FeedWriter, idemKey } from '../feed/feed-writer';

export type { ChangeOrigin } from './sync.types';

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

type Declined = DeclinedChange<Work>;

/** The changes that a later change of their document in `work` folds onto (server-made changeIds excepted: never retries). */
function foldedOnto(work: Work[]): { userId: string; changeId: string }[] {
  const last = new Map<string, number>();
  work.forEach((w, i) => last.set(docKey(w.change.collection, w.change.documentId), i));
  return work
    .filter((w, i) => !w.change.generatedId && i < last.get(docKey(w.change.collection, w.change.documentId))!)
    .map((w) => ({ userId: w.origin.user.id, changeId: w.change.changeId }));
}

/**
 * The write path, one road read top to bottom (docs/ARCHITECTURE.md, "The write path"):
 *   apply          single changes join a group (GroupCommit), batches go straight on
 *   applyItems     1. validate each change; 2. deduplicate (within the batch, and against retries in flight)
 *   applyFresh     3. lease the documents (DocumentLeases) and load them (DocumentRepository.loadMany)
 *   ChangeDecider  4. authorize (write rule first), then resolve (the pure strategy), then the schema (change-decider.ts)
 *   applyFresh     5. commit: write ahead, write the documents, settle (FeedWriter); 6. deliver (DeliveryService)
 * No multi-document transactions: the order of these writes is what keeps a crash at any point from
 * losing an acknowledged change.
 */
@Injectable()
export class SyncService {
  private readonly logger = new Logger('SyncService');
  /** Single changes join the next group (see GroupCommit). */
  private readonly groups = new GroupCommit<Item>(
    () => this.config.limits.maxBatchSize,
    (items, kind) => this.applyItems(items, kind),
  );
  /** changeIds being applied by this process, so a concurrent retry waits for the first answer. */
  private readonly inFlight = new Map<string, Promise<ChangeAck>>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly leases: DocumentLeases,
    private readonly docs: DocumentRepository,
    private readonly writer: FeedWriter,
    private readonly audit: AuditRepository,
    private readonly permissions: PermissionService,
    private readonly delivery: DeliveryService,
    private readonly metrics: MetricsService,
    private readonly decider: ChangeDecider,
  ) {}

  /**
   * Applies changes in order, each on its own merits; one ack per change. A single change joins the
   * next group commit: the single changes of every socket that arrive while earlier ones are being
   * applied go through the batch path together (one lease, one load, one feed insert, one bulk of
   * document writes for all), each answered on its own ack.
   */
  async apply(rawChanges: unknown[], origin: ChangeOrigin): Promise<ChangeAck[]> {
    if (rawChanges.length === 1) return [await this.groups.push({ raw: rawChanges[0], origin })];
    return this.applyItems(
      rawChanges.map((raw) => ({ raw, origin })),
      'batch',
    );
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
          reject(
            i,
            e,
            raw && typeof raw === 'object'
              ? {
                  changeId: typeof raw.changeId === 'string' ? raw.changeId.slice(0, 128) : undefined,
                  documentId: typeof raw.documentId === 'string' ? raw.documentId.slice(0, 256) : undefined,
                }
              : {},
          );
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

  /**
   * The road of the changes that passed validation and deduplication: lease their documents, load
   * them, authorize and resolve each change, commit (write ahead, write the documents, settle),
   * deliver. Fills `results` for every item of `work`.
   */
  private async applyFresh(work: Work[], results: (ChangeAck | undefined)[], reject: Reject): Promise<void> {
    const held = await this.leases.acquire([...new Set(work.map((w) => docKey(w.change.collection, w.change.documentId)))]);
    /** Positions written ahead, being settled: live delivery waits for their offer (or `written`), not the feed. */
    let writing: number[] = [];
    /** The changes written ahead, once the write-ahead began: finished (replayed) if this batch fails before its commit. */
    let wroteAhead: AcceptedChange[] = [];
    try {
      const leased = new Set(held.leased);
      const active = work.filter((w) => {
        if (leased.has(docKey(w.change.collection, w.change.documentId))) return true;
        reject(w.index, new UnavailableError('the document is being changed by another server node: retry'), w.change);
        return false;
      });
      if (!active.length) return;

      // alongside: the records of the changes that later changes of their document fold onto. A retry of
      // a change applied before must be known before the fold: resolved again (without a timestamp, or
      // clamped, it comes after the stored version and wins), the changes after it would be built on
      // it, while the feed's unique index then drops the retry itself
      const [recorded, states] = await Promise.all([
        this.writer.findRecorded(foldedOnto(active), false),
        this.docs.loadMany(active.map((w) => ({ collection: w.change.collection, documentId: w.change.documentId, idHint: w.idHint }))),
      ]);
      const initial = new Map(states);
      const serverTimestamp = Date.now();
      const toDecide = active.filter((w) => {
        const first = recorded.get(idemKey(w.origin.user.id, w.change.changeId));
        if (first) results[w.index] = this.duplicateAck(first);
        return !first;
      });
      const { accepted, declined } = this.decider.decide(toDecide, states, initial, serverTimestamp);
      if (declined.length) await this.answerDeclined(declined, results, reject);
      if (!accepted.length) return;

      wroteAhead = accepted;
      const ahead = await this.writer.writeAhead(accepted);
      writing = accepted.map((a) => a.entry._id);
      this.delivery.writingAt(writing);
      // retries of changes already in the feed (applied before, or racing us from another node), and the
      // changes of their documents resolved on top of them
      for (const a of accepted) {
        const first = ahead.retries.get(a);
        if (first) results[a.w.index] = this.duplicateAck(first);
        else if (ahead.spoiled.has(a))
          reject(a.w.index, new UnavailableError('a retry of a change applied before was resolved with this one: retry'), a.w.change);
      }
      if (!ahead.fresh.length) {
        await ahead.bookkeeping;
        return;
      }
      const { applied, lost } = await this.writer.writeDocuments(ahead, initial, serverTimestamp);
      for (const a of lost) reject(a.w.index, new UnavailableError('the document changed concurrently on another node: retry'), a.w.change);
      for (const a of applied) {
        results[a.w.index] = { success: true, changeId: a.entry.changeId, timestamp: a.entry.timestamp!, cursor: encodeCursor(a.entry._id) };
      }
      this.metrics.changesApplied.inc(applied.length);
      if (applied.length) this.delivery.publish(applied.map((a) => ({ entry: a.entry, originSocketId: a.w.origin.socketId })));
    } catch (e) {
      if (!isUnavailableError(e) && !isSyncError(e)) this.logger.error(`apply failed: ${(e as Error).stack}`);
      // what was written ahead is rolled forward now (the changes are answered UNAVAILABLE; their
      // retries find them applied); what cannot be is replayed by the next writer or the feed walk
      if (wroteAhead.length) {
        const positions = new Map<string, number[]>();
        for (const { entry } of wroteAhead) {
          const list = positions.get(entry.docKey!);
          if (list) list.push(entry._id);
          else positions.set(entry.docKey!, [entry._id]);
        }
        await held.finish(positions).catch((err) => this.logger.warn(`could not finish a failed commit yet: ${(err as Error).message}`));
      }
      throw e;
    } finally {
      this.delivery.written(writing);
      held.release();
    }
  }

  /**
   * A change the resolver or a write rule declines may be the retry of one applied before (its own
   * write is what it now conflicts with): those get the first ack again, marked duplicate; the
   * others are refused. Two `_id` lookups, only for batches with something to decline. (A retry
   * whose record was lost with a writer that died between inserting its entry and its record gets
   * the decline instead: its change is in the feed, so the client settles on the same state.)
   */
  private async answerDeclined(declined: Declined[], results: (ChangeAck | undefined)[], reject: Reject): Promise<void> {
    const asked = declined.filter(({ w }) => !w.change.generatedId).map(({ w }) => ({ userId: w.origin.user.id, changeId: w.change.changeId }));
    const known = await this.writer.findRecorded(asked, false);
    for (const { w, ack } of declined) {
      const e = w.change.generatedId ? undefined : known.get(idemKey(w.origin.user.id, w.change.changeId));
      if (e) results[w.index] = this.duplicateAck(e);
      else reject(w.index, ack, w.change);
    }
  }

  /** The first ack of a change already in the feed, given again to its retry. */
  private duplicateAck(first: FeedEntry): ChangeAck {
    this.metrics.changesDuplicate.inc();
    return { success: true, changeId: first.changeId, timestamp: first.timestamp!, cursor: encodeCursor(first._id), duplicate: true };
  }
}
