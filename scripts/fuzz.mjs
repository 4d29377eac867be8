#!/usr/bin/env node
// Long fuzzing runs of checkpoint loading: the generators of test/fuzz-safetensors.test.ts
// (src/testing/checkpoint-fuzz.ts, compiled in dist/), as many cases as asked.
//
//   npm run fuzz -- [--cases N] [--seed S] [--timeout-ms T] [--save DIR]
//
// Cases run in a worker thread with a heap limit. The main thread is a watchdog: a case that runs
// longer than --timeout-ms is a hang (the worker is terminated and restarted at the next case), and
// a worker that dies (out of memory, a native crash) is a crash of the case it was running. Every
// case is a pure function of (seed, case number), so `--seed S` and the printed number reproduce it;
// --save writes the bytes of every crash and hang there. Prints counts (cases, loaded, rejected,
// crashes, hangs, longest message) and exits 1 if any case crashed, hung, or produced a message
// longer than MAX_MESSAGE_LENGTH.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist', 'testing', 'checkpoint-fuzz.js');
/** Extra seed files: PyTorch-made fixtures and a format_version 1 checkpoint. */
const EXTRA = ['fixtures/crate-small.safetensors', 'fixtures/gpt2-small.safetensors', 'fixtures/crate-t1.safetensors', 'test/data/checkpoint-v1.safetensors']
  .map((f) => path.join(root, f))
  .filter((f) => fs.existsSync(f));

if (isMainThread) await main();
else await work();

function parseArgs(argv) {
  const opts = { cases: 20000, seed: 1, timeoutMs: 10000, save: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i],
      v = argv[i + 1];
    const int = (name) => {
      if (v === undefined || !/^\d+$/.test(v)) usage(`${name} needs a non-negative integer, got ${v === undefined ? 'nothing' : `'${v}'`}`);
      i++;
      return Number(v);
    };
    if (a === '--cases') opts.cases = int(a);
    else if (a === '--seed') opts.seed = int(a);
    else if (a === '--timeout-ms') opts.timeoutMs = Math.max(1, int(a));
    else if (a === '--save') {
      if (v === undefined) usage('--save needs a directory');
      opts.save = v;
      i++;
    } else if (a === '--help' || a === '-h') {
      console.log('usage: npm run fuzz -- [--cases N] [--seed S] [--timeout-ms T] [--save DIR]');
      process.exit(0);
    } else usage(`unknown option '${a}'`);
  }
  return opts;
}

function usage(msg) {
  console.error(`fuzz: ${msg}\nusage: npm run fuzz -- [--cases N] [--seed S] [--timeout-ms T] [--save DIR]`);
  process.exit(2);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (!fs.existsSync(dist)) usage(`${dist} is missing; run npm run build first`);
  const { MAX_MESSAGE_LENGTH } = await import(path.join(root, 'dist', 'io', 'safetensors.js'));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-fuzz-'));
  if (opts.save) fs.mkdirSync(opts.save, { recursive: true });
  const counts = { loaded: 0, rejected: 0, crash: 0, hang: 0 };
  const byKind = new Map();
  const failures = [];
  let longest = { length: 0, message: '', index: -1 };
  let tooLong = 0;
  const t0 = Date.now();
  let lastReport = t0;

  const record = (index, kind, outcome, message = '', detail = '') => {
    counts[outcome]++;
    const k = kind.split('+')[0];
    const row = byKind.get(k) ?? { loaded: 0, rejected: 0, crash: 0, hang: 0 };
    row[outcome]++;
    byKind.set(k, row);
    if (message.length > longest.length) longest = { length: message.length, message, index };
    if (outcome === 'rejected' && message.length > MAX_MESSAGE_LENGTH) tooLong++;
    if (outcome === 'crash' || outcome === 'hang') {
      failures.push({ index, kind, outcome, detail: detail || message });
      if (opts.save) saveCase(opts, index);
    }
    if (Date.now() - lastReport > 10_000) {
      lastReport = Date.now();
      const done = counts.loaded + counts.rejected + counts.crash + counts.hang;
      console.error(`fuzz: ${done}/${opts.cases} cases, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    }
  };

  let next = 0;
  while (next < opts.cases) {
    next = await runWorker(opts, dir, next, record);
  }
  fs.rmSync(dir, { recursive: true, force: true });
  const secs = (Date.now() - t0) / 1000;

  console.log(
    `fuzz: seed ${opts.seed}, ${opts.cases} cases in ${secs.toFixed(1)} s (${(opts.cases / secs).toFixed(0)} cases/s), per-case limit ${opts.timeoutMs} ms`,
  );
  console.log(
    `cases ${opts.cases}  loaded ${counts.loaded}  rejected ${counts.rejected}  crashes ${counts.crash}  hangs ${counts.hang}  longest message ${longest.length} chars (limit ${MAX_MESSAGE_LENGTH}; over it: ${tooLong})`,
  );
  console.log('by first mutation:   loaded  rejected  crash  hang');
  for (const [k, r] of [...byKind].sort())
    console.log(
      `  ${k.padEnd(18)} ${String(r.loaded).padStart(7)} ${String(r.rejected).padStart(9)} ${String(r.crash).padStart(6)} ${String(r.hang).padStart(5)}`,
    );
  if (longest.index >= 0) console.log(`longest message (case ${longest.index}): ${longest.message}`);
  for (const f of failures.slice(0, 20)) console.log(`${f.outcome.toUpperCase()} case ${f.index} (${f.kind}): ${f.detail.split('\n').slice(0, 4).join(' | ')}`);
  if (failures.length > 20) console.log(`... and ${failures.length - 20} more`);
  process.exitCode = counts.crash + counts.hang + tooLong > 0 ? 1 : 0;
}

/** Write a failing case's bytes to --save DIR (regenerated here from its number). */
async function saveCase(opts, index) {
  try {
    const fz = await import(dist);
    const seedDir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-fuzz-save-'));
    const c = fz.makeCase(fz.makeSeeds(seedDir, EXTRA), opts.seed, index);
    fs.writeFileSync(path.join(opts.save, `case-${opts.seed}-${index}.safetensors`), c.bytes);
    fs.rmSync(seedDir, { recursive: true, force: true });
  } catch (e) {
    console.error(`fuzz: could not save case ${index}: ${e.message}`);
  }
}

/** Run cases from `start` in a fresh worker until done, a hang, or the worker's death; returns the next case. */
function runWorker(opts, dir, start, record) {
  return new Promise((resolve) => {
    const worker = new Worker(fileURLToPath(import.meta.url), {
      workerData: { seed: opts.seed, start, end: opts.cases, dir },
      resourceLimits: { maxOldGenerationSizeMb: 2048 },
    });
    let current = null; // { index, kind, since }
    let next = start;
    let finished = false;
    const finish = (n) => {
      if (!finished) {
        finished = true;
        clearInterval(timer);
        resolve(n);
      }
    };
    const timer = setInterval(
      () => {
        if (current && Date.now() - current.since > opts.timeoutMs) {
          record(current.index, current.kind, 'hang', `no result after ${opts.timeoutMs} ms`);
          next = current.index + 1;
          current = null;
          worker.terminate().then(() => finish(next));
        }
      },
      Math.min(1000, opts.timeoutMs),
    );
    worker.on('message', (m) => {
      if (finished) return;
      if (m.type === 'start') current = { index: m.index, kind: m.kind, since: Date.now() };
      else if (m.type === 'done') {
        current = null;
        next = m.index + 1;
        record(m.index, m.kind, m.outcome, m.message, m.detail);
      }
    });
    worker.on('error', (e) => {
      if (current) {
        record(current.index, current.kind, 'crash', `worker died: ${e.message}`);
        next = current.index + 1;
        current = null;
      } else if (!finished) {
        console.error(`fuzz: worker failed outside a case: ${e.stack ?? e.message}`);
        process.exit(1);
      }
    });
    worker.on('exit', () => {
      if (current) {
        record(current.index, current.kind, 'crash', 'worker exited during the case');
        next = current.index + 1;
        current = null;
      }
      finish(next);
    });
  });
}

async function work() {
  const { seed, start, end, dir } = workerData;
  const fz = await import(dist);
  const seeds = fz.makeSeeds(fs.mkdtempSync(path.join(dir, 'seeds-')), EXTRA);
  const file = path.join(dir, `case-${process.pid}-${start}.safetensors`);
  for (let i = start; i < end; i++) {
    const c = fz.makeCase(seeds, seed, i);
    parentPort.postMessage({ type: 'start', index: i, kind: c.kind });
    const r = fz.runCase(c.bytes, file);
    parentPort.postMessage({ type: 'done', index: i, kind: c.kind, outcome: r.outcome, message: r.message, detail: r.detail ?? '' });
  }
}
