/* The few pieces of the wire contract (docs/PROTOCOL.md) the load generator speaks. Kept
 * here rather than imported from libs/protocol so the harness measures the server as a black box. */
import { randomUUID } from 'node:crypto';

export const EV = {
  join: 'sync:join',
  subscribe: 'sync:subscribe',
  change: 'sync:change',
  changeBatch: 'sync:changeBatch',
  getChanges: 'sync:get_changes',
  changes: 'sync:changes',
  bootstrap: 'sync:bootstrap',
} as const;

export interface Change {
  changeId: string;
  operation: 'insert' | 'update' | 'delete';
  collection: string;
  documentId: string;
  data?: Record<string, unknown>;
  timestamp: number;
}

export interface Ack {
  success: boolean;
  code?: string;
  error?: string;
  cursor?: string;
  [k: string]: unknown;
}

export interface BatchAck extends Ack {
  results?: Ack[];
  successCount?: number;
  failureCount?: number;
}

const BODY = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore.';

/** The document every scenario writes (≈ 250 bytes of JSON): a typical "task" record. */
export function benchDoc(i: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    title: `Task number ${i}`,
    done: i % 3 === 0,
    priority: i % 5,
    tags: ['bench', i % 2 ? 'odd' : 'even'],
    body: BODY,
    ownerId: `owner-${i % 100}`,
    ...extra,
  };
}

export function insertChange(collection: string, documentId: string, data: Record<string, unknown>): Change {
  return { changeId: randomUUID(), operation: 'insert', collection, documentId, data, timestamp: Date.now() };
}
