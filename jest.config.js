/* Two projects: fast unit specs next to the code, and e2e suites that boot the real app
 * against a real MongoDB-wire database (embedded FerretDB unless MONGODB_URI is set). */
const { swcOptions, aliases } = require('./swc.options.cjs');

const swc = ['@swc/jest', swcOptions];
/** `@sync/protocol` and `@sync/protocol/…` (and the same for every alias) to their folders. */
const moduleNameMapper = Object.fromEntries(
  Object.entries(aliases).flatMap(([alias, dir]) => [
    [`^${alias}$`, `<rootDir>/${dir}`],
    [`^${alias}/(.*)$`, `<rootDir>/${dir}/$1`],
  ]),
);
const common = {
  rootDir: __dirname,
  transform: { '^.+\\.(t|j)s$': swc },
  moduleFileExtensions: ['ts', 'js', 'json'],
  moduleNameMapper,
  testEnvironment: 'node',
};
module.exports = {
  maxWorkers: process.env.JEST_MAX_WORKERS || 2,
  testTimeout: 60000,
  collectCoverageFrom: ['src/**/*.ts', 'libs/**/*.ts', '!**/*.spec.ts', '!**/examples/**'],
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/src/**/*.spec.ts', '<rootDir>/libs/**/*.spec.ts', '<rootDir>/bench/**/*.spec.ts'] },
    {
      ...common,
      displayName: 'e2e',
      testMatch: ['<rootDir>/test/**/*.e2e-spec.ts'],
      globalSetup: '<rootDir>/test/support/global-setup.ts',
      globalTeardown: '<rootDir>/test/support/global-teardown.ts',
      slowTestThreshold: 30,
    },
  ],
};
