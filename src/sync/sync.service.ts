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
import type { AuthUser } from '../common/user';
import { AuditRecord, AuditRepository } from '../audit/audit.repository';
import { isUnavailableError, toFailureAck } from '../common/ack';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
import { afterIfApplied } from '../conflict/conflict.strategies';
import { CONFLICT_RESOLVER, ConflictStrategy, FIELD_TS, IncomingChange, Outcome, StoredState } from '../conflict/conflict.types';
import { MetricsService } from '../metrics/metrics.service';
import { PermissionService } from '../permission/permission.service';
import { CollectionSchemaService } from '../schemas/collection-schema.service';
import { Traced } from '../telemetry/traced';
import type { FeedEntry } from '../feed/change-feed.repository';
import { publicDoc } from '../feed/change-feed.service';
import { normalizeChange, NormalizedChange } from './change.validation';
import { GroupCommit } from './group-commit';
import { DeliveryService } from '../delivery/delivery.service';
import { DocumentRepository, docKey } from '../feed/document.repository';
import { documentIdProblem, IdHint, readIdHint, wireIdType } from '../feed/document-id';
import { fieldTypesTemplate, keepStoredTypes } from '../feed/stored-types';
import { DocumentLeases } from '../feed/document-leases';
import { AcceptedChange, FeedWriter, idemKey } from '../feed/feed-writer';

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

/** A change the rules and the strategy accepted, with its feed entry. */
interface Accepted extends AcceptedChange {
  w: Work;
}

/** A change the rules, the strategy or the collection's schema declined, with its answer. */
interface Declined {
  w: Work;
  ack: SyncError | ChangeAckFailure;
}

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
 *   decide         4. authorize (write rule first), then resolve (the pure strategy), then the schema
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
    @Inject(CONFLICT_RESOLVER) private readonly resolve: ConflictStrategy,
    private readonly leases: DocumentLeases,
    private readonly docs: DocumentRepository,
    private readonly writer: FeedWriter,
    private readonly audit: AuditRepository,
    private readonly permissions: PermissionService,
    private readonly delivery: DeliveryService,
    private readonly metrics: MetricsService,
    private readonly schemas: CollectionSchemaService,
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

  /** See stored-types.ts: BSON types of the stored document and of the collection's fieldTypes survive the JSON wire. */
  private keepTypes(collection: string, stored: SyncDocument | null, after: SyncDocument): SyncDocument {
    const types = this.permissions.fieldTypes(collection);
    let out = types ? keepStoredTypes(fieldTypesTemplate(types), after) : after;
    if (stored) out = keepStoredTypes(stored, out);
    return out;
  }

  /**
   * The road of the changes that passed validation and deduplication: lease their documents, load
   * them, authorize and resolve each change, commit (write ahead, write the documents, settle),
   * deliver. Fills `results` for every item of `work`.
   */
  private async applyFresh(work: Work[], results: (ChangeAck | undefined)[], reject: Reject): Promise<void> {
    const held = await this.leases.acquire([...new Set(work.map((w) => docKey(w.change.collection, w.change.documentId)))]);
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
      const { accepted, declined } = this.decide(toDecide, states, initial, serverTimestamp);
      if (declined.length) await this.answerDeclined(declined, results, reject);
      if (!accepted.length) return;

      const ahead = await this.writer.writeAhead(accepted);
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
      throw e;
    } finally {
      held.release();
    }
  }

  /**
   * Authorizes, then resolves each change, in order; several changes to one document fold onto each
   * other (`states` follows them). Accepted changes get their feed entry (`pending`).
   */
  private decide(
    active: Work[],
    states: Map<string, StoredState>,
    initial: ReadonlyMap<string, StoredState>,
    serverTimestamp: number,
  ): { accepted: Accepted[]; declined: Declined[] } {
    const accepted: Accepted[] = [];
    const declined: Declined[] = [];
    for (const w of active) {
      const { change: c, origin } = w;
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
      if (
        !origin.trusted &&
        !this.permissions.canWrite(origin.user, c.collection, ruleBefore, candidate && this.keepTypes(c.collection, stored.doc, candidate))
      ) {
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
      states.set(key, {
        doc: outcome.after,
        timestamp: outcome.timestamp,
        deleted: outcome.after === null,
        fieldTimes: outcome.fieldTimes,
        author: origin.user.id,
        lastDoc,
        dbId: stored.dbId,
      });
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
    return { accepted, declined };
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
      return {
        success: false,
        code: ErrorCode.CONFLICT,
        changeId: c.changeId,
        error: `conflict: ${outcome.reason}`,
        timestamp: outcome.timestamp ?? undefined,
        current,
      };
    }
    return { success: false, code: ErrorCode.CONFLICT, changeId: c.changeId, error: 'conflict: a newer version of this document is stored', current: null };
  }

  /** The first ack of a change already in the feed, given again to its retry. */
  private duplicateAck(first: FeedEntry): ChangeAck {
    this.metrics.changesDuplicate.inc();
    return { success: true, changeId: first.changeId, timestamp: first.timestamp!, cursor: encodeCursor(first._id), duplicate: true };
  }
}
