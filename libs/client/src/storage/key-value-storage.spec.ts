import { SyncClient } from '../sync-client';
import { FakeSyncServer } from '../testing/fake-sync-server';
import { KeyValueStorage, type KeyValueStore } from './key-value-storage';
import type { OutboxEntry } from './storage.types';

/** An in-memory AsyncStorage (getItem/setItem/removeItem, async) that can "die" at a chosen call. */
class MemoryKv implements KeyValueStore {
  readonly data = new Map<string, string>();
  sets = 0;
  /** The process stops at this setItem: it and every later call throw (nothing more is stored). */
  dieAtSet = Infinity;
  dead = false;
  private check(): void {
    if (this.dead) throw new Error('the app was killed');
  }
  async getItem(k: string): Promise<string | null> {
    this.check();
    return this.data.get(k) ?? null;
  }
  async setItem(k: string, v: string): Promise<void> {
    this.check();
    if (++this.sets >= this.dieAtSet) {
      this.dead = true;
      throw new Error('the app was killed');
    }
    this.data.set(k, v);
  }
  async removeItem(k: string): Promise<void> {
    this.check();
    this.data.delete(k);
  }
  /** What a fresh process finds: the same data, no failure. */
  reopened(): MemoryKv {
    const kv = new MemoryKv();
    for (const [k, v] of this.data) kv.data.set(k, v);
    return kv;
  }
}

const entry = (seq: number): OutboxEntry => ({
  seq,
  changeId: `c-${seq}`,
  operation: 'insert',
  collection: 'tasks',
  documentId: `t-${seq}`,
  data: { n: seq },
  timestamp: 1000 + seq,
  createdAt: 1000 + seq,
});

describe('KeyValueStorage (AsyncStorage / MMKV style stores)', () => {
  it('stores outbox, documents and meta across reopen, through compactions', async () => {
    const kv = new MemoryKv();
    const st = new KeyValueStorage(kv, 'u1', { compactEvery: 3 });
    expect(await st.load()).toEqual({ outbox: [], docs: [], meta: {} });
    for (let i = 1; i <= 10; i++) await st.write({ putOutbox: [entry(i)], meta: { lastSeq: i } });
    await st.write({ deleteOutbox: ['c-2', 'c-5'], putDocs: [{ collection: 'tasks', id: 't-2', state: 'live', doc: { _id: 't-2', n: 2 }, ts: 1002 }] });
    await st.close();
    // journal keys folded into a snapshot were removed
    expect([...kv.data.keys()].filter((k) => k.includes(':log:')).length).toBeLessThan(3);
    const again = await new KeyValueStorage(kv.reopened(), 'u1', { compactEvery: 3 }).load();
    expect(again.outbox.map((e) => e.seq)).toEqual([1, 3, 4, 6, 7, 8, 9, 10]);
    expect(again.docs).toEqual([{ collection: 'tasks', id: 't-2', state: 'live', doc: { _id: 't-2', n: 2 }, ts: 1002 }]);
    expect(again.meta.lastSeq).toBe(10);
  });

  it('a failed setItem leaves no hole: the next write takes its place', async () => {
    const kv = new MemoryKv();
    const st = new KeyValueStorage(kv, 'u1');
    await st.load();
    await st.write({ putOutbox: [entry(1)] });
    const flaky = kv.setItem.bind(kv);
    let failNext = true;
    kv.setItem = async (k, v) => {
      if (failNext) {
        failNext = false;
        throw new Error('disk full');
      }
      return flaky(k, v);
    };
    await expect(st.write({ putOutbox: [entry(2)] })).rejects.toThrow('disk full');
    await st.write({ putOutbox: [entry(3)] });
    const again = await new KeyValueStorage(kv.reopened(), 'u1').load();
    expect(again.outbox.map((e) => e.seq)).toEqual([1, 3]);
  });

  it('ignores a torn last journal entry and leftovers of an interrupted compaction', async () => {
    const kv = new MemoryKv();
    const st = new KeyValueStorage(kv, 'u1', { compactEvery: 2 });
    await st.load();
    for (let i = 1; i <= 3; i++) await st.write({ putOutbox: [entry(i)] });
    kv.data.set('sync-client:u1:log:1', '{"putOutbox":[{"garbage"'); // a folded key left behind
    kv.data.set('sync-client:u1:log:4', '{"putOutbox":[{"seq":4,'); // torn
    const again = await new KeyValueStorage(kv, 'u1', { compactEvery: 2 }).load();
    expect(again.outbox.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(kv.data.has('sync-client:u1:log:1')).toBe(false);
  });

  describe('with a SyncClient killed between outbox writes', () => {
    let server: FakeSyncServer;
    beforeAll(async () => {
      server = new FakeSyncServer();
      await server.start();
    });
    afterAll(() => server.stop());

    const CHANGES = 10;
    // every setItem of the run below is a possible moment of death (journal writes, snapshots)
    const crashPoints = Array.from({ length: 16 }, (_, i) => i + 1);

    it.each(crashPoints)('killed at setItem #%i: no accepted change lost or applied twice', async (dieAt) => {
      const user = `kv-${dieAt}`;
      const kv = new MemoryKv();
      const opts = { logger: null, transports: ['websocket' as const], connectTimeoutMs: 10_000 };
      const a = new SyncClient(server.url, user, new KeyValueStorage(kv, user, { compactEvery: 4 }), opts);
      await a.initialize();
      kv.dieAtSet = kv.sets + dieAt;
      const accepted: string[] = [];
      for (let i = 0; i < CHANGES; i++) {
        const id = `d-${i % 3}`;
        const op = i < 3 ? 'insert' : 'update';
        try {
          const c = await a.makeChange(op, 'notes', id, { i, user });
          accepted.push(c.changeId);
        } catch {
          // not accepted: makeChange rejected, so the app knows it was not made
        }
      }
      // journal writes and snapshots both count: the death lands somewhere in the run (or after it)
      expect(accepted.length).toBeLessThanOrEqual(Math.min(CHANGES, dieAt - 1));
      if (dieAt <= CHANGES) expect(accepted.length).toBeLessThan(CHANGES);

      // the app restarts on what was stored
      const kv2 = kv.reopened();
      const b = new SyncClient(server.url, user, new KeyValueStorage(kv2, user, { compactEvery: 4 }), opts);
      await b.initialize();
      expect(b.getPendingChanges().map((c) => c.changeId)).toEqual(accepted);

      // online: each accepted change reaches the server exactly once, even if it dies again mid-ack
      kv2.dieAtSet = kv2.sets + 1 + (dieAt % 3);
      await b.connect().catch(() => undefined);
      await b.whenSynced(10_000).catch(() => undefined);
      await b.close().catch(() => undefined);
      const c = new SyncClient(server.url, user, new KeyValueStorage(kv2.reopened(), user, { compactEvery: 4 }), opts);
      await c.connect();
      await c.whenSynced(10_000);
      expect(c.getPendingChangesCount()).toBe(0);
      const appliedIds = server.feed.filter((f) => f.userId === user).map((f) => f.changeId);
      expect(appliedIds).toEqual(accepted);
      await c.close();
    });
  });
});
