/**
 * Bundles the client SDK for browsers (libs/client/src/browser.ts -> a global `SyncSdk`) into
 * public/demo/sync-client.js, which the server serves at /demo/sync-client.js next to the demo page
 * (the same file the package ships as dist/sync-client.global.js), and the React example
 * (libs/client/examples/react/main.tsx) into public/demo/react/app.js, served at /demo/react/.
 * Run by `npm run build` (after build:sdk, before `nest build`, which copies public/ into dist/public).
 *
 *   tsx scripts/build-client.ts [--outfile path] [--no-minify]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { build, type Plugin } from 'esbuild';

export const ROOT = path.resolve(__dirname, '..');
export const DEFAULT_OUTFILE = path.join(ROOT, 'public', 'demo', 'sync-client.js');

export async function buildClient(opts: { outfile?: string; minify?: boolean; sourcemap?: boolean } = {}): Promise<string> {
  const outfile = opts.outfile ?? DEFAULT_OUTFILE;
  await build({
    entryPoints: [path.join(ROOT, 'libs', 'client', 'src', 'browser.ts')],
    outfile,
    bundle: true,
    format: 'iife',
    globalName: 'SyncSdk',
    platform: 'browser',
    target: ['es2020'],
    minify: opts.minify ?? true,
    sourcemap: opts.sourcemap ?? true,
    legalComments: 'none',
    logLevel: 'warning',
    tsconfig: path.join(ROOT, 'tsconfig.json'),
  });
  return outfile;
}

export const REACT_OUTFILE = path.join(ROOT, 'public', 'demo', 'react', 'app.js');

/**
 * Resolves the package's name the way an installed copy would be: to the built package in
 * libs/client/dist (browser entry), never to the sources.
 */
const builtPackage = (dist: string): Plugin => ({
  name: 'built-sdk-package',
  setup(b) {
    const files: Record<string, string> = { '@realm-sync/client': 'browser.mjs', '@realm-sync/client/react': 'react.mjs' };
    b.onResolve({ filter: /^@realm-sync\/client(\/react)?$/ }, (args) => {
      const file = path.join(dist, files[args.path]);
      if (!fs.existsSync(file)) throw new Error(`${file} is missing: run npm run build:sdk first`);
      return { path: file };
    });
  },
});

/** Bundles the React example app (React included) for /demo/react/. */
export async function buildReactExample(opts: { outfile?: string; minify?: boolean; packageDir?: string } = {}): Promise<string> {
  const outfile = opts.outfile ?? REACT_OUTFILE;
  await build({
    entryPoints: [path.join(ROOT, 'libs', 'client', 'examples', 'react', 'main.tsx')],
    outfile,
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: ['es2020'],
    jsx: 'automatic',
    minify: opts.minify ?? true,
    sourcemap: true,
    legalComments: 'none',
    logLevel: 'warning',
    define: { 'process.env.NODE_ENV': JSON.stringify(opts.minify === false ? 'development' : 'production') },
    // the app's own dependencies (react, socket.io-client) come from this repository's node_modules
    nodePaths: [path.join(ROOT, 'node_modules')],
    plugins: [builtPackage(path.join(opts.packageDir ?? path.join(ROOT, 'libs', 'client'), 'dist'))],
    tsconfig: path.join(ROOT, 'tsconfig.json'),
  });
  return outfile;
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  const i = argv.indexOf('--outfile');
  const minify = !argv.includes('--no-minify');
  buildClient({ outfile: i >= 0 ? path.resolve(argv[i + 1]) : undefined, minify })
    .then(async (f) => {
      const r = await buildReactExample({ minify });
      return `${path.relative(process.cwd(), f)} and ${path.relative(process.cwd(), r)}`;
    })
    .then((f) => console.log(`client SDK bundled into ${f}`))
    .catch((e) => {
      console.error(e);
      process.exit(1);
    });
}
