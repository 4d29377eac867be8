// Mutation testing (StrykerJS) of the modules outside the operator core: `npm run mutate`
// (scripts/mutate.mjs), which runs this configuration once per target (a folder) with the target's
// own test files (--testFiles) and incremental file (reports/stryker/<target>.json, committed), so a
// rerun mutates and tests only what changed since (`npm run mutate -- steer --force` redoes one).
// The operator core (src/reference, src/backend, native/) is guarded by the differential suite and
// the PyTorch fixtures instead. Scores, survivors and timings: README, Tests.
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
  // A mutant reached only while modules load or in a beforeAll would need every test of the target
  // with a fresh worker per mutant; it is reported as Ignored instead (counted in the README table).
  ignoreStatic: true,
  incremental: true,
  // a bare `npx stryker run` (every folder at once); scripts/mutate.mjs passes each target's own file
  incrementalFile: 'reports/stryker/all.json',
  reporters: ['clear-text', 'progress', 'json'],
  jsonReporter: { fileName: `reports/mutation/${process.env.MUTATE_NAME ?? 'mutation'}.json` },
  thresholds: { high: 90, low: 85, break: null },
  // the suite runs on a shared, loaded machine: a mutant's tests get 1.5 times their dry-run time
  // plus 10 s before the mutant counts as timed out (an endless loop, which counts as detected)
  timeoutMS: 10000,
  tempDirName: '.stryker-tmp',
  cleanTempDir: true,
};
