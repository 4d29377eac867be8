// The bucketed reduction that overlaps the backward, under mpirun: with buckets of one block each
// (--dist-bucket-kb 1: several collectives pending at once, run in order on the MPI addon's worker
// thread while the backward goes on), and without overlap (--dist-bucket-kb 0), 2 ranks x grad-accum
// 2 give bitwise the losses, weights and moments of 1 rank x grad-accum 4; --dist-reduce sum gives
// the same bits with and without buckets; ranks that cut the gradient differently refuse to start.
// Underneath: hundreds of collectives of mixed kinds and sizes started without waiting run in the
// order they were started on every rank, with the right results (test/helpers/mpi-pending.mjs).
// Skips with the reason when MPI is absent (.ci/run installs it).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readSafetensors } from '../src/io/safetensors.js';
import { CLI, ROOT, mpiSkipReason, mpirunFlags, runMpi } from './helpers/mpi.js';

const skip = mpiSkipReason();
if (skip) console.warn(`dist-overlap tests skipped: ${skip}`);

let dir: string, corpus: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-dist-overlap-'));
  corpus = path.join(dir, 'corpus.txt');
  const words = ['call', 'me', 'Ishmael', 'some', 'years', 'ago', 'never', 'mind', 'how', 'long'];
  const parts: string[] = [];
  for (let i = 0; i < 4000; i++) parts.push(words[(i * 3 + (i >> 2)) % words.length]);
  fs.writeFileSync(corpus, parts.join(' '));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const STEPS = 4;
// 3 blocks of d 32: buckets of 1 KB are the blocks one by one (and ln_f with the top one, wte + wpe last)
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
  '3',
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

/** Per-step losses as exact bit patterns. */
function losses(out: string): string[] {
  return fs
    .readFileSync(path.join(out, 'train.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { type: string; step: number; loss: number })
    .filter((r) => r.type === 'step')
    .map((r) => {
      const b = Buffer.alloc(8);
      b.writeDoubleLE(r.loss);
      return `${r.step}:${b.toString('hex')}`;
    });
}

/** Every tensor of the weights and the optimizer moments, as bytes. */
function tensors(out: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const f of ['model.safetensors', 'optimizer.safetensors']) {
    for (const [name, t] of readSafetensors(path.join(out, f)).tensors) {
      const d = (t as { data: ArrayBufferView }).data;
      m.set(`${f}:${name}`, Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('base64'));
    }
  }
  return m;
}

function expectSameRun(a: string, b: string): void {
  expect(losses(a)).toHaveLength(STEPS);
  expect(losses(b)).toEqual(losses(a));
  const ta = tensors(a),
    tb = tensors(b);
  expect([...tb.keys()]).toEqual([...ta.keys()]);
  for (const [k, v] of ta) expect(tb.get(k), k).toBe(v);
}

describe.skipIf(skip !== null)('collectives started before the earlier ones finished', () => {
  it.each([2, 3])('run in the order started on %i ranks, each with the right result', (np) => {
    const script = path.join(ROOT, 'test', 'helpers', 'mpi-pending.mjs');
    const r = spawnSync('mpirun', [...mpirunFlags(), '-np', String(np), process.execPath, script, '200'], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 180_000,
    });
    const lines = r.stdout
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('rank '))
      .sort();
    expect(lines, r.stderr).toEqual(Array.from({ length: np }, (_, i) => `rank ${i}: ok 200`));
    expect(r.status).toBe(0);
  });
});

describe.skipIf(skip !== null)('gradient buckets that overlap the backward, over MPI (cpu backend)', () => {
  let ref: string;
  beforeAll(() => {
    ref = path.join(dir, 'ref');
    const r = spawnSync(process.execPath, [CLI, ...args(ref, ['--grad-accum', '4'])], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
  });

  it('one bucket per block, and no overlap: both bitwise equal to 1 rank x grad-accum 4', async () => {
    for (const kb of ['1', '0']) {
      const out = path.join(dir, `ordered-${kb}`);
      const r = await runMpi(2, args(out, ['--grad-accum', '2', '--dist', 'mpi', '--dist-bucket-kb', kb]));
      expect(r.code, r.stderr).toBe(0);
      const cfg = JSON.parse(fs.readFileSync(path.join(out, 'train.jsonl'), 'utf8').split('\n')[0]) as { dist: { bucket_bytes: number } };
      expect(cfg.dist.bucket_bytes).toBe(Number(kb) * 1024);
      expectSameRun(ref, out);
    }
  });

  it('--dist-reduce sum: bucketed and not, the same bits', async () => {
    const outs: string[] = [];
    for (const kb of ['1', '0']) {
      const out = path.join(dir, `sum-${kb}`);
      const r = await runMpi(2, args(out, ['--grad-accum', '2', '--dist-reduce', 'sum', '--dist-bucket-kb', kb]));
      expect(r.code, r.stderr).toBe(0);
      outs.push(out);
    }
    expectSameRun(outs[0], outs[1]);
  });

  it('ranks with different bucket sizes refuse to start, naming the difference', async () => {
    const out = path.join(dir, 'disagree');
    const r = await runMpi(2, [args(out, ['--dist-bucket-kb', '1']), args(out, ['--dist-bucket-kb', '4'])]);
    expect(r.code).toBe(2);
    const ours = r.stderr.split('\n').filter((l) => l.startsWith('crate-ts train:'));
    expect(ours).toHaveLength(1);
    expect(ours[0]).toMatch(/rank 1 disagrees with rank 0 on the run: bucketBytes is 4096 on rank 1 but 1024 on rank 0/);
  });

  it('--dist-bucket-kb that is not a size is a usage error', async () => {
    const r = spawnSync(process.execPath, [CLI, ...args(path.join(dir, 'bad'), ['--dist-bucket-kb', '-3'])], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toMatch(/--dist-bucket-kb must be from 0 to 2097152, got -3/);
  });
});
