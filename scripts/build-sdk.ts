/**
 * Builds the installable SDK package in libs/client/dist (`npm run build:sdk`; then
 * `npm run pack:sdk`, or `npm pack ./libs/client`, makes the tarball):
 *
 *   dist/index.mjs, index.cjs        Node (FileStorage, IndexedDbStorage, MemoryStorage, KeyValueStorage)
 *   dist/browser.mjs, browser.cjs    browsers and React Native (no node: modules)
 *   dist/react.mjs, react.cjs        the React bindings (`@realm-sync/client/react`)
 *   dist/sync-client.global.js       a <script> build defining the global `SyncSdk`
 *   dist/types/                      declarations, emitted by tsc
 *
 * The protocol library (libs/protocol) is bundled in; socket.io-client and zod (dependencies: the
 * SDK checks what it sends and receives with the protocol's zod schemas) and react (a peer
 * dependency) are not. The <script> build bundles everything but react.
 *
 * With `packageDir`, the package (package.json, README.md, dist/) is assembled there instead, so
 * tests running in parallel never share a dist directory.
 *
 *   tsx scripts/build-sdk.ts [--no-types] [--package-dir DIR]
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { build, type BuildOptions } from 'esbuild';
import { buildClient } from './build-client';

export const ROOT = path.resolve(__dirname, '..');
export const SDK_DIR = path.join(ROOT, 'libs', 'client');
const SRC = path.join(SDK_DIR, 'src');

/** Builds the package; returns its directory (libs/client, or `packageDir`). */
export async function buildSdk(opts: { types?: boolean; packageDir?: string } = {}): Promise<string> {
  const pkgDir = opts.packageDir ? path.resolve(opts.packageDir) : SDK_DIR;
  const DIST = path.join(pkgDir, 'dist');
  fs.rmSync(DIST, { recursive: true, force: true });
  if (pkgDir !== SDK_DIR) {
    fs.mkdirSync(pkgDir, { recursive: true });
    for (const f of ['package.json', 'README.md']) fs.copyFileSync(path.join(SDK_DIR, f), path.join(pkgDir, f));
  }
  const common: BuildOptions = {
    bundle: true,
    target: ['es2020', 'node18'],
    // readable, unminified output: no source maps (they would triple the tarball)
    sourcemap: false,
    legalComments: 'none',
    logLevel: 'warning',
    external: ['socket.io-client', 'zod', 'zod/*', 'react', 'react/*'],
    tsconfig: path.join(ROOT, 'tsconfig.json'),
  };
  const entries: { name: string; file: string; platform: 'node' | 'browser' | 'neutral' }[] = [
    { name: 'index', file: 'index.ts', platform: 'node' },
    { name: 'browser', file: 'browser.ts', platform: 'browser' },
    { name: 'react', file: path.join('react', 'index.ts'), platform: 'neutral' },
  ];
  await Promise.all(
    entries.flatMap((e) =>
      (['esm', 'cjs'] as const).map((format) =>
        build({
          ...common,
          entryPoints: [path.join(SRC, e.file)],
          outfile: path.join(DIST, `${e.name}.${format === 'esm' ? 'mjs' : 'cjs'}`),
          format,
          platform: e.platform,
          ...(e.platform === 'neutral' ? { mainFields: ['module', 'main'] } : {}),
        }),
      ),
    ),
  );
  await buildClient({ outfile: path.join(DIST, 'sync-client.global.js'), minify: true, sourcemap: false });
  if (opts.types !== false) {
    const tsc = require.resolve('typescript/bin/tsc', { paths: [ROOT] });
    execFileSync(process.execPath, [tsc, '-p', path.join(SDK_DIR, 'tsconfig.build.json'), '--outDir', path.join(DIST, 'types')], { stdio: 'inherit' });
  }
  return pkgDir;
}

if (require.main === module) {
  const i = process.argv.indexOf('--package-dir');
  buildSdk({ types: !process.argv.includes('--no-types'), packageDir: i > 0 ? process.argv[i + 1] : undefined })
    .then((d) => console.log(`SDK package built in ${path.relative(process.cwd(), d) || '.'}/dist`))
    .catch((e) => {
      console.error(e);
      process.exit(1);
    });
}
