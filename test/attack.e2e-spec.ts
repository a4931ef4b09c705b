import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import { MongoClient } from 'mongodb';
import request from 'supertest';
import { hs256, TEST_SECRET } from './support/jwt';
import type { ClientChange } from '@sync/protocol';
import { connectClient, emitAck, recordEvents, startTestApp, TestApp, waitFor, emitUntyped, ClientSocket } from './support/app';

/**
 * User B (bob) attacks user A's (alice's) documents by every event and REST route. Rules: a task is
 * readable and writable by its owner only; chat is readable by all, writable by its sender; anything
 * else is closed. Nothing of alice's may reach bob, and nothing of alice's may change.
 */

const RULES = {
  default: { read: 'FALSEPREDICATE', write: 'FALSEPREDICATE' },
  collections: {
    tasks: { read: 'owner == %user.id', write: 'owner == %user.id' },
    chat: { read: 'TRUEPREDICATE', write: 'senderId == %user.id' },
  },
};
const SERVICE_TOKEN = 'service-token-0123456789-0123456789';

/**
 * The read and write isolation below needs the subscription module and the rules-file permission
 * module. Until both exist in src/ the suite is skipped (visibly); it runs as soon as they land.
 */
const SRC = path.join(__dirname, '..', 'src');
const RULES_READY = fs.existsSync(path.join(SRC, 'subscription')) && fs.readdirSync(path.join(SRC, 'permission')).some((f) => /rules/.test(f));
const describeWithRules = RULES_READY ? describe : describe.skip;
const ALICE_SECRET = 'alice-secret-marker';

describeWithRules(`attack: user B against user A${RULES_READY ? '' : ' (pending: needs src/subscription and the rules module)'}`, () => {
  let t: TestApp;
  let dir: string;
  let mongo: MongoClient;
  let aliceToken: string;
  let bobToken: string;
  let alice: ClientSocket;
  let bob: ClientSocket;
  /** Everything bob's sockets receive from the server (pushed changes, bootstrap pages). */
  const bobSaw: unknown[] = [];
  const sockets: ClientSocket[] = [];
  let aliceDocs: () => Promise<unknown[]>;
  let before: unknown[];

  async function joined(token: string): Promise<ClientSocket> {
    const s = await connectClient(t.url, { auth: { token } });
    sockets.push(s);
    const ack = await emitAck(s, 'sync:join', {});
    expect(ack).toMatchObject({ success: true });
    return s;
  }

  async function bobSocket(): Promise<ClientSocket> {
    const s = await joined(bobToken);
    for (const ev of ['sync:changes', 'sync:bootstrap'] as const) s.on(ev, (p: unknown) => bobSaw.push(p));
    return s;
  }

  /** Bob's acks and received events must not mention anything of alice's. */
  function expectNoLeak(what: unknown): void {
    const text = JSON.stringify(what) ?? '';
    expect(text).not.toContain(ALICE_SECRET);
    expect(text).not.toMatch(/"owner":"alice"/);
  }

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attack-'));
    const rules = path.join(dir, 'rules.json');
    fs.writeFileSync(rules, JSON.stringify(RULES));
    t = await startTestApp({ AUTH_JWT_SECRET: TEST_SECRET, SYNC_RULES_FILE: rules, AUTH_SERVICE_TOKEN: SERVICE_TOKEN, BROADCAST_TO_SENDER: 'true' }, 'attack');
    mongo = await MongoClient.connect(t.mongoUri);
    aliceToken = await hs256({ sub: 'alice' }, { expiresIn: '1h' });
    bobToken = await hs256({ sub: 'bob' }, { expiresIn: '1h' });
    alice = await joined(aliceToken);
    bob = await bobSocket();

    const seed = await emitAck(alice, 'sync:changeBatch', {
      changes: [
        ...['a1', 'a2', 'a3'].map((id): ClientChange => ({
          changeId: randomUUID(),
          operation: 'insert',
          collection: 'tasks',
          documentId: id,
          data: { owner: 'alice', title: `${ALICE_SECRET} ${id}`, done: false },
        })),
        { changeId: randomUUID(), operation: 'insert', collection: 'chat', documentId: 'm1', data: { senderId: 'alice', text: 'hello' } },
      ],
    });
    expect(seed).toMatchObject({ success: true, successCount: 4 });
    expect(
      await emitAck(bob, 'sync:change', { operation: 'insert', collection: 'tasks', documentId: 'b1', data: { owner: 'bob', title: 'mine' } }),
    ).toMatchObject({ success: true });

    aliceDocs = async () => {
      const db = mongo.db();
      return [
        ...(await db.collection('tasks').find({ owner: 'alice' }).sort({ _id: 1 }).toArray()),
        ...(await db.collection('chat').find({ senderId: 'alice' }).sort({ _id: 1 }).toArray()),
      ];
    };
    before = await aliceDocs();
    expect(before).toHaveLength(4);
  });

  afterAll(async () => {
    for (const s of sockets.splice(0)) s.close();
    await mongo?.close();
    await t?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('reads', () => {
    it("sync:subscribe: bootstrap and count hold only bob's documents, whatever the filter", async () => {
      for (const filter of [
        undefined,
        'TRUEPREDICATE',
        'owner == "alice"',
        'owner != "bob"',
        'TRUEPREDICATE OR owner == "alice"',
        'NOT (owner == "bob")',
        'title CONTAINS "secret"',
      ]) {
        const s = await bobSocket();
        const pages = recordEvents(s, 'sync:bootstrap');
        const ack = await emitAck(s, 'sync:subscribe', { collection: 'tasks', filter });
        expect(ack).toMatchObject({ success: true });
        expectNoLeak(ack);
        await waitFor(() => pages.some((p: any) => p.done), 5000, `bootstrap of ${filter}`);
        const docs = pages.flatMap((p: any) => p.data);
        expectNoLeak(pages);
        for (const d of docs) expect(d.owner).toBe('bob');
        expect(ack.count).toBe(docs.length);
      }
    });

    it("sync:subscribe with operator-shaped arguments matches nothing of alice's", async () => {
      const s = await bobSocket();
      for (const args of [[{ $ne: null }], [{ $gt: '' }], [['alice', 'bob']], [null]]) {
        const ack = await emitAck(s, 'sync:subscribe', { collection: 'tasks', filter: 'owner == $0', args, bootstrap: false });
        expectNoLeak(ack);
        if (ack.success) expect(ack.count).toBeLessThanOrEqual(1);
        else expect(['INVALID_QUERY', 'INVALID_PAYLOAD']).toContain(ack.code);
      }
    });

    it('closed and system collections are unreachable', async () => {
      const s = await bobSocket();
      for (const collection of ['secrets', '__proto__', 'constructor', '_sync_changes', '_sync', 'system.users']) {
        const ack = await emitAck(s, 'sync:subscribe', { collection, filter: 'TRUEPREDICATE' });
        expectNoLeak(ack);
        if (ack.success) expect(ack.count).toBe(0);
        const feed = await emitAck(s, 'sync:get_changes', { collection });
        if (feed.success) expect(feed.changes).toEqual([]);
      }
    });

    it("sync:get_changes returns none of alice's tasks, from any cursor or time", async () => {
      for (const req of [{}, { since: 0 }, { cursor: '0' }, { collection: 'tasks' }, { collection: 'tasks', since: 0, limit: 5000 }]) {
        let cursor: string | undefined;
        let more = true;
        const all: any[] = [];
        for (let page = 0; more && page < 50; page++) {
          const ack = await emitAck(bob, 'sync:get_changes', cursor ? { ...req, since: undefined, cursor } : req);
          if (!ack.success) {
            expect(['INVALID_PAYLOAD', 'CURSOR_EXPIRED']).toContain(ack.code);
            break;
          }
          all.push(...ack.changes);
          cursor = ack.cursor;
          more = ack.hasMore;
        }
        expectNoLeak(all);
        for (const c of all) if (c.collection === 'tasks') expect(c.documentId).toBe('b1');
      }
    });

    it("sync:join and sync:update_subscriptions subscriptions bootstrap nothing of alice's", async () => {
      const s = await connectClient(t.url);
      sockets.push(s);
      const pages = recordEvents(s, 'sync:bootstrap');
      const ack = await emitAck(s, 'sync:join', { token: bobToken, subscriptions: [{ collection: 'tasks', filter: 'TRUEPREDICATE' }] });
      expect(ack).toMatchObject({ success: true, userId: 'bob' });
      const upd = await emitAck(s, 'sync:update_subscriptions', {
        subscriptions: [
          { collection: 'tasks', query: 'owner == "alice"' },
          { collection: 'secrets', query: 'TRUEPREDICATE' },
        ],
      });
      expect(upd).toMatchObject({ success: true });
      await waitFor(() => pages.filter((p: any) => p.done).length >= 1, 5000, 'bootstraps');
      expectNoLeak(pages);
    });

    it("live: bob, subscribed to everything he can name, receives nothing of alice's changes", async () => {
      const s = await bobSocket();
      const got = recordEvents(s, 'sync:changes');
      await emitAck(s, 'sync:subscribe', { collection: 'tasks', bootstrap: false });
      await emitAck(s, 'sync:subscribe', { collection: 'tasks', filter: 'owner == "alice"', bootstrap: false });
      await emitAck(s, 'sync:subscribe', { collection: 'chat', bootstrap: false });
      await emitAck(s, 'sync:update_subscriptions', {
        subscriptions: [
          { collection: 'tasks', query: 'TRUEPREDICATE' },
          { collection: 'chat', query: 'TRUEPREDICATE' },
        ],
      });
      const marker = randomUUID();
      expect(
        await emitAck(alice, 'sync:change', {
          operation: 'insert',
          collection: 'tasks',
          documentId: 'a-live',
          data: { owner: 'alice', title: `${ALICE_SECRET} live` },
        }),
      ).toMatchObject({ success: true });
      // a chat message is public: its arrival proves delivery happened, so the task would have come first
      expect(
        await emitAck(alice, 'sync:change', { operation: 'insert', collection: 'chat', documentId: marker, data: { senderId: 'alice', text: 'public' } }),
      ).toMatchObject({
        success: true,
      });
      await waitFor(() => got.some((c: any) => c.documentId === marker), 5000, 'the public chat message');
      expectNoLeak(got);
      expect(got.some((c: any) => c.documentId === 'a-live')).toBe(false);
      // clean up so the snapshot below holds
      expect(await emitAck(alice, 'sync:change', { operation: 'delete', collection: 'tasks', documentId: 'a-live' })).toMatchObject({ success: true });
      expect(await emitAck(alice, 'sync:change', { operation: 'delete', collection: 'chat', documentId: marker })).toMatchObject({ success: true });
    });
  });

  describe('writes', () => {
    const attempts: [string, Record<string, unknown>][] = [
      ["update another's task", { operation: 'update', collection: 'tasks', documentId: 'a1', data: { title: 'pwned' } }],
      ["take over another's task (owner field)", { operation: 'update', collection: 'tasks', documentId: 'a1', data: { owner: 'bob' } }],
      ["delete another's task", { operation: 'delete', collection: 'tasks', documentId: 'a2' }],
      ["insert over another's task", { operation: 'insert', collection: 'tasks', documentId: 'a3', data: { owner: 'bob', title: 'mine now' } }],
      ['insert as another user', { operation: 'insert', collection: 'tasks', documentId: 'fake', data: { owner: 'alice', title: 'framed' } }],
      [
        'far-future timestamp',
        { operation: 'update', collection: 'tasks', documentId: 'a1', data: { owner: 'bob' }, timestamp: Date.now() + 10 * 365 * 86_400_000 },
      ],
      ['chat as another sender', { operation: 'insert', collection: 'chat', documentId: 'm-fake', data: { senderId: 'alice', text: 'framed' } }],
      ["edit another's chat message", { operation: 'update', collection: 'chat', documentId: 'm1', data: { text: 'edited' } }],
      ['write a closed collection', { operation: 'insert', collection: 'secrets', documentId: 's1', data: { owner: 'bob' } }],
      ['write __proto__ collection', { operation: 'insert', collection: '__proto__', documentId: 'p1', data: { owner: 'bob' } }],
      ['spoofed author', { operation: 'insert', collection: 'tasks', documentId: 'spoof', data: { owner: 'alice', _updated_by: 'alice' }, userId: 'alice' }],
    ];

    it.each(attempts)('sync:change: %s → FORBIDDEN', async (_name, change) => {
      const ack = await emitUntyped(bob, 'sync:change', { changeId: randomUUID(), ...change });
      expect(ack).toMatchObject({ success: false, code: 'FORBIDDEN' });
      expectNoLeak(ack);
    });

    it('sync:changeBatch: every attempt refused, each on its own', async () => {
      const ack = await emitUntyped(bob, 'sync:changeBatch', { changes: attempts.map(([, c]) => ({ changeId: randomUUID(), ...c })) });
      expect(ack).toMatchObject({ success: true, successCount: 0, failureCount: attempts.length });
      for (const r of ack.results) expect(r).toMatchObject({ success: false, code: 'FORBIDDEN' });
      expectNoLeak(ack);
    });

    it('compatibility events: mongoUpsert and mongoDelete are refused', async () => {
      expect(await emitAck(bob, 'mongoUpsert', { collection: 'tasks', query: { _id: 'a1' }, update: { title: 'pwned' }, patchId: randomUUID() })).toBe('error');
      expect(await emitUntyped(bob, 'mongoUpsert', { collection: 'tasks', query: { _id: { $ne: null } }, update: { title: 'pwned' } })).toBe('error');
      const del = await emitAck(bob, 'mongoDelete', { collection: 'tasks', query: { _id: 'a1' } });
      expect(del).toMatchObject({ success: false });
    });

    it("replaying alice's changeId gets bob nothing of hers", async () => {
      const changeId = randomUUID();
      expect(
        await emitAck(alice, 'sync:change', {
          changeId,
          operation: 'update',
          collection: 'tasks',
          documentId: 'a2',
          data: { title: `${ALICE_SECRET} replay` },
        }),
      ).toMatchObject({
        success: true,
      });
      before = await aliceDocs();
      const ack = await emitAck(bob, 'sync:change', { changeId, operation: 'update', collection: 'tasks', documentId: 'a2', data: { title: 'pwned' } });
      expectNoLeak(ack);
      if (ack.success) expect(ack.duplicate).toBeUndefined();
    });
  });

  describe('REST', () => {
    it('POST /api/changes needs the service token', async () => {
      const body = { changes: [{ operation: 'update', collection: 'tasks', documentId: 'a1', data: { title: 'pwned' } }] };
      await request(t.url).post('/api/changes').send(body).expect(401);
      await request(t.url).post('/api/changes').set('Authorization', `Bearer ${bobToken}`).send(body).expect(403);
      await request(t.url).post('/api/changes').set('Authorization', `Bearer ${SERVICE_TOKEN}x`).send(body).expect(401);
    });

    it('GET /api/negotiate answers for the caller only', async () => {
      await request(t.url).get('/api/negotiate').expect(401);
      await request(t.url).get('/api/negotiate').set('Authorization', 'Bearer forged').expect(401);
      const res = await request(t.url).get('/api/negotiate?userId=alice').set('Authorization', `Bearer ${bobToken}`);
      expect(res.text).not.toContain('alice');
    });
  });

  it("nothing of alice's changed, and bob never saw any of it", async () => {
    expect(await aliceDocs()).toEqual(before);
    const tasks = await mongo.db().collection('tasks').find({}).toArray();
    expect(
      tasks
        .filter((d) => d.owner === 'bob')
        .map((d) => d._id)
        .sort(),
    ).toEqual(['b1']);
    expect(await mongo.db().collection('secrets').countDocuments()).toBe(0);
    expectNoLeak(bobSaw);
  });
});

/** Idempotency must be per user: it needs no rules, so it runs today. */
describe('attack: changeId collisions between users', () => {
  let t: TestApp;
  let mongo: MongoClient;
  let alice: ClientSocket;
  let bob: ClientSocket;

  beforeAll(async () => {
    t = await startTestApp({ AUTH_JWT_SECRET: TEST_SECRET }, 'attack_ids');
    mongo = await MongoClient.connect(t.mongoUri);
    alice = await connectClient(t.url, { auth: { token: await hs256({ sub: 'alice' }, { expiresIn: '1h' }) } });
    bob = await connectClient(t.url, { auth: { token: await hs256({ sub: 'bob' }, { expiresIn: '1h' }) } });
    expect(await emitAck(alice, 'sync:join', {})).toMatchObject({ success: true });
    expect(await emitAck(bob, 'sync:join', {})).toMatchObject({ success: true });
    expect(
      await emitAck(alice, 'sync:change', { operation: 'insert', collection: 'tasks', documentId: 'a1', data: { owner: 'alice', done: false } }),
    ).toMatchObject({ success: true });
    expect(await emitAck(bob, 'sync:change', { operation: 'insert', collection: 'tasks', documentId: 'b1', data: { owner: 'bob' } })).toMatchObject({
      success: true,
    });
  });
  afterAll(async () => {
    alice?.close();
    bob?.close();
    await mongo?.close();
    await t?.close();
  });

  it('a changeId another user already used does not swallow their change', async () => {
    const changeId = randomUUID();
    // bob uses the id first, on his own document (ids travel in clear to every reader of a change)
    expect(await emitAck(bob, 'sync:change', { changeId, operation: 'update', collection: 'tasks', documentId: 'b1', data: { title: 'x' } })).toMatchObject({
      success: true,
    });
    // alice's own change with the same id must be applied, not answered as bob's "duplicate"
    const ack = await emitAck(alice, 'sync:change', { changeId, operation: 'update', collection: 'tasks', documentId: 'a1', data: { done: true } });
    expect(ack).toMatchObject({ success: true });
    expect(ack.duplicate).toBeUndefined();
    const a1 = await mongo
      .db()
      .collection('tasks')
      .findOne({ _id: 'a1' as never });
    expect(a1?.done).toBe(true);
  });
});
