/**
 * Bundles the client SDK for browsers (libs/client/src/browser.ts -> a global `SyncSdk`) into
 * public/demo/sync-client.js, which the server serves at /demo/sync-client.js next to the demo page.
 * Run by `npm run build` (before `nest build`, which copies public/ into dist/public).
 *
 *   tsx scripts/build-client.ts [--outfile path] [--no-minify]
 */
import * as path from 'node:path';
import { build } from 'esbuild';

export const ROOT = path.resolve(__dirname, '..');
export const DEFAULT_OUTFILE = path.join(ROOT, 'public', 'demo', 'sync-client.js');

export async function buildClient(opts: { outfile?: string; minify?: boolean } = {}): Promise<string> {
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
    sourcemap: true,
    legalComments: 'none',
    logLevel: 'warning',
    tsconfig: path.join(ROOT, 'tsconfig.json'),
  });
  return outfile;
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  const i = argv.indexOf('--outfile');
  buildClient({ outfile: i >= 0 ? path.resolve(argv[i + 1]) : undefined, minify: !argv.includes('--no-minify') })
    .then((f) => console.log(`client SDK bundled into ${path.relative(process.cwd(), f)}`))
    .catch((e) => {
      console.error(e);
      process.exit(1);
    });
}
