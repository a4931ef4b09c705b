/**
 * Writes TypeScript types for the SDK from the collection schemas (docs/SCHEMAS.md).
 *
 *   npm run schema:types -- [--schemas config/schemas.json] [--rules config/rules.json] [--out src/sync-types.ts]
 *
 * Without flags it reads SYNC_SCHEMAS_FILE and SYNC_RULES_FILE and prints to stdout.
 */
import * as fs from 'node:fs';
import { generateSchemaTypes } from '../src/schemas/schema-types';

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main() {
  const schemasFile = flag('schemas') ?? process.env.SYNC_SCHEMAS_FILE;
  const rulesFile = flag('rules') ?? process.env.SYNC_RULES_FILE;
  if (!schemasFile && !rulesFile) throw new Error('no schemas: pass --schemas <file> or --rules <file> (or set SYNC_SCHEMAS_FILE)');
  const text = await generateSchemaTypes({ schemasFile, rulesFile });
  const out = flag('out');
  if (out) {
    fs.writeFileSync(out, text);
    console.error(`wrote ${out}`);
  } else process.stdout.write(text);
}

main().catch((e) => {
  console.error((e as Error).message);
  process.exit(1);
});
