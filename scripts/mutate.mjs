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
// finished, which does not fail). Exits 1 when a finished target scores under 85%.
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
    `mutate: ${msg}\nusage: npm run mutate -- [TARGET...|--all] [--force] [--ci] [--budget-s N]\ntargets: ${Object.keys(TARGETS).join(', ')}\n`,
  );
  process.exit(2);
}

const args = process.argv.slice(2);
let force = false;
let ci = false;
let budgetS = Infinity;
const names = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--force') force = true;
  else if (a === '--ci') ci = true;
  else if (a === '--all') names.push(...Object.keys(TARGETS));
  else if (a === '--budget-s') {
    budgetS = Number(args[++i]);
    if (!(budgetS > 0)) usage('--budget-s takes a positive number of seconds');
  } else if (a in TARGETS) names.push(a);
  else if (Object.keys(TARGETS).some((t) => t.startsWith(`${a}/`))) names.push(...Object.keys(TARGETS).filter((t) => t.startsWith(`${a}/`)));
  else usage(`unknown target or option '${a}'`);
}
if (names.length === 0) names.push(...Object.keys(TARGETS));

const incrementalFile = (name) => path.join('reports', 'stryker', `${name.replace('/', '-')}.json`);

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

function summarize(name) {
  const report = JSON.parse(fs.readFileSync(path.join(root, 'reports', 'mutation', `${name.replace('/', '-')}.json`), 'utf8'));
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

function runStryker(name, deadline) {
  const t = TARGETS[name];
  const argv = ['stryker', 'run', '--concurrency', '1', '--incrementalFile', incrementalFile(name), '--testFiles', t.tests.join(',')];
  for (const m of t.mutate) argv.push('--mutate', m);
  if (force) argv.push('--force');
  const tmp = path.join(root, '.stryker-tmp');
  const sandboxes = () => (fs.existsSync(tmp) ? fs.readdirSync(tmp) : []);
  const before = new Set(sandboxes());
  return new Promise((resolve) => {
    const child = spawn('npx', argv, { cwd: root, stdio: 'inherit', env: { ...process.env, MUTATE_NAME: name.replace('/', '-') }, detached: true });
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
  const outcome = await runStryker(name, deadline);
  const wall = (Date.now() - t0) / 1000;
  const load1 = os.loadavg()[0];
  if (outcome !== 'done') {
    rows.push(`| ${name} | ${outcome} after ${wall.toFixed(0)} s: its incremental file is unchanged |`);
    if (!outcome.startsWith('stopped')) failed = true;
    continue;
  }
  const s = summarize(name);
  if (s.score < GOAL) failed = true;
  rows.push(
    `| ${name} | ${s.mutants} | ${s.Killed} | ${s.Timeout} | ${s.Survived} | ${s.NoCoverage} | ${s.Ignored} | ${s.CompileError} | ${s.score.toFixed(2)}% | ${Math.floor(wall / 60)} min ${Math.round(wall % 60)} s | ${load0.toFixed(1)} / ${load1.toFixed(1)} |`,
  );
  for (const line of s.survivors) rows.push(`|   ${line}`);
}
process.stdout.write(
  '\n| target | mutants | killed | timed out | survived | no coverage | ignored (static) | type errors | score | wall time | load before / after |\n|---|---|---|---|---|---|---|---|---|---|---|\n' +
    rows.join('\n') +
    '\n',
);
process.exit(failed ? 1 : 0);
