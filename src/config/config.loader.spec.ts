import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, loadConfig } from './config.loader';

const NO_DIR = '/nonexistent-config-dir';
const secret = 'a'.repeat(40);

function problems(env: Record<string, string>, dir = NO_DIR): string[] {
  try {
    loadConfig(env, dir);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  return [];
}

describe('loadConfig', () => {
  it('has the protocol defaults in development', () => {
    const c = loadConfig({}, NO_DIR);
    expect(c.server.port).toBe(3000);
    expect(c.env).toBe('development');
    expect(c.auth.mode).toBe('dev');
    expect(c.limits.maxConnectionsPerUser).toBe(100);
    expect(c.limits.maxConnectionsPerIp).toBe(500);
    expect(c.limits.rateLimitMax).toBe(50);
    expect(c.limits.rateLimitWindowMs).toBe(10000);
    expect(c.limits.maxChangeBytes).toBe(256 * 1024);
    expect(c.limits.maxBatchSize).toBe(500);
    expect(c.sync.maxClockSkewMs).toBe(60000);
    expect(c.sync.bootstrapPageSize).toBe(500);
    expect(c.sync.changeRetentionDays).toBe(30);
    expect(c.sync.conflictStrategy).toBe('lww');
    expect(c.scale.webPubSubHub).toBe('Hub');
    expect(c.server.corsOrigins).toBe('*');
  });

  it('uses the production defaults for limits', () => {
    const rules = path.join(os.tmpdir(), `rules-${process.pid}.json`);
    fs.writeFileSync(rules, '{}');
    const c = loadConfig({ NODE_ENV: 'production', AUTH_JWT_SECRET: secret, SYNC_RULES_FILE: rules, ALLOWED_ORIGINS: 'https://a.example' }, NO_DIR);
    expect(c.limits.maxConnectionsPerUser).toBe(10);
    expect(c.limits.maxConnectionsPerIp).toBe(50);
    expect(c.limits.rateLimitDisabled).toBe(false);
    expect(c.server.corsOrigins).toEqual(['https://a.example']);
    fs.rmSync(rules);
  });

  it('lists every problem at once', () => {
    const p = problems({ PORT: 'abc', MAX_BATCH_SIZE: '-1', CONFLICT_STRATEGY: 'random', RATE_LIMIT_DISABLED: 'maybe', LOG_LEVEL: 'loud' });
    expect(p.join('\n')).toMatch(/PORT/);
    expect(p.join('\n')).toMatch(/MAX_BATCH_SIZE/);
    expect(p.join('\n')).toMatch(/CONFLICT_STRATEGY/);
    expect(p.join('\n')).toMatch(/RATE_LIMIT_DISABLED: expected true or false/);
    expect(p.join('\n')).toMatch(/LOG_LEVEL/);
    expect(p.length).toBe(5);
  });

  it('refuses an unsafe production configuration', () => {
    const p = problems({ NODE_ENV: 'production', AUTH_MODE: 'dev' }).join('\n');
    expect(p).toMatch(/AUTH_MODE.*refused/);
    expect(p).toMatch(/AUTH_JWT_SECRET or AUTH_JWKS_URL/);
    expect(p).toMatch(/SYNC_RULES_FILE/);
    expect(p).toMatch(/ALLOWED_ORIGINS/);
  });

  it('requires issuer and audience with a JWKS URL in production, and parses ADMIN_CLAIM', () => {
    const jwks = { NODE_ENV: 'production', AUTH_JWKS_URL: 'https://idp.example/jwks.json', ALLOWED_ORIGINS: 'https://x' };
    expect(problems(jwks).join()).toMatch(/AUTH_JWT_ISSUER and AUTH_JWT_AUDIENCE: required with AUTH_JWKS_URL/);
    expect(problems({ ...jwks, AUTH_JWT_ISSUER: 'https://idp.example' }).join()).toMatch(/(^|,)AUTH_JWT_AUDIENCE: required/);
    expect(problems({ ...jwks, AUTH_JWT_ISSUER: 'https://idp.example', AUTH_JWT_AUDIENCE: 'sync' }).join()).not.toMatch(/AUTH_JWT_(ISSUER|AUDIENCE)/);
    // JWKS alone leaves the server without a secret of its own: SERVER_SECRET is required then
    expect(problems({ ...jwks, AUTH_JWT_ISSUER: 'https://idp.example', AUTH_JWT_AUDIENCE: 'sync' }).join()).toMatch(/SERVER_SECRET: required/);
    expect(problems({ ...jwks, AUTH_JWT_ISSUER: 'i', AUTH_JWT_AUDIENCE: 'a', SERVER_SECRET: 'short' }).join()).toMatch(
      /SERVER_SECRET: must be at least 32 bytes/,
    );
    expect(problems({ AUTH_JWKS_URL: 'https://idp.example/jwks.json' }).join()).not.toMatch(/AUTH_JWT_ISSUER/); // development: a warning at most
    expect(problems({ ADMIN_CLAIM: 'roles' }).join()).toMatch(/ADMIN_CLAIM: expected <claim>:<value>/);
    expect(problems({ ADMIN_CLAIM: 'sub:root' }).join()).toMatch(/registered claim/);
    expect(loadConfig({ ADMIN_CLAIM: 'https://a.example/roles:sync-admin' }, NO_DIR).auth.adminClaim).toEqual({
      name: 'https://a.example/roles',
      value: 'sync-admin',
    });
    expect(loadConfig({}, NO_DIR).auth.adminClaim).toBeUndefined();
  });

  it('reads TRUST_PROXY as a boolean or a hop count', () => {
    expect(loadConfig({ TRUST_PROXY: 'true' }, NO_DIR).server).toMatchObject({ trustProxy: true, proxyHops: 1 });
    expect(loadConfig({ TRUST_PROXY: '2' }, NO_DIR).server).toMatchObject({ trustProxy: true, proxyHops: 2 });
    expect(loadConfig({ TRUST_PROXY: '0' }, NO_DIR).server).toMatchObject({ trustProxy: false, proxyHops: 0 });
    expect(loadConfig({}, NO_DIR).server).toMatchObject({ trustProxy: false, proxyHops: 0 });
    expect(problems({ TRUST_PROXY: 'maybe' }).join()).toMatch(/TRUST_PROXY: expected true, false or a number of proxies/);
  });

  it('refuses placeholder and short secrets, and hides secret values', () => {
    expect(problems({ AUTH_JWT_SECRET: 'your-secret-key-here' }).join()).toMatch(/placeholder/);
    expect(problems({ NODE_ENV: 'production', AUTH_JWT_SECRET: 'short', ALLOWED_ORIGINS: 'https://x' }).join()).toMatch(/at least 32 bytes/);
    expect(problems({ AUTH_JWKS_URL: 'not a url' }).join()).toMatch(/AUTH_JWKS_URL/);
  });

  it('merges config/<NODE_ENV>.json under the environment', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfg-'));
    fs.writeFileSync(
      path.join(dir, 'development.json'),
      JSON.stringify({
        server: { port: 4100, corsOrigins: ['https://a.example', 'https://b.example'] },
        sync: { maxBatchSize: 100, changeRetentionDays: 7, enableOptimisticLocking: true },
        mongodb: { poolSize: 7, socketTimeoutMS: 1000 },
      }),
    );
    const c = loadConfig({ PORT: '4200' }, dir);
    expect(c.server.port).toBe(4200); // env wins
    expect(c.server.corsOrigins).toEqual(['https://a.example', 'https://b.example']);
    expect(c.limits.maxBatchSize).toBe(100);
    expect(c.sync.changeRetentionDays).toBe(7);
    expect(c.mongodb.poolSize).toBe(7);
    expect(c.mongodb.socketTimeoutMS).toBe(1000);
    fs.writeFileSync(path.join(dir, 'development.json'), JSON.stringify({ server: { prot: 1 }, sink: {} }));
    expect(problems({}, dir).join('\n')).toMatch(/unknown key "server.prot"[\s\S]*unknown section "sink"/);
    fs.writeFileSync(path.join(dir, 'development.json'), '{ nope');
    expect(problems({}, dir).join()).toMatch(/not valid JSON/);
    fs.rmSync(dir, { recursive: true });
  });
});
