/* Summarises .cpuprofile files (from `node --cpu-prof` or `npm run bench -- --profile`):
 *   npx tsx bench/profile.ts <file.cpuprofile> [more files] [--top=N] */
import * as path from 'node:path';
import { formatProfileSummary, summarizeProfileFile } from './lib/cpuprofile';

const args = process.argv.slice(2);
const top = Number(/^--top=(\d+)$/.exec(args.find((a) => a.startsWith('--top=')) ?? '')?.[1] ?? 20);
const files = args.filter((a) => !a.startsWith('--'));
if (!files.length) {
  console.error('usage: npx tsx bench/profile.ts <file.cpuprofile> [...] [--top=N]');
  process.exit(2);
}
for (const f of files) {
  console.log(`# ${f}`);
  console.log(formatProfileSummary(summarizeProfileFile(f, path.resolve(__dirname, '..'), top)));
  console.log();
}
