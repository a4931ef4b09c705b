import { Inject, Injectable, OnModuleInit } from '@nestjs/common';
import { InjectConnection } from '@nestjs/mongoose';
import { randomUUID } from 'node:crypto';
import type { Collection, Db } from 'mongodb';
import type { Connection } from 'mongoose';
import { duplicateKeyIndexes } from './change-feed.repository';
import { APP_CONFIG } from '../config/config.module';
import { AppConfig } from '../config/config.schema';
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
 *
 * Where no other node can share the database (SYNC_SINGLE_NODE: by default the embedded database and
 * no REDIS_URL) the same leases live in this process's memory, with the same rules (taken, expired,
 * stolen, released), and cost no round trip: they still keep the janitor's replay of a stale entry
 * and a writer of its document apart. A restart forgets them, as a dead node's leases expire.
 */
@Injectable()
export class LockRepository implements OnModuleInit {
  /** Identifies this process's leases. */
  readonly owner = randomUUID();
  /** SYNC_SINGLE_NODE: the leases, key → expiry (ms); otherwise undefined and `_sync_locks` holds them. */
  private readonly local?: Map<string, number>;

  constructor(
    @InjectConnection() private readonly connection: Connection,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    if (config.sync.singleNode) this.local = new Map();
  }

  /** True when the leases are kept in memory (one node: no `_sync_locks` round trips). */
  get inMemory(): boolean {
    return this.local !== undefined;
  }

  private get locks(): Collection<LockDoc> {
    return (this.connection.db as unknown as Db).collection<LockDoc>(LOCK_COLLECTION);
  }

  async onModuleInit(): Promise<void> {
    if (this.local) return;
    await ensureIndexes(this.locks, [{ key: { expiresAt: 1 }, name: 'expiresAt' }]);
  }

  /** Tries to take all keys; returns the keys it could NOT take (held by someone else). */
  async tryAcquire(keys: string[], ttlMs: number): Promise<string[]> {
    if (!keys.length) return [];
    if (this.local) {
      // like the unique insert: a lease that exists (even expired: it is stolen, not taken) is refused
      const taken = keys.filter((k) => this.local!.has(k));
      const expires = Date.now() + ttlMs;
      for (const k of keys) if (!this.local.has(k)) this.local.set(k, expires);
      return taken;
    }
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
    if (this.local) {
      const expires = this.local.get(key);
      if (expires === undefined || expires >= now.getTime()) return false;
      this.local.set(key, now.getTime() + ttlMs);
      return true;
    }
    const res = await this.locks.updateOne({ _id: key, expiresAt: { $lt: now } }, { $set: { owner: this.owner, expiresAt: new Date(now.getTime() + ttlMs) } });
    return res.modifiedCount === 1;
  }

  /** Renews a lease this process kept (see DocumentLeases: an unfinished document); true when it still holds it. */
  async reclaim(key: string, ttlMs: number): Promise<boolean> {
    const expires = Date.now() + ttlMs;
    if (this.local) {
      if (!this.local.has(key)) return false;
      this.local.set(key, expires);
      return true;
    }
    const res = await this.locks.updateOne({ _id: key, owner: this.owner }, { $set: { expiresAt: new Date(expires) } });
    return res.matchedCount === 1;
  }

  async release(keys: string[]): Promise<void> {
    if (!keys.length) return;
    if (this.local) {
      for (const k of keys) this.local.delete(k);
      return;
    }
    await this.locks.deleteMany({ _id: { $in: keys }, owner: this.owner });
  }

  async purgeExpired(before: Date): Promise<void> {
    if (this.local) {
      for (const [k, expires] of this.local) if (expires < before.getTime()) this.local.delete(k);
      return;
    }
    await this.locks.deleteMany({ expiresAt: { $lt: before } });
  }
}
