import { Injectable, OnModuleInit } from '@nestjs/common';
import { Inject, Optional } from '@nestjs/common';
import { InjectConnection } from '@nestjs/mongoose';
import { APP_CONFIG } from '../config/config.module';
import type { AppConfig } from '../config/config.schema';
import type { AnyBulkWriteOperation, Collection, Db, Filter, FindCursor } from 'mongodb';
import type { Connection } from 'mongoose';
import type { SyncDocument } from '@sync/protocol';
import { FIELD_TS, StoredState, SYNC_TS } from '../conflict/conflict.types';
import { duplicateKeyIndexes } from './change-feed.repository';
import { ensureIndexes } from '../database/indexes';

export const TOMBSTONE_COLLECTION = '_sync_tombstones';

export interface Tombstone {
  _id: string;
  collection: string;
  documentId: string;
  timestamp: number;
  changeId: string;
  userId: string;
  deletedAt: Date;
}

/** One document write, guarded by the state it was resolved against (compare-and-set). */
export interface DocumentWrite {
  collection: string;
  documentId: string;
  /** The state the outcome was computed from: the write only happens if the document still has it. */
  expected: { exists: boolean; timestamp: number | null };
  /** The document to store, or null to delete it. */
  after: SyncDocument | null;
  /** For deletes: the tombstone to record (written before the document is removed). */
  tombstone?: Omit<Tombstone, '_id' | 'collection' | 'documentId'>;
}

export const docKey = (collection: string, documentId: string) => `${collection}:${documentId}`;

type Doc = { _id: string } & SyncDocument;

/** The synced collections (live documents only) and the tombstones of deleted documents. */
@Injectable()
export class DocumentRepository implements OnModuleInit {
  /** maxTimeMS of the read queries (QUERY_MAX_TIME_MS; undefined: none). */
  private readonly maxTimeMS?: number;

  constructor(
    @InjectConnection() private readonly connection: Connection,
    @Optional() @Inject(APP_CONFIG) config?: AppConfig,
  ) {
    this.maxTimeMS = config?.mongodb.queryMaxTimeMS || undefined;
  }

  private get db(): Db {
    return this.connection.db as unknown as Db;
  }
  collection(name: string): Collection<Doc> {
    return this.db.collection<Doc>(name);
  }
  private get tombstones(): Collection<Tombstone> {
    return this.db.collection<Tombstone>(TOMBSTONE_COLLECTION);
  }

  async onModuleInit(): Promise<void> {
    await ensureIndexes(this.tombstones, [{ key: { deletedAt: 1 }, name: 'deletedAt' }]);
  }

  /** Loads the stored state of several documents of one collection (2 queries, in parallel). */
  async loadStates(collection: string, ids: string[]): Promise<Map<string, StoredState>> {
    const [docs, tombs] = await Promise.all([
      this.collection(collection).find({ _id: { $in: ids } } as Filter<Doc>).toArray(),
      this.tombstones.find({ _id: { $in: ids.map((id) => docKey(collection, id)) } }).toArray(),
    ]);
    const out = new Map<string, StoredState>();
    const tombById = new Map(tombs.map((t) => [t.documentId, t]));
    for (const id of ids) out.set(id, { doc: null, timestamp: null, deleted: false });
    for (const id of ids) {
      const t = tombById.get(id);
      if (t) out.set(id, { doc: null, timestamp: t.timestamp, deleted: true });
    }
    for (const d of docs) {
      const { [FIELD_TS]: fieldTimes, ...doc } = d as SyncDocument;
      const ts = typeof doc[SYNC_TS] === 'number' ? (doc[SYNC_TS] as number) : null;
      out.set(String(d._id), { doc, timestamp: ts, deleted: false, fieldTimes: fieldTimes as Record<string, number> | undefined });
    }
    return out;
  }

  /**
   * Applies writes with compare-and-set guards. Returns the indexes of the writes that did NOT take
   * effect because the document no longer had the expected state (a concurrent writer won).
   */
  async applyWrites(writes: DocumentWrite[]): Promise<Set<number>> {
    const failed = new Set<number>();
    // tombstones first: a document is never missing without its tombstone being on record
    const tombOps = writes
      .filter((w) => w.after === null && w.tombstone)
      .map((w) => ({
        replaceOne: {
          filter: { _id: docKey(w.collection, w.documentId) },
          replacement: { collection: w.collection, documentId: w.documentId, ...w.tombstone! },
          upsert: true,
        },
      }));
    if (tombOps.length) await this.tombstones.bulkWrite(tombOps as AnyBulkWriteOperation<Tombstone>[], { ordered: false });

    const byCollection = new Map<string, number[]>();
    writes.forEach((w, i) => {
      const list = byCollection.get(w.collection) ?? [];
      list.push(i);
      byCollection.set(w.collection, list);
    });
    await Promise.all(
      [...byCollection.entries()].map(async ([name, idx]) => {
        const ops: AnyBulkWriteOperation<Doc>[] = [];
        const opIndex: number[] = [];
        for (const i of idx) {
          const w = writes[i];
          const guard = { _id: w.documentId, [SYNC_TS]: w.expected.timestamp ?? null } as Filter<Doc>;
          if (w.after === null) {
            if (!w.expected.exists) continue; // delete of a missing document: the tombstone is all
            ops.push({ deleteOne: { filter: guard } });
          } else if (!w.expected.exists) {
            ops.push({ insertOne: { document: w.after as Doc } });
          } else {
            // upsert: when the guard does not match because the document changed, the insert of
            // an existing _id fails with a duplicate key error that names this operation
            ops.push({ replaceOne: { filter: guard, replacement: w.after as Doc, upsert: true } });
          }
          opIndex.push(i);
        }
        // FerretDB v1 can hang on large bulks of upserts: send at most 50 operations at a time
        for (let k = 0; k < ops.length; k += 50) await this.bulk(name, ops.slice(k, k + 50), opIndex.slice(k, k + 50), failed);
      }),
    );
    return failed;
  }

  /** One bulk of guarded writes; adds the indexes of the writes whose guard did not match to `failed`. */
  private async bulk(name: string, ops: AnyBulkWriteOperation<Doc>[], opIndex: number[], failed: Set<number>): Promise<void> {
    let deletesExpected = 0;
    for (const op of ops) if ('deleteOne' in op) deletesExpected++;
    let deleted: number | undefined;
    try {
      deleted = (await this.collection(name).bulkWrite(ops, { ordered: false })).deletedCount;
    } catch (e) {
      const dups = duplicateKeyIndexes(e);
      if (dups === null || dups.has(-1)) throw e;
      for (const k of dups) failed.add(opIndex[k]);
      deleted = (e as { result?: { deletedCount?: number } }).result?.deletedCount;
    }
    if (deletesExpected && deleted !== deletesExpected) await this.markFailedDeletes(name, ops, opIndex, failed);
  }

  /** After a bulk write deleted fewer documents than asked, finds which guarded deletes did not match. */
  private async markFailedDeletes(name: string, ops: AnyBulkWriteOperation<Doc>[], opIndex: number[], failed: Set<number>): Promise<void> {
    const ids: string[] = [];
    ops.forEach((op) => {
      if ('deleteOne' in op) ids.push(String((op.deleteOne.filter as { _id: string })._id));
    });
    const still = new Set((await this.collection(name).find({ _id: { $in: ids } } as Filter<Doc>, { projection: { _id: 1 } }).toArray()).map((d) => String(d._id)));
    ops.forEach((op, k) => {
      if ('deleteOne' in op && still.has(String((op.deleteOne.filter as { _id: string })._id))) failed.add(opIndex[k]);
    });
  }

  /** Removes tombstones older than the cutoff (retention). */
  async purgeTombstones(cutoff: Date): Promise<number> {
    return (await this.tombstones.deleteMany({ deletedAt: { $lt: cutoff } })).deletedCount;
  }

  /**
   * Every document matching `filter`, through one cursor read `batchSize` at a time. A bootstrap
   * reads this way rather than page by page: one query (on the embedded FerretDB every query reads
   * the whole collection, so paging with `_id > last` cost a collection read per page).
   */
  stream(collection: string, filter: Record<string, unknown>, batchSize: number): FindCursor<SyncDocument> {
    return this.collection(collection)
      .find(filter as Filter<Doc>, { projection: { [FIELD_TS]: 0 }, maxTimeMS: this.maxTimeMS })
      .batchSize(batchSize) as unknown as FindCursor<SyncDocument>;
  }

  async count(collection: string, filter: Record<string, unknown>): Promise<number> {
    return this.collection(collection).countDocuments(filter as Filter<Doc>, { maxTimeMS: this.maxTimeMS });
  }
}
