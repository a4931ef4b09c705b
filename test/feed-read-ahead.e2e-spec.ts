import { decodeCursor } from '@sync/protocol';
import { connectTestDb } from './support/db';
import { emitAck, joinedClient, startTestApp, TestApp, ClientSocket } from './support/app';

/**
 * get_changes reads feed windows ahead of the one it visits (FEED_READ_AHEAD). A window read ahead
 * must never carry a reader past a pending entry or a hole: the feed below is written straight into
 * the database (as other nodes would leave it) with a pending entry at the last position of one
 * window and a hole at the first position of a later one, and is read in pages of 5,000.
 */
describe('change feed: read-ahead stays gap-free and exactly-once', () => {
  let t: TestApp;
  let s: ClientSocket;

  beforeAll(async () => {
    // leases of 60 s: the pending entry and the hole are never old enough to be repaired here
    t = await startTestApp({ AUTH_MODE: 'dev', SYNC_LOCK_TTL_MS: '60000', FEED_READ_AHEAD: '3' }, 'readahead');
    s = await joinedClient(t.url, 'alice');
  });
  afterAll(async () => {
    s?.close();
    await t?.close();
  });

  it('stops at a pending entry and at a hole inside windows read ahead, then goes on once they settle', async () => {
    const db = await connectTestDb('unused', t.mongoUri);
    try {
      const head = (await emitAck(s, 'sync:join', { userId: 'alice' })).cursor;
      const h = decodeCursor(head)!;
      const n = 3200;
      const pending = h + 2000; // the last position of the 4th window of 500
      const hole = h + 2501; // the first position of the 6th
      const now = Date.now();
      const entry = (pos: number, state: 'applied' | 'pending') => ({
        _id: pos as any,
        changeId: `ra-${pos}`,
        state,
        collection: pos % 3 === 0 ? 'ahead_other' : 'ahead',
        documentId: `d${pos}`,
        docKey: `ahead:d${pos}`,
        operation: 'insert',
        after: { _id: `d${pos}`, n: pos, sync_updated_at: 5, _updated_by: 'alice' },
        before: null,
        timestamp: 5,
        prevTimestamp: null,
        userId: 'alice',
        serverTimestamp: now,
        createdAt: new Date(now),
      });
      const entries = [];
      for (let p = h + 1; p <= h + n; p++) if (p !== hole) entries.push(entry(p, p === pending ? 'pending' : 'applied'));
      await db.db.collection('_sync_feed').insertMany(entries);
      await db.db.collection('_sync_counters').updateOne({ _id: 'feed' as any }, { $max: { highWater: h + n } }, { upsert: true });
      const ids = (from: number, to: number, keep: (p: number) => boolean = () => true) => {
        const out: string[] = [];
        for (let p = from; p <= to; p++) if (keep(p)) out.push(`ra-${p}`);
        return out;
      };

      // up to the pending entry, not one position further (windows 5 and 6 were read ahead)
      const first = await emitAck(s, 'sync:get_changes', { cursor: head, limit: 5000 });
      expect(first.success).toBe(true);
      expect(first.changes.map((c: any) => c.changeId)).toEqual(ids(h + 1, pending - 1));
      expect(decodeCursor(first.cursor)).toBe(pending - 1);
      expect(first.hasMore).toBe(true);
      // per collection: the same stop, fewer changes
      const filtered = await emitAck(s, 'sync:get_changes', { cursor: head, limit: 5000, collection: 'ahead' });
      expect(filtered.changes.map((c: any) => c.changeId)).toEqual(ids(h + 1, pending - 1, (p) => p % 3 !== 0));
      expect(decodeCursor(filtered.cursor)).toBe(pending - 1);

      // the entry settles: on to the hole
      await db.db.collection('_sync_feed').updateOne({ _id: pending as any }, { $set: { state: 'applied' } });
      const second = await emitAck(s, 'sync:get_changes', { cursor: first.cursor, limit: 5000 });
      expect(second.changes.map((c: any) => c.changeId)).toEqual(ids(pending, hole - 1));
      expect(decodeCursor(second.cursor)).toBe(hole - 1);
      expect(second.hasMore).toBe(true);

      // the hole's writer shows up: the rest, in small pages (a limit below the window)
      await db.db.collection('_sync_feed').insertOne(entry(hole, 'applied'));
      const rest: string[] = [];
      let cursor = second.cursor;
      for (let page = 0; ; page++) {
        expect(page).toBeLessThan(100);
        const r = await emitAck(s, 'sync:get_changes', { cursor, limit: 333 });
        expect(r.success).toBe(true);
        expect(r.changes.length).toBeLessThanOrEqual(333);
        rest.push(...r.changes.map((c: any) => c.changeId));
        cursor = r.cursor;
        if (!r.hasMore) break;
      }
      expect(rest).toEqual(ids(hole, h + n));
      expect(decodeCursor(cursor)).toBe(h + n);

      // the whole feed again in one pass of pages of 5,000: every change once, in order
      const all: string[] = [];
      cursor = head;
      for (;;) {
        const r = await emitAck(s, 'sync:get_changes', { cursor, limit: 5000 });
        all.push(...r.changes.map((c: any) => c.changeId));
        cursor = r.cursor;
        if (!r.hasMore) break;
      }
      expect(all).toEqual(ids(h + 1, h + n));
    } finally {
      await db.client.close();
    }
  }, 120_000);
});
