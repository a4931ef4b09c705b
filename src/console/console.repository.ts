import { Injectable } from '@nestjs/common';
import { InjectConnection } from '@nestjs/mongoose';
import { isUserCollectionName } from '@sync/protocol';
import { Filter, ObjectId, type Db } from 'mongodb';
import type { Connection } from 'mongoose';
import type { AuditRecord } from '../audit/audit.repository';

/** Bounds of what the console reads: no request costs more than this. */
export const CONSOLE_LIMITS = { maxCollections: 200, maxTimeMS: 5000 } as const;

export interface AuditQuery {
  collection?: string;
  userId?: string;
  code?: string;
  from?: Date;
  to?: Date;
  /** Strictly older than this (at, _id): the keyset of the previous page's last record. */
  before?: { at: Date; id: ObjectId };
  limit: number;
}

export type AuditRow = AuditRecord & { _id: ObjectId };

/** Read-only queries for the operator console (feed counters, collection sizes, the audit trail). */
@Injectable()
export class ConsoleRepository {
  constructor(@InjectConnection() private readonly connection: Connection) {}

  private get db(): Db {
    return this.connection.db as unknown as Db;
  }

  /** The feed's high-water mark and how far retention has purged (`_sync_counters`). */
  async feedCounters(): Promise<{ highWater: number; purgedThrough: number }> {
    const docs = await this.db
      .collection<{ _id: string; highWater?: number; purgedThrough?: number }>('_sync_counters')
      .find({ _id: { $in: ['feed', 'retention'] } }, { maxTimeMS: CONSOLE_LIMITS.maxTimeMS })
      .toArray();
    const feed = docs.find((d) => d._id === 'feed');
    const retention = docs.find((d) => d._id === 'retention');
    return { highWater: feed?.highWater ?? 0, purgedThrough: retention?.purgedThrough ?? 0 };
  }

  /** Estimated document counts of the user collections (at most 200, by name). */
  async collectionCounts(): Promise<{ name: string; count: number }[]> {
    const names = (await this.db.listCollections({}, { nameOnly: true }).toArray())
      .map((c) => c.name)
      .filter((n) => isUserCollectionName(n))
      .sort()
      .slice(0, CONSOLE_LIMITS.maxCollections);
    return Promise.all(names.map(async (name) => ({ name, count: await this.db.collection(name).estimatedDocumentCount({ maxTimeMS: CONSOLE_LIMITS.maxTimeMS }) })));
  }

  /** A page of the audit trail, newest first. */
  async audit(q: AuditQuery): Promise<AuditRow[]> {
    const f: Filter<AuditRow> = {};
    if (q.collection !== undefined) f.collection = q.collection;
    if (q.userId !== undefined) f.userId = q.userId;
    if (q.code !== undefined) f.code = q.code;
    const at: Record<string, Date> = {};
    if (q.from) at.$gte = q.from;
    if (q.to) at.$lte = q.to;
    if (Object.keys(at).length) f.at = at;
    const filter: Filter<AuditRow> = q.before
      ? { $and: [f, { $or: [{ at: { $lt: q.before.at } }, { at: q.before.at, _id: { $lt: q.before.id } }] }] }
      : f;
    return this.db
      .collection<AuditRow>('_sync_audit')
      .find(filter, { maxTimeMS: CONSOLE_LIMITS.maxTimeMS })
      .sort({ at: -1, _id: -1 })
      .limit(q.limit)
      .toArray();
  }
}
