#!/usr/bin/env node
// `npm run mutate [-- TARGET... | --all] [--force] [--ci --budget-s N]`: StrykerJS over the modules outside
// the operator core, one target (a folder, or one file of the large ones) at a time, each with its
// own explicit test files and its own incremental file (reports/stryker/<target>.json, committed).
// A target whose source and test files equal those its incremental file records is not started at
// all; otherwise Stryker reruns only the mutants whose code or covering tests changed.
//
// Why explicit test lists: the vitest runner otherwise runs every test file that imports the
// mutated file (for src/checkpoint/ that is ~20 files, most of them spawning the CLI from dist/,
// which no mutant of src/ reaches). With `ignoreStatic` (stryker.config.mjs) a mutant reached only
// while modules load or in a beforeAll is not run (it would need every test of the target, with a
// fresh worker, per mutant); such mutants are counted as "ignored" in the table.
//
// Prints one row per target: mutants, killed, timed out, survived, no coverage, ignored (static),
// type errors (the TypeScript checker; not counted), score = (killed + timed out) / (killed + timed
// out + survived + no coverage), wall time and the load average before and after.
//
// --ci: only targets that have an incremental file and whose files changed; the whole step stops
// after --budget-s seconds (a stopped target keeps its old incremental file and is reported as not
// finished, which does not fail). Exits 1 when a finished (not sampled) target scores under 85%.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// target name -> the files it mutates and the test files that exercise them
export const TARGETS = {
  steer: { mutate: ['src/steer/**/*.ts'], tests: ['test/steer.test.ts', 'test/steer-edges.test.ts'] },
  sample: {
    mutate: ['src/sample/**/*.ts'],
    tests: ['test/sampling.test.ts', 'test/sample-decode.test.ts', 'test/sample-edges.test.ts', 'test/steer.test.ts'],
  },
  // src/checkpoint/ by file: the folder has 1,427 mutants, more than one sitting on the shared VM
  // The other folders hold 1,400 to 5,400 mutants each, 2 to 10 hours a folder at one mutant per 6-7 s
  // on the 2-core VM: their targets are seeded random samples (`sample: [single-line, multi-line]`
  // mutants, drawn per stratum; see sampleMutants), scored as a stratified estimate with its 95%
  // interval. `npm run mutate -- --full neurons` runs the whole folder instead.
  neurons: {
    mutate: ['src/neurons/**/*.ts'],
    tests: [
      'test/neurons-collector.test.ts',
      'test/neurons-excerpt.test.ts',
      'test/neurons-format.test.ts',
      'test/neurons-scoring.test.ts',
      'test/neurons-classifier.test.ts',
      'test/llm-client.test.ts',
      'test/llm-parse.test.ts',
      'test/llm-prompts.test.ts',
    ],
    sample: [100, 5],
  },
  serve: {
    mutate: ['src/serve/**/*.ts'],
    tests: [
      'test/serve-api.test.ts',
      'test/serve-batch.test.ts',
      'test/serve-encode.test.ts',
      'test/serve-hard.test.ts',
      'test/serve-lmeval.test.ts',
      'test/sampling.test.ts',
    ],
    // no multi-line stratum: in src/serve/ one drawn multi-line mutant (a route handler's body)
    // brought ~380 nested mutants with it, 46 min on its own; the estimate covers single-line ones.
    // 30, not 100: 100 single-line ranges held 363 mutants (those nested within each line), ~50 min
    sample: [30, 0],
  },
  train: {
    mutate: ['src/train/**/*.ts'],
    tests: [
      'test/train-units.test.ts',
      'test/train-svg.test.ts',
      'test/train-resume.test.ts',
      'test/checkpoint.test.ts',
      'test/checkpoint-layout.test.ts',
      'test/cli-options.test.ts',
      'test/archs.test.ts',
    ],
    sample: [100, 5],
  },
  checkpoint: {
    mutate: ['src/checkpoint/checkpoint.ts', 'src/checkpoint/statedict.ts', 'src/checkpoint/validate.ts'],
    tests: [
      'test/checkpoint-units.test.ts',
      'test/checkpoint.test.ts',
      'test/checkpoint-layout.test.ts',
      'test/checkpoint-validation.test.ts',
      'test/checkpoint-checksum.test.ts',
      'test/train-resume.test.ts',
    ],
    sample: [100, 5],
  },
  'checkpoint/checksum': {
    mutate: ['src/checkpoint/checksum.ts'],
    // its unit tests and the loader's checksum tests (the round trips and training runs of the other
    // checkpoint files reach it too, but cost minutes a mutant)
    tests: ['test/checkpoint-checksum.test.ts', 'test/checkpoint-validation.test.ts'],
  },
};

const GOAL = 85;
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');

function usage(msg) {
  process.stderr.write(
    `mutate: ${msg}\nusage: npm run mutate -- [TARGET...|--all] [--force] [--full] [--seed S] [--list] [--ci] [--budget-s N]\ntargets: ${Object.keys(TARGETS).join(', ')}\n`,
  );
  process.exit(2);
}

const args = process.argv.slice(2);
let force = false;
let ci = false;
let full = false;
let list = false;
let seed = 1;
let budgetS = Infinity;
const names = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--force') force = true;
  else if (a === '--full') full = true;
  else if (a === '--list') list = true;
  else if (a === '--seed') {
    seed = Number(args[++i]);
    if (!Number.isInteger(seed)) usage('--seed takes an integer');
  } else if (a === '--ci') ci = true;
  else if (a === '--all') names.push(...Object.keys(TARGETS));
  else if (a === '--budget-s') {
    budgetS = Number(args[++i]);
    if (!(budgetS > 0)) usage('--budget-s takes a positive number of seconds');
  } else if (a in TARGETS) names.push(a);
  else if (Object.keys(TARGETS).some((t) => t.startsWith(`${a}/`))) names.push(...Object.keys(TARGETS).filter((t) => t.startsWith(`${a}/`)));
  else usage(`unknown target or option '${a}'`);
}
if (names.length === 0) names.push(...Object.keys(TARGETS));

const sampled = (name) => Boolean(TARGETS[name].sample) && !full;
const reportName = (name) => `${name.replace('/', '-')}${sampled(name) ? '-sample' : ''}`;
const incrementalFile = (name) => path.join('reports', 'stryker', `${reportName(name)}.json`);

// The source files a target's globs name: every .ts file under a folder glob, or the single files.
function targetFiles(name) {
  const out = [];
  for (const glob of TARGETS[name].mutate) {
    const dir = glob.replace(/\/\*\*.*$/, '');
    if (dir === glob) out.push(glob);
    else for (const f of fs.readdirSync(path.join(root, dir), { recursive: true })) if (String(f).endsWith('.ts')) out.push(path.join(dir, String(f)));
  }
  return out.sort();
}

/**
 * A seeded random sample of the target's mutants, as Stryker's own instrumenter enumerates them
 * (same parser, same mutators). Two strata: mutants on one line, and mutants spanning lines (a
 * function body emptied, an object literal): a range given to Stryker also mutates everything
 * nested inside it, so a multi-line mutant costs its nested ones too and is drawn at a lower rate;
 * the estimate weights each stratum by its size. Locations are 0-based lines and columns.
 */
async function sampleMutants(name) {
  const { Instrumenter } = await import('@stryker-mutator/instrumenter');
  const quiet = () => {};
  const logger = { debug: quiet, info: quiet, warn: quiet, error: quiet, trace: quiet, isDebugEnabled: () => false, isTraceEnabled: () => false };
  const files = targetFiles(name).map((f) => ({ name: f, mutate: true, content: fs.readFileSync(path.join(root, f), 'utf8') }));
  const { mutants } = await new Instrumenter(logger).instrument(files, { plugins: null, excludedMutations: [], ignorers: [], noHeader: true });
  let state = seed >>> 0; // mulberry32
  const rand = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const strata = [mutants.filter((m) => m.location.start.line === m.location.end.line), mutants.filter((m) => m.location.start.line !== m.location.end.line)];
  return strata.map((pool, h) => {
    const n = Math.min(TARGETS[name].sample[h], pool.length);
    const copy = pool.slice();
    for (let i = 0; i < n; i++) {
      const j = i + Math.floor(rand() * (copy.length - i));
      [copy[i], copy[j]] = [copy[j], copy[i]];
    }
    return { size: pool.length, picked: copy.slice(0, n) };
  });
}

/** The key a mutant has in Stryker's JSON report (1-based lines and columns). */
const reportKey = (file, loc, mutator, replacement) =>
  `${file}:${loc.start.line}:${loc.start.column}-${loc.end.line}:${loc.end.column} ${mutator} ${replacement}`;
const sampleKey = (m) =>
  reportKey(
    m.fileName,
    {
      start: { line: m.location.start.line + 1, column: m.location.start.column + 1 },
      end: { line: m.location.end.line + 1, column: m.location.end.column + 1 },
    },
    m.mutatorName,
    m.replacement,
  );

/** Files the target's incremental file records whose contents differ now (or all, if none). */
function changedFiles(name) {
  const file = path.join(root, incrementalFile(name));
  if (!fs.existsSync(file)) return null;
  const report = JSON.parse(fs.readFileSync(file, 'utf8'));
  const recorded = { ...report.files, ...report.testFiles };
  const changed = [];
  for (const [f, entry] of Object.entries(recorded)) {
    const abs = path.join(root, f);
    const now = fs.existsSync(abs) ? fs.readFileSync(abs, 'utf8') : null;
    if (now !== entry.source) changed.push(f);
  }
  // a new source file under the target, or a listed test file not recorded yet
  for (const t of TARGETS[name].tests) if (!(t in recorded)) changed.push(t);
  for (const glob of TARGETS[name].mutate) {
    const dir = path.join(root, glob.replace(/\/\*\*.*$/, ''));
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) continue; // a single file is recorded above
    for (const f of fs.readdirSync(dir, { recursive: true })) {
      const rel = path.join(glob.replace(/\/\*\*.*$/, ''), String(f));
      if (rel.endsWith('.ts') && !(rel in recorded)) changed.push(rel);
    }
  }
  return changed;
}

function summarize(name, sample) {
  const report = JSON.parse(fs.readFileSync(path.join(root, 'reports', 'mutation', `${reportName(name)}.json`), 'utf8'));
  if (sample) return summarizeSample(report, sample);
  const c = { mutants: 0, Killed: 0, Timeout: 0, Survived: 0, NoCoverage: 0, Ignored: 0, CompileError: 0, RuntimeError: 0 };
  const survivors = [];
  for (const [f, entry] of Object.entries(report.files)) {
    for (const m of entry.mutants) {
      c.mutants++;
      c[m.status] = (c[m.status] ?? 0) + 1;
      if (m.status === 'Survived' || m.status === 'NoCoverage')
        survivors.push(`${f}:${m.location.start.line}:${m.location.start.column} ${m.mutatorName} -> ${JSON.stringify(m.replacement)} (${m.status})`);
    }
  }
  const detected = c.Killed + c.Timeout;
  const valid = detected + c.Survived + c.NoCoverage;
  return { ...c, score: valid ? (100 * detected) / valid : NaN, survivors };
}

/**
 * The sampled mutants' outcomes (the report also holds the mutants nested inside multi-line ones,
 * which are not counted) and the stratified estimate of the folder's score: each stratum's share
 * of valid mutants (killed, timed out, survived, no coverage) estimated from its sample, its score
 * weighted by that; the 95% interval from the strata's variances, each with a +2/+4 (Agresti-Coull)
 * adjustment so that a stratum with no survivors still counts its uncertainty.
 */
function summarizeSample(report, sample) {
  const status = new Map();
  for (const [f, entry] of Object.entries(report.files))
    for (const m of entry.mutants) status.set(reportKey(f, m.location, m.mutatorName, m.replacement), m.status);
  const c = { mutants: 0, Killed: 0, Timeout: 0, Survived: 0, NoCoverage: 0, Ignored: 0, CompileError: 0, RuntimeError: 0, missing: 0 };
  const survivors = [];
  const strata = sample.map(({ size, picked }) => {
    const h = { size, n: picked.length, valid: 0, detected: 0 };
    for (const m of picked) {
      const st = status.get(sampleKey(m)) ?? 'missing';
      c.mutants++;
      c[st] = (c[st] ?? 0) + 1;
      if (st === 'Killed' || st === 'Timeout') h.detected++;
      if (st === 'Killed' || st === 'Timeout' || st === 'Survived' || st === 'NoCoverage') h.valid++;
      if (st === 'Survived' || st === 'NoCoverage')
        survivors.push(
          `${m.fileName}:${m.location.start.line + 1}:${m.location.start.column + 1} ${m.mutatorName} -> ${JSON.stringify(m.replacement)} (${st})`,
        );
    }
    return h;
  });
  // the number of valid mutants in each stratum, estimated from its sample
  const weights = strata.map((h) => (h.n ? (h.size * h.valid) / h.n : 0));
  const total = weights.reduce((a, b) => a + b, 0);
  let score = 0;
  let variance = 0;
  strata.forEach((h, i) => {
    if (!h.valid) return;
    const w = weights[i] / total;
    score += (w * h.detected) / h.valid;
    const p = (h.detected + 2) / (h.valid + 4);
    variance += (w * w * p * (1 - p)) / (h.valid + 4);
  });
  const half = 1.96 * Math.sqrt(variance);
  return {
    ...c,
    score: 100 * score,
    interval: [Math.max(0, 100 * (score - half)), Math.min(100, 100 * (score + half))],
    strata: strata.map((h) => `${h.valid} valid of ${h.n} drawn from ${h.size}`),
    survivors,
  };
}

function runStryker(name, deadline, sample) {
  const t = TARGETS[name];
  const argv = ['stryker', 'run', '--concurrency', '1', '--incrementalFile', incrementalFile(name), '--testFiles', t.tests.join(',')];
  if (sample) {
    // one range per sampled mutant, `file:line:column-line:column` (lines 1-based, columns 0-based),
    // in the one comma-separated --mutate option (a repeated option keeps only its last value)
    const ranges = sample.flatMap(({ picked }) =>
      picked.map((m) => `${m.fileName}:${m.location.start.line + 1}:${m.location.start.column}-${m.location.end.line + 1}:${m.location.end.column}`),
    );
    argv.push('--mutate', ranges.join(','));
  } else argv.push('--mutate', t.mutate.join(','));
  if (force) argv.push('--force');
  const tmp = path.join(root, '.stryker-tmp');
  const sandboxes = () => (fs.existsSync(tmp) ? fs.readdirSync(tmp) : []);
  const before = new Set(sandboxes());
  return new Promise((resolve) => {
    const child = spawn('npx', argv, { cwd: root, stdio: 'inherit', env: { ...process.env, MUTATE_NAME: reportName(name) }, detached: true });
    let timer;
    if (Number.isFinite(deadline)) {
      timer = setTimeout(
        () => {
          process.stderr.write(`mutate: ${name} stopped at the time budget\n`);
          try {
            process.kill(-child.pid, 'SIGTERM');
          } catch {
            /* already gone */
          }
        },
        Math.max(0, deadline - Date.now()),
      );
    }
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      // a stopped Stryker leaves its sandbox (a copy of the project) behind: remove the one it made
      if (signal) for (const d of sandboxes()) if (!before.has(d)) fs.rmSync(path.join(tmp, d), { recursive: true, force: true });
      resolve(signal ? 'stopped' : code === 0 ? 'done' : `exit ${code}`);
    });
  });
}

if (list) {
  // print the sampled mutants of each sampled target and stop
  for (const name of names.filter(sampled)) {
    for (const [h, { size, picked }] of (await sampleMutants(name)).entries()) {
      process.stdout.write(`${name}: stratum ${h === 0 ? 'single-line' : 'multi-line'}, ${picked.length} of ${size}\n`);
      for (const m of picked) process.stdout.write(`  ${sampleKey(m)}\n`);
    }
  }
  process.exit(0);
}

const start = Date.now();
const deadline = start + budgetS * 1000;
const rows = [];
let failed = false;
for (const name of names) {
  if (ci || !force) {
    const changed = changedFiles(name);
    if (changed === null && ci) {
      rows.push(`| ${name} | no incremental file: not run in CI (npm run mutate -- ${name}) |`);
      continue;
    }
    if (changed !== null && changed.length === 0) {
      rows.push(`| ${name} | unchanged since its incremental file: not run |`);
      continue;
    }
  }
  if (Date.now() >= deadline) {
    rows.push(`| ${name} | not started: time budget spent |`);
    continue;
  }
  const load0 = os.loadavg()[0];
  const t0 = Date.now();
  const sample = sampled(name) ? await sampleMutants(name) : null;
  const outcome = await runStryker(name, deadline, sample);
  const wall = (Date.now() - t0) / 1000;
  const load1 = os.loadavg()[0];
  if (outcome !== 'done') {
    rows.push(`| ${name} | ${outcome} after ${wall.toFixed(0)} s: its incremental file is unchanged |`);
    if (!outcome.startsWith('stopped')) failed = true;
    continue;
  }
  const s = summarize(name, sample);
  // a sampled target's score is an estimate with an interval of several points: reported, not a gate
  if (s.score < GOAL && !sample) failed = true;
  rows.push(
    `| ${name}${sample ? ` (sample, seed ${seed}: ${s.strata.join('; ')}${s.missing ? `; ${s.missing} not in the report` : ''})` : ''} | ${s.mutants} | ${s.Killed} | ${s.Timeout} | ${s.Survived} | ${s.NoCoverage} | ${s.Ignored} | ${s.CompileError} | ${s.score.toFixed(2)}%${sample ? ` (95%: ${s.interval.map((x) => x.toFixed(1)).join('-')})` : ''} | ${Math.floor(wall / 60)} min ${Math.round(wall % 60)} s | ${load0.toFixed(1)} / ${load1.toFixed(1)} |`,
  );
  for (const line of s.survivors) rows.push(`|   ${line}`);
}
process.stdout.write(
  '\n| target | mutants | killed | timed out | survived | no coverage | ignored (static) | type errors | score | wall time | load before / after |\n|---|---|---|---|---|---|---|---|---|---|---|\n' +
    rows.join('\n') +
    '\n',
);
process.exit(failed ? 1 : 0);
