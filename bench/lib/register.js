/* A require hook that compiles the server's TypeScript on the fly with SWC, with the same options the
 * test suites use (@swc/jest in jest.config.js): legacy decorators WITH decorator metadata, which
 * Nest's dependency injection needs and esbuild-based loaders (tsx) do not emit. It also maps the
 * `@sync/*` path aliases of tsconfig.json. Usage: node -r ./bench/lib/register.js src/main.ts */
'use strict';
const path = require('node:path');
const Module = require('node:module');
const { addHook } = require('pirates');
const swc = require('@swc/core');

const root = path.resolve(__dirname, '..', '..');
const aliases = {
  '@sync/protocol': path.join(root, 'libs/protocol/src'),
  '@sync/client': path.join(root, 'libs/client/src'),
};

const originalResolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  for (const [alias, target] of Object.entries(aliases)) {
    if (request === alias) return originalResolve.call(this, target, ...rest);
    if (request.startsWith(alias + '/')) return originalResolve.call(this, target + request.slice(alias.length), ...rest);
  }
  return originalResolve.call(this, request, ...rest);
};

addHook(
  (code, filename) =>
    swc.transformSync(code, {
      filename,
      sourceMaps: 'inline',
      jsc: {
        parser: { syntax: 'typescript', decorators: true },
        transform: { legacyDecorator: true, decoratorMetadata: true },
        target: 'es2022',
        keepClassNames: true,
      },
      module: { type: 'commonjs' },
    }).code,
  { exts: ['.ts'], ignoreNodeModules: true },
);
require('source-map-support').install({ environment: 'node', hookRequire: false });
