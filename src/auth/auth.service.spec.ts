import { Logger } from '@nestjs/common';
import { createHmac } from 'node:crypto';
import { ErrorCode } from '@sync/protocol';
import { loadConfig } from '../config/config.loader';
import { MetricsService } from '../health/metrics.service';
import { hs256, JwksServer, makeKey, signWith, startJwksServer, TEST_SECRET, TestKey, unsigned } from '../../test/support/jwt';
import { AuthError, AuthService } from './auth.service';

Logger.overrideLogger(false);

function makeService(env: Record<string, string>) {
  const metrics = new MetricsService();
  const svc = new AuthService(loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', ...env }, '/nonexistent'), metrics);
  svc.onModuleInit();
  return { svc, metrics };
}

/** A token whose protected header lists a critical extension, signed with the test secret. */
function critToken(): string {
  const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const head = enc({ alg: 'HS256', typ: 'JWT', crit: ['x-ext'], 'x-ext': true });
  const body = enc({ sub: 'a', iss: 'https://idp.example', aud: 'sync', exp: Math.floor(Date.now() / 1000) + 600 });
  const sig = createHmac('sha256', TEST_SECRET).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

async function failure(p: Promise<unknown>): Promise<AuthError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof AuthError) return e;
    throw e;
  }
  throw new Error('expected the token to be refused');
}

async function failureCounts(metrics: MetricsService): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await metrics.authFailures.get()).values) out[String(v.labels.reason)] = v.value;
  return out;
}

describe('AuthService with AUTH_JWT_SECRET (HS256)', () => {
  const { svc, metrics } = makeService({ AUTH_JWT_SECRET: TEST_SECRET, AUTH_JWT_ISSUER: 'https://idp.example', AUTH_JWT_AUDIENCE: 'sync' });
  const good = { issuer: 'https://idp.example', audience: 'sync', expiresIn: '1h' };

  it('accepts a valid token and takes the user from sub, then userId, then uid', async () => {
    const u = await svc.verifyToken(await hs256({ sub: 'alice', role: 'x' }, good));
    expect(u.id).toBe('alice');
    expect(u.claims.role).toBe('x');
    expect(u.expiresAt).toBeGreaterThan(Date.now());
    expect((await svc.verifyToken(await hs256({ userId: 'bob' }, good))).id).toBe('bob');
    expect((await svc.verifyToken(await hs256({ uid: 'carol' }, good))).id).toBe('carol');
  });

  it('tolerates a few seconds of clock skew on exp and nbf, not more', async () => {
    const now = Math.floor(Date.now() / 1000);
    expect((await svc.verifyToken(await hs256({ sub: 'a', nbf: now + 2 }, { ...good, expiresIn: now + 60 }))).id).toBe('a');
    expect((await svc.verifyToken(await hs256({ sub: 'a' }, { ...good, expiresIn: now - 1 }))).id).toBe('a');
    expect((await failure(svc.verifyToken(await hs256({ sub: 'a', nbf: now + 120 }, good)))).reason).toBe('not_yet_valid');
  });

  it.each([
    ['bad signature', () => hs256({ sub: 'a' }, { ...good, secret: 'another-secret-another-secret-another' }), 'bad_signature'],
    ['expired', () => hs256({ sub: 'a' }, { ...good, expiresIn: Math.floor(Date.now() / 1000) - 60 }), 'expired'],
    ['wrong issuer', () => hs256({ sub: 'a' }, { ...good, issuer: 'https://evil.example' }), 'wrong_issuer'],
    ['no issuer', () => hs256({ sub: 'a' }, { audience: 'sync' }), 'wrong_issuer'],
    ['wrong audience', () => hs256({ sub: 'a' }, { ...good, audience: 'other' }), 'wrong_audience'],
    ['alg none', async () => unsigned({ sub: 'a', iss: 'https://idp.example', aud: 'sync' }), 'alg_not_allowed'],
    ['not a JWT', async () => 'abc.def', 'malformed'],
    ['no subject', () => hs256({ name: 'a' }, good), 'no_subject'],
    ['control characters in the subject', () => hs256({ sub: 'a\u0000b' }, good), 'no_subject'],
    ['a numeric sub (RFC 7519: a string)', () => hs256({ sub: 42 } as never, good), 'no_subject'],
    ['a numeric uid (never converted)', () => hs256({ uid: 42 }, good), 'no_subject'],
    ['an empty sub', () => hs256({ sub: '' }, good), 'no_subject'],
    ['a bad sub next to a good userId (no fallback past a present sub)', () => hs256({ sub: 7, userId: 'alice' } as never, good), 'no_subject'],
    ['a validly signed token with a crit header it does not understand', async () => critToken(), 'crit_not_supported'],
    ['HS384', () => hs256({ sub: 'a' }, { ...good, header: { alg: 'HS384' } }).catch(() => 'eyJhbGciOiJIUzM4NCJ9.e30.x'), 'alg_not_allowed'],
    ['RS256 without a JWKS URL', async () => signWith(await makeKey('k'), { sub: 'a' }, good), 'alg_not_allowed'],
  ])('refuses %s', async (_name, make, reason) => {
    const e = await failure(svc.verifyToken(await make()));
    expect(e.code).toBe(ErrorCode.UNAUTHENTICATED);
    expect(e.reason).toBe(reason);
  });

  it('counts every failure by reason in the metrics', async () => {
    const counts = await failureCounts(metrics);
    expect(counts.bad_signature).toBeGreaterThanOrEqual(1);
    expect(counts.alg_not_allowed).toBeGreaterThanOrEqual(2);
  });

  it('logs failures without the token', async () => {
    const warn = jest.spyOn((svc as unknown as { logger: { warn: (m: string) => void } }).logger, 'warn');
    const token = await hs256({ sub: 'a' }, { ...good, secret: 'another-secret-another-secret-another' });
    await failure(svc.verifyToken(token, { via: 'join', ip: '10.0.0.1', socketId: 'abc' }));
    expect(warn).toHaveBeenCalledTimes(1);
    const line = String(warn.mock.calls[0][0]);
    expect(line).toMatch(/bad_signature.*join from 10\.0\.0\.1 socket abc/);
    for (const part of token.split('.')) expect(line).not.toContain(part);
    warn.mockRestore();
  });

  it('reads Authorization-style values', () => {
    expect(svc.parseCredential('Bearer abc')).toEqual({ kind: 'token', token: 'abc' });
    expect(svc.parseCredential('bearer   abc ')).toEqual({ kind: 'token', token: 'abc' });
    expect(svc.parseCredential('abc')).toEqual({ kind: 'token', token: 'abc' });
    expect(svc.parseCredential('Bearer ')).toEqual({ kind: 'absent' });
    expect(svc.parseCredential('')).toEqual({ kind: 'absent' });
    expect(svc.parseCredential(null)).toEqual({ kind: 'absent' });
    expect(svc.parseCredential({ a: 1 })).toEqual({ kind: 'invalid' });
    expect(svc.parseCredential('x'.repeat(20_000))).toEqual({ kind: 'invalid' });
  });

  it('refuses a bare userId outside dev mode', () => {
    expect(() => svc.devUser('alice')).toThrow(/token is required/);
  });
});

describe('AuthService with AUTH_JWKS_URL (RS256 / ES256)', () => {
  let jwks: JwksServer;
  let k1: TestKey;
  let k2: TestKey;
  let svc: AuthService;

  beforeAll(async () => {
    k1 = await makeKey('k1', 'RS256');
    k2 = await makeKey('k2', 'ES256');
    jwks = await startJwksServer([k1, k2]);
    svc = makeService({ AUTH_JWKS_URL: jwks.url, AUTH_JWKS_COOLDOWN_MS: '0', AUTH_JWKS_CACHE_MAX_AGE_MS: '60000' }).svc;
  });
  afterAll(async () => {
    jest.restoreAllMocks();
    await jwks.close();
  });

  it('accepts RS256 and ES256 tokens, fetching the key set once', async () => {
    expect((await svc.verifyToken(await signWith(k1, { sub: 'alice' }, { expiresIn: '1h' }))).id).toBe('alice');
    expect((await svc.verifyToken(await signWith(k2, { sub: 'bob' }, { expiresIn: '1h' }))).id).toBe('bob');
    expect(jwks.fetches).toBe(1);
  });

  it('refetches the key set when a token names an unknown kid (rotation)', async () => {
    const k3 = await makeKey('k3', 'RS256');
    jwks.keys = [k2, k3]; // k1 retired
    const before = jwks.fetches;
    expect((await svc.verifyToken(await signWith(k3, { sub: 'carol' }))).id).toBe('carol');
    expect(jwks.fetches).toBe(before + 1);
    expect((await failure(svc.verifyToken(await signWith(k1, { sub: 'alice' })))).reason).toBe('unknown_key');
  });

  it('refuses HS256 signed with the public key (algorithm confusion) and foreign keys', async () => {
    const confused = await hs256({ sub: 'alice' }, { secret: k2.publicPem });
    expect((await failure(svc.verifyToken(confused))).reason).toBe('alg_not_allowed');
    const foreign = await makeKey('k2', 'ES256'); // same kid, other key
    expect((await failure(svc.verifyToken(await signWith(foreign, { sub: 'alice' })))).reason).toBe('bad_signature');
    expect((await failure(svc.verifyToken(unsigned({ sub: 'alice' })))).reason).toBe('alg_not_allowed');
    expect((await failure(svc.verifyToken(await signWith(k2, { sub: 'a' }, { expiresIn: Math.floor(Date.now() / 1000) - 60 })))).reason).toBe('expired');
  });

  it('keeps using the last key set while the JWKS endpoint is down', async () => {
    jwks.down = true;
    const now = Date.now();
    jest.spyOn(Date, 'now').mockReturnValue(now + 120_000); // the cache is stale: a refetch is due
    try {
      expect((await svc.verifyToken(await signWith(k2, { sub: 'bob' }, { expiresIn: Math.floor(now / 1000) + 3600 }))).id).toBe('bob');
    } finally {
      jest.restoreAllMocks();
      jwks.down = false;
    }
  });

  it('answers UNAVAILABLE when the key set cannot be fetched at all', async () => {
    const dead = await startJwksServer([]);
    dead.down = true;
    const { svc: s } = makeService({ AUTH_JWKS_URL: dead.url });
    const e = await failure(s.verifyToken(await signWith(k1, { sub: 'alice' })));
    expect(e.code).toBe(ErrorCode.UNAVAILABLE);
    expect(e.reason).toBe('jwks_unavailable');
    await dead.close();
  });
});

describe('AuthService in AUTH_MODE=dev without a verifier', () => {
  const { svc } = makeService({});

  it('accepts a bare userId and reads (without trusting) a token', async () => {
    expect(svc.devMode).toBe(true);
    expect(svc.devUser('alice')).toMatchObject({ id: 'alice', insecure: true });
    expect(() => svc.devUser('')).toThrow(AuthError);
    expect(() => svc.devUser({ $gt: '' })).toThrow(AuthError);
    const u = await svc.verifyToken(await hs256({ sub: 'bob' }, { secret: 'whatever-secret-whatever-secret-xx' }));
    expect(u).toMatchObject({ id: 'bob', insecure: true });
    expect((await failure(svc.verifyToken(unsigned({ sub: 'x' })))).reason).toBe('alg_not_allowed');
    expect((await failure(svc.verifyToken('garbage'))).reason).toBe('malformed');
  });
});
