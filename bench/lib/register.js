/* A require hook that compiles the server's TypeScript on the fly with SWC, with the options the test
 * suites use (both from swc.options.cjs: legacy decorators WITH decorator metadata, which Nest's
 * dependency injection needs and esbuild-based loaders (tsx) do not emit). It also maps the `@sync/*`
 * path aliases of tsconfig.json. Usage: node -r ./bench/lib/register.js src/main.ts */
'use strict';
const path = require('node:path');
const Module = require('node:module');
const { addHook } = require('pirates');
const swc = require('@swc/core');

const root = path.resolve(__dirname, '..', '..');
const shared = require(path.join(root, 'swc.options.cjs'));
const aliases = Object.fromEntries(Object.entries(shared.aliases).map(([alias, dir]) => [alias, path.join(root, dir)]));

const originalResolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  for (const [alias, target] of Object.entries(aliases)) {
    if (request === alias) return originalResolve.call(this, target, ...rest);
    if (request.startsWith(alias + '/')) return originalResolve.call(this, target + request.slice(alias.length), ...rest);
  }
  return originalResolve.call(this, request, ...rest);
};

addHook((code, filename) => swc.transformSync(code, { ...shared.swcOptions, filename, sourceMaps: 'inline' }).code, { exts: ['.ts'], ignoreNodeModules: true });
require('source-map-support').install({ environment: 'node', hookRequire: false });
