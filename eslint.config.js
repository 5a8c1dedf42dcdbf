// Type-aware lint: a floating promise or a misused promise kills a long-lived daemon.
import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

const noChildProcess = {
  'no-restricted-imports': [
    'error',
    {
      paths: [
        { name: 'child_process', message: 'The daemon has one reaper: spawn through the native facade (DESIGN.md section 3).' },
        { name: 'node:child_process', message: 'The daemon has one reaper: spawn through the native facade (DESIGN.md section 3).' },
      ],
    },
  ],
};

export default tseslint.config(
  { ignores: ['build/**', 'node_modules/**', 'protos/gen/**', 'native/build/**', 'bench/results/**'] },
  eslint.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] }] },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      '@typescript-eslint/only-throw-error': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  { files: ['core/**/*.ts', 'shim/**/*.ts', 'shim/**/*.cts'], rules: noChildProcess },
  {
    // The CommonJS entry files (shim/entry.cts, shim/bundle-loader.cts): under
    // verbatimModuleSyntax a .cts file imports with `import x = require(...)`.
    files: ['**/*.cts'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // Test files may use non-null assertions on values the test itself just built.
    files: ['**/*.test.ts'],
    rules: { '@typescript-eslint/no-non-null-assertion': 'off' },
  },
  { files: ['**/*.js', '**/*.mjs'], ...tseslint.configs.disableTypeChecked },
  { files: ['**/*.js', '**/*.mjs'], languageOptions: { globals: globals.node } },
);
