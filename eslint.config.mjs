// ESLint (flat config) with typescript-eslint's type-aware rules, after immich's server/eslint.config.mjs:
// a promise is awaited, returned or explicitly voided; a promise is never passed where a callback's
// result is ignored; a switch over a union handles every member. Formatting is Prettier's job
// (npm run lint:format), the folder rule dependency-cruiser's (npm run lint:deps).
import js from '@eslint/js';
import reactHooks from 'eslint-plugin-react-hooks';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'node_modules/',
      'dist/',
      'libs/client/dist/',
      '.tools/',
      'coverage/',
      'bench/results/',
      'public/demo/sync-client.js*',
      'public/demo/react/app.js*',
      '**/*.d.ts',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.tsx'],
    languageOptions: {
      globals: { ...globals.node },
      // client/example.ts and the scripts are outside tsconfig.json's include: linted with the default project
      parserOptions: {
        projectService: { allowDefaultProject: ['client/*.ts', 'scripts/asyncapi.ts', 'scripts/schema-types.ts', 'scripts/query-generator-stats.ts'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      // the code says what it ignores with a leading underscore
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true }],
      'no-console': 'error',
      // the validators refuse control characters on purpose (ids, names, claims)
      'no-control-regex': 'off',
    },
  },
  {
    // the SDK's React bindings and their examples: the rules of hooks
    files: ['libs/client/src/react/**', '**/*.tsx'],
    plugins: { 'react-hooks': reactHooks },
    rules: { 'react-hooks/rules-of-hooks': 'error', 'react-hooks/exhaustive-deps': 'warn' },
  },
  {
    // the benchmark, the scripts and the examples talk to people on the console
    files: ['bench/**', 'scripts/**', 'client/**', '**/examples/**', 'examples/**'],
    rules: { 'no-console': 'off' },
  },
  {
    // tests and the load generator handle raw wire payloads (`any`) and print diagnostics
    files: ['test/**', '**/*.spec.ts', 'bench/**'],
    linterOptions: { reportUnusedDisableDirectives: 'off' },
    rules: { 'no-console': 'off', '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    // CommonJS helpers (require hooks, jest config) and Node scripts
    files: ['**/*.js', '**/*.cjs', '**/*.mjs'],
    languageOptions: { globals: { ...globals.node } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // the demo page: a browser module that gets the SDK bundle as a global
    files: ['public/demo/**/*.js'],
    languageOptions: { sourceType: 'module', globals: { ...globals.browser, SyncSdk: 'readonly' } },
  },
  {
    // the operator console: a classic browser script, uPlot loaded before it
    files: ['public/console/**/*.js'],
    languageOptions: { sourceType: 'script', globals: { ...globals.browser, uPlot: 'readonly' } },
  },
);
