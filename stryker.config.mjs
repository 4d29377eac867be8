// Mutation testing (StrykerJS) of the modules outside the operator core: `npm run mutate`.
// The operator core (src/reference, src/backend, native/) is guarded by the differential suite and
// the PyTorch fixtures instead. Incremental: results are kept in reports/stryker-incremental.json,
// so a rerun mutates and tests only what changed since (`npm run mutate -- --force` redoes all).
// One folder or file: `npm run mutate -- --mutate src/steer/steer.ts --concurrency 1`.
// Scores and the surviving mutants: README, Tests.
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  packageManager: 'npm',
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.config.ts', related: true },
  checkers: ['typescript'],
  tsconfigFile: 'tsconfig.json',
  typescriptChecker: { prioritizePerformanceOverAccuracy: true },
  coverageAnalysis: 'perTest',
  mutate: ['src/neurons/**/*.ts', 'src/steer/**/*.ts', 'src/sample/**/*.ts', 'src/serve/**/*.ts', 'src/checkpoint/**/*.ts', 'src/train/**/*.ts'],
  ignorePatterns: ['build-asan', 'runs', '.cache', 'reports', 'coverage', '.stryker-tmp*'],
  incremental: true,
  incrementalFile: 'reports/stryker-incremental.json',
  reporters: ['clear-text', 'progress', 'json'],
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  thresholds: { high: 90, low: 85, break: null },
  // the suite runs on a shared, loaded machine: be generous before calling a mutant a timeout
  timeoutMS: 20000,
  tempDirName: '.stryker-tmp',
  cleanTempDir: true,
};
