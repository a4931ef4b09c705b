import { buildAsyncApi } from '@sync/protocol/schemas/asyncapi';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const pkg = require('../../package.json') as { version: string };

export const PACKAGE_VERSION = pkg.version;

/** The AsyncAPI document as committed in docs/asyncapi.json (stable key order, trailing newline). */
export function asyncApiJson(): string {
  return JSON.stringify(buildAsyncApi(pkg.version), null, 2) + '\n';
}
