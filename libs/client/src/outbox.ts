import type { ClientChange } from '../../protocol/src/types';
import type { OutboxEntry } from './storage/storage.types';

/** The wire form of an outbox entry (what sync:changeBatch carries). */
export function toWire(e: OutboxEntry): ClientChange {
  const c: ClientChange = {
    changeId: e.changeId,
    operation: e.operation,
    collection: e.collection,
    documentId: e.documentId,
    timestamp: e.timestamp,
  };
  if (e.operation !== 'delete' && e.data) c.data = e.data;
  if (e.idType) c.idType = e.idType;
  return c;
}

/**
 * The changes waiting for the server, in the order they were made. An entry becomes sendable only
 * once it is durable in storage; batches are always a prefix of the queue, so changes reach the
 * server in the order the app made them (and so, per document, in order).
 */
export class Outbox {
  private entries: OutboxEntry[] = [];
  private readonly durable = new Set<string>();
  private readonly bytes = new Map<string, number>();

  load(entries: OutboxEntry[]): void {
    this.entries = [...entries].sort((a, b) => a.seq - b.seq);
    this.durable.clear();
    this.bytes.clear();
    for (const e of this.entries) this.durable.add(e.changeId);
  }

  add(entry: OutboxEntry): void {
    this.entries.push(entry);
  }

  markDurable(changeId: string): void {
    this.durable.add(changeId);
  }

  remove(changeIds: Iterable<string>): void {
    const ids = new Set(changeIds);
    if (!ids.size) return;
    this.entries = this.entries.filter((e) => !ids.has(e.changeId));
    for (const id of ids) {
      this.durable.delete(id);
      this.bytes.delete(id);
    }
  }

  /** Entries stored durably (sendable), in order. */
  durableEntries(): OutboxEntry[] {
    return this.entries.filter((e) => this.durable.has(e.changeId));
  }

  get size(): number {
    return this.entries.length;
  }

  all(): readonly OutboxEntry[] {
    return this.entries;
  }

  has(changeId: string): boolean {
    return this.entries.some((e) => e.changeId === changeId);
  }

  /** The next changes to send: a prefix of durable entries, at most `maxCount` and about `maxBytes`. */
  nextBatch(maxCount: number, maxBytes: number): OutboxEntry[] {
    const out: OutboxEntry[] = [];
    let total = 0;
    for (const e of this.entries) {
      if (!this.durable.has(e.changeId) || out.length >= maxCount) break;
      const size = this.sizeOf(e);
      if (out.length && total + size > maxBytes) break;
      out.push(e);
      total += size;
    }
    return out;
  }

  private sizeOf(e: OutboxEntry): number {
    let n = this.bytes.get(e.changeId);
    if (n === undefined) {
      n = JSON.stringify(toWire(e)).length + 16;
      this.bytes.set(e.changeId, n);
    }
    return n;
  }
}
