import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import fc from 'fast-check';
import { MongoClient } from 'mongodb';
import request from 'supertest';
import { ErrorCode, isUserCollectionName } from '@sync/protocol';
import { SocketAuthService } from '../src/gateway/socket-auth.service';
import { ConnectionLimitService } from '../src/limits/connection-limit.service';
import { MetricsService } from '../src/metrics/metrics.service';
import { hs256, TEST_SECRET } from './support/jwt';
import { RawSocket } from './support/raw-socket';
import type { ClientChange } from '@sync/protocol';
import { connectClient, emitAck, startTestApp, TestApp, waitFor, emitUntyped, ClientSocket, untypedSocket, CLIENT_EVENTS, ClientEvent } from './support/app';

/**
 * Thousands of generated malformed payloads to every client event, on an authenticated and on an
 * anonymous socket, with and without acks. The process must stay up, every acked event must answer
 * with the protocol's shape and a protocol error code (never INTERNAL, never a stack trace), no
 * document outside the attacker's own may appear or change, and memory must come back to baseline.
 */

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const RUNS = Number(process.env.HOSTILE_RUNS ?? 3000);
const CODES = new Set<string>(Object.values(ErrorCode));
/** Valid collection names the attacker may write (`__proto__` and `constructor` are valid names too). */
const ATTACKER_COLLECTIONS = ['hostile', 'hostile.sub', 'hostile-2', '__proto__', 'constructor', 'toString'];
const VICTIM_COLLECTIONS = ['victim_docs', 'victim_private'];

const EVENTS = CLIENT_EVENTS;
type EventName = ClientEvent;

// ---- generators ---------------------------------------------------------------------------------

const HOSTILE_KEYS = [
  '$where',
  '$gt',
  '$ne',
  '$set',
  '$expr',
  '$function',
  '$regex',
  '$in',
  '$or',
  '$$ROOT',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'valueOf',
  'a.b',
  '.',
  '..',
  '',
  '\u0000',
  'a\u0000b',
  '_id',
  '_updated_by',
  'sync_updated_at',
  'x'.repeat(300),
];
const HOSTILE_COLLECTIONS = [
  'system.users',
  'system.js',
  'system',
  '_sync',
  '_sync_changes',
  '_syncx',
  '$cmd',
  'admin.$cmd',
  'a$b',
  '..',
  '.a',
  'a.',
  '',
  ' ',
  'a/b',
  'a b',
  'x'.repeat(65),
  'ünïcode',
  ...ATTACKER_COLLECTIONS,
];
const OPERATOR_IDS = [{ $ne: null }, { $gt: '' }, { $regex: '.*' }, { $in: ['v1', 'v2'] }, ['v1'], { _id: 'v1' }, { $where: 'true' }];

const hugeString = fc.integer({ min: 1_000, max: 300_000 }).map((n) => 'x'.repeat(n));
const nested = (depth: number, leaf: unknown = 1): unknown => {
  let v: unknown = leaf;
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { a: v };
  return v;
};
const deep = fc.integer({ min: 20, max: 2_000 }).map((d) => nested(d));
const bigArray = fc.integer({ min: 10_001, max: 12_000 }).map((n) => new Array(n).fill(0));

const scalar = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double(),
  fc.constantFrom(1e308, -1e308, Number.MAX_SAFE_INTEGER + 2, -0, 0, -1, 2 ** 31),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.constantFrom(...HOSTILE_KEYS),
);
const key = fc.oneof(fc.constantFrom(...HOSTILE_KEYS), fc.string({ maxLength: 12 }));
const { value: hostileValue } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalar,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(key, tie('value'), { maxKeys: 5 }),
  ),
}));
const anyValue = fc.oneof(
  { arbitrary: hostileValue, weight: 8 },
  { arbitrary: deep, weight: 1 },
  { arbitrary: bigArray, weight: 1 },
  { arbitrary: hugeString, weight: 1 },
  { arbitrary: fc.constantFrom(...OPERATOR_IDS), weight: 2 },
);
const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined, freq: 3 });

const collectionArb = fc.oneof({ arbitrary: fc.constantFrom(...HOSTILE_COLLECTIONS), weight: 4 }, { arbitrary: anyValue, weight: 1 });
const idArb = fc.oneof(fc.constantFrom('h1', 'h2', 'v1', '', 'x'.repeat(257), '__proto__', 'constructor'), fc.constantFrom(...OPERATOR_IDS), anyValue);
const changeArb = fc.record(
  {
    changeId: maybe(fc.oneof(fc.uuid(), anyValue)),
    id: maybe(anyValue),
    operation: fc.oneof(fc.constantFrom('insert', 'update', 'delete', 'upsert', '$set', 'INSERT', ''), anyValue),
    collection: collectionArb,
    collectionName: maybe(collectionArb),
    documentId: idArb,
    data: fc.oneof(hostileValue, deep, bigArray, fc.dictionary(key, anyValue, { maxKeys: 4 }), fc.record({ big: hugeString })),
    timestamp: maybe(fc.oneof(fc.double(), fc.integer(), fc.string(), fc.constant(8.64e15 + 1))),
    userId: maybe(fc.constantFrom('victim', 'admin')),
  },
  { requiredKeys: [] },
);
/** Operator injection aimed at the victim's collection: must always be refused, never match a document. */
const injectionArb = fc.record({
  operation: fc.constantFrom('insert', 'update', 'delete'),
  collection: fc.constantFrom(...VICTIM_COLLECTIONS),
  documentId: fc.constantFrom(...OPERATOR_IDS),
  data: fc.oneof(fc.constant({ owner: 'attacker' }), fc.constant({ $set: { owner: 'attacker' } })),
});
const subscriptionArb = fc.record(
  {
    collection: collectionArb,
    filter: maybe(
      fc.oneof(
        fc.string({ maxLength: 60 }),
        fc.constantFrom('TRUEPREDICATE', 'owner == %user.id', 'a == $0', '((((((((((', '"unterminated', 'a ==', '$where == 1', 'x'.repeat(5000)),
        anyValue,
      ),
    ),
    query: maybe(anyValue),
    args: maybe(fc.oneof(fc.array(anyValue, { maxLength: 70 }), anyValue)),
    bootstrap: maybe(anyValue),
  },
  { requiredKeys: [] },
);

const payloadFor: Record<EventName, fc.Arbitrary<unknown>> = {
  'sync:join': fc.oneof(
    anyValue,
    fc.record(
      {
        userId: maybe(fc.oneof(fc.constantFrom('victim', 'attacker', ''), anyValue)),
        token: maybe(anyValue),
        subscriptions: maybe(fc.oneof(fc.array(subscriptionArb, { maxLength: 3 }), anyValue)),
      },
      { requiredKeys: [] },
    ),
  ),
  'sync:subscribe': fc.oneof(anyValue, subscriptionArb),
  'sync:unsubscribe': fc.oneof(
    anyValue,
    fc.record({ subscriptionId: maybe(anyValue), collection: maybe(collectionArb), filter: maybe(anyValue) }, { requiredKeys: [] }),
  ),
  'sync:update_subscriptions': fc.oneof(anyValue, fc.record({ subscriptions: fc.oneof(fc.array(subscriptionArb, { maxLength: 4 }), anyValue) })),
  'sync:change': fc.oneof({ arbitrary: changeArb, weight: 4 }, { arbitrary: injectionArb, weight: 1 }, { arbitrary: anyValue, weight: 1 }),
  'sync:changeBatch': fc.oneof(
    anyValue,
    fc.record({ changes: fc.oneof(fc.array(fc.oneof(changeArb, injectionArb, anyValue), { maxLength: 6 }), anyValue) }),
    fc.integer({ min: 501, max: 700 }).map((n) => ({ changes: new Array(n).fill({ operation: 'insert', collection: 'hostile', documentId: 'h1' }) })),
  ),
  'sync:get_changes': fc.oneof(
    anyValue,
    fc.record(
      {
        cursor: maybe(fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('', '0', '-1', 'zzzz', '9'.repeat(400)), anyValue)),
        since: maybe(fc.oneof(fc.double(), fc.integer(), anyValue)),
        collection: maybe(fc.oneof(collectionArb, fc.constantFrom(...OPERATOR_IDS))),
        limit: maybe(fc.oneof(fc.integer(), fc.double(), fc.constantFrom(0, -1, 5001, 1e9), anyValue)),
      },
      { requiredKeys: [] },
    ),
  ),
  ping: fc.oneof(anyValue, fc.record({ t: anyValue })),
  mongoUpsert: fc.oneof(
    anyValue,
    fc.record(
      {
        collection: collectionArb,
        update: fc.oneof(hostileValue, fc.constant({ $set: { owner: 'attacker' } })),
        query: fc.oneof(fc.record({ _id: idArb }), anyValue),
        patchId: maybe(anyValue),
      },
      { requiredKeys: [] },
    ),
  ),
  mongoDelete: fc.oneof(
    anyValue,
    fc.record({ collection: collectionArb, query: fc.oneof(fc.record({ _id: idArb }), anyValue), patchId: maybe(anyValue) }, { requiredKeys: [] }),
  ),
};

// ---- checks --------------------------------------------------------------------------------------

const STACK_RE = /\n\s+at |\.ts:\d+|node_modules|Mongo[A-Z]\w+Error/;

/** Throws when `ack` is not a protocol answer for `event`. */
function checkAck(event: EventName, ack: unknown, joined: boolean): void {
  const text = JSON.stringify(ack);
  if (STACK_RE.test(text)) throw new Error(`${event}: internals leaked: ${text.slice(0, 300)}`);
  if (event === 'ping') {
    const a = ack as { timestamp?: unknown };
    if (typeof a?.timestamp !== 'number') throw new Error(`ping: bad ack ${text}`);
    return;
  }
  if (event === 'mongoUpsert') {
    if (ack !== 'ok' && ack !== 'error') throw new Error(`mongoUpsert: bad ack ${text}`);
    if (!joined && ack !== 'error') throw new Error('mongoUpsert: accepted from an anonymous socket');
    return;
  }
  const a = ack as { success?: unknown; code?: unknown; error?: unknown };
  if (!a || typeof a !== 'object' || typeof a.success !== 'boolean') throw new Error(`${event}: not an ack: ${text?.slice(0, 300)}`);
  if (a.success) {
    if (!joined && event !== 'sync:join') throw new Error(`${event}: succeeded on an anonymous socket: ${text.slice(0, 300)}`);
    if (!joined && event === 'sync:join') throw new Error(`sync:join: an anonymous socket joined: ${text.slice(0, 300)}`);
    return;
  }
  if (typeof a.error !== 'string') throw new Error(`${event}: failure without an error sentence: ${text.slice(0, 300)}`);
  if (event === 'mongoDelete' && a.code === undefined) return;
  if (typeof a.code !== 'string' || !CODES.has(a.code)) throw new Error(`${event}: unknown code ${String(a.code)}`);
  if (a.code === ErrorCode.INTERNAL) throw new Error(`${event}: INTERNAL error for a client mistake`);
  if (!joined && event !== 'sync:join' && a.code !== ErrorCode.UNAUTHENTICATED)
    throw new Error(`${event}: anonymous socket got ${a.code}, not UNAUTHENTICATED`);
}

// ---- the suite -----------------------------------------------------------------------------------

describe('hostile input', () => {
  let t: TestApp;
  let mongo: MongoClient;
  let victimToken: string;
  let attackerToken: string;
  let before: { victim: Record<string, unknown[]>; collections: string[] };
  const sockets: ClientSocket[] = [];

  async function snapshot() {
    const db = mongo.db();
    const victim: Record<string, unknown[]> = {};
    for (const c of VICTIM_COLLECTIONS) victim[c] = await db.collection(c).find({}).sort({ _id: 1 }).toArray();
    const collections = (await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name).sort();
    return { victim, collections };
  }

  async function attacker(joined: boolean): Promise<ClientSocket> {
    const s = await connectClient(t.url, joined ? { auth: { token: attackerToken } } : {});
    sockets.push(s);
    if (joined) expect(await emitAck(s, 'sync:join', {})).toMatchObject({ success: true, userId: 'attacker' });
    return s;
  }

  async function heapUsed(): Promise<number> {
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((r) => setImmediate(r));
    }
    return process.memoryUsage().heapUsed;
  }

  /** Events with a handler (the subscription events arrive with the subscription module). */
  let live: EventName[] = [...EVENTS];

  /** Fires `runs` generated payloads at the events over two sockets; returns how many were acked. */
  async function barrage(runs: number, seed?: number): Promise<number> {
    const joined = await attacker(true);
    const anon = await attacker(false);
    let acked = 0;
    const arb = fc.constantFrom(...live).chain((event) => fc.tuple(fc.constant(event), payloadFor[event], fc.boolean(), fc.nat(9)));
    await fc.assert(
      fc.asyncProperty(arb, async ([event, payload, onJoined, ackless]) => {
        const size = JSON.stringify(payload)?.length ?? 0;
        fc.pre(size < 900_000); // larger frames are cut by maxHttpBufferSize (tested on their own)
        const s = onJoined ? joined : anon;
        if (!s.connected) throw new Error(`the server dropped the ${onJoined ? 'joined' : 'anonymous'} socket`);
        if (ackless === 0) {
          untypedSocket(s).emit(event, payload); // no ack callback: the handler must not crash
          return;
        }
        const ack = await emitUntyped(s, event, payload, 15_000);
        checkAck(event, ack, onJoined);
        acked++;
      }),
      {
        numRuns: runs,
        seed,
        endOnFailure: true,
        // fast-check's own report prints the failing payload, which can be nested too deeply to print
        // (the seed was lost that way once): report the seed, the path, the event and the error only
        asyncReporter: async (details) => {
          if (!details.failed) return;
          const example = details.counterexample?.[0];
          const error =
            details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance ?? 'too many skipped or interrupted runs');
          throw new Error(
            `hostile barrage failed (seed ${details.seed}, path "${details.counterexamplePath}", event ${example?.[0]}, on the ${example?.[2] ? 'joined' : 'anonymous'} socket): ${error}`,
          );
        },
      },
    );
    // both sockets still work
    expect(await emitAck(joined, 'ping', { t: 1 })).toMatchObject({ clientTimestamp: 1 });
    expect(await emitAck(joined, 'sync:get_changes', { limit: 1 })).toMatchObject({ success: true });
    expect(await emitAck(anon, 'sync:get_changes', {})).toMatchObject({ code: 'UNAUTHENTICATED' });
    for (const s of sockets.splice(0)) s.close();
    return acked;
  }

  beforeAll(async () => {
    // the barrage keeps one socket unjoined on purpose for its whole run (longer than the default join
    // deadline on a busy machine); the deadline itself is tested in limits.e2e-spec.ts
    t = await startTestApp({ AUTH_JWT_SECRET: TEST_SECRET, MAX_CONNECTIONS_PER_USER: '1000', JOIN_TIMEOUT_MS: '600000' }, 'hostile');
    mongo = await MongoClient.connect(t.mongoUri);
    victimToken = await hs256({ sub: 'victim' }, { expiresIn: '1h' });
    attackerToken = await hs256({ sub: 'attacker' }, { expiresIn: '1h' });
    const v = await connectClient(t.url, { auth: { token: victimToken } });
    expect(await emitAck(v, 'sync:join', {})).toMatchObject({ success: true });
    for (const c of VICTIM_COLLECTIONS) {
      const changes = ['v1', 'v2', 'v3', '__proto__', 'constructor'].map((id): ClientChange => ({
        operation: 'insert',
        collection: c,
        documentId: id,
        changeId: `${c}-${id}`,
        data: { owner: 'victim', secret: `${c}/${id}`, nested: { n: 1 } },
      }));
      const ack = await emitAck(v, 'sync:changeBatch', { changes });
      expect(ack).toMatchObject({ success: true, successCount: changes.length });
    }
    const answered = await Promise.all(
      EVENTS.map((e) =>
        emitAck(v, e, {}, 3000).then(
          () => true,
          () => false,
        ),
      ),
    );
    live = EVENTS.filter((_, i) => answered[i]);
    const missing = EVENTS.filter((_, i) => !answered[i]);
    // eslint-disable-next-line no-console
    if (missing.length) console.warn(`hostile input: no handler yet for ${missing.join(', ')}: not fuzzed`);
    v.close();
    before = await snapshot();
  });

  afterAll(async () => {
    for (const s of sockets.splice(0)) s.close();
    await mongo?.close();
    await t?.close();
  });

  it(`survives ${RUNS} generated payloads to every event, answering each with a protocol code, and memory returns to baseline`, async () => {
    // warm-up: JIT, module caches, pools, one-time allocations
    await barrage(300, 1);
    const baseline = await heapUsed();

    const acked = await barrage(RUNS);
    expect(acked).toBeGreaterThan(RUNS / 2);

    // the process is up and its per-socket state is gone
    await request(t.url).get('/health').expect(200);
    const limits = t.app.get(ConnectionLimitService);
    const socketAuth = t.app.get(SocketAuthService);
    await waitFor(() => limits.stats().sockets === 0 && socketAuth.trackedSockets === 0, 5000, 'socket state to drain');
    await waitFor(async () => (await t.app.get(MetricsService).snapshot()).activeConnections === 0, 5000, 'no active connection');
    expect(t.app.get(MetricsService).activeUserIds()).toEqual([]);

    const after = await heapUsed();
    // eslint-disable-next-line no-console
    console.log(`hostile input: ${RUNS} runs, ${acked} acked; heap ${(baseline / 1e6).toFixed(1)} MB -> ${(after / 1e6).toFixed(1)} MB`);
    expect(after - baseline).toBeLessThan(25 * 1024 * 1024);
  });

  it("changes no document outside the attacker's own and creates no system collection", async () => {
    const now = await snapshot();
    expect(now.victim).toEqual(before.victim);
    const added = now.collections.filter((c) => !before.collections.includes(c));
    for (const c of added) {
      expect(isUserCollectionName(c)).toBe(true);
      expect(ATTACKER_COLLECTIONS).toContain(c);
    }
  });

  describe('explicit limits', () => {
    const ok = { operation: 'insert', collection: 'hostile', documentId: 'limits' };
    const nestedData = (depth: number) => ({ n: nested(depth) });
    const cases: [string, string, unknown, string][] = [
      ['system collection', 'sync:change', { ...ok, collection: 'system.users' }, 'INVALID_PAYLOAD'],
      ['_sync collection', 'sync:change', { ...ok, collection: '_sync_changes' }, 'INVALID_PAYLOAD'],
      ['65-character collection', 'sync:change', { ...ok, collection: 'c'.repeat(65) }, 'INVALID_PAYLOAD'],
      ['collection with a slash', 'sync:change', { ...ok, collection: 'a/b' }, 'INVALID_PAYLOAD'],
      ['257-character documentId', 'sync:change', { ...ok, documentId: 'd'.repeat(257) }, 'INVALID_PAYLOAD'],
      ['operator documentId', 'sync:change', { ...ok, documentId: { $ne: null } }, 'INVALID_PAYLOAD'],
      ['$where in data', 'sync:change', { ...ok, data: { $where: 'sleep(1000)' } }, 'INVALID_PAYLOAD'],
      ['$gt deep in data', 'sync:change', { ...ok, data: { a: { b: [{ c: { $gt: '' } }] } } }, 'INVALID_PAYLOAD'],
      ['dotted key in data', 'sync:change', { ...ok, data: { 'a.b': 1 } }, 'INVALID_PAYLOAD'],
      // FerretDB v1 stored such a key and then failed every later write of the document (found by the fuzz)
      ['backslash in a key', 'sync:change', { ...ok, data: { nested: { 'a\\b': 1 } } }, 'INVALID_PAYLOAD'],
      ['__proto__ key in data', 'sync:change', { ...ok, data: JSON.parse('{"x":{"__proto__":{"polluted":true}}}') }, 'INVALID_PAYLOAD'],
      ['nesting past 32 levels', 'sync:change', { ...ok, data: nestedData(40) }, 'INVALID_PAYLOAD'],
      ['an array of 10 001 items', 'sync:change', { ...ok, data: { a: new Array(10_001).fill(1) } }, 'INVALID_PAYLOAD'],
      ['a change over MAX_CHANGE_BYTES', 'sync:change', { ...ok, data: { big: 'x'.repeat(300_000) } }, 'PAYLOAD_TOO_LARGE'],
      ['a batch over MAX_BATCH_SIZE', 'sync:changeBatch', { changes: new Array(501).fill(ok) }, 'PAYLOAD_TOO_LARGE'],
      ['get_changes of a system collection', 'sync:get_changes', { collection: '_sync_changes' }, 'INVALID_PAYLOAD'],
      ['get_changes with an operator limit', 'sync:get_changes', { limit: { $gt: 0 } }, 'INVALID_PAYLOAD'],
    ];
    it.each(cases)('%s (%s) is refused', async (_name, event, payload, code) => {
      const s = await attacker(true);
      const ack = await emitUntyped(s, event, payload);
      expect(ack).toMatchObject({ success: false, code, error: expect.any(String) });
      expect(JSON.stringify(ack)).not.toMatch(STACK_RE);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      s.close();
    });
  });

  describe('frames the real client would not build', () => {
    it('100 000-deep JSON, broken packets, binary and oversized frames', async () => {
      const raw = await RawSocket.connect(t.url, { token: attackerToken });
      expect(await raw.emitRaw('sync:join', '{}')).toMatchObject({ success: true });
      const depth = 100_000;
      const deepJson = '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
      for (const event of live) {
        const ack = await raw.emitRaw(event, deepJson);
        checkAck(event, ack, true);
        // a deep object with unknown fields is just extra fields for join / get_changes / ping
        if (['sync:change', 'sync:changeBatch', 'mongoDelete', 'sync:subscribe', 'sync:update_subscriptions'].includes(event))
          expect(ack).toMatchObject({ success: false });
        if (event === 'mongoUpsert') expect(ack).toBe('error');
      }
      const deepChange = `{"operation":"insert","collection":"hostile","documentId":"deep","data":${deepJson}}`;
      expect(await raw.emitRaw('sync:change', deepChange)).toMatchObject({ success: false, code: expect.stringMatching(/INVALID_PAYLOAD|PAYLOAD_TOO_LARGE/) });
      // garbage that is not a Socket.IO packet: the server may drop this connection, nothing else
      raw.sendFrame('42["sync:change",{broken');
      raw.sendFrame('4999999999999999999999["ping"]');
      raw.sendFrame(Buffer.from([0xff, 0x00, 0x13]));
      raw.close();

      // a frame over maxHttpBufferSize closes that connection only
      const big = await RawSocket.connect(t.url, { token: attackerToken });
      big.sendFrame(`42["sync:change",{"data":"${'x'.repeat(t.config.limits.maxHttpBufferSize + 10)}"}]`);
      await big.waitClosed();

      const s = await connectClient(t.url, { auth: { token: attackerToken } });
      expect(await emitAck(s, 'sync:join', {})).toMatchObject({ success: true });
      expect(await emitAck(s, 'ping', {})).toHaveProperty('timestamp');
      s.close();
      await request(t.url).get('/health').expect(200);
      expect((await snapshot()).victim).toEqual(before.victim);
    });
  });
});

// ---- production-mode fuzz: two authenticated users, every event and every HTTP endpoint ----------

/** Payloads of the production-mode run (at least 10 000: issue 10's Done-when). */
const FUZZ_PAYLOADS = Math.max(10_000, Number(process.env.HOSTILE_FUZZ_PAYLOADS ?? 10_000));
const FUZZ_SEED = Number(process.env.HOSTILE_FUZZ_SEED ?? 20261130);
/** Share of the payloads sent to HTTP endpoints (the rest go to socket events). */
const HTTP_SHARE = 0.2;
const FUZZ_COLLECTIONS = [...ATTACKER_COLLECTIONS, ...VICTIM_COLLECTIONS];
const FUZZ_RULES = {
  default: { read: 'FALSEPREDICATE', write: 'FALSEPREDICATE' },
  collections: Object.fromEntries(FUZZ_COLLECTIONS.map((c) => [c, { read: 'owner == %user.id', write: 'owner == %user.id' }])),
};
const FUZZ_SERVICE_TOKEN = 'fuzz-service-token-0123456789-0123456789';
const HTTP_PATHS = [
  '/api/changes',
  '/api/negotiate',
  '/stats',
  '/health',
  '/ready',
  '/metrics',
  '/api/changes/',
  '/stats/',
  '/api/changes?changes=1',
  '/stats?token=x',
  '/metrics?format=json',
  '/api/%2e%2e/stats',
  '/api/changes/../../stats',
  '/health/../stats',
  '/api/negotiate?userId=alice',
  '/api/changes#x',
  '/STATS',
  '/api//changes',
];
const HTTP_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD'];

interface FuzzUser {
  id: 'alice' | 'bob';
  token: string;
  /** Unique strings in every document this user seeded: none may ever reach the other user. */
  marker: string;
  sockets: ClientSocket[];
  /** Everything the server sent this user: acks, pushed changes, bootstrap pages, HTTP bodies. */
  received: string[];
}

/** Adds `owner: <user>` to some changes so that part of the payloads pass the rules and are written. */
function ownedBy(user: string, payload: unknown, coin: number): unknown {
  if (coin % 2 || !payload || typeof payload !== 'object' || Array.isArray(payload)) return payload;
  const p = payload as Record<string, unknown>;
  const own = (c: unknown) =>
    c &&
    typeof c === 'object' &&
    !Array.isArray(c) &&
    (c as { data?: unknown }).data &&
    typeof (c as { data?: unknown }).data === 'object' &&
    !Array.isArray((c as { data: unknown }).data)
      ? { ...(c as object), data: { ...(c as { data: object }).data, owner: user } }
      : c;
  if (Array.isArray(p.changes)) return { ...p, changes: p.changes.map(own) };
  return own(p);
}

describe('hostile input: production-mode fuzz of two authenticated users, every event and HTTP endpoint', () => {
  let t: TestApp;
  let dir: string;
  const users: FuzzUser[] = [];
  const problems: string[] = [];
  const unhandled: string[] = [];
  const onRejection = (reason: unknown) => unhandled.push(`unhandledRejection: ${(reason as Error)?.stack ?? String(reason)}`);
  const onException = (err: Error) => unhandled.push(`uncaughtException: ${err?.stack ?? String(err)}`);

  async function userSocket(u: FuzzUser): Promise<ClientSocket> {
    const s = await connectClient(t.url, { auth: { token: u.token }, extraHeaders: { Origin: 'https://app.example' } });
    const rec = (p: unknown) => u.received.push(JSON.stringify(p) ?? '');
    s.on('sync:changes', rec);
    s.on('sync:bootstrap', rec);
    expect(await emitAck(s, 'sync:join', {})).toMatchObject({ success: true, userId: u.id });
    for (const c of FUZZ_COLLECTIONS) expect(await emitAck(s, 'sync:subscribe', { collection: c })).toMatchObject({ success: true });
    u.sockets.push(s);
    return s;
  }

  beforeAll(async () => {
    process.on('unhandledRejection', onRejection);
    process.on('uncaughtException', onException);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hostile-fuzz-'));
    const rules = path.join(dir, 'rules.json');
    fs.writeFileSync(rules, JSON.stringify(FUZZ_RULES));
    t = await startTestApp(
      {
        NODE_ENV: 'production',
        AUTH_JWT_SECRET: TEST_SECRET,
        SYNC_RULES_FILE: rules,
        ALLOWED_ORIGINS: 'https://app.example',
        AUTH_SERVICE_TOKEN: FUZZ_SERVICE_TOKEN,
        MAX_CONNECTIONS_PER_USER: '50',
        // high enough that payloads reach the handlers instead of the limiters (the limits have their own tests)
        SYNC_RATE_LIMIT_MAX: '10000000',
        HTTP_RATE_LIMIT_MAX: '10000000',
      },
      'hostile_fuzz',
    );
    for (const id of ['alice', 'bob'] as const) {
      const u: FuzzUser = {
        id,
        token: await hs256({ sub: id }, { expiresIn: '1h' }),
        marker: `${id.toUpperCase()}-MARKER-${randomUUID()}`,
        sockets: [],
        received: [],
      };
      users.push(u);
      const s = await userSocket(u);
      // the generators aim at these ids and collections: each user owns some of them
      const ids = id === 'alice' ? ['v1', 'h1', '__proto__', 'constructor'] : ['v2', 'h2', 'v3', 'toString'];
      const changes = FUZZ_COLLECTIONS.flatMap((c) =>
        ids.map((d): ClientChange => ({
          operation: 'insert',
          collection: c,
          documentId: d,
          changeId: `seed-${c}-${d}`,
          data: { owner: id, secret: `${u.marker}/${c}/${d}`, nested: { note: u.marker } },
        })),
      );
      expect(await emitAck(s, 'sync:changeBatch', { changes })).toMatchObject({ success: true, successCount: changes.length });
      await userSocket(u);
      await userSocket(u);
    }
  });

  afterAll(async () => {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
    for (const u of users) for (const s of u.sockets) s.close();
    await t?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it(`${FUZZ_PAYLOADS} seeded payloads: no crash, no unhandled rejection, no leak of the other user's data, /health answering throughout`, async () => {
    const started = Date.now();
    const socketTotal = Math.round(FUZZ_PAYLOADS * (1 - HTTP_SHARE));
    const httpTotal = FUZZ_PAYLOADS - socketTotal;
    let sentSocket = 0;
    let sentHttp = 0;
    let disconnects = 0;
    let healthChecks = 0;
    let running = true;

    // /health must answer 200 all along (an event loop blocked or a crashed process would not)
    const health = (async () => {
      while (running) {
        const res = await request(t.url)
          .get('/health')
          .timeout(10_000)
          .catch((e: Error) => ({ status: 0, text: e.message }));
        if (res.status !== 200) problems.push(`/health answered ${res.status} during the run`);
        healthChecks++;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    /**
     * Well-formed probes at the ids the other user owns (issue 10 finding 1's shape): every operation,
     * old, current, future and missing timestamps, in single changes, batches and compat events.
     */
    const probeChange = fc.record(
      {
        operation: fc.constantFrom('insert', 'update', 'delete'),
        collection: fc.constantFrom(...FUZZ_COLLECTIONS),
        documentId: fc.constantFrom('v1', 'v2', 'v3', 'h1', 'h2', '__proto__', 'constructor', 'toString', 'free-id'),
        changeId: fc.uuid(),
        data: fc.oneof(fc.constant({ title: 'probe' }), fc.dictionary(fc.string({ maxLength: 8 }), scalar, { maxKeys: 3 })),
        timestamp: fc.oneof(fc.constantFrom(1, 0, Date.now(), Date.now() + 30_000), fc.integer({ min: 1, max: 2_000_000_000_000 })),
      },
      { requiredKeys: ['operation', 'collection', 'documentId'] },
    );
    const probe = fc.oneof(
      probeChange.map((c) => ['sync:change', c] as const),
      fc.array(probeChange, { minLength: 1, maxLength: 5 }).map((changes) => ['sync:changeBatch', { changes }] as const),
      probeChange.map((c) => ['mongoUpsert', { collection: c.collection, update: { ...c.data, _id: c.documentId }, query: { _id: c.documentId } }] as const),
      probeChange.map((c) => ['mongoDelete', { collection: c.collection, query: { _id: c.documentId } }] as const),
    );
    const generated = fc
      .constantFrom(...EVENTS, 'sync:unknown', 'constructor', '__proto__', 'sync:changes', 'sync:bootstrap')
      .chain((event) => fc.tuple(fc.constant(event), Object.hasOwn(payloadFor, event) ? payloadFor[event as EventName] : anyValue));
    const eventArb = fc
      .tuple(fc.oneof({ arbitrary: generated, weight: 6 }, { arbitrary: probe, weight: 1 }), fc.nat(9))
      .map(([[event, payload], coin]) => [event, payload, coin] as const);
    /** One worker per socket: generated events in order, most with an ack, some without. */
    const socketWorker = async (u: FuzzUser, slot: number, count: number, seed: number) => {
      let done = 0;
      for (let chunk = 0; done < count; chunk++) {
        const batch = fc.sample(eventArb, { seed: seed + chunk, numRuns: Math.min(100, count - done) });
        for (const [event, raw, coin] of batch) {
          const payload = ownedBy(u.id, raw, coin);
          if ((JSON.stringify(payload)?.length ?? 0) >= 900_000) continue; // cut by maxHttpBufferSize, tested on its own
          done++;
          let s = u.sockets[slot];
          if (!s.connected) {
            disconnects++;
            problems.push(`${u.id}'s socket ${slot} was disconnected by the server`);
            s = u.sockets[slot] = await userSocket(u);
          }
          sentSocket++;
          // events without a handler are never acknowledged: sent without an ack callback
          if (coin === 0 || !EVENTS.includes(event as EventName)) {
            untypedSocket(s).emit(event, payload);
            continue;
          }
          try {
            const ack = await emitUntyped(s, event, payload, 20_000);
            u.received.push(JSON.stringify(ack) ?? '');
            if (EVENTS.includes(event as EventName)) checkAck(event as EventName, ack, true);
          } catch (e) {
            problems.push(`${u.id} ${event}: ${(e as Error).message} (payload ${String(JSON.stringify(payload)).slice(0, 300)})`);
          }
        }
      }
    };

    const httpArb = fc.record({
      path: fc.constantFrom(...HTTP_PATHS),
      method: fc.constantFrom(...HTTP_METHODS),
      auth: fc.constantFrom('own', 'own', 'none', 'garbage', 'selfMadeAdmin', 'forged', 'bearerOnly', 'huge'),
      xff: fc.option(fc.oneof(fc.ipV4(), fc.string({ maxLength: 30 }), fc.constant('1.2.3.4, 10.0.0.1, ::1')), { nil: undefined }),
      contentType: fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=utf-16', 'garbage'),
      body: fc.oneof(
        fc.record({ changes: fc.oneof(fc.array(fc.oneof(changeArb, injectionArb), { maxLength: 5 }), anyValue) }).map((b) => JSON.stringify(b)),
        anyValue.map((v) => JSON.stringify(v) ?? 'null'),
        fc.string({ maxLength: 200 }),
        fc.constantFrom('{"changes":[', '{"__proto__":{"polluted":1},"changes":[]}', '[]', 'null', '{"changes":{"length":1e9}}'),
      ),
    });
    const selfMadeAdmin = await hs256({ sub: 'mallory', role: 'admin', roles: ['admin'], admin: true }, { expiresIn: '1h' });
    const forged = await hs256({ sub: 'alice' }, { expiresIn: '1h', secret: 'forged-secret-forged-secret-forged-secret' });
    const httpWorker = async (u: FuzzUser, count: number, seed: number) => {
      const samples = fc.sample(httpArb, { seed, numRuns: count });
      for (const r of samples) {
        const auth = {
          own: `Bearer ${u.token}`,
          none: undefined,
          garbage: 'Bearer x.y.z',
          selfMadeAdmin: `Bearer ${selfMadeAdmin}`,
          forged: `Bearer ${forged}`,
          bearerOnly: 'Bearer',
          huge: `Bearer ${'a'.repeat(20_000)}`,
        }[r.auth];
        let req = request(t.url)[r.method.toLowerCase() as 'get'](r.path).timeout(20_000);
        if (auth) req = req.set('Authorization', auth);
        if (r.xff !== undefined) req = req.set('X-Forwarded-For', r.xff);
        if (!['GET', 'HEAD', 'OPTIONS'].includes(r.method)) req = req.set('Content-Type', r.contentType).send(r.body);
        sentHttp++;
        const res = await req.catch((e: Error & { response?: { status: number; text: string } }) => e.response ?? { status: 0, text: e.message });
        const text = res.text ?? '';
        u.received.push(text);
        const where = `${r.method} ${r.path} (${r.auth})`;
        if (res.status === 0) problems.push(`${where}: no answer: ${text}`);
        if (res.status === 500) problems.push(`${where}: 500 ${text.slice(0, 200)}`);
        if (STACK_RE.test(text)) problems.push(`${where}: internals leaked: ${text.slice(0, 200)}`);
        const route = r.path.toLowerCase().split(/[?#]/)[0].replace(/\/+$/, '');
        // a CORS preflight (OPTIONS, 204) answers no data
        const answered = res.status >= 200 && res.status < 300 && !(r.method === 'OPTIONS' && !text);
        if (answered && ['/stats', '/metrics'].includes(route)) problems.push(`${where}: ${res.status}: a user read ${route}`);
        if (answered && route === '/api/changes' && r.method === 'POST') problems.push(`${where}: ${res.status}: a user wrote through the ingest route`);
      }
    };

    const workers: Promise<void>[] = [];
    const perSocket = Math.ceil(socketTotal / 6);
    users.forEach((u, ui) => {
      for (let slot = 0; slot < 3; slot++) workers.push(socketWorker(u, slot, perSocket, FUZZ_SEED + ui * 1_000_000 + slot * 10_000));
      workers.push(httpWorker(u, Math.ceil(httpTotal / 2), FUZZ_SEED + 7 + ui));
    });
    try {
      await Promise.all(workers);
    } finally {
      running = false;
      await health;
    }

    // the server is up, both users still work, and nothing crossed between them
    await request(t.url).get('/health').expect(200);
    for (const u of users) {
      const s = u.sockets.find((x) => x.connected) ?? (await userSocket(u));
      expect(await emitAck(s, 'sync:get_changes', { limit: 5 })).toMatchObject({ success: true });
    }
    const [alice, bob] = users;
    const leaks = [
      ...bob.received.filter((text) => text.includes(alice.marker)).map((x) => `bob got alice's data: ${x.slice(0, 300)}`),
      ...alice.received.filter((text) => text.includes(bob.marker)).map((x) => `alice got bob's data: ${x.slice(0, 300)}`),
    ];
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    // eslint-disable-next-line no-console
    console.log(
      `hostile fuzz (production mode, seed ${FUZZ_SEED}): ${sentSocket + sentHttp} payloads (${sentSocket} socket events, ${sentHttp} HTTP requests) in ${seconds} s; ` +
        `${alice.received.length + bob.received.length} answers checked for the other user's markers; ${healthChecks} /health checks; ` +
        `${leaks.length} leaks, ${unhandled.length} unhandled errors, ${disconnects} server disconnects, ${problems.length} problems`,
    );
    expect(sentSocket + sentHttp).toBeGreaterThanOrEqual(10_000 * 0.99);
    expect(unhandled).toEqual([]);
    expect(leaks.slice(0, 5)).toEqual([]);
    expect(problems.slice(0, 100)).toEqual([]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  }, 240_000);
});
