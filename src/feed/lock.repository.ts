import { Injectable, OnModuleInit } from '@nestjs/common';
import { InjectConnection } from '@nestjs/mongoose';
import { randomUUID } from 'node:crypto';
import type { Collection, Db } from 'mongodb';
import type { Connection } from 'mongoose';
import { duplicateKeyIndexes } from './change-feed.repository';
import { ensureIndexes } from '../database/indexes';

export const LOCK_COLLECTION = '_sync_locks';

interface LockDoc {
  _id: string;
  owner: string;
  expiresAt: Date;
}

/**
 * Short per-document leases in MongoDB, so that two server nodes never resolve and write the same
 * document at once. A lease expires (a crashed holder cannot block a document for long); a node that
 * takes over an expired lease first replays the holder's pending feed entries.
 */
@Injectable()
export class LockRepository implements OnModuleInit {
  /** Identifies this process's leases. */
  readonly owner = randomUUID();

  constructor(@InjectConnection() private readonly connection: Connection) {}

  private get locks(): Collection<LockDoc> {
    return (this.connection.db as unknown as Db).collection<LockDoc>(LOCK_COLLECTION);
  }

  async onModuleInit(): Promise<void> {
    await ensureIndexes(this.locks, [{ key: { expiresAt: 1 }, name: 'expiresAt' }]);
  }

  /** Tries to take all keys; returns the keys it could NOT take (held by someone else). */
  async tryAcquire(keys: string[], ttlMs: number): Promise<string[]> {
    if (!keys.length) return [];
    const expiresAt = new Date(Date.now() + ttlMs);
    try {
      await this.locks.insertMany(
        keys.map((k) => ({ _id: k, owner: this.owner, expiresAt })),
        { ordered: false },
      );
      return [];
    } catch (e) {
      const dups = duplicateKeyIndexes(e);
      // a plain duplicate-key error without per-item details can only be trusted for a single key
      if (dups === null && keys.length === 1) return keys;
      if (dups === null || dups.has(-1)) throw e;
      return [...dups].map((i) => keys[i]);
    }
  }

  /** Takes over an expired lease; true when this process now holds it. */
  async steal(key: string, ttlMs: number): Promise<boolean> {
    const now = new Date();
    const res = await this.locks.updateOne({ _id: key, expiresAt: { $lt: now } }, { $set: { owner: this.owner, expiresAt: new Date(now.getTime() + ttlMs) } });
    return res.modifiedCount === 1;
  }

  async release(keys: string[]): Promise<void> {
    if (!keys.length) return;
    await this.locks.deleteMany({ _id: { $in: keys }, owner: this.owner });
  }

  async purgeExpired(before: Date): Promise<void> {
    await this.locks.deleteMany({ expiresAt: { $lt: before } });
  }
}
