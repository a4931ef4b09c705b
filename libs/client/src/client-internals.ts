/** Small helpers the SyncClient's parts share (not exported from the package). */
import type { SyncClientEvents, PendingChange } from './client-types';
import type { Requester } from './server-messages';
import type { OutboxEntry, StorageWrite } from './storage/storage.types';

/** SyncClient's emit, handed to its parts. */
export type Emit = <K extends keyof SyncClientEvents>(event: K, ...args: Parameters<SyncClientEvents[K]>) => void;

/** What the uploader, the downloader and the subscription set all need from the client and its connection. */
export interface PartDeps {
  emit: Emit;
  persist(w: StorageWrite): Promise<void>;
  request: Requester;
  sleep(ms: number, s: AbortSignal): Promise<void>;
  retryDelay(attempt: number): number;
  rejoin(s: AbortSignal): Promise<void>;
}

/** Wakes the session loop (a new change, a catch-up asked for, the session ended). */
export class Wakeup {
  private flag = false;
  private resolver?: () => void;
  notify(): void {
    if (this.resolver) {
      const r = this.resolver;
      this.resolver = undefined;
      r();
    } else this.flag = true;
  }
  wait(ms: number): Promise<void> {
    if (this.flag) {
      this.flag = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const t = setTimeout(
        () => {
          this.resolver = undefined;
          resolve();
        },
        Math.max(0, ms),
      );
      this.resolver = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
}

export function publicChange(e: OutboxEntry): PendingChange {
  return {
    changeId: e.changeId,
    operation: e.operation,
    collection: e.collection,
    documentId: e.documentId,
    ...(e.data ? { data: e.data } : {}),
    timestamp: e.timestamp,
  };
}

/** A server's retryAfterMs hint, bounded (at most an hour); undefined when absent or nonsense. */
export function validHint(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.min(v, 3_600_000) : undefined;
}

export function numberOr(v: unknown, fallback: number): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : fallback;
}
