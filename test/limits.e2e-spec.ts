import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MongoClient } from 'mongodb';
import request from 'supertest';
import { SocketAuthService } from '../src/gateway/socket-auth.service';
import { ConnectionLimitService } from '../src/limits/connection-limit.service';
import { RateLimitService } from '../src/limits/rate-limit.service';
import { hs256, TEST_SECRET } from './support/jwt';
import type { ClientChange } from '@sync/protocol';
import { connectClient, emitAck, startTestApp, TestApp, waitFor, ClientSocket } from './support/app';

type ConnectError = Error & { data?: any };

const sockets: ClientSocket[] = [];
async function connect(url: string, opts: Parameters<typeof connectClient>[1] = {}): Promise<ClientSocket> {
  const s = await connectClient(url, opts);
  sockets.push(s);
  return s;
}
async function refused(url: string, opts: Parameters<typeof connectClient>[1] = {}): Promise<ConnectError> {
  try {
    sockets.push(await connectClient(url, opts));
  } catch (e) {
    return e as ConnectError;
  }
  throw new Error('expected the connection to be refused');
}
function closeAll(): void {
  for (const s of sockets.splice(0)) s.close();
}
afterEach(closeAll);

/** Waits until the server holds no connection state at all. */
async function drained(t: TestApp): Promise<void> {
  const limits = t.app.get(ConnectionLimitService);
  const auth = t.app.get(SocketAuthService);
  await waitFor(
    () => {
      const s = limits.stats();
      return s.sockets === 0 && s.addresses === 0 && s.users === 0 && auth.trackedSockets === 0;
    },
    5000,
    'connection state to drain',
  );
}

describe('connection limits', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ AUTH_JWT_SECRET: TEST_SECRET, MAX_CONNECTIONS_PER_IP: '4', MAX_CONNECTIONS_PER_USER: '2' }, 'limits_conn');
  });
  afterAll(() => t?.close());
  afterEach(async () => {
    closeAll();
    await drained(t);
  });

  it('refuses the N+1th connection of an address at the handshake, and accepts again after a disconnect', async () => {
    const first = await connect(t.url);
    for (let i = 0; i < 3; i++) await connect(t.url);
    const err = await refused(t.url);
    expect(err.message).toBe('too many connections from this address (at most 4)');
    expect(err.data).toMatchObject({ code: 'RATE_LIMITED', retryAfterMs: expect.any(Number) });
    first.close();
    const limits = t.app.get(ConnectionLimitService);
    await waitFor(() => limits.countForAddress('127.0.0.1') === 3, 5000, 'the slot to be freed');
    await connect(t.url);
    expect((await refused(t.url)).message).toMatch(/too many connections from this address/);
    const metrics = await request(t.url).get('/metrics');
    expect(metrics.text).toMatch(/^sync_connections_refused_total\{reason="per_ip"\} [1-9]/m);
  });

  it('refuses the N+1th connection of a user at the handshake when the token comes with it', async () => {
    const token = await hs256({ sub: 'alice' }, { expiresIn: '1h' });
    const a = await connect(t.url, { auth: { token } });
    await connect(t.url, { auth: { token } });
    const err = await refused(t.url, { auth: { token } });
    expect(err.message).toBe('too many connections for this user (at most 2)');
    expect(err.data).toMatchObject({ code: 'RATE_LIMITED' });
    // other users are not affected
    await connect(t.url, { auth: { token: await hs256({ sub: 'bob' }, { expiresIn: '1h' }) } });
    a.close();
    await waitFor(() => t.app.get(ConnectionLimitService).countForUser('alice') === 1, 5000, 'the slot to be freed');
    await connect(t.url, { auth: { token } });
  });

  it('refuses the N+1th join of a user with RATE_LIMITED when the token comes with sync:join', async () => {
    const token = await hs256({ sub: 'carol' }, { expiresIn: '1h' });
    const [a, b, c] = [await connect(t.url), await connect(t.url), await connect(t.url)];
    expect(await emitAck(a, 'sync:join', { token })).toMatchObject({ success: true });
    expect(await emitAck(b, 'sync:join', { token })).toMatchObject({ success: true });
    // re-joining an already counted socket does not take another slot
    expect(await emitAck(b, 'sync:join', { token })).toMatchObject({ success: true });
    const ack = await emitAck(c, 'sync:join', { token });
    expect(ack).toMatchObject({
      success: false,
      code: 'RATE_LIMITED',
      error: 'too many connections for this user (at most 2)',
      retryAfterMs: expect.any(Number),
    });
    // the refused socket is not joined
    expect(await emitAck(c, 'sync:get_changes', {})).toMatchObject({ code: 'UNAUTHENTICATED' });
    a.close();
    await waitFor(() => t.app.get(ConnectionLimitService).countForUser('carol') === 1, 5000, 'the slot to be freed');
    expect(await emitAck(c, 'sync:join', { token })).toMatchObject({ success: true, userId: 'carol' });
  });

  it('counts are right again after many connects and disconnects', async () => {
    const token = await hs256({ sub: 'dave' }, { expiresIn: '1h' });
    for (let round = 0; round < 5; round++) {
      const batch = await Promise.all([connect(t.url, { auth: { token } }), connect(t.url), connect(t.url)]);
      await emitAck(batch[1], 'sync:join', { token });
      closeAll();
      await drained(t);
    }
    // half-open handshakes (refused or abandoned) release their slots as well
    const token2 = await hs256({ sub: 'erin' }, { expiresIn: '1h' });
    await Promise.allSettled(Array.from({ length: 10 }, () => connect(t.url, { auth: { token: token2 } })));
    closeAll();
    await drained(t);
  });
});

/** Finding 9: sockets that never join held a per-address slot forever. */
describe('attack: unauthenticated sockets cannot hold an address', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(
      { AUTH_JWT_SECRET: TEST_SECRET, MAX_CONNECTIONS_PER_IP: '3', MAX_CONNECTIONS_PER_USER: '5', JOIN_TIMEOUT_MS: '1500' },
      'limits_unjoined',
    );
  });
  afterAll(() => t?.close());
  afterEach(async () => {
    closeAll();
    await drained(t);
  });

  function closed(s: ClientSocket): Promise<{ code?: string; error?: string }> {
    return new Promise((resolve) => {
      let info: { code?: string; error?: string } = {};
      s.once('sync:error', (i: typeof info) => (info = i));
      s.once('disconnect', () => resolve(info));
    });
  }

  it('disconnects a socket that does not join within JOIN_TIMEOUT_MS, saying why, and frees its slot', async () => {
    const idle = await connect(t.url);
    const joinedLate = await connect(t.url);
    const bye = closed(idle);
    expect(await emitAck(joinedLate, 'sync:join', { token: await hs256({ sub: 'frank' }, { expiresIn: '1h' }) })).toMatchObject({ success: true });
    expect(await bye).toEqual({ code: 'JOIN_TIMEOUT', error: expect.stringMatching(/not authenticated within 1500 ms/) });
    const limits = t.app.get(ConnectionLimitService);
    await waitFor(() => limits.countForAddress('127.0.0.1') === 1, 5000, 'the idle slot to be freed');
    // the joined socket outlives the deadline and keeps working
    expect(await emitAck(joinedLate, 'sync:get_changes', {})).toMatchObject({ success: true });
    expect(joinedLate.connected).toBe(true);
  });

  it('a full address of anonymous sockets gives way to a client with a token, never to another anonymous one', async () => {
    const anon = [await connect(t.url), await connect(t.url), await connect(t.url)];
    expect((await refused(t.url)).message).toMatch(/too many connections from this address/);
    const firstGone = closed(anon[0]);
    const token = await hs256({ sub: 'grace' }, { expiresIn: '1h' });
    const user = await connect(t.url, { auth: { token } });
    expect(await firstGone).toMatchObject({ code: 'EVICTED' });
    expect(await emitAck(user, 'sync:join', {})).toMatchObject({ success: true, userId: 'grace' });
    // the address now holds 3 again: another user with a token evicts the next anonymous socket
    const secondGone = closed(anon[1]);
    await connect(t.url, { auth: { token } });
    expect(await secondGone).toMatchObject({ code: 'EVICTED' });
    // an address full of authenticated sockets refuses everyone
    await connect(t.url, { auth: { token } });
    expect((await refused(t.url, { auth: { token } })).message).toMatch(/too many connections from this address/);
    expect((await refused(t.url)).message).toMatch(/too many connections from this address/);
  });
});

describe('TRUST_PROXY: the client address from X-Forwarded-For', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(
      {
        TRUST_PROXY: 'true',
        MAX_CONNECTIONS_PER_IP: '2',
        RATE_LIMIT_DISABLED: 'false',
        HTTP_RATE_LIMIT_MAX: '3',
        HTTP_RATE_LIMIT_WINDOW_MS: '60000',
        AUTH_SERVICE_TOKEN: 'service-token-0123456789-0123456789',
      },
      'limits_proxy',
    );
  });
  afterAll(() => t?.close());

  it('counts connections per forwarded client, and a client cannot spoof the left-most entry', async () => {
    const from = (xff: string) => ({ extraHeaders: { 'X-Forwarded-For': xff } });
    await connect(t.url, from('203.0.113.1'));
    await connect(t.url, from('6.6.6.1, 203.0.113.1'));
    expect((await refused(t.url, from('6.6.6.2, 203.0.113.1'))).message).toMatch(/too many connections from this address/);
    await connect(t.url, from('203.0.113.2'));
    const limits = t.app.get(ConnectionLimitService);
    expect(limits.countForAddress('203.0.113.1')).toBe(2);
    expect(limits.countForAddress('203.0.113.2')).toBe(1);
    expect(limits.countForAddress('127.0.0.1')).toBe(0);
    closeAll();
    await drained(t);
  });

  it('throttles REST per forwarded client, never the probes', async () => {
    for (let i = 0; i < 3; i++) await request(t.url).get('/stats').set('X-Forwarded-For', '198.51.100.7').expect(200);
    const res = await request(t.url).get('/stats').set('X-Forwarded-For', '1.1.1.1, 198.51.100.7').expect(429);
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    await request(t.url).get('/stats').set('X-Forwarded-For', '198.51.100.8').expect(200);
    // server-to-server calls with the service token are not throttled
    for (let i = 0; i < 5; i++)
      await request(t.url).get('/stats').set('X-Forwarded-For', '198.51.100.7').set('Authorization', 'Bearer service-token-0123456789-0123456789').expect(200);
    for (let i = 0; i < 10; i++) {
      await request(t.url).get('/health').set('X-Forwarded-For', '198.51.100.7').expect(200);
      await request(t.url).get('/ready').set('X-Forwarded-For', '198.51.100.7').expect(200);
      await request(t.url).get('/metrics').set('X-Forwarded-For', '198.51.100.7').expect(200);
    }
  });
});

describe('change rate limit', () => {
  let t: TestApp;
  let mongo: MongoClient;
  beforeAll(async () => {
    t = await startTestApp({ RATE_LIMIT_DISABLED: 'false', SYNC_RATE_LIMIT_MAX: '5', SYNC_RATE_LIMIT_WINDOW_MS: '60000' }, 'limits_rate');
    mongo = await MongoClient.connect(t.mongoUri);
  });
  afterAll(async () => {
    await mongo?.close();
    await t?.close();
  });

  const change = (id: string): ClientChange => ({ operation: 'insert', collection: 'rate_notes', documentId: id, data: { n: id } });

  it('answers RATE_LIMITED with retryAfterMs past SYNC_RATE_LIMIT_MAX, and writes nothing', async () => {
    const s = await connect(t.url);
    await emitAck(s, 'sync:join', { userId: 'alice' });
    for (let i = 0; i < 4; i++) expect(await emitAck(s, 'sync:change', change(`ok-${i}`))).toMatchObject({ success: true });
    // a batch counts its size: 1 left, 3 asked
    const batch = await emitAck(s, 'sync:changeBatch', { changes: [change('b-1'), change('b-2'), change('b-3')] });
    expect(batch).toMatchObject({ success: false, code: 'RATE_LIMITED', retryAfterMs: expect.any(Number) });
    expect(batch.retryAfterMs).toBeGreaterThan(0);
    expect(await emitAck(s, 'sync:change', change('ok-4'))).toMatchObject({ success: true });
    const refusedAck = await emitAck(s, 'sync:change', change('over'));
    expect(refusedAck).toMatchObject({ success: false, code: 'RATE_LIMITED' });
    expect(refusedAck.retryAfterMs).toBeGreaterThan(0);
    expect(refusedAck.retryAfterMs).toBeLessThanOrEqual(60_000);
    expect(await emitAck(s, 'mongoUpsert', { collection: 'rate_notes', query: { _id: 'compat' }, update: { a: 1 } })).toBe('error');

    const ids = (
      await mongo
        .db()
        .collection('rate_notes')
        .find({}, { projection: { _id: 1 } })
        .toArray()
    )
      .map((d) => String(d._id))
      .sort();
    expect(ids).toEqual(['ok-0', 'ok-1', 'ok-2', 'ok-3', 'ok-4']);
  });

  it('limits each user on their own, across their sockets', async () => {
    const b1 = await connect(t.url);
    const b2 = await connect(t.url);
    await emitAck(b1, 'sync:join', { userId: 'bob' });
    await emitAck(b2, 'sync:join', { userId: 'bob' });
    expect(await emitAck(b1, 'sync:changeBatch', { changes: [1, 2, 3].map((i) => change(`bob-${i}`)) })).toMatchObject({ success: true });
    expect(await emitAck(b2, 'sync:changeBatch', { changes: [4, 5].map((i) => change(`bob-${i}`)) })).toMatchObject({ success: true });
    expect(await emitAck(b2, 'sync:change', change('bob-6'))).toMatchObject({ code: 'RATE_LIMITED' });
    expect(await emitAck(b1, 'sync:change', change('bob-7'))).toMatchObject({ code: 'RATE_LIMITED' });
  });

  it('forgets users once their allowance has refilled', () => {
    const rl = t.app.get(RateLimitService);
    expect(rl.trackedUsers).toBeGreaterThan(0);
    rl.sweep(Date.now() + 10 * 60_000);
    expect(rl.trackedUsers).toBe(0);
  });
});

describe('production: CORS from ALLOWED_ORIGINS', () => {
  let t: TestApp;
  let dir: string;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'limits-prod-'));
    const rules = path.join(dir, 'rules.json');
    fs.writeFileSync(rules, JSON.stringify({ default: { read: 'TRUEPREDICATE', write: 'TRUEPREDICATE' }, collections: {} }));
    t = await startTestApp(
      { NODE_ENV: 'production', AUTH_JWT_SECRET: TEST_SECRET, SYNC_RULES_FILE: rules, ALLOWED_ORIGINS: 'https://app.example,https://admin.example' },
      'limits_cors',
    );
  });
  afterAll(async () => {
    await t?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('sends CORS headers on REST only to allowed origins', async () => {
    const ok = await request(t.url).get('/health').set('Origin', 'https://app.example').expect(200);
    expect(ok.headers['access-control-allow-origin']).toBe('https://app.example');
    const evil = await request(t.url).get('/health').set('Origin', 'https://evil.example').expect(200);
    expect(evil.headers['access-control-allow-origin']).toBeUndefined();
    const preflight = await request(t.url).options('/api/changes').set('Origin', 'https://evil.example').set('Access-Control-Request-Method', 'POST');
    expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('refuses a socket.io handshake from a disallowed Origin, on both transports', async () => {
    const token = await hs256({ sub: 'alice' }, { expiresIn: '1h' });
    for (const transports of [['websocket'], ['polling']] as const) {
      const err = await refused(t.url, { transports: [...transports], auth: { token }, extraHeaders: { Origin: 'https://evil.example' } });
      expect(err.message).toBe('origin not allowed');
      const s = await connect(t.url, { transports: [...transports], auth: { token }, extraHeaders: { Origin: 'https://admin.example' } });
      expect(await emitAck(s, 'sync:join', {})).toMatchObject({ success: true, userId: 'alice' });
    }
    // native clients send no Origin
    const native = await connect(t.url, { auth: { token } });
    expect(await emitAck(native, 'sync:join', {})).toMatchObject({ success: true });
  });
});
