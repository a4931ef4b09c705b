/**
 * Browser builds next to the SDK package:
 *
 * - buildClient bundles the SDK for a plain <script> (libs/client/src/browser.ts -> a global
 *   `SyncSdk`); scripts/build-sdk.ts runs it to make the package's dist/sync-client.global.js.
 * - copyDemoSdk copies that file from the built package (libs/client/dist) to
 *   public/demo/sync-client.js, which the server serves at /demo/sync-client.js for the demo page:
 *   the demo runs exactly what is published, as an app loading the package's <script> build would.
 * - buildReactExample bundles the React example (libs/client/examples/react/main.tsx) against the
 *   built package into public/demo/react/app.js, served at /demo/react/.
 *
 * Run by `npm run build` (after build:sdk, before `nest build`, which copies public/ into dist/public).
 *
 *   tsx scripts/build-client.ts [--no-minify]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { build, type Plugin } from 'esbuild';

export const ROOT = path.resolve(__dirname, '..');
/** Where the demo page loads the SDK from (public/demo/index.html: <script src="sync-client.js">). */
export const DEMO_SDK_FILE = path.join(ROOT, 'public', 'demo', 'sync-client.js');
/** The package's <script> build, as scripts/build-sdk.ts names it in dist/. */
export const GLOBAL_BUILD = 'sync-client.global.js';

/** Bundles the SDK's browser entry into one IIFE defining the global `SyncSdk`. */
export async function buildClient(opts: { outfile: string; minify?: boolean; sourcemap?: boolean }): Promise<string> {
  const outfile = opts.outfile;
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

/**
 * Copies the built package's <script> build (`<packageDir>/dist/sync-client.global.js`, default
 * libs/client) to the demo page (public/demo/sync-client.js, or `outfile`). The package must have
 * been built (npm run build:sdk).
 */
export function copyDemoSdk(opts: { packageDir?: string; outfile?: string } = {}): string {
  const from = path.join(opts.packageDir ?? path.join(ROOT, 'libs', 'client'), 'dist', GLOBAL_BUILD);
  const outfile = opts.outfile ?? DEMO_SDK_FILE;
  if (!fs.existsSync(from)) throw new Error(`${from} is missing: run npm run build:sdk first`);
  fs.mkdirSync(path.dirname(outfile), { recursive: true });
  // write-then-rename: a server serving the page meanwhile never sees half a file
  const tmp = `${outfile}.${process.pid}.tmp`;
  fs.copyFileSync(from, tmp);
  fs.renameSync(tmp, outfile);
  // a source map of an older build from the sources would no longer match
  fs.rmSync(`${outfile}.map`, { force: true });
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
  const minify = !argv.includes('--no-minify');
  Promise.resolve()
    .then(async () => {
      const f = copyDemoSdk();
      const r = await buildReactExample({ minify });
      return `${path.relative(process.cwd(), f)} (from libs/client/dist/${GLOBAL_BUILD}) and ${path.relative(process.cwd(), r)}`;
    })
    .then((f) => console.log(`demo SDK ready: ${f}`))
    .catch((e) => {
      console.error(e);
      process.exit(1);
    });
}
