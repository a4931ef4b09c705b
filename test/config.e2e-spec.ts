import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

/** The real entry point refuses bad configuration with every problem listed, and exits. */
describe('server start-up with invalid configuration', () => {
  it('exits with code 78 and lists every problem', () => {
    const root = path.join(__dirname, '..');
    const res = spawnSync(process.execPath, ['-r', 'tsx/cjs', path.join(root, 'src', 'main.ts')], {
      cwd: root,
      env: { PATH: process.env.PATH, NODE_ENV: 'production', PORT: 'seventy', AUTH_JWT_SECRET: 'changeme', MAX_BATCH_SIZE: '0' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(res.status).toBe(78);
    expect(res.stderr).toMatch(/Invalid configuration/);
    expect(res.stderr).toMatch(/PORT/);
    expect(res.stderr).toMatch(/MAX_BATCH_SIZE/);
    expect(res.stderr).not.toMatch(/changeme/);
  });
});

/** Finding 7: a JWKS key set is often shared by many apps (Firebase, Google): issuer and audience pin ours. */
describe('production with AUTH_JWKS_URL', () => {
  it('refuses to start without AUTH_JWT_ISSUER and AUTH_JWT_AUDIENCE, naming both', () => {
    const root = path.join(__dirname, '..');
    const res = spawnSync(process.execPath, ['-r', 'tsx/cjs', path.join(root, 'src', 'main.ts')], {
      cwd: root,
      env: {
        PATH: process.env.PATH,
        NODE_ENV: 'production',
        AUTH_JWKS_URL: 'https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com',
        SYNC_RULES_FILE: path.join(root, 'package.json'), // exists; the rules are not read before validation fails
        ALLOWED_ORIGINS: 'https://app.example',
        MONGODB_URI: 'mongodb://127.0.0.1:9/none',
      },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(res.status).toBe(78);
    expect(res.stderr).toMatch(/AUTH_JWT_ISSUER and AUTH_JWT_AUDIENCE: required with AUTH_JWKS_URL/);
  });
});
