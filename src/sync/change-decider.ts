import { Inject, Injectable } from '@nestjs/common';
import { ChangeAckFailure, ErrorCode, ForbiddenError, SyncDocument, SyncError } from '@sync/protocol';
import { afterIfApplied } from '../conflict/conflict.strategies';
import { CONFLICT_RESOLVER, ConflictStrategy, FIELD_TS, IncomingChange, Outcome, StoredState } from '../conflict/conflict.types';
import { publicDoc } from '../feed/feed-entries';
import { docKey } from '../feed/document.repository';
import { wireIdType } from '../feed/document-id';
import type { AcceptedChange } from '../feed/feed-writer';
import { fieldTypesTemplate, keepStoredTypes } from '../feed/stored-types';
import { PermissionService } from '../permission/permission.service';
import { CollectionSchemaService } from '../schemas/collection-schema.service';
import type { NormalizedChange } from './change.validation';
import type { ChangeOrigin } from './sync.types';

/** What the decision needs of one change: the change and who sent it. */
export interface DecisionInput {
  change: NormalizedChange;
  origin: ChangeOrigin;
}

/** A change the rules and the strategy accepted, with its feed entry (`pending`). */
export type Decided<W> = AcceptedChange & { w: W };

/** A change the rules, the strategy or the collection's schema declined, with its answer. */
export interface Declined<W> {
  w: W;
  ack: SyncError | ChangeAckFailure;
}

/**
 * Step 4 of the write path (docs/ARCHITECTURE.md): for each change, in order, the write rule first
 * (against the stored document and the document the change would produce), then the conflict
 * strategy (a pure function), then the collection's schema. No I/O: the stored states are loaded
 * before, the accepted changes are committed after (SyncService).
 */
@Injectable()
export class ChangeDecider {
  constructor(
    @Inject(CONFLICT_RESOLVER) private readonly resolve: ConflictStrategy,
    private readonly permissions: PermissionService,
    private readonly schemas: CollectionSchemaService,
  ) {}

  /**
   * Authorizes, then resolves each change, in order; several changes to one document fold onto each
   * other (`states` follows them). Accepted changes get their feed entry (`pending`).
   */
  decide<W extends DecisionInput>(
    active: W[],
    states: Map<string, StoredState>,
    initial: ReadonlyMap<string, StoredState>,
    serverTimestamp: number,
  ): { accepted: Decided<W>[]; declined: Declined<W>[] } {
    const accepted: Decided<W>[] = [];
    const declined: Declined<W>[] = [];
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
        // what is wrong may be a field of the stored version: said only to a reader of the document
        const reader = origin.trusted || (outcome.after !== null && this.permissions.canRead(origin.user, c.collection, publicDoc(outcome.after)));
        declined.push({ w, ack: reader ? violation : this.schemas.withoutDetails(c.collection, c.changeId) });
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

  /** See stored-types.ts: BSON types of the stored document and of the collection's fieldTypes survive the JSON wire. */
  keepTypes(collection: string, stored: SyncDocument | null, after: SyncDocument): SyncDocument {
    const types = this.permissions.fieldTypes(collection);
    let out = types ? keepStoredTypes(fieldTypesTemplate(types), after) : after;
    if (stored) out = keepStoredTypes(stored, out);
    return out;
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
}
