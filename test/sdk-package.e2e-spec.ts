/* The SDK as an app developer gets it: `npm run build:sdk`, `npm pack`, `npm install <tarball>` in a
 * scratch app outside the repository, `tsc --strict` on that app (CommonJS, ESM, the React subpath
 * and README.md's client snippet), then the compiled app runs with node against a running server. */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { buildSdk } from '../scripts/build-sdk';
import { startTestApp, TestApp } from './support/app';

const run = promisify(execFile);
const ROOT = path.join(__dirname, '..');
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const NPM_CLI = process.env.npm_execpath && process.env.npm_execpath.endsWith('.js') ? process.env.npm_execpath : undefined;

/** Runs npm (the one on PATH, or the one that started this test). */
function npm(args: string[], cwd: string) {
  return NPM_CLI ? run(process.execPath, [NPM_CLI, ...args], { cwd, maxBuffer: 32 << 20 }) : run('npm', args, { cwd, maxBuffer: 32 << 20 });
}

const CJS_APP = `
import { FileStorage, SyncClient, SyncClientError, type InspectReport, type SyncDocument } from '@realm-sync/client';

async function main(): Promise<void> {
  const [url, user, dir] = process.argv.slice(2);
  const client = new SyncClient(url, user, new FileStorage(dir), { logger: null, transports: ['websocket'] });
  client.on('error', (e: Error) => console.error(e instanceof SyncClientError ? e.code : e.message));
  await client.subscribe('pkgtasks');
  await client.connect();
  await client.makeChange('insert', 'pkgtasks', 'from-cjs', { title: 'made by the CommonJS build', owner: user });
  await client.whenSynced();
  const docs: SyncDocument[] = client.getDocuments('pkgtasks');
  const report: InspectReport = client.inspect();
  console.log(JSON.stringify({ kind: 'cjs', pending: client.getPendingChangesCount(), ids: docs.map((d) => d._id), subs: report.subscriptions.map((s) => s.state) }));
  await client.close();
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
`;

const ESM_APP = `
import { MemoryStorage, SyncClient, KeyValueStorage, type KeyValueStore } from '@realm-sync/client';

const [url, user] = process.argv.slice(2);
const kv = new Map<string, string>();
const asyncStorage: KeyValueStore = {
  getItem: async (k) => kv.get(k) ?? null,
  setItem: async (k, v) => void kv.set(k, v),
  removeItem: async (k) => void kv.delete(k),
};
const client = new SyncClient(url, user, new KeyValueStorage(asyncStorage, user), { logger: null, transports: ['websocket'] });
await client.subscribe('pkgtasks');
await client.connect();
await client.makeChange('insert', 'pkgtasks', 'from-esm', { title: 'made by the ESM build', owner: user });
await client.whenSynced();
const ids = client.getDocuments('pkgtasks').map((d) => d._id);
console.log(JSON.stringify({ kind: 'esm', pending: client.getPendingChangesCount(), ids, unused: typeof MemoryStorage }));
await client.close();
`;

const REACT_APP = `
import { createElement } from 'react';
import { renderToString } from 'react-dom/server';
import { SyncClient } from '@realm-sync/client';
import { SyncProvider, useDocument, useQuery, useSyncStatus, type SyncStatus } from '@realm-sync/client/react';

const [url, user] = process.argv.slice(2);
const client = new SyncClient(url, user, null, { logger: null, transports: ['websocket'] });
await client.subscribe('pkgtasks');
await client.connect();

function Tasks() {
  const tasks = useQuery('pkgtasks', 'owner == $0', [user]);
  const first = useDocument('pkgtasks', 'from-cjs');
  const status: SyncStatus = useSyncStatus();
  return createElement('ul', { 'data-online': String(status.online), 'data-first': String(first?.title ?? '') },
    tasks.map((t) => createElement('li', { key: String(t._id) }, String(t.title))));
}
console.log(JSON.stringify({ kind: 'react', html: renderToString(createElement(SyncProvider, { client }, createElement(Tasks))) }));
await client.close();
`;

/** The first typescript code block of README.md's "Client SDK" section. */
function readmeSnippet(): string {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Client SDK'));
  const m = /```typescript\n([\s\S]*?)```/.exec(section);
  if (!m) throw new Error("no typescript block in README.md's Client SDK section");
  return m[1];
}

describe('the SDK as an npm package', () => {
  let t: TestApp;
  let scratch: string;
  let tarball: string;

  beforeAll(async () => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'sdk-app-'));
    // built in a directory of its own (other suites may be building libs/client/dist meanwhile)
    const pkgDir = await buildSdk({ packageDir: path.join(scratch, 'package') });
    const { stdout } = await npm(['pack', pkgDir, '--pack-destination', scratch, '--json'], ROOT);
    tarball = path.join(scratch, JSON.parse(stdout)[0].filename);
    fs.writeFileSync(path.join(scratch, 'package.json'), JSON.stringify({ name: 'scratch-app', private: true, version: '1.0.0' }));
    // react & co. come from the npm cache the repository's install filled (the registry otherwise)
    await npm(
      [
        'install',
        '--no-audit',
        '--no-fund',
        '--prefer-offline',
        tarball,
        'react@19',
        'react-dom@19',
        '@types/react@19',
        '@types/react-dom@19',
        '@types/node@20',
      ],
      scratch,
    );
    t = await startTestApp({ AUTH_MODE: 'dev' }, 'sdk_package');
  }, 300_000);
  afterAll(async () => {
    await t?.close();
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  });

  it('packs only the built package, with an exports map and no server dependency', async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(scratch, 'node_modules', '@realm-sync', 'client', 'package.json'), 'utf8'));
    expect(pkg.name).toBe('@realm-sync/client');
    expect(pkg.sideEffects).toBe(false);
    // zod: the SDK checks what it sends and receives with the protocol's schemas (the server's own)
    expect(Object.keys(pkg.dependencies)).toEqual(['socket.io-client', 'zod']);
    expect(Object.keys(pkg.exports)).toEqual(expect.arrayContaining(['.', './react', './browser']));
    const installed = fs.readdirSync(path.join(scratch, 'node_modules'));
    expect(installed).toEqual(expect.arrayContaining(['socket.io-client', 'zod']));
    for (const server of ['@nestjs', 'mongoose', 'mongodb', 'socket.io']) expect(installed).not.toContain(server);
    // the built SDK loads zod from its dependency, not a copy of its own
    const esm = fs.readFileSync(path.join(scratch, 'node_modules', '@realm-sync', 'client', 'dist', 'index.mjs'), 'utf8');
    expect(esm).toContain('from "zod/v4"');
    const files = fs.readdirSync(path.join(scratch, 'node_modules', '@realm-sync', 'client', 'dist'));
    expect(files).toEqual(expect.arrayContaining(['index.cjs', 'index.mjs', 'browser.mjs', 'react.mjs', 'react.cjs', 'sync-client.global.js', 'types']));
    expect(fs.existsSync(path.join(scratch, 'node_modules', '@realm-sync', 'client', 'src'))).toBe(false);
  });

  it('type-checks a strict app (CommonJS, ESM, React, and the README snippet), runs it and syncs with the server', async () => {
    fs.writeFileSync(path.join(scratch, 'app.cts'), CJS_APP);
    fs.writeFileSync(path.join(scratch, 'app.mts'), ESM_APP);
    fs.writeFileSync(path.join(scratch, 'react-app.mts'), REACT_APP);
    fs.writeFileSync(path.join(scratch, 'readme-snippet.mts'), `${readmeSnippet()}\nexport {};\n`);
    fs.writeFileSync(
      path.join(scratch, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          target: 'es2022',
          module: 'nodenext',
          moduleResolution: 'nodenext',
          outDir: 'out',
          types: ['node'],
          skipLibCheck: false,
        },
        files: ['app.cts', 'app.mts', 'react-app.mts', 'readme-snippet.mts'],
      }),
    );
    try {
      await run(process.execPath, [TSC, '-p', scratch], { cwd: scratch });
    } catch (e) {
      throw new Error(`tsc failed:\n${(e as { stdout?: string }).stdout ?? ''}${(e as { stderr?: string }).stderr ?? ''}`, { cause: e });
    }
    const user = `pkg-${Date.now()}`;
    const cjs = await run(process.execPath, [path.join(scratch, 'out', 'app.cjs'), t.url, user, path.join(scratch, 'data')], { cwd: scratch, timeout: 60_000 });
    const a = JSON.parse(cjs.stdout.trim().split('\n').pop()!);
    expect(a).toEqual({ kind: 'cjs', pending: 0, ids: ['from-cjs'], subs: ['bootstrapped'] });

    const esm = await run(process.execPath, [path.join(scratch, 'out', 'app.mjs'), t.url, user], { cwd: scratch, timeout: 60_000 });
    const b = JSON.parse(esm.stdout.trim().split('\n').pop()!);
    // the ESM app started empty (its own storage): it got the CommonJS app's document from the server
    expect(b).toEqual({ kind: 'esm', pending: 0, ids: ['from-cjs', 'from-esm'], unused: 'function' });

    const react = await run(process.execPath, [path.join(scratch, 'out', 'react-app.mjs'), t.url, user], { cwd: scratch, timeout: 60_000 });
    const html = JSON.parse(react.stdout.trim().split('\n').pop()!).html as string;
    expect(html).toContain('data-online="true"');
    expect(html).toContain('data-first="made by the CommonJS build"');
    expect(html).toContain('<li>made by the CommonJS build</li><li>made by the ESM build</li>');
  }, 180_000);
});
