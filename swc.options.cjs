/* How TypeScript is compiled outside `nest build`: by the test runner (@swc/jest, jest.config.js) and by
 * the require hook that runs the server from source (bench/lib/register.js, used by the bench and the
 * crash tests), so both run exactly the same code. Legacy decorators WITH decorator metadata (Nest's
 * dependency injection needs it; esbuild-based loaders such as tsx do not emit it). `aliases` are the
 * `@sync/*` paths of tsconfig.json, as folders from the repository root. */
'use strict';

const swcOptions = {
  jsc: {
    parser: { syntax: 'typescript', decorators: true },
    transform: { legacyDecorator: true, decoratorMetadata: true },
    target: 'es2022',
    keepClassNames: true,
  },
  module: { type: 'commonjs' },
};

const aliases = {
  '@sync/protocol': 'libs/protocol/src',
  '@sync/client': 'libs/client/src',
};

module.exports = { swcOptions, aliases };
