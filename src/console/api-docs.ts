import { buildAsyncApi } from '@sync/protocol/schemas/asyncapi';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The project's package.json, from src/console (sources) or dist/src/console (the build). */
function readPackage(): { version: string } {
  for (let dir = __dirname, i = 0; i < 5; i++, dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string };
  }
  return { version: '0.0.0' };
}
const pkg = readPackage();

export const PACKAGE_VERSION = pkg.version;

/** The AsyncAPI document as committed in docs/asyncapi.json (stable key order, trailing newline). */
export function asyncApiJson(): string {
  return JSON.stringify(buildAsyncApi(pkg.version), null, 2) + '\n';
}
