/* The few pieces of the wire contract (docs/PROTOCOL.md) the load generator speaks. The values are
 * kept here rather than imported from libs/protocol so the harness measures the server as a black
 * box; the types are the protocol's (erased at run time), so a renamed field fails to compile here too. */
import { randomUUID } from 'node:crypto';
import type { ClientChange } from '@sync/protocol';

export const EV = {
  join: 'sync:join',
  subscribe: 'sync:subscribe',
  change: 'sync:change',
  changeBatch: 'sync:changeBatch',
  getChanges: 'sync:get_changes',
  changes: 'sync:changes',
  bootstrap: 'sync:bootstrap',
} as const;

/** A change as the generator sends it: always with its id and timestamp. */
type Change = ClientChange & { changeId: string; timestamp: number };

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
