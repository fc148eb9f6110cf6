// Lint: the recommended rules, no import circles, and the layers of docs/architecture.md (a folder
// imports only from those below it; only the composition root imports workers/).
import js from '@eslint/js';
import importX from 'eslint-plugin-import-x';
import globals from 'globals';
import tseslint from 'typescript-eslint';

const ground = ['./src/lib', './src/config.ts', './src/errors.ts', './src/logger.ts', './src/observability/metrics.ts'];
const adapters = ['./src/db', './src/kling', './src/accounts', './src/webhooks', './src/queues', './src/tenants', './src/callbacks'];
const above = (...dirs) => dirs.flatMap((d) => [d]);
const composition = ['./src/app.ts', './src/server.ts', './src/service.ts', './src/main.ts', './src/cli'];

export default tseslint.config(
  { ignores: ['node_modules/**', 'src/generated/**', 'coverage/**', 'test-results/**', 'docs/**', 'console/dist/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.mjs', '**/*.js', '**/*.cjs'],
    plugins: { 'import-x': importX },
    settings: { 'import-x/resolver': { node: { extensions: ['.ts', '.js', '.cjs', '.mjs'] } } },
    rules: {
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      'import-x/no-restricted-paths': [
        'error',
        {
          zones: [
            { target: './src/lib', from: './src', except: ['./lib'], message: 'src/lib is the ground floor: pure helpers only' },
            ...ground.slice(1).map((target) => ({
              target,
              from: ['./src/kinds', ...adapters, './src/tasks', './src/http', './src/simulator', ...composition, './workers'],
              message: 'the ground floor imports nothing above it',
            })),
            {
              target: './src/kinds',
              from: [...adapters, './src/tasks', './src/http', './src/simulator', ...composition, './workers'],
              message: 'kinds know Kling, not the database or the lifecycle',
            },
            {
              target: adapters,
              from: ['./src/tasks', './src/http', './src/simulator', ...composition, './workers'],
              message: 'adapters do not import the lifecycle or entry points',
            },
            {
              target: './src/tasks',
              from: ['./src/http', './src/simulator', ...composition, './workers'],
              message: 'the lifecycle does not import entry points',
            },
            {
              target: above('./src/http', './src/simulator'),
              from: [...composition, './workers'],
              message: 'entry points do not import the composition root or workers/',
            },
            {
              target: './workers',
              from: ['./src/http', ...composition],
              message: 'a worker never imports an HTTP route or the composition root',
            },
          ],
        },
      ],
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' },
      ],
      // A `let` assigned once after a closure that reads it (a late-bound timer or worker) is not a const.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
    },
  },
  { files: ['**/*.mjs', '**/*.js', '**/*.cjs'], languageOptions: { globals: globals.node } },
  // The web console runs in the browser and imports nothing of the server's.
  {
    files: ['console/src/**/*.{ts,tsx}'],
    plugins: { 'import-x': importX },
    settings: { 'import-x/resolver': { node: { extensions: ['.ts', '.tsx', '.js'] } } },
    languageOptions: { globals: globals.browser },
    rules: {
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      'import-x/no-restricted-paths': [
        'error',
        { zones: [{ target: './console', from: ['./src', './workers'], message: 'the console talks to the server over HTTP only' }] },
      ],
    },
  },
  // Tests read JSON answers loosely (`body.data.tracker.state`): `any` there is the point, not a leak.
  { files: ['test/**/*.ts'], rules: { '@typescript-eslint/no-explicit-any': 'off' } },
  {
    // CommonJS scripts and configs run by Node as they are.
    files: ['**/*.cjs', 'jest.config.js', 'test/summary-reporter.js'],
    languageOptions: { sourceType: 'commonjs' },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
