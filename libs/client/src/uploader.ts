/**
 * The uploader: sends the outbox in order, in batches (sync:changeBatch), applies the acks (settle),
 * rolls back refusals, retries transient failures with backoff and shrinks batches that get no answer.
 */
import { ErrorCode } from '../../protocol/src/errors';
import type { SyncDocument } from '../../protocol/src/types';
import type { InspectReport, SyncClientError, SyncClientLogger } from './client-types';
import { numberOr, publicChange, validHint, type PartDeps } from './client-internals';
import { withId } from './ids';
import type { LocalView } from './local-view';
import { toWire, type Outbox } from './outbox';
import type { AnswerOf, ChangeAnswer, FailureAnswer } from './server-messages';
import type { DocRecord, OutboxEntry } from './storage/storage.types';

/** A change refused with one of these codes is refused for good: rolled back, never retried. */
const FINAL_CODES = new Set<string>([ErrorCode.FORBIDDEN, ErrorCode.INVALID_PAYLOAD, ErrorCode.PAYLOAD_TOO_LARGE, ErrorCode.INVALID_QUERY, 'SCHEMA_VIOLATION']);
/** Transient: retried with backoff (and the server's retryAfterMs) for as long as it takes. */
const TRANSIENT_CODES = new Set<string>([ErrorCode.RATE_LIMITED, ErrorCode.UNAVAILABLE, ErrorCode.UNAUTHENTICATED, 'TIMEOUT', 'SLOW_CONSUMER']);
/** INTERNAL and codes this client does not know are retried this often, then taken as refused. */
const MAX_INTERNAL_ATTEMPTS = 5;
/** A change of more than this many bytes sent alone without an answer this often is refused. */
const UNANSWERABLE_MIN_BYTES = 64 * 1024;
const MAX_UNANSWERED_ALONE = 5;

/** What the uploader needs from the client and its connection. */
export interface UploaderDeps extends PartDeps {
  readonly outbox: Outbox;
  readonly view: LocalView;
  readonly log: SyncClientLogger | null;
  readonly maxBatchSize: number;
  readonly maxBatchBytes: number;
  /** The server confirmed this document (it is not stale after a client reset). */
  confirmed(collection: string, id: string): void;
  /** Local changes were applied by the server. */
  applied(): void;
}

export class Uploader {
  private readonly internalAttempts = new Map<string, number>();
  /** Per outbox entry: sends without a final answer, the last error (for inspect()). */
  private readonly entryInfo = new Map<string, { attempts: number; lastError: InspectReport['lastError'] }>();
  private readonly inFlight = new Set<string>();
  /** Big changes sent alone without an answer, and how often (see refuseIfUnanswerable). */
  private readonly unansweredAlone = new Map<string, number>();
  private batchLimit: number;

  constructor(private readonly d: UploaderDeps) {
    this.batchLimit = d.maxBatchSize;
  }

  /** Where an entry stands, for inspect(): in flight, its attempts and last error. */
  entryState(changeId: string): { sending: boolean; info?: { attempts: number; lastError: InspectReport['lastError'] } } {
    return { sending: this.inFlight.has(changeId), info: this.entryInfo.get(changeId) };
  }

  /** Forgets an entry that left the outbox otherwise (discarded by a client reset). */
  forget(changeId: string): void {
    this.entryInfo.delete(changeId);
    this.internalAttempts.delete(changeId);
  }

  /** Sends the outbox in order, in batches, until it is empty or the server asks to wait. */
  async flush(s: AbortSignal): Promise<void> {
    let attempt = 0;
    while (!s.aborted) {
      const batch = this.d.outbox.nextBatch(this.batchLimit, this.d.maxBatchBytes);
      if (!batch.length) return;
      let ack: AnswerOf<'sync:changeBatch'>;
      for (const e of batch) this.inFlight.add(e.changeId);
      try {
        ack = await this.d.request('sync:changeBatch', { changes: batch.map(toWire) });
      } catch (err) {
        // no answer (timeout, or the connection dropped: perhaps the message was over the server's
        // size limit): retry smaller; the size grows back after successes
        for (const e of batch) {
          this.inFlight.delete(e.changeId);
          this.noteAttempt(e.changeId, (err as SyncClientError).code ?? 'TIMEOUT', (err as Error).message);
        }
        if (batch.length > 1) this.batchLimit = Math.max(1, Math.floor(batch.length / 2));
        else if (await this.refuseIfUnanswerable(batch[0])) continue;
        if (s.aborted) return;
        await this.d.sleep(this.d.retryDelay(attempt++), s);
        continue;
      }
      this.unansweredAlone.delete(batch[0].changeId);
      for (const e of batch) this.inFlight.delete(e.changeId);
      if (s.aborted) return;
      let results: (ChangeAnswer | undefined)[];
      if (ack.success === true) {
        results = ack.results;
      } else {
        const fail = ack;
        if (fail.code === ErrorCode.UNAUTHENTICATED) {
          await this.d.rejoin(s);
          continue;
        }
        if (!FINAL_CODES.has(fail.code)) {
          for (const e of batch) this.noteAttempt(e.changeId, fail.code, fail.error);
          await this.d.sleep(validHint(fail.retryAfterMs) ?? this.d.retryDelay(attempt++), s);
          continue;
        }
        if (batch.length > 1) {
          // the batch as a whole was refused (too big?): split it until the culprit stands alone
          this.batchLimit = Math.max(1, Math.floor(batch.length / 2));
          continue;
        }
        results = [fail];
      }
      const { retryAfterMs, rejoin } = await this.settle(batch, results);
      if (rejoin) await this.d.rejoin(s);
      if (retryAfterMs !== undefined) {
        await this.d.sleep(retryAfterMs || this.d.retryDelay(attempt++), s);
      } else {
        attempt = 0;
        if (this.batchLimit < this.d.maxBatchSize) this.batchLimit = Math.min(this.d.maxBatchSize, this.batchLimit * 2);
      }
    }
  }

  /** Applies the acks of one batch: settled entries leave the outbox in one storage write. */
  private async settle(batch: OutboxEntry[], results: (ChangeAnswer | undefined)[]): Promise<{ retryAfterMs?: number; rejoin: boolean }> {
    const removed: string[] = [];
    const putDocs: DocRecord[] = [];
    let retryAfterMs: number | undefined;
    let rejoin = false;
    let anyApplied = false;
    for (let i = 0; i < batch.length; i++) {
      const e = batch[i];
      const r = results[i];
      if (r && r.success === true) {
        const base = this.ackBase(e, r);
        this.d.confirmed(e.collection, e.documentId);
        if (this.d.view.settle(e, 'ack', base)) putDocs.push(base);
        removed.push(e.changeId);
        anyApplied = true;
        this.d.emit('acked', { change: publicChange(e), ack: r });
        continue;
      }
      const code = r?.code;
      if (code === ErrorCode.CONFLICT) {
        const fail = r as Extract<ChangeAnswer, { success: false }>;
        const current: SyncDocument | null = fail.current && typeof fail.current === 'object' ? withId(fail.current, e.documentId) : null;
        const ts = numberOr(fail.timestamp, numberOr(current?.sync_updated_at, 0));
        const base: DocRecord = { collection: e.collection, id: e.documentId, state: current ? 'live' : 'deleted', doc: current, ts };
        const known = this.d.view.getBase(e.collection, e.documentId)?.idType;
        if (known) base.idType = known;
        if (this.d.view.settle(e, 'conflict', base)) putDocs.push(base);
        removed.push(e.changeId);
        anyApplied = true;
        this.d.emit('conflict', { change: publicChange(e), current, timestamp: fail.timestamp });
        continue;
      }
      // INTERNAL, or a code this client does not know: a few retries, then refused (never stuck)
      const limited = !!code && !FINAL_CODES.has(code) && !TRANSIENT_CODES.has(code);
      const attempts = limited || !r ? (this.internalAttempts.get(e.changeId) ?? 0) + 1 : 0;
      this.noteAttempt(e.changeId, code ?? ErrorCode.INTERNAL, r?.error ?? 'no result for this change');
      if ((code && FINAL_CODES.has(code)) || attempts >= MAX_INTERNAL_ATTEMPTS) {
        this.d.view.settle(e, 'rollback');
        removed.push(e.changeId);
        this.internalAttempts.delete(e.changeId);
        const finalCode = code ?? ErrorCode.INTERNAL;
        this.d.emit('rejected', { change: publicChange(e), code: finalCode, error: r?.error ?? finalCode });
        this.d.log?.warn(`sync-client: ${e.operation} ${e.collection}/${e.documentId} refused (${finalCode}): ${r?.error ?? ''}; rolled back`);
        continue;
      }
      if (attempts) this.internalAttempts.set(e.changeId, attempts);
      if (code === ErrorCode.UNAUTHENTICATED) rejoin = true;
      const wait = validHint((r as FailureAnswer | undefined)?.retryAfterMs);
      retryAfterMs = Math.max(retryAfterMs ?? 0, wait ?? 0);
    }
    this.d.outbox.remove(removed);
    if (removed.length) {
      for (const id of removed) {
        this.internalAttempts.delete(id);
        this.entryInfo.delete(id);
      }
      await this.d.persist({ deleteOutbox: removed, putDocs });
      this.d.emit('pending', this.d.outbox.size);
    }
    if (anyApplied) this.d.applied();
    return { retryAfterMs, rejoin };
  }

  /**
   * A big change sent alone that never gets an answer (the server closes the connection: over its
   * message size limit) would block the outbox forever: after MAX_UNANSWERED_ALONE tries it is
   * refused as PAYLOAD_TOO_LARGE. Small changes are never refused this way (a flaky network only
   * delays them).
   */
  private async refuseIfUnanswerable(e: OutboxEntry): Promise<boolean> {
    if (JSON.stringify(toWire(e)).length <= UNANSWERABLE_MIN_BYTES) return false;
    const n = (this.unansweredAlone.get(e.changeId) ?? 0) + 1;
    this.unansweredAlone.set(e.changeId, n);
    if (n < MAX_UNANSWERED_ALONE) return false;
    this.unansweredAlone.delete(e.changeId);
    this.entryInfo.delete(e.changeId);
    this.internalAttempts.delete(e.changeId);
    this.d.outbox.remove([e.changeId]);
    this.d.view.settle(e, 'rollback');
    await this.d.persist({ deleteOutbox: [e.changeId] });
    this.d.emit('pending', this.d.outbox.size);
    const error = `no answer to this change sent alone ${n} times: over the server's message size limit?`;
    this.d.emit('rejected', { change: publicChange(e), code: ErrorCode.PAYLOAD_TOO_LARGE, error });
    this.d.log?.warn(`sync-client: ${e.operation} ${e.collection}/${e.documentId} refused (PAYLOAD_TOO_LARGE): ${error}; rolled back`);
    return true;
  }

  noteAttempt(changeId: string, code: string, message: string): void {
    const info = this.entryInfo.get(changeId) ?? { attempts: 0, lastError: null };
    info.attempts++;
    info.lastError = { code, message: String(message).slice(0, 500), at: Date.now() };
    this.entryInfo.set(changeId, info);
  }

  /** The server state after an applied local change, as far as the client can tell. */
  private ackBase(e: OutboxEntry, ack: Extract<ChangeAnswer, { success: true }>): DocRecord {
    const ts = numberOr(ack.timestamp, e.timestamp);
    const cursor = typeof ack.cursor === 'string' && ack.cursor ? ack.cursor : undefined;
    if (e.operation === 'delete') return { collection: e.collection, id: e.documentId, state: 'deleted', doc: null, ts, cursor };
    const cur = this.d.view.getBase(e.collection, e.documentId);
    const prior = e.operation === 'update' && cur?.state === 'live' && cur.doc ? cur.doc : {};
    const doc = { ...withId({ ...prior, ...(e.data ?? {}) }, e.documentId), sync_updated_at: ts };
    const idType = cur?.idType ?? e.idType;
    return { collection: e.collection, id: e.documentId, state: 'live', doc, ts, cursor, ...(idType ? { idType } : {}) };
  }
}
