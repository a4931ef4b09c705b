import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import request from 'supertest';
import { SocketAuthService } from '../src/gateway/socket-auth.service';
import { ConnectionLimitService } from '../src/limits/connection-limit.service';
import { hs256, JwksServer, makeKey, signWith, startJwksServer, TEST_SECRET, TestKey, unsigned } from './support/jwt';
import { connectClient, emitAck, startTestApp, TestApp, waitFor, emitUntyped, ClientSocket } from './support/app';

/** The connect_error of a refused handshake. */
async function refusedHandshake(url: string, opts: Parameters<typeof connectClient>[1]): Promise<Error & { data?: any }> {
  try {
    const s = await connectClient(url, opts);
    s.close();
  } catch (e) {
    return e as Error & { data?: any };
  }
  throw new Error('expected the handshake to be refused');
}

async function failureCount(t: TestApp, reason: string): Promise<number> {
  const res = await request(t.url).get('/metrics').expect(200);
  const m = new RegExp(`^sync_auth_failures_total\\{reason="${reason}"\\} (\\d+)`, 'm').exec(res.text);
  return m ? Number(m[1]) : 0;
}

const sockets: ClientSocket[] = [];
async function connect(url: string, opts: Parameters<typeof connectClient>[1] = {}): Promise<ClientSocket> {
  const s = await connectClient(url, opts);
  sockets.push(s);
  return s;
}
afterEach(() => {
  for (const s of sockets.splice(0)) s.close();
});

describe('Auth with AUTH_JWT_SECRET (HS256)', () => {
  let t: TestApp;
  const iss = 'https://idp.example';
  const aud = 'sync-server';
  const good = { issuer: iss, audience: aud, expiresIn: '1h' };

  beforeAll(async () => {
    t = await startTestApp({ AUTH_JWT_SECRET: TEST_SECRET, AUTH_JWT_ISSUER: iss, AUTH_JWT_AUDIENCE: aud, TOKEN_EXPIRY_GRACE_MS: '1000' }, 'auth_hs');
    expect(t.config.auth.mode).toBe('jwt');
  });
  afterAll(() => t?.close());

  describe('a valid token is accepted in each of the four places', () => {
    it('handshake auth.token', async () => {
      const s = await connect(t.url, { auth: { token: await hs256({ sub: 'alice' }, good) } });
      expect(await emitAck(s, 'sync:join', {})).toMatchObject({ success: true, userId: 'alice', cursor: expect.any(String) });
    });

    it('Authorization header (Bearer stripped)', async () => {
      const s = await connect(t.url, { extraHeaders: { Authorization: `Bearer ${await hs256({ sub: 'bob' }, good)}` } });
      expect(await emitAck(s, 'sync:join', {})).toMatchObject({ success: true, userId: 'bob' });
    });

    it('handshake query.token', async () => {
      const s = await connect(t.url, { query: { token: await hs256({ userId: 'carol' }, good) } });
      expect(await emitAck(s, 'sync:join', { userId: 'carol' })).toMatchObject({ success: true, userId: 'carol' });
    });

    it('the token field of sync:join (with or without Bearer)', async () => {
      const s = await connect(t.url);
      expect(await emitAck(s, 'sync:join', { token: await hs256({ uid: 'dave' }, good) })).toMatchObject({ success: true, userId: 'dave' });
      const s2 = await connect(t.url);
      expect(await emitAck(s2, 'sync:join', { token: `Bearer ${await hs256({ sub: 'erin' }, good)}`, userId: 'erin' })).toMatchObject({
        success: true,
        userId: 'erin',
      });
    });

    it('the handshake order wins: auth.token before the header before query.token', async () => {
      const s = await connect(t.url, {
        auth: { token: await hs256({ sub: 'first' }, good) },
        extraHeaders: { Authorization: `Bearer ${await hs256({ sub: 'second' }, good)}` },
        query: { token: await hs256({ sub: 'third' }, good) },
      });
      expect(await emitAck(s, 'sync:join', {})).toMatchObject({ success: true, userId: 'first' });
    });
  });

  describe('refused with the right code', () => {
    it('no token: the socket connects but every event but ping and sync:join is UNAUTHENTICATED', async () => {
      const before = await failureCount(t, 'missing');
      const s = await connect(t.url);
      expect(await emitAck(s, 'sync:join', { userId: 'alice' })).toMatchObject({ success: false, code: 'UNAUTHENTICATED' });
      expect(await emitAck(s, 'sync:join', {})).toMatchObject({ success: false, code: 'UNAUTHENTICATED' });
      expect(await emitUntyped(s, 'sync:join', null)).toMatchObject({ success: false, code: 'UNAUTHENTICATED' });
      expect(await emitAck(s, 'sync:change', { operation: 'insert', collection: 'notes', documentId: 'n1', data: { a: 1 } })).toMatchObject({
        success: false,
        code: 'UNAUTHENTICATED',
      });
      expect(await emitAck(s, 'sync:get_changes', {})).toMatchObject({ success: false, code: 'UNAUTHENTICATED' });
      expect(await emitAck(s, 'ping', { t: 1 })).toMatchObject({ clientTimestamp: 1 });
      expect(await failureCount(t, 'missing')).toBe(before + 3);
    });

    const cases: [string, () => Promise<string>, string][] = [
      ['bad signature', () => hs256({ sub: 'alice' }, { ...good, secret: 'not-the-secret-not-the-secret-not-the' }), 'bad_signature'],
      ['expired', () => hs256({ sub: 'alice' }, { ...good, expiresIn: Math.floor(Date.now() / 1000) - 60 }), 'expired'],
      ['wrong issuer', () => hs256({ sub: 'alice' }, { ...good, issuer: 'https://evil.example' }), 'wrong_issuer'],
      ['wrong audience', () => hs256({ sub: 'alice' }, { ...good, audience: 'another-app' }), 'wrong_audience'],
      ['alg none', async () => unsigned({ sub: 'alice', iss, aud, exp: Math.floor(Date.now() / 1000) + 3600 }), 'alg_not_allowed'],
      ['garbage', async () => 'not-a-jwt', 'malformed'],
    ];

    it.each(cases)('%s: sync:join answers UNAUTHENTICATED', async (_name, make, reason) => {
      const before = await failureCount(t, reason);
      const s = await connect(t.url);
      const ack = await emitAck(s, 'sync:join', { token: await make() });
      expect(ack).toMatchObject({ success: false, code: 'UNAUTHENTICATED', error: expect.any(String) });
      expect(JSON.stringify(ack)).not.toMatch(/stack|at .*\.ts/);
      // still not joined
      expect(await emitAck(s, 'sync:get_changes', {})).toMatchObject({ code: 'UNAUTHENTICATED' });
      expect(await failureCount(t, reason)).toBe(before + 1);
    });

    it.each(cases)('%s: the handshake is refused with connect_error "unauthorized"', async (_name, make) => {
      const token = await make();
      for (const opts of [{ auth: { token } }, { extraHeaders: { Authorization: `Bearer ${token}` } }, { query: { token } }]) {
        const err = await refusedHandshake(t.url, opts);
        expect(err.message).toBe('unauthorized');
        expect(err.data).toMatchObject({ code: 'UNAUTHENTICATED' });
      }
    });

    it('a non-string token in the handshake is refused, not ignored', async () => {
      const err = await refusedHandshake(t.url, { auth: { token: { $ne: null } } });
      expect(err.message).toBe('unauthorized');
    });

    it('a userId that does not match the token: FORBIDDEN', async () => {
      const before = await failureCount(t, 'user_mismatch');
      const s = await connect(t.url);
      expect(await emitAck(s, 'sync:join', { token: await hs256({ sub: 'alice' }, good), userId: 'mallory' })).toMatchObject({
        success: false,
        code: 'FORBIDDEN',
      });
      // token in the handshake, other userId in the join
      const s2 = await connect(t.url, { auth: { token: await hs256({ sub: 'alice' }, good) } });
      expect(await emitAck(s2, 'sync:join', { userId: 'mallory' })).toMatchObject({ success: false, code: 'FORBIDDEN' });
      // a socket keeps its identity: another user's token on a joined socket is refused
      expect(await emitAck(s2, 'sync:join', {})).toMatchObject({ success: true, userId: 'alice' });
      expect(await emitAck(s2, 'sync:join', { token: await hs256({ sub: 'mallory' }, good) })).toMatchObject({ success: false, code: 'FORBIDDEN' });
      expect(await emitAck(s2, 'sync:join', {})).toMatchObject({ success: true, userId: 'alice' });
      expect(await failureCount(t, 'user_mismatch')).toBe(before + 3);
    });

    it('failures are logged without the token and counted in /metrics', async () => {
      const res = await request(t.url).get('/metrics').expect(200);
      expect(res.text).toMatch(/^sync_auth_failures_total\{reason="bad_signature"\} [1-9]/m);
      expect(res.text).toMatch(/^sync_auth_failures_total\{reason="expired"\} [1-9]/m);
    });
  });

  it('the author of a change is the authenticated user, whatever the payload says', async () => {
    const s = await connect(t.url, { auth: { token: await hs256({ sub: 'alice' }, good) } });
    await emitAck(s, 'sync:join', {});
    const ack = await emitUntyped(s, 'sync:change', {
      operation: 'insert',
      collection: 'auth_notes',
      documentId: 'authored-1',
      data: { title: 'x', _updated_by: 'mallory', userId: 'mallory' },
      userId: 'mallory',
    });
    expect(ack).toMatchObject({ success: true });
    const feed = await emitAck(s, 'sync:get_changes', { collection: 'auth_notes' });
    const entry = feed.changes.find((c: any) => c.documentId === 'authored-1');
    expect(entry?.userId).toBe('alice');
    expect(entry?.data?._updated_by).toBe('alice');
  });

  describe('token expiry', () => {
    it('a socket whose token expires gets sync:token_expired and is disconnected after the grace period', async () => {
      const exp = Math.floor(Date.now() / 1000) + 2;
      const s = await connect(t.url, { auth: { token: await hs256({ sub: 'alice' }, { ...good, expiresIn: exp }) } });
      expect(await emitAck(s, 'sync:join', {})).toMatchObject({ success: true });
      const notice = new Promise<any>((resolve) => s.once('sync:token_expired', resolve));
      const gone = new Promise<string>((resolve) => s.once('disconnect', resolve));
      expect(await notice).toEqual({ code: 'UNAUTHENTICATED', error: expect.any(String), graceMs: 1000 });
      expect(Date.now()).toBeGreaterThanOrEqual(exp * 1000);
      // an expired handshake token is not enough to join again
      expect(await emitAck(s, 'sync:join', {})).toMatchObject({ success: false, code: 'UNAUTHENTICATED' });
      expect(await gone).toBe('io server disconnect');
    });

    it('re-joining with a fresh token on the same socket keeps it connected', async () => {
      const exp = Math.floor(Date.now() / 1000) + 2;
      const s = await connect(t.url);
      expect(await emitAck(s, 'sync:join', { token: await hs256({ sub: 'alice' }, { ...good, expiresIn: exp }) })).toMatchObject({ success: true });
      await new Promise((resolve) => s.once('sync:token_expired', resolve));
      expect(await emitAck(s, 'sync:join', { token: await hs256({ sub: 'alice' }, good) })).toMatchObject({ success: true, userId: 'alice' });
      let disconnected = false;
      s.once('disconnect', () => (disconnected = true));
      // well past the grace period (1 s), the socket still works
      const until = Date.now() + 1500;
      await waitFor(() => Date.now() > until, 5000, 'grace period to pass');
      expect(disconnected).toBe(false);
      expect(await emitAck(s, 'sync:get_changes', { limit: 1 })).toMatchObject({ success: true });
    });
  });

  it('keeps no per-socket state once every socket is gone', async () => {
    for (const s of sockets.splice(0)) s.close();
    const socketAuth = t.app.get(SocketAuthService);
    await waitFor(() => socketAuth.trackedSockets === 0, 5000, 'socket state to be released');
  });
});

describe('Auth with AUTH_JWKS_URL (RS256 / ES256 from a JWKS endpoint)', () => {
  let t: TestApp;
  let jwks: JwksServer;
  let rsa: TestKey;
  let ec: TestKey;

  beforeAll(async () => {
    rsa = await makeKey('rsa-1', 'RS256');
    ec = await makeKey('ec-1', 'ES256');
    jwks = await startJwksServer([rsa, ec]);
    t = await startTestApp({ AUTH_JWKS_URL: jwks.url, AUTH_JWKS_COOLDOWN_MS: '0', AUTH_JWT_AUDIENCE: 'sync' }, 'auth_jwks');
  });
  afterAll(async () => {
    await t?.close();
    await jwks?.close();
  });

  it('accepts RS256 and ES256 tokens from the key set', async () => {
    const s = await connect(t.url, { auth: { token: await signWith(rsa, { sub: 'alice' }, { audience: 'sync', expiresIn: '1h' }) } });
    expect(await emitAck(s, 'sync:join', {})).toMatchObject({ success: true, userId: 'alice' });
    const s2 = await connect(t.url);
    expect(await emitAck(s2, 'sync:join', { token: await signWith(ec, { sub: 'bob' }, { audience: 'sync' }) })).toMatchObject({ success: true, userId: 'bob' });
  });

  it('picks up a rotated key without a restart', async () => {
    const next = await makeKey('rsa-2', 'RS256');
    jwks.keys = [next, ec];
    const s = await connect(t.url, { auth: { token: await signWith(next, { sub: 'carol' }, { audience: 'sync' }) } });
    expect(await emitAck(s, 'sync:join', {})).toMatchObject({ success: true, userId: 'carol' });
    const err = await refusedHandshake(t.url, { auth: { token: await signWith(rsa, { sub: 'alice' }, { audience: 'sync' }) } });
    expect(err.message).toBe('unauthorized');
  });

  it('releases the slots of a client that hangs up while its token is being verified', async () => {
    const next = await makeKey('rsa-slow', 'RS256');
    jwks.keys = [...jwks.keys, next];
    jwks.delayMs = 500; // the unknown kid makes the server refetch the key set, slowly
    try {
      const { io } = await import('socket.io-client');
      const token = await signWith(next, { sub: 'slow' }, { audience: 'sync' });
      const before = jwks.fetches;
      const c = io(t.url, { transports: ['websocket'], auth: { token }, reconnection: false, forceNew: true });
      await waitFor(() => jwks.fetches > before, 5000, 'the key set refetch to start');
      c.close();
      const socketAuth = t.app.get(SocketAuthService);
      const limits = t.app.get(ConnectionLimitService);
      await waitFor(() => socketAuth.trackedSockets === 0 && limits.stats().sockets === 0, 5000, 'the slots to be released');
      await new Promise((r) => setTimeout(r, 700)); // the verification finishes after the hang-up
      expect(limits.stats()).toEqual({ sockets: 0, addresses: 0, users: 0 });
      expect(socketAuth.trackedSockets).toBe(0);
    } finally {
      jwks.delayMs = 0;
    }
  });

  it('refuses HS256 signed with a public key, a foreign key, a wrong audience and alg none', async () => {
    const tokens = [
      await hs256({ sub: 'alice', aud: 'sync' }, { secret: ec.publicPem }),
      await signWith(await makeKey('ec-1', 'ES256'), { sub: 'alice' }, { audience: 'sync' }),
      await signWith(ec, { sub: 'alice' }, { audience: 'other' }),
      unsigned({ sub: 'alice', aud: 'sync' }),
    ];
    for (const token of tokens) {
      expect((await refusedHandshake(t.url, { auth: { token } })).message).toBe('unauthorized');
      const s = await connect(t.url);
      expect(await emitAck(s, 'sync:join', { token })).toMatchObject({ success: false, code: 'UNAUTHENTICATED' });
    }
  });
});

describe('AUTH_MODE=dev', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({}, 'auth_dev');
    expect(t.config.auth.mode).toBe('dev');
  });
  afterAll(() => t?.close());

  it('sync:join accepts a bare userId', async () => {
    const s = await connect(t.url);
    expect(await emitAck(s, 'sync:join', { userId: 'alice' })).toMatchObject({ success: true, userId: 'alice' });
    expect(await emitAck(s, 'sync:join', { userId: 'alice' })).toMatchObject({ success: true, userId: 'alice' });
    expect(await emitAck(s, 'sync:join', { userId: 'bob' })).toMatchObject({ success: false, code: 'FORBIDDEN' });
  });

  it('refuses unusable userIds', async () => {
    const s = await connect(t.url);
    for (const userId of ['', 123, { $gt: '' }, 'x'.repeat(300), 'a\nb']) {
      const ack = await emitUntyped(s, 'sync:join', { userId });
      expect(ack.success).toBe(false);
      expect(['UNAUTHENTICATED', 'INVALID_PAYLOAD']).toContain(ack.code);
    }
  });

  it('still refuses a handshake with an invalid token', async () => {
    expect((await refusedHandshake(t.url, { auth: { token: 'garbage' } })).message).toBe('unauthorized');
    expect((await refusedHandshake(t.url, { auth: { token: unsigned({ sub: 'x' }) } })).message).toBe('unauthorized');
  });
});

describe('production: /stats and /metrics are admin-only', () => {
  let t: TestApp;
  let dir: string;
  const admin = { issuer: undefined, expiresIn: '1h' };

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'auth-prod-'));
    const rules = path.join(dir, 'rules.json');
    fs.writeFileSync(rules, JSON.stringify({ default: { read: 'TRUEPREDICATE', write: 'TRUEPREDICATE' }, collections: {} }));
    t = await startTestApp(
      {
        NODE_ENV: 'production',
        AUTH_JWT_SECRET: TEST_SECRET,
        SYNC_RULES_FILE: rules,
        ALLOWED_ORIGINS: 'https://app.example',
        ADMIN_USER_IDS: 'root',
        ADMIN_CLAIM: 'https://sync.example/roles:sync-admin',
        AUTH_SERVICE_TOKEN: 'service-token-0123456789-0123456789',
      },
      'auth_prod',
    );
  });
  afterAll(async () => {
    await t?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses anonymous, invalid and non-admin callers', async () => {
    for (const p of ['/stats', '/metrics']) {
      await request(t.url).get(p).expect(401);
      await request(t.url).get(p).set('Authorization', 'Bearer garbage').expect(401);
      await request(t.url)
        .get(p)
        .set('Authorization', `Bearer ${await hs256({ sub: 'alice' }, admin)}`)
        .expect(403);
      await request(t.url)
        .get(p)
        .set('Authorization', `Bearer ${await hs256({ sub: 'root' }, { ...admin, secret: 'forged-forged-forged-forged-forged-xx' })}`)
        .expect(401);
    }
  });

  it('lets admins by configuration and the service token in', async () => {
    await request(t.url)
      .get('/stats')
      .set('Authorization', `Bearer ${await hs256({ sub: 'root' }, admin)}`)
      .expect(200);
    await request(t.url)
      .get('/stats')
      .set('Authorization', `Bearer ${await hs256({ sub: 'ops', 'https://sync.example/roles': ['sync-admin'] }, admin)}`)
      .expect(200);
    await request(t.url).get('/metrics').set('Authorization', 'Bearer service-token-0123456789-0123456789').expect(200);
  });

  it('attack: a token that calls itself admin is not one (finding 8): /stats, /metrics and /api/changes stay closed', async () => {
    const selfMade = [{ role: 'admin' }, { roles: ['admin'] }, { admin: true }, { roles: ['sync-admin'] }, { 'https://sync.example/roles': 'other' }];
    const change = {
      changeId: 'forged-admin-1',
      collection: 'tasks',
      documentId: 'forged-1',
      operation: 'insert',
      data: { owner: 'alice' },
      timestamp: Date.now(),
    };
    for (const claims of selfMade) {
      const bearer = `Bearer ${await hs256({ sub: 'mallory', ...claims }, admin)}`;
      await request(t.url).get('/stats').set('Authorization', bearer).expect(403);
      await request(t.url).get('/metrics').set('Authorization', bearer).expect(403);
      await request(t.url)
        .post('/api/changes')
        .set('Authorization', bearer)
        .send({ changes: [change] })
        .expect(403);
    }
    // the admin subject may ingest (nothing was written by mallory above)
    const ok = await request(t.url)
      .post('/api/changes')
      .set('Authorization', `Bearer ${await hs256({ sub: 'root' }, admin)}`)
      .send({ changes: [change] });
    expect(ok.status).toBeLessThan(300);
  });

  it('keeps the probes open', async () => {
    await request(t.url).get('/health').expect(200);
    await request(t.url).get('/ready').expect(200);
  });

  it('refuses sync:join without a token', async () => {
    const s = await connect(t.url);
    expect(await emitAck(s, 'sync:join', { userId: 'alice' })).toMatchObject({ success: false, code: 'UNAUTHENTICATED' });
  });
});
