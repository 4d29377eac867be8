// Data-parallel training under mpirun: N ranks x grad-accum A give bitwise the losses,
// parameters and optimizer moments of 1 rank x grad-accum N·A; a run resumes on another rank
// count (2 -> 1, 1 -> 2); a SIGKILLed rank ends the job within 60 s with one line naming it, the
// last checkpoint intact and resumable; ranks that disagree, or one that cannot read its data,
// stop every rank with one line. Skips with the reason when MPI is absent (.ci/run installs it).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readSafetensors } from '../src/io/safetensors.js';
import { CLI, ROOT, mpiSkipReason, runMpi, startMpi, rankPid } from './helpers/mpi.js';

const skip = mpiSkipReason();
if (skip) console.warn(`dist-train tests skipped: ${skip}`);

let dir: string, corpus: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-dist-train-'));
  corpus = path.join(dir, 'corpus.txt');
  const words = ['the', 'whale', 'sea', 'ship', 'Ahab', 'white', 'boat', 'harpoon', 'and', 'of'];
  const parts: string[] = [];
  for (let i = 0; i < 4000; i++) parts.push(words[(i * 7 + (i >> 3)) % words.length]);
  fs.writeFileSync(corpus, parts.join(' '));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const STEPS = 6;
/** A tiny cpu run; `extra` adds or overrides flags. */
const args = (out: string, extra: string[] = []): string[] => [
  'train',
  '--backend',
  'cpu',
  '--threads',
  '1',
  '--data',
  corpus,
  '--cache-dir',
  path.join(dir, 'cache'),
  '--preset',
  'char-tiny',
  '--n-layer',
  '1',
  '--n-embd',
  '32',
  '--n-head',
  '2',
  '--steps',
  String(STEPS),
  '--batch',
  '2',
  '--seq',
  '16',
  '--eval-every',
  '0',
  '--eval-windows',
  '2',
  '--sample-tokens',
  '0',
  '--quiet',
  '--out',
  out,
  ...extra,
];

function runOne(a: string[]): { code: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...a], { cwd: ROOT, encoding: 'utf8' });
  return { code: r.status, stderr: r.stderr };
}

/**
 * Per-step losses from a run directory's train.jsonl, as exact bit patterns (hex of the float64).
 * The log is appended to: a step made after the last checkpoint of a killed run appears again when
 * the resumed run redoes it; the later record counts.
 */
function losses(out: string): string[] {
  const byStep = new Map<number, number>();
  for (const l of fs.readFileSync(path.join(out, 'train.jsonl'), 'utf8').trim().split('\n')) {
    const r = JSON.parse(l) as { type: string; step: number; loss: number };
    if (r.type === 'step') byStep.set(r.step, r.loss);
  }
  return [...byStep].sort((a, b) => a[0] - b[0]).map(([step, loss]) => `${step}:${Buffer.from(new Float64Array([loss]).buffer).toString('hex')}`);
}

/** Every tensor of the weights and the optimizer moments, as bytes. */
function tensors(out: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const f of ['model.safetensors', 'optimizer.safetensors']) {
    const st = readSafetensors(path.join(out, f));
    for (const [name, t] of st.tensors) {
      const d = (t as { data: ArrayBufferView }).data;
      m.set(`${f}:${name}`, Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('base64'));
    }
  }
  return m;
}

function expectSameRun(a: string, b: string): void {
  expect(losses(b)).toEqual(losses(a));
  const ta = tensors(a),
    tb = tensors(b);
  expect([...tb.keys()]).toEqual([...ta.keys()]);
  for (const [k, v] of ta) expect(tb.get(k), k).toBe(v);
}

describe.skipIf(skip !== null)('data-parallel training over MPI (cpu backend)', () => {
  let ref: string;
  beforeAll(() => {
    // the reference: one process, 4 micro-batches per step
    ref = path.join(dir, 'ref');
    const r = runOne(args(ref, ['--grad-accum', '4']));
    expect(r.code, r.stderr).toBe(0);
  });

  it('2 ranks x grad-accum 2 give bitwise the losses, weights and moments of 1 rank x grad-accum 4', async () => {
    const out = path.join(dir, 'r2');
    const r = await runMpi(2, args(out, ['--grad-accum', '2', '--dist', 'mpi']));
    expect(r.code, r.stderr).toBe(0);
    expect(losses(ref)).toHaveLength(STEPS);
    expectSameRun(ref, out);
  });

  it('--dist-reduce sum: one all-reduce per step; the first loss is exact, the run close to the ordered one', async () => {
    const out = path.join(dir, 'r2-sum');
    const r = await runMpi(2, args(out, ['--grad-accum', '2', '--dist-reduce', 'sum']));
    expect(r.code, r.stderr).toBe(0);
    const a = losses(ref),
      b = losses(out);
    expect(b[0]).toBe(a[0]);
    const num = (x: string) => Buffer.from(x.split(':')[1], 'hex').readDoubleLE(0);
    for (let i = 1; i < STEPS; i++) expect(Math.abs(num(b[i]) - num(a[i]))).toBeLessThan(1e-3);
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'train.jsonl'), 'utf8').split('\n')[0]) as { dist: { reduce: string; ranks: number } };
    expect(cfg.dist).toMatchObject({ reduce: 'sum', ranks: 2 });
  });

  it('resumes a 2-rank checkpoint on 1 rank, and a 1-rank checkpoint on 2 ranks, continuing the same run', async () => {
    // 2 -> 1
    const a = path.join(dir, 'two-then-one');
    let r = await runMpi(2, args(a, ['--grad-accum', '2', '--stop-at', '3']));
    expect(r.code, r.stderr).toBe(0);
    const one = runOne(['train', '--resume', a, '--threads', '1', '--quiet', '--sample-tokens', '0', '--cache-dir', path.join(dir, 'cache')]);
    expect(one.code, one.stderr).toBe(0);
    expectSameRun(ref, a);
    // 1 -> 2
    const b = path.join(dir, 'one-then-two');
    const first = runOne(args(b, ['--grad-accum', '4', '--stop-at', '3']));
    expect(first.code, first.stderr).toBe(0);
    r = await runMpi(2, ['train', '--resume', b, '--threads', '1', '--quiet', '--sample-tokens', '0', '--cache-dir', path.join(dir, 'cache')]);
    expect(r.code, r.stderr).toBe(0);
    expectSameRun(ref, b);
  });

  it('a SIGKILLed rank ends the job within 60 s with one line naming it; the last checkpoint resumes bitwise', async () => {
    const out = path.join(dir, 'killed');
    const long = args(out, ['--grad-accum', '2', '--steps', '400', '--save-every', '2']);
    const { child, done } = startMpi(2, long);
    // wait until rank 0 has saved a checkpoint after step 2 or later
    const log = path.join(out, 'train.jsonl');
    const t0 = Date.now();
    for (;;) {
      if (fs.existsSync(log) && /"type":"save","step":([2-9]|\d\d)/.test(fs.readFileSync(log, 'utf8'))) break;
      if (Date.now() - t0 > 90_000) throw new Error('the run did not save a checkpoint in 90 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    const pid = rankPid(child.pid!, 1);
    expect(pid, 'rank 1 process').not.toBeNull();
    const killedAt = performance.now();
    process.kill(pid!, 'SIGKILL');
    const r = await done;
    const after = (performance.now() - killedAt) / 1000;
    expect(after).toBeLessThan(60);
    console.info(`dist-train: the job ended ${after.toFixed(1)} s after rank 1 was killed`);
    expect(r.code).not.toBe(0);
    // our line (the launcher adds its own block): names the lost rank, once per surviving rank
    const ours = r.stderr.split('\n').filter((l) => l.startsWith('crate-ts train:'));
    expect(ours.length, r.stderr).toBeGreaterThanOrEqual(1);
    expect(ours[0]).toMatch(/rank 1 \(pid \d+ on .+\) was lost/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    // the last checkpoint is intact and --resume continues the run bitwise (here to step 6, on 1 rank)
    const saved = fs
      .readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; step: number })
      .filter((x) => x.type === 'save')
      .at(-1)!.step;
    expect(saved).toBeGreaterThanOrEqual(2);
    const cont = path.join(dir, 'killed-continued');
    fs.cpSync(out, cont, { recursive: true });
    const res = runOne([
      'train',
      '--resume',
      cont,
      '--threads',
      '1',
      '--quiet',
      '--sample-tokens',
      '0',
      '--stop-at',
      String(saved + 2),
      '--cache-dir',
      path.join(dir, 'cache'),
    ]);
    expect(res.code, res.stderr).toBe(0);
    // an uninterrupted 1-rank run of the same schedule, stopped at the same step
    const whole = path.join(dir, 'killed-reference');
    const w = runOne(args(whole, ['--grad-accum', '4', '--steps', '400', '--save-every', '2', '--stop-at', String(saved + 2)]));
    expect(w.code, w.stderr).toBe(0);
    expectSameRun(whole, cont);
  });

  it('ranks that disagree on a hyper-parameter refuse to start, naming the difference; every rank exits', async () => {
    const out = path.join(dir, 'disagree');
    const r = await runMpi(2, [args(out), args(out, ['--lr', '0.002'])]);
    expect(r.code).toBe(2);
    const ours = r.stderr.split('\n').filter((l) => l.startsWith('crate-ts train:'));
    expect(ours).toHaveLength(1);
    expect(ours[0]).toMatch(/rank 1 disagrees with rank 0 on the run: hyper\.lr is 0\.002 on rank 1 but 0\.003 on rank 0/);
    expect(fs.existsSync(path.join(out, 'model.safetensors'))).toBe(false);
  });

  it('a rank that cannot read its data stops every rank with its message', async () => {
    const out = path.join(dir, 'nodata');
    const missing = path.join(dir, 'no-such-corpus.txt');
    const bad = args(out).map((a) => (a === corpus ? missing : a));
    const r = await runMpi(2, [args(out), bad]);
    expect(r.code).toBe(1);
    const ours = r.stderr.split('\n').filter((l) => l.startsWith('crate-ts train:'));
    expect(ours, r.stderr).toHaveLength(1);
    expect(ours[0]).toMatch(/^crate-ts train: rank 1 of 2: .*no-such-corpus\.txt/);
  });

  it('--grad-accum that the ranks cannot share is refused on every rank', async () => {
    // a 1-rank checkpoint with 3 micro-batches per step cannot continue on 2 ranks
    const out = path.join(dir, 'three');
    const first = runOne(args(out, ['--grad-accum', '3', '--stop-at', '1']));
    expect(first.code, first.stderr).toBe(0);
    const r = await runMpi(2, ['train', '--resume', out, '--threads', '1', '--quiet', '--cache-dir', path.join(dir, 'cache')]);
    expect(r.code).toBe(2);
    const ours = r.stderr.split('\n').filter((l) => l.startsWith('crate-ts train:'));
    expect(ours).toHaveLength(1);
    expect(ours[0]).toMatch(/3 micro-batches per step, which 2 ranks cannot share equally/);
  });
});
