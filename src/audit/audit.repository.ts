import { Injectable, OnModuleInit } from '@nestjs/common';
import { InjectConnection } from '@nestjs/mongoose';
import type { Collection, Db, Filter, ObjectId } from 'mongodb';
import type { Connection } from 'mongoose';
import { ensureIndexes } from '../database/indexes';

export const AUDIT_COLLECTION = '_sync_audit';
/** A page read never runs longer than this. */
export const AUDIT_READ_MAX_TIME_MS = 5000;

/** A rejected change (conflict, forbidden, invalid, rate limited): who, what, when, why, from where. */
export interface AuditRecord {
  at: Date;
  userId: string;
  clientAddress?: string;
  code: string;
  reason: string;
  changeId?: string;
  operation?: string;
  collection?: string;
  documentId?: string;
  timestamp?: number;
}

/** One page of `GET /api/audit`: the filters, and strictly older than `before` (the previous page's last record). */
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

/**
 * The audit trail of rejected changes. Applied changes are audited by the change feed itself
 * (`_sync_feed` keeps author, time, client address, before and after images).
 */
@Injectable()
export class AuditRepository implements OnModuleInit {
  constructor(@InjectConnection() private readonly connection: Connection) {}

  private get audit(): Collection<AuditRecord> {
    return (this.connection.db as unknown as Db).collection<AuditRecord>(AUDIT_COLLECTION);
  }

  async onModuleInit(): Promise<void> {
    await ensureIndexes(this.audit, [
      { key: { at: 1 }, name: 'at' },
      { key: { userId: 1, at: 1 }, name: 'userId_at' },
    ]);
  }

  async record(records: AuditRecord[]): Promise<void> {
    if (records.length) await this.audit.insertMany(records, { ordered: false });
  }

  async find(filter: { userId?: string; code?: string; changeId?: string }, limit = 100): Promise<AuditRecord[]> {
    const f: Record<string, unknown> = {};
    if (filter.userId) f.userId = filter.userId;
    if (filter.code) f.code = filter.code;
    if (filter.changeId) f.changeId = filter.changeId;
    return this.audit
      .find(f, { projection: { _id: 0 } })
      .sort({ at: -1 })
      .limit(limit)
      .toArray();
  }

  /** A page of the audit trail, newest first (keyset paging on `at`, `_id`). */
  async page(q: AuditQuery): Promise<AuditRow[]> {
    const f: Filter<AuditRow> = {};
    if (q.collection !== undefined) f.collection = q.collection;
    if (q.userId !== undefined) f.userId = q.userId;
    if (q.code !== undefined) f.code = q.code;
    const at: Record<string, Date> = {};
    if (q.from) at.$gte = q.from;
    if (q.to) at.$lte = q.to;
    if (Object.keys(at).length) f.at = at;
    const filter: Filter<AuditRow> = q.before ? { $and: [f, { $or: [{ at: { $lt: q.before.at } }, { at: q.before.at, _id: { $lt: q.before.id } }] }] } : f;
    return (this.connection.db as unknown as Db)
      .collection<AuditRow>(AUDIT_COLLECTION)
      .find(filter, { maxTimeMS: AUDIT_READ_MAX_TIME_MS })
      .sort({ at: -1, _id: -1 })
      .limit(q.limit)
      .toArray();
  }

  async purge(cutoff: Date): Promise<number> {
    return (await this.audit.deleteMany({ at: { $lt: cutoff } })).deletedCount;
  }
}
