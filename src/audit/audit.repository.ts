import { Injectable, OnModuleInit } from '@nestjs/common';
import { InjectConnection } from '@nestjs/mongoose';
import type { Collection, Db } from 'mongodb';
import type { Connection } from 'mongoose';
import { ensureIndexes } from '../database/indexes';

export const AUDIT_COLLECTION = '_sync_audit';

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
    return this.audit.find(f, { projection: { _id: 0 } }).sort({ at: -1 }).limit(limit).toArray();
  }

  async purge(cutoff: Date): Promise<number> {
    return (await this.audit.deleteMany({ at: { $lt: cutoff } })).deletedCount;
  }
}
