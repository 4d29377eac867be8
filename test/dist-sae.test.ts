// Data-parallel `sae train` under mpirun: 2 ranks x grad-accum 1 give bitwise the files of 1 rank x
// grad-accum 2 (weights, sparsity, train.jsonl, cfg.json and the whole optimizer state with every
// buffer shard), a resample included; a run stopped on 2 ranks resumes on 1 and one stopped on 1
// resumes on 2, continuing the same run. Skips with the reason when MPI is absent (.ci/run installs it).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LanguageModel } from '../src/model/lm.js';
import { makeConfig } from '../src/model/config.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { saveCheckpoint } from '../src/checkpoint/checkpoint.js';
import { CLI, ROOT, mpiSkipReason, runMpi } from './helpers/mpi.js';

const skip = mpiSkipReason();
if (skip) console.warn(`dist-sae tests skipped: ${skip}`);

let dir: string, ck: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-dist-sae-'));
  ck = path.join(dir, 'gpt2.safetensors');
  const model = new LanguageModel(new ReferenceBackend(), makeConfig('char-tiny', { arch: 'gpt2', nEmbd: 16, nHead: 2, nLayer: 1, blockSize: 32 }), {
    seed: 5,
  });
  saveCheckpoint(ck, { model: model as LanguageModel<unknown>, tokenizer: 'byte' });
  model.free();
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const STEPS = 12;
/** A small relu run (64 -> 128 features) whose strong L1 kills features, resampled at steps 5 and 10. */
const args = (out: string, extra: string[] = []): string[] => [
  'sae',
  'train',
  '--checkpoint',
  ck,
  '--layer',
  '0',
  '--expansion',
  '2',
  '--tokens',
  String(STEPS * 256),
  '--batch-tokens',
  '256',
  '--buffer-tokens',
  '1024',
  '--l1',
  '200',
  '--lr',
  '0.02',
  '--resample-at',
  '5,10',
  '--log-every',
  '1',
  '--backend',
  'cpu',
  '--threads',
  '1',
  '--cache-dir',
  path.join(dir, 'cache'),
  '--quiet',
  '--out',
  out,
  ...extra,
];
const resumeArgs = (out: string, extra: string[] = []) => [
  'sae',
  'train',
  '--resume',
  out,
  '--log-every',
  '1',
  '--backend',
  'cpu',
  '--threads',
  '1',
  '--quiet',
  ...extra,
];

function runOne(a: string[]): { code: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...a], { cwd: ROOT, encoding: 'utf8' });
  return { code: r.status, stderr: r.stderr };
}

const FILES = ['sae_weights.safetensors', 'sparsity.safetensors', 'optimizer_state.safetensors', 'train.jsonl', 'cfg.json'];
function expectSameFiles(a: string, b: string): void {
  for (const f of FILES) expect(fs.readFileSync(path.join(b, f)).equals(fs.readFileSync(path.join(a, f))), f).toBe(true);
}

describe.skipIf(skip !== null)('data-parallel sae train over MPI (cpu backend)', () => {
  let ref: string;
  beforeAll(() => {
    ref = path.join(dir, 'ref');
    const r = runOne(args(ref, ['--grad-accum', '2']));
    expect(r.code, r.stderr).toBe(0);
  });

  it('2 ranks x grad-accum 1 write bitwise the files of 1 rank x grad-accum 2 (a resample included)', async () => {
    const out = path.join(dir, 'r2');
    const r = await runMpi(2, args(out, ['--dist', 'mpi']));
    expect(r.code, r.stderr).toBe(0);
    const log = fs
      .readFileSync(path.join(ref, 'train.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { step: number; resampled?: number });
    expect(log).toHaveLength(STEPS);
    expect(log.reduce((n, l) => n + (l.resampled ?? 0), 0)).toBeGreaterThan(0);
    expectSameFiles(ref, out);
    // and differ from one micro-batch per step (the comparison can fail)
    const one = path.join(dir, 'k1');
    expect(runOne(args(one)).code).toBe(0);
    expect(fs.readFileSync(path.join(one, 'sae_weights.safetensors')).equals(fs.readFileSync(path.join(ref, 'sae_weights.safetensors')))).toBe(false);
  });

  it('a run stopped on 2 ranks resumes on 1, and one stopped on 1 resumes on 2, continuing the same run', async () => {
    const a = path.join(dir, 'two-then-one');
    let r = await runMpi(2, args(a, ['--stop-at', '3']));
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(a, 'cfg.json'), 'utf8')).crate_ts.steps).toBe(3);
    const one = runOne(resumeArgs(a));
    expect(one.code, one.stderr).toBe(0);
    expectSameFiles(ref, a);

    const b = path.join(dir, 'one-then-two');
    const first = runOne(args(b, ['--grad-accum', '2', '--stop-at', '7']));
    expect(first.code, first.stderr).toBe(0);
    r = await runMpi(2, resumeArgs(b));
    expect(r.code, r.stderr).toBe(0);
    expectSameFiles(ref, b);
  });

  it('a resume whose ranks x --grad-accum differ from the run is one line, exit 2', () => {
    const r = runOne(resumeArgs(path.join(dir, 'r2'), ['--grad-accum', '1']));
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/micro-batches per step/);
  });
});
