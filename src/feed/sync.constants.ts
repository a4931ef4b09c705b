/** Internal timing of the write path and the change feed (see docs/ARCHITECTURE.md). */
export interface SyncTimings {
  /** How long a document lease lasts; a crashed holder blocks its documents at most this long. */
  lockTtlMs: number;
  /** A pending feed entry or a gap older than this is repaired (replayed or skipped). */
  staleAfterMs: number;
  /** How long a writer waits for a document held by another node before answering UNAVAILABLE. */
  lockWaitMs: number;
  /** How often the janitor looks for stale entries. */
  janitorIntervalMs: number;
}

export const SYNC_TIMINGS = Symbol('SYNC_TIMINGS');

export function syncTimings(lockTtlMs: number): SyncTimings {
  return {
    lockTtlMs,
    staleAfterMs: lockTtlMs + Math.max(1000, Math.round(lockTtlMs / 2)),
    lockWaitMs: Math.max(2000, lockTtlMs + 1000),
    janitorIntervalMs: Math.max(500, Math.min(5000, Math.round(lockTtlMs / 2))),
  };
}
