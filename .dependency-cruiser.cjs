/*
 * The dependency rule of ../shared STYLE.md ("Layout"), checked by `npm run lint:deps`.
 *
 * Layers of src/, a change's road from top to bottom; a folder imports lower layers (and, without a
 * cycle, folders of its own layer):
 *   gateway                                              (the socket and REST edge)
 *   sync, subscription, auth, limits                     (application)
 *   feed, delivery, conflict, permission, audit, schemas (domain)
 *   database, metrics, config, telemetry                 (infrastructure, leaves)
 * Beside them: cluster and integrations implement ports of delivery (only the app assembly and the
 * top folders import them); health and console are the top and may import anything; src/*.ts (main,
 * bootstrap, the app module) assemble everything. common/ counts as a leaf until the restructuring
 * empties it. libs/protocol is shared with the client: no Nest, no MongoDB; libs/ never imports src/.
 */
const APP = 'sync|subscription|auth|limits';
const DOMAIN = 'feed|delivery|conflict|permission|audit|schemas';
const INFRA = 'database|metrics|config|telemetry|common';
const TOP = 'health|console';
const SIDE = `cluster|integrations|${TOP}`;

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-folder-cycles',
      severity: 'error',
      comment: 'The folders of src/ form no cycle (a cycle makes the road of a change unreadable and the modules inseparable).',
      scope: 'folder',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'no-module-cycles',
      severity: 'error',
      comment: 'No file reaches itself through its imports.',
      from: { path: '^(src|libs)/' },
      to: { circular: true },
    },
    {
      name: 'libs-not-to-src',
      severity: 'error',
      comment: 'libs/ (the protocol, the client SDK) is shipped without the server: it never imports src/.',
      from: { path: '^libs/' },
      to: { path: '^src/' },
    },
    {
      name: 'client-not-to-src',
      severity: 'error',
      comment: 'The client SDK talks to the server through libs/protocol only.',
      from: { path: '^libs/client/' },
      to: { path: '^(src|test|bench)/' },
    },
    {
      name: 'protocol-no-frameworks',
      severity: 'error',
      comment: 'libs/protocol runs in browsers and in the SDK: no Nest, Mongoose, MongoDB, Socket.IO server or Node-only database code.',
      from: { path: '^libs/protocol/' },
      to: { path: '(^|/)node_modules/(@nestjs/|mongoose|mongodb|bson|socket\\.io/|ioredis)' },
    },
    {
      name: 'protocol-no-client',
      severity: 'error',
      comment: 'The protocol is below the client: the client imports it, never the reverse.',
      from: { path: '^libs/protocol/' },
      to: { path: '^libs/client/' },
    },
    {
      name: 'layer-infrastructure-is-a-leaf',
      severity: 'error',
      comment: 'database, metrics and config import no other folder of src/.',
      from: { path: `^src/(${INFRA})/` },
      to: { path: `^src/(gateway|${APP}|${DOMAIN}|${SIDE})/` },
    },
    {
      name: 'layer-domain-not-up',
      severity: 'error',
      comment: 'feed, delivery, conflict, permission and audit import only each other (acyclically) and the leaves.',
      from: { path: `^src/(${DOMAIN})/` },
      to: { path: `^src/(gateway|${APP}|${SIDE})/` },
    },
    {
      name: 'layer-application-not-up',
      severity: 'error',
      comment: 'sync, subscription, auth and limits never import the gateway, cluster, integrations or health.',
      from: { path: `^src/(${APP})/` },
      to: { path: `^src/(gateway|${SIDE})/` },
    },
    {
      name: 'auth-limits-only-leaves',
      severity: 'error',
      comment: 'auth and limits import only their own folder, config, metrics (and common) and the protocol.',
      from: { path: '^src/(auth|limits)/' },
      to: { path: '^src/', pathNot: '^src/($1|config|metrics|common)/' },
    },
    {
      name: 'pure-core-no-io',
      severity: 'error',
      comment: 'conflict and permission are pure: no database, no driver, no network.',
      from: { path: '^src/(conflict|permission)/' },
      to: { path: ['^src/database/', '(^|/)node_modules/(mongoose|mongodb|@nestjs/mongoose|ioredis|socket\\.io)'] },
    },
    {
      name: 'adapters-from-the-top-only',
      severity: 'error',
      comment: 'cluster and integrations (vendor adapters chosen by config) are imported only by the app assembly and the top folders.',
      from: { path: '^src/', pathNot: `^src/([^/]+\\.ts$|${TOP}/|cluster/|integrations/)` },
      to: { path: '^src/(cluster|integrations)/' },
    },
    {
      name: 'not-to-tests',
      severity: 'error',
      comment: 'Shipped code never imports tests, the benchmark or examples.',
      from: { path: '^(src|libs)/', pathNot: '\\.spec\\.ts$|^libs/client/examples/' },
      to: { path: '^(test|bench|examples)/|\\.spec\\.ts$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // unit specs sit next to their files and may reach across folders for fixtures
    exclude: { path: ['^(dist|\\.tools|coverage)/', '\\.spec\\.ts$'] },
    // type-only imports count: they couple folders as much as the others
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'] },
    reporterOptions: {
      archi: { collapsePattern: '^src/[^/]+/|^libs/[^/]+/' },
    },
  },
};
