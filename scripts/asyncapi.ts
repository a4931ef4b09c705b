/**
 * Writes docs/asyncapi.json, the AsyncAPI 3.0 document of the Socket.IO protocol, from the zod
 * schemas in libs/protocol/src/schemas (the server serves the same document at /asyncapi.json).
 *
 *   npm run docs:asyncapi            write it
 *   npm run docs:asyncapi -- --check exit 1 when the committed file is stale
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { asyncApiJson } from '../src/console/api-docs';

const file = path.resolve(__dirname, '..', 'docs', 'asyncapi.json');
const text = asyncApiJson();
if (process.argv.includes('--check')) {
  const current = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  if (current !== text) {
    console.error('docs/asyncapi.json is stale: run npm run docs:asyncapi');
    process.exit(1);
  }
} else {
  fs.writeFileSync(file, text);
  console.log(`wrote ${path.relative(process.cwd(), file)}`);
}
