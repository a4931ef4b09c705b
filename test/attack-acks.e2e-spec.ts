/* Attack (issue 10, finding 1): acks must not leak other users' documents, nor which ids exist.
 *
 * Against a production-mode server (NODE_ENV=production, JWT secret, a rules file with owner-only
 * collections), bob probes alice's ids with changes of every operation, old, new and server-chosen
 * timestamps, through sync:change, sync:changeBatch and the compatibility events. The write rule is
 * checked before conflict resolution, so every probe is FORBIDDEN with one text and one set of fields,
 * whether the id holds a live document of alice's, a deleted one (tombstone), or nothing at all; and
 * no ack, audit record or error text carries anything of alice's. A conflict gives the winning
 * document only to a user whose read rule matches it.
 */
import { randomUUID } from 'node:crypto';
import { MongoClient } from 'mongodb';
import request from 'supertest';
import type { ClientChange } from '@sync/protocol';
import { emitAck, ClientSocket } from './support/app';
import { startRulesApp, type RulesApp } from './support/rules-app';

const RULES = {
  default: { read: 'FALSEPREDICATE', write: 'FALSEPREDICATE' },
  collections: {
    tasks: { read: 'owner == %user.id', write: 'owner == %user.id' },
    // a drop box: anyone may write, only the owner may read
    drop: { read: 'owner == %user.id', write: 'TRUEPREDICATE' },
  },
};
const SERVICE_TOKEN = 'service-token-0123456789-0123456789';
const SECRET = 'alice-secret-marker';

describe('attack: acks leak nothing of another user (write rule before conflict resolution)', () => {
  let t: RulesApp;
  let mongo: MongoClient;
  let alice: ClientSocket;
  let bob: ClientSocket;
  const T0 = Date.now();
  /** The three kinds of id bob probes: alice's live document, alice's deleted one, an id never used. */
  const TARGETS = { live: 'a-live', deleted: 'a-deleted', missing: 'a-never' } as const;

  const joined = (sub: string) => t.joined(sub);

  /** Nothing of alice's: not her data, not her user id (bob's own input never names her below). */
  function expectNoLeak(what: unknown): void {
    const text = JSON.stringify(what) ?? '';
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain('alice');
    expect(text).not.toContain(String(T0)); // the stored versions' timestamps
  }

  /** An ack without what legitimately differs between probes (bob's own changeId). */
  const shape = (ack: Record<string, unknown>) => {
    const { changeId, ...rest } = ack;
    return { ...rest, changeId: typeof changeId };
  };

  /** Bob's probes of one id: every operation, with an old, a new and no timestamp. */
  const probes = (documentId: string, collection = 'tasks') => {
    const out: ClientChange[] = [];
    for (const timestamp of [1, Date.now() + 5_000, undefined]) {
      out.push({ operation: 'update', collection, documentId, data: { title: 'pwned' }, timestamp });
      out.push({ operation: 'update', collection, documentId, data: { done: true, sync_updated_at: 1 }, timestamp });
      out.push({ operation: 'insert', collection, documentId, data: { title: 'mine now' }, timestamp });
      out.push({ operation: 'insert', collection, documentId, data: { owner: 'alice', title: 'framed' }, timestamp });
      out.push({ operation: 'delete', collection, documentId, timestamp });
    }
    return out.map((c) => ({ changeId: randomUUID(), ...c }));
  };

  beforeAll(async () => {
    t = await startRulesApp(
      RULES,
      { NODE_ENV: 'production', ALLOWED_ORIGINS: 'https://app.example', AUTH_SERVICE_TOKEN: SERVICE_TOKEN, SYNC_RATE_LIMIT_MAX: '100000' },
      'attack_acks',
    );
    expect(t.config.isProduction).toBe(true);
    mongo = await MongoClient.connect(t.mongoUri);
    alice = await joined('alice');
    bob = await joined('bob');
    const seed = await emitAck(alice, 'sync:changeBatch', {
      changes: (
        [
          { operation: 'insert', collection: 'tasks', documentId: TARGETS.live, data: { owner: 'alice', title: `${SECRET} live` }, timestamp: T0 },
          { operation: 'insert', collection: 'tasks', documentId: TARGETS.deleted, data: { owner: 'alice', title: `${SECRET} deleted` }, timestamp: T0 },
          { operation: 'delete', collection: 'tasks', documentId: TARGETS.deleted, timestamp: T0 + 1 },
          { operation: 'insert', collection: 'drop', documentId: 'd-live', data: { owner: 'alice', title: `${SECRET} drop` }, timestamp: T0 },
          { operation: 'insert', collection: 'drop', documentId: 'd-deleted', data: { owner: 'alice', title: `${SECRET} drop` }, timestamp: T0 },
          { operation: 'delete', collection: 'drop', documentId: 'd-deleted', timestamp: T0 + 1 },
        ] satisfies ClientChange[]
      ).map((c) => ({ changeId: randomUUID(), ...c })),
    });
    expect(seed).toMatchObject({ success: true, successCount: 6 });
  });

  afterAll(async () => {
    await mongo?.close();
    await t?.close();
  });

  const aliceTasks = () => mongo.db().collection('tasks').find({}).sort({ _id: 1 }).toArray();

  it('sync:change: every probe is FORBIDDEN, without current, identical for a live, a deleted and a never-used id', async () => {
    const before = await aliceTasks();
    const answers: Record<string, unknown[]> = {};
    for (const [kind, id] of Object.entries(TARGETS)) {
      answers[kind] = [];
      for (const p of probes(id)) {
        const ack = await emitAck(bob, 'sync:change', p);
        expect(ack).toMatchObject({ success: false, code: 'FORBIDDEN', changeId: p.changeId });
        expect(ack).not.toHaveProperty('current');
        expect(ack).not.toHaveProperty('timestamp');
        expectNoLeak(ack);
        answers[kind].push(shape(ack));
      }
    }
    expect(answers.deleted).toEqual(answers.live);
    expect(answers.missing).toEqual(answers.live);
    expect(await aliceTasks()).toEqual(before);
  });

  it('sync:changeBatch: the same probes in one batch get the same answer per id kind', async () => {
    const kinds = Object.entries(TARGETS);
    const perKind = kinds.map(([, id]) => probes(id));
    const ack = await emitAck(bob, 'sync:changeBatch', { changes: perKind.flat() });
    expect(ack).toMatchObject({ success: true, successCount: 0, failureCount: perKind.flat().length });
    expectNoLeak(ack);
    const n = perKind[0].length;
    const slices = kinds.map((_, k) => ack.results.slice(k * n, (k + 1) * n).map(shape));
    for (const r of ack.results) expect(r).toMatchObject({ success: false, code: 'FORBIDDEN' });
    expect(slices[1]).toEqual(slices[0]);
    expect(slices[2]).toEqual(slices[0]);
  });

  it('compatibility events: mongoUpsert and mongoDelete answer the same for every id kind', async () => {
    const answers: Record<string, unknown[]> = {};
    for (const [kind, id] of Object.entries(TARGETS)) {
      answers[kind] = [
        await emitAck(bob, 'mongoUpsert', { collection: 'tasks', query: { _id: id }, update: { title: 'pwned', sync_updated_at: 1 }, patchId: randomUUID() }),
        await emitAck(bob, 'mongoUpsert', { collection: 'tasks', query: { _id: id }, update: { title: 'pwned' } }),
        await emitAck(bob, 'mongoDelete', { collection: 'tasks', query: { _id: id } }),
        await emitAck(bob, 'mongoDelete', { collection: 'tasks', query: { _id: id }, patchId: randomUUID() }),
      ];
      expectNoLeak(answers[kind]);
    }
    expect(answers.live.slice(0, 2)).toEqual(['error', 'error']);
    expect(answers.live[2]).toMatchObject({ success: false, code: 'FORBIDDEN' });
    expect(answers.deleted).toEqual(answers.live);
    expect(answers.missing).toEqual(answers.live);
  });

  it("a deleted document's id stays its owner's: bob cannot take it over, with any timestamp", async () => {
    const answers: unknown[] = [];
    for (const id of [TARGETS.live, TARGETS.deleted]) {
      for (const timestamp of [1, Date.now() + 5_000, undefined]) {
        const ack = await emitAck(bob, 'sync:change', {
          changeId: randomUUID(),
          operation: 'insert',
          collection: 'tasks',
          documentId: id,
          data: { owner: 'bob' },
          timestamp,
        });
        expect(ack).toMatchObject({ success: false, code: 'FORBIDDEN' });
        expectNoLeak(ack);
        answers.push(shape(ack));
      }
    }
    expect(answers.slice(3)).toEqual(answers.slice(0, 3));
    expect(
      await mongo
        .db()
        .collection('tasks')
        .findOne({ _id: TARGETS.deleted as never }),
    ).toBeNull();
    // (an id nobody holds is free: bob may create his own document there; that is a write he may make)
    // and alice herself may bring her deleted document back
    expect(
      await emitAck(alice, 'sync:change', {
        operation: 'insert',
        collection: 'tasks',
        documentId: TARGETS.deleted,
        data: { owner: 'alice', title: `${SECRET} back` },
      }),
    ).toMatchObject({ success: true });
    expect(await emitAck(alice, 'sync:change', { operation: 'delete', collection: 'tasks', documentId: TARGETS.deleted })).toMatchObject({ success: true });
  });

  it('a conflict gives the winning document only to a reader: a write-only user gets current null, the same for live and deleted ids', async () => {
    const answers: unknown[] = [];
    for (const id of ['d-live', 'd-deleted']) {
      for (const operation of ['update', 'insert', 'delete'] as const) {
        const ack = await emitAck(bob, 'sync:change', {
          changeId: randomUUID(),
          operation,
          collection: 'drop',
          documentId: id,
          data: { owner: 'bob', note: 'x' },
          timestamp: 1,
        });
        expect(ack).toMatchObject({ success: false, code: 'CONFLICT', current: null });
        expect(ack).not.toHaveProperty('timestamp');
        expectNoLeak(ack);
        answers.push(shape(ack));
      }
    }
    expect(answers.slice(3)).toEqual(answers.slice(0, 3));
    // the owner, who may read it, gets the winning version to roll back to
    const own = await emitAck(alice, 'sync:change', { operation: 'update', collection: 'drop', documentId: 'd-live', data: { note: 'old' }, timestamp: 1 });
    expect(own).toMatchObject({ success: false, code: 'CONFLICT', timestamp: T0, current: { _id: 'd-live', owner: 'alice', title: `${SECRET} drop` } });
    const ownDeleted = await emitAck(alice, 'sync:change', {
      operation: 'update',
      collection: 'drop',
      documentId: 'd-deleted',
      data: { note: 'old' },
      timestamp: 1,
    });
    expect(ownDeleted).toMatchObject({ success: false, code: 'CONFLICT', timestamp: T0 + 1, current: null });
  });

  it("a retry of bob's own change is answered from his own first ack only", async () => {
    const changeId = randomUUID();
    const first = await emitAck(bob, 'sync:change', { changeId, operation: 'insert', collection: 'tasks', documentId: 'b-own', data: { owner: 'bob' } });
    expect(first).toMatchObject({ success: true });
    // the same changeId aimed at alice's ids: answered as the duplicate it is, nothing of hers
    for (const id of Object.values(TARGETS)) {
      const again = await emitAck(bob, 'sync:change', {
        changeId,
        operation: 'update',
        collection: 'tasks',
        documentId: id,
        data: { title: 'x' },
        timestamp: 1,
      });
      expect(again).toEqual({ ...first, duplicate: true });
    }
  });

  it('POST /api/changes (the trusted service) still gets the winning document of a conflict', async () => {
    const res = await request(t.url)
      .post('/api/changes')
      .set('Authorization', `Bearer ${SERVICE_TOKEN}`)
      .send({ changes: [{ operation: 'update', collection: 'tasks', documentId: TARGETS.live, data: { title: 'late' }, timestamp: 1 }] })
      .expect(200);
    expect(res.body.results[0]).toMatchObject({ success: false, code: 'CONFLICT', timestamp: T0, current: { _id: TARGETS.live, owner: 'alice' } });
  });

  it("the audit trail of bob's refused probes holds nothing of alice's", async () => {
    const records = await mongo.db().collection('_sync_audit').find({ userId: 'bob' }).toArray();
    expect(records.length).toBeGreaterThan(50);
    for (const r of records) {
      const { userId: _u, documentId: _d, ...rest } = r;
      void _u;
      void _d;
      expectNoLeak(rest);
    }
  });
});
