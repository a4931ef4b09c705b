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
 * The protocol library (libs/protocol) is bundled in; socket.io-client (a dependency) and react (a
 * peer dependency) are not.
 *
 *   tsx scripts/build-sdk.ts [--no-types]
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { build, type BuildOptions } from 'esbuild';
import { buildClient } from './build-client';

export const ROOT = path.resolve(__dirname, '..');
export const SDK_DIR = path.join(ROOT, 'libs', 'client');
const SRC = path.join(SDK_DIR, 'src');
const DIST = path.join(SDK_DIR, 'dist');

export async function buildSdk(opts: { types?: boolean } = {}): Promise<string> {
  fs.rmSync(DIST, { recursive: true, force: true });
  const common: BuildOptions = {
    bundle: true,
    target: ['es2020', 'node18'],
    sourcemap: true,
    legalComments: 'none',
    logLevel: 'warning',
    external: ['socket.io-client', 'react', 'react/*'],
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
  await buildClient({ outfile: path.join(DIST, 'sync-client.global.js'), minify: true });
  if (opts.types !== false) {
    const tsc = require.resolve('typescript/bin/tsc', { paths: [ROOT] });
    execFileSync(process.execPath, [tsc, '-p', path.join(SDK_DIR, 'tsconfig.build.json')], { stdio: 'inherit' });
  }
  return DIST;
}

if (require.main === module) {
  buildSdk({ types: !process.argv.includes('--no-types') })
    .then((d) => console.log(`SDK package built in ${path.relative(process.cwd(), d)}`))
    .catch((e) => {
      console.error(e);
      process.exit(1);
    });
}
