/* Group commit (issue 12): single changes of many sockets that arrive while earlier ones are being
 * applied go through the batch path together, each still answered on its own ack, in order per
 * socket, with every guarantee of a single change (idempotency per author, conflicts, rules). */
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { connectTestDb } from './support/db';
import type { ClientChange } from '@sync/protocol';
import { emitAck, joinedClient, startTestApp, TestApp, ClientSocket } from './support/app';
import { feedEntries } from './support/feed';

const CLIENTS = 30;
const EDITS = 4;

describe('group commit of concurrent single changes', () => {
  let t: TestApp;
  let db: Awaited<ReturnType<typeof connectTestDb>>;
  const sockets: ClientSocket[] = [];

  beforeAll(async () => {
    t = await startTestApp({ AUTH_MODE: 'dev', RATE_LIMIT_DISABLED: 'true' }, 'groupcommit');
    db = await connectTestDb('unused', t.mongoUri);
    for (let i = 0; i < CLIENTS; i++) sockets.push(await joinedClient(t.url, `user${i}`));
  });
  afterAll(async () => {
    for (const s of sockets) s.close();
    await db?.close();
    await t?.close();
  });

  it("applies every socket's back-to-back changes, each on its own ack, in order per socket", async () => {
    const shared = `shared-${randomUUID()}`;
    const base = Date.now();
    const sent = sockets.map((s, i) => {
      const own = `own-${i}-${randomUUID()}`;
      const changes: ClientChange[] = [
        ...Array.from({ length: EDITS }, (_, k): ClientChange => ({
          changeId: randomUUID(),
          operation: k === 0 ? 'insert' : 'update',
          collection: 'gc',
          documentId: own,
          data: { k, by: i },
        })),
        // everyone also writes one shared document, with distinct timestamps: the newest one wins
        { changeId: randomUUID(), operation: 'update', collection: 'gc', documentId: shared, data: { by: i }, timestamp: base + i },
      ];
      return { own, changes, acks: Promise.all(changes.map((c) => emitAck(s, 'sync:change', c))) };
    });
    const all = await Promise.all(sent.map((x) => x.acks));
    for (const [i, acks] of all.entries()) {
      const { own, changes } = sent[i];
      // own document: every edit applied, each ack names its own change
      expect(acks.slice(0, EDITS).map((a) => a.success && a.changeId)).toEqual(changes.slice(0, EDITS).map((c) => c.changeId));
      for (let k = 1; k < EDITS; k++) expect(acks[k].timestamp).toBeGreaterThan(acks[k - 1].timestamp);
      expect(await db.db.collection('gc').findOne({ _id: own as never })).toMatchObject({ k: EDITS - 1, by: i, _updated_by: `user${i}` });
      const feed = await feedEntries(db.db, { documentId: own });
      expect(feed.map((e) => [e.state, e.changeId, e.userId])).toEqual(changes.slice(0, EDITS).map((c) => ['applied', c.changeId, `user${i}`]));
      // shared document: applied or lost its conflict, never refused
      const last = acks[EDITS];
      expect(last.changeId).toBe(changes[EDITS].changeId);
      expect(last.success || last.code).not.toEqual(expect.stringMatching(/FORBIDDEN|INVALID|UNAVAILABLE|INTERNAL/));
    }
    expect(await db.db.collection('gc').findOne({ _id: shared as never })).toMatchObject({ by: CLIENTS - 1, sync_updated_at: base + CLIENTS - 1 });
    // changes of several sockets were applied together (the apply-duration histogram counts groups)
    const metrics = await request(t.url).get('/metrics').expect(200);
    const groups = Number(/sync_apply_duration_seconds_count\{kind="group"\} (\d+)/.exec(metrics.text)?.[1] ?? 0);
    expect(groups).toBeGreaterThan(0);
  });

  it("a retry sent by two sockets of one user in the same moment is applied once; another user's change with that id is its own", async () => {
    const a1 = sockets[0];
    const a2 = await joinedClient(t.url, 'user0');
    sockets.push(a2);
    const changeId = randomUUID();
    const docId = `dup-${changeId}`;
    const change: ClientChange = { changeId, operation: 'insert', collection: 'gc', documentId: docId, data: { v: 1 } };
    const [x, y, other] = await Promise.all([
      emitAck(a1, 'sync:change', change),
      emitAck(a2, 'sync:change', change),
      emitAck(sockets[1], 'sync:change', { ...change, documentId: `${docId}-other`, data: { v: 2 } }),
    ]);
    expect([x, y].filter((r) => r.success && !r.duplicate)).toHaveLength(1);
    expect([x, y].filter((r) => r.success && r.duplicate)).toHaveLength(1);
    expect(x.cursor).toBe(y.cursor);
    expect(other).toMatchObject({ success: true });
    expect(other.duplicate).toBeUndefined();
    expect(await db.db.collection('_sync_feed').countDocuments({ changeId })).toBe(2);
  });

  it('a refused or malformed change in the same moment costs the others nothing', async () => {
    const acks = await Promise.all(
      sockets
        .slice(0, 10)
        .map((s, i) =>
          emitAck(
            s,
            'sync:change',
            i % 2
              ? { operation: 'insert', collection: 'gc', documentId: `bad-${i}`, data: { $where: 'x' } }
              : { operation: 'insert', collection: 'gc', documentId: `good-${i}-${randomUUID()}`, data: { i } },
          ),
        ),
    );
    acks.forEach((a, i) => expect({ i, code: a.success || a.code }).toEqual({ i, code: i % 2 ? 'INVALID_PAYLOAD' : true }));
  });
});
