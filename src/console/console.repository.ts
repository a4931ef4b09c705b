import { Injectable } from '@nestjs/common';
import { InjectConnection } from '@nestjs/mongoose';
import { isUserCollectionName } from '@sync/protocol';
import type { Db } from 'mongodb';
import type { Connection } from 'mongoose';

/** Bounds of what the console reads: no request costs more than this. */
export const CONSOLE_LIMITS = { maxCollections: 200, maxTimeMS: 5000 } as const;

/** Read-only queries for the operator console (feed counters, collection sizes; the audit trail: AuditRepository.page). */
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
    return Promise.all(
      names.map(async (name) => ({ name, count: await this.db.collection(name).estimatedDocumentCount({ maxTimeMS: CONSOLE_LIMITS.maxTimeMS }) })),
    );
  }
}
