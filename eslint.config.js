// Lint configuration. The block for src/core is the purity rule: the consensus
// core must stay deterministic, so it may not reach I/O, timers, clocks,
// randomness or Promises. The simulator depends on that. The last block keeps
// everything above src/node off the core (NodeRuntime's narrow face).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const impure = 'src/core must stay pure and deterministic (no I/O, timers, clocks, randomness, Promises)';
const narrow = 'outside src/node, read a node through NodeRuntime.status() and its typed methods, never its core (issue 16)';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'docs/**', '.build/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        console: 'readonly', process: 'readonly', Buffer: 'readonly', setTimeout: 'readonly',
        clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', URL: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    // The dashboard page runs in the browser.
    files: ['src/dashboard/page/**/*.js'],
    languageOptions: {
      globals: { document: 'readonly', window: 'readonly', EventSource: 'readonly', fetch: 'readonly', Element: 'readonly', AbortSignal: 'readonly' },
    },
  },
  {
    files: ['src/core/**/*.ts', 'src/protocol/**/*.ts'],
    ignores: ['**/*.test.ts'], // tests beside the code may use node:test and friends
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['node:*', 'fs', 'fs/*', 'net', 'os', 'path', 'child_process', 'timers', 'timers/*', 'crypto', 'worker_threads', 'http', 'https', 'dgram'], message: impure },
          { group: ['../node/*', '../storage/*', '../transport/*', '../services/*', '../cli/*', '../server/*', '../../test/*'], message: 'src/core may import only src/protocol and src/util' },
        ],
      }],
      'no-restricted-globals': ['error',
        ...['setTimeout', 'setInterval', 'setImmediate', 'clearTimeout', 'clearInterval', 'clearImmediate',
          'queueMicrotask', 'Promise', 'Date', 'performance', 'process', 'require', 'fetch', 'Buffer']
          .map((name) => ({ name, message: impure })),
      ],
      'no-restricted-properties': ['error', { object: 'Math', property: 'random', message: impure }],
      'no-restricted-syntax': ['error',
        { selector: 'FunctionDeclaration[async=true], FunctionExpression[async=true], ArrowFunctionExpression[async=true]', message: impure },
        { selector: 'AwaitExpression', message: impure },
        { selector: 'ImportExpression', message: impure },
      ],
    },
  },
  {
    // The narrow face (issue 16): above src/node, code sees a node through
    // NodeRuntime's status() and typed methods, never through its core, so
    // that a change to the core's roles stays inside src/node.
    files: ['src/**/*.ts'],
    ignores: ['src/core/**', 'src/node/**', '**/*.test.ts'],
    rules: {
      'no-restricted-syntax': ['error',
        { selector: "MemberExpression[property.name='core'], MemberExpression[property.value='core']", message: narrow },
      ],
      'no-restricted-imports': ['error', {
        patterns: [{ group: ['**/core/node.js', '**/core/roles.js', '**/core/log.js'], message: narrow }],
      }],
    },
  },
);
