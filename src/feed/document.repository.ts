import { Injectable, OnModuleInit } from '@nestjs/common';
import { Inject, Optional } from '@nestjs/common';
import { InjectConnection } from '@nestjs/mongoose';
import { APP_CONFIG } from '../config/config.module';
import type { AppConfig } from '../config/config.schema';
import type { AnyBulkWriteOperation, Collection, Db, Filter, FindCursor } from 'mongodb';
import type { Connection } from 'mongoose';
import type { SyncDocument } from '@sync/protocol';
import { FIELD_TS, StoredState, SYNC_TS, UPDATED_BY } from '../conflict/conflict.types';
import { duplicateKeyIndexes } from './change-feed.repository';
import { ensureIndexes } from '../database/indexes';
import { PermissionService } from '../permission/permission.service';
import { candidateDbIds, DbId, documentIdOf, IdHint, newDbId, preferredDoc, wireIdType } from './document-id';

export const TOMBSTONE_COLLECTION = '_sync_tombstones';

export interface Tombstone {
  _id: string;
  collection: string;
  documentId: string;
  timestamp: number;
  changeId: string;
  userId: string;
  deletedAt: Date;
  /** The document's last version (server-only fields stripped), for write rules on its id; absent in older tombstones. */
  lastDoc?: SyncDocument | null;
  /** Set when the deleted document's `_id` was an ObjectId (an `auto` collection recreates it as one). */
  idType?: 'objectId';
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
  tombstone?: Omit<Tombstone, '_id' | 'collection' | 'documentId' | 'idType'>;
  /** The stored `_id` (StoredState.dbId) when it is not the documentId string (an ObjectId). */
  dbId?: unknown;
}

export const docKey = (collection: string, documentId: string) => `${collection}:${documentId}`;

type Doc = { _id: DbId } & SyncDocument;

/**
 * The compare-and-set condition on sync_updated_at. A document written by another application (or
 * left by Atlas Device Sync) has none: `null` matches a missing field (and an explicit null), and
 * `$not: { $type: number }` also any other non-number value, exactly what loadStates read as "no timestamp".
 */
export function timestampGuard(expected: number | null): unknown {
  return expected === null ? { $not: { $type: 'number' } } : expected;
}

/** The synced collections (live documents only) and the tombstones of deleted documents. */
@Injectable()
export class DocumentRepository implements OnModuleInit {
  /** maxTimeMS of the read queries (QUERY_MAX_TIME_MS; undefined: none). */
  private readonly maxTimeMS?: number;

  constructor(
    @InjectConnection() private readonly connection: Connection,
    private readonly permissions: PermissionService,
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

  /**
   * Loads the stored state of several documents of one collection (2 queries, in parallel). Each
   * documentId is looked up under every `_id` it may be stored as (the collection's idType: a
   * 24-hex id of an `auto` collection as ObjectId and string, in the same `$in`); the state's
   * `dbId` is the `_id` found, or the one a new document gets (`hints`: the changes' idType). The
   * returned documents carry the documentId string as `_id`, like every after-image.
   */
  async loadStates(collection: string, ids: string[], hints?: ReadonlyMap<string, IdHint>): Promise<Map<string, StoredState>> {
    const idType = this.permissions.idType(collection);
    const [docs, tombs] = await Promise.all([
      this.collection(collection)
        .find({ _id: { $in: ids.flatMap((id) => candidateDbIds(idType, id)) } } as Filter<Doc>)
        .toArray(),
      this.tombstones.find({ _id: { $in: ids.map((id) => docKey(collection, id)) } }).toArray(),
    ]);
    const out = new Map<string, StoredState>();
    const tombById = new Map(tombs.map((t) => [t.documentId, t]));
    for (const id of ids) {
      const t = tombById.get(id);
      const dbId = newDbId(idType, id, t?.idType, hints?.get(id));
      out.set(
        id,
        t
          ? { doc: null, timestamp: t.timestamp, deleted: true, dbId, author: t.userId ?? null, lastDoc: t.lastDoc ?? null }
          : { doc: null, timestamp: null, deleted: false, dbId },
      );
    }
    // auto: a 24-hex id may be stored both ways (another application wrote it); the ObjectId one is the document
    const found = new Map<string, Doc>();
    for (const d of docs) found.set(documentIdOf(d._id), preferredDoc(found.get(documentIdOf(d._id)), d));
    for (const [id, d] of found) {
      const { [FIELD_TS]: fieldTimes, _id: dbId, ...rest } = d as SyncDocument;
      const doc: SyncDocument = { _id: id, ...rest };
      // a missing (or non-number) sync_updated_at is older than any change: see timestampGuard
      const ts = typeof doc[SYNC_TS] === 'number' ? (doc[SYNC_TS] as number) : null;
      const author = typeof doc[UPDATED_BY] === 'string' ? (doc[UPDATED_BY] as string) : null;
      out.set(id, { doc, timestamp: ts, deleted: false, fieldTimes: fieldTimes as Record<string, number> | undefined, dbId, author });
    }
    return out;
  }

  /**
   * The stored states of documents of any collections, keyed by docKey: one loadStates per
   * collection, in parallel. A document's first idHint counts.
   */
  async loadMany(refs: { collection: string; documentId: string; idHint?: IdHint }[]): Promise<Map<string, StoredState>> {
    const byCollection = new Map<string, string[]>();
    const idHints = new Map<string, Map<string, IdHint>>();
    for (const r of refs) {
      const ids = byCollection.get(r.collection) ?? [];
      ids.push(r.documentId);
      byCollection.set(r.collection, ids);
      if (r.idHint && !idHints.get(r.collection)?.has(r.documentId)) {
        idHints.set(r.collection, (idHints.get(r.collection) ?? new Map<string, IdHint>()).set(r.documentId, r.idHint));
      }
    }
    const states = new Map<string, StoredState>();
    await Promise.all(
      [...byCollection.entries()].map(async ([coll, ids]) => {
        const m = await this.loadStates(coll, [...new Set(ids)], idHints.get(coll));
        for (const [id, s] of m) states.set(docKey(coll, id), s);
      }),
    );
    return states;
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
          replacement: { collection: w.collection, documentId: w.documentId, ...w.tombstone!, ...(wireIdType(w.dbId) ? { idType: 'objectId' } : {}) },
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
        const inserts: Doc[] = [];
        const insertIndex: number[] = [];
        for (const i of idx) {
          const w = writes[i];
          const _id = (w.dbId ?? w.documentId) as DbId;
          const guard = { _id, [SYNC_TS]: timestampGuard(w.expected.timestamp ?? null) } as Filter<Doc>;
          const doc = w.after === null ? null : ({ ...w.after, _id } as Doc);
          if (doc === null) {
            if (!w.expected.exists) continue; // delete of a missing document: the tombstone is all
            ops.push({ deleteOne: { filter: guard } });
            opIndex.push(i);
          } else if (!w.expected.exists) {
            // a document that did not exist: a plain insert (its duplicate key = created meanwhile = the CAS lost)
            inserts.push(doc);
            insertIndex.push(i);
          } else {
            // upsert: when the guard does not match because the document changed, the insert of
            // an existing _id fails with a duplicate key error that names this operation
            ops.push({ replaceOne: { filter: guard, replacement: doc, upsert: true } });
            opIndex.push(i);
          }
        }
        // the new documents in one unordered insertMany, alongside the guarded writes; FerretDB v1 can
        // hang on large bulks of upserts: those go at most 50 operations at a time
        await Promise.all([
          this.insertNew(name, inserts, insertIndex, failed),
          (async () => {
            for (let k = 0; k < ops.length; k += 50) await this.bulk(name, ops.slice(k, k + 50), opIndex.slice(k, k + 50), failed);
          })(),
        ]);
      }),
    );
    return failed;
  }

  /** Inserts documents that did not exist; adds the indexes of those that exist by now (duplicate key) to `failed`. */
  private async insertNew(name: string, docs: Doc[], index: number[], failed: Set<number>): Promise<void> {
    if (!docs.length) return;
    try {
      await this.collection(name).insertMany(docs, { ordered: false });
    } catch (e) {
      const dups = duplicateKeyIndexes(e);
      if (dups === null || dups.has(-1)) throw e;
      for (const k of dups) failed.add(index[k]);
    }
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
    const ids: DbId[] = [];
    ops.forEach((op) => {
      if ('deleteOne' in op) ids.push((op.deleteOne.filter as { _id: DbId })._id);
    });
    // keyed by type and value: an ObjectId and its hex string are two documents
    const key = (id: unknown) => `${wireIdType(id) ?? 's'}:${documentIdOf(id)}`;
    const still = new Set(
      (
        await this.collection(name)
          .find({ _id: { $in: ids } } as Filter<Doc>, { projection: { _id: 1 } })
          .toArray()
      ).map((d) => key(d._id)),
    );
    ops.forEach((op, k) => {
      if ('deleteOne' in op && still.has(key((op.deleteOne.filter as { _id: DbId })._id))) failed.add(opIndex[k]);
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
