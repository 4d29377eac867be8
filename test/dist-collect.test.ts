// Sharded collection. In process (no MPI needed): shards of a matrix with their halos,
// merged by LayerCollector.mergeShards, give bitwise the selections, excerpts and moments of one
// pass, for any rank count, batch and window. Under mpirun (skipped with the reason without MPI):
// `neurons collect` on 2 and 3 ranks writes records, positions, stats and tokens.u32
// byte-identical to a single process, and a manifest that differs only in timing and resources.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LayerCollector, type LayerCollectorOptions } from '../src/neurons/collector.js';
import { shardWindows, packShards, unpackShards } from '../src/distributed/collect.js';
import { Rng } from '../src/util/rng.js';
import { CLI, ROOT, mpiSkipReason, runMpi } from './helpers/mpi.js';

function matrix(N: number, H: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const x = new Float32Array(N * H);
  for (let j = 0; j < x.length; j++) {
    const u = rng.uniform();
    x[j] = u < 0.4 ? 0 : u < 0.5 ? 0.5 : Math.round(rng.normal() * 1000) / 100;
  }
  return x;
}

describe('LayerCollector shards merged = one pass (in process)', () => {
  it('bitwise equal selections, excerpts and moments for 2..4 ranks, any batch and window', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 4 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 2, max: 9 }),
        fc.integer({ min: 8, max: 40 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 0, max: 1e6 }),
        (ranks, batch, T, nWin, H, seed) => {
          const N = nWin * T;
          if (Math.ceil(nWin / batch) < ranks) return;
          const x = matrix(N, H, seed);
          const opts: LayerCollectorOptions = {
            H,
            N,
            topK: 5,
            nRandom: 4,
            quantile: { bins: 11, perBin: 2, sample: 30 },
            geometry: { top: { before: 7, after: 5 }, random: { before: 3, after: 9 }, quantile: { before: 2, after: 2 } },
            seed,
            layer: 0,
            precision: 'f32',
          };
          const pushChunks = (c: LayerCollector, w0: number, w1: number) => {
            for (let w = w0; w < w1; w += batch) {
              const B = Math.min(batch, nWin - w);
              c.push(x.subarray(w * T * H, (w + B) * T * H), B * T);
            }
            c.finish();
          };
          const one = new LayerCollector(opts);
          pushChunks(one, 0, nWin);
          const parts: Uint8Array[] = [];
          for (let r = 0; r < ranks; r++) {
            const sh = shardWindows(nWin, batch, T, r, ranks, 7, 9);
            const c = new LayerCollector({ ...opts, shard: { first: sh.w0 * T, lo: sh.lo, hi: sh.hi } });
            pushChunks(c, sh.w0, sh.w1);
            parts.push(packShards([c.exportShard()]));
          }
          const merged = new LayerCollector(opts);
          merged.mergeShards(unpackShards(parts, 1).map((s) => s[0]));
          for (let i = 0; i < H; i++) {
            expect(merged.neuron(i)).toEqual(one.neuron(i));
            const a = merged.moments.summary(i),
              b = one.moments.summary(i);
            for (const k of Object.keys(a) as (keyof typeof a)[]) expect(Object.is(a[k], b[k]), `${k}: ${a[k]} vs ${b[k]}`).toBe(true);
          }
          expect(merged.moments.count).toBe(one.moments.count);
        },
      ),
      { numRuns: 60, seed: 21 },
    );
  });

  it('refuses more ranks than forward batches, and a shard without its halo', () => {
    expect(() => shardWindows(3, 2, 8, 0, 3, 4, 4)).toThrow(/2 chunks, fewer than the 3 ranks/);
    const opts: LayerCollectorOptions = {
      H: 1,
      N: 64,
      topK: 2,
      nRandom: 1,
      quantile: null,
      geometry: { top: { before: 4, after: 4 }, random: { before: 4, after: 4 }, quantile: { before: 1, after: 1 } },
      seed: 1,
      layer: 0,
      precision: 'f64',
    };
    expect(() => new LayerCollector({ ...opts, shard: { first: 32, lo: 32, hi: 64 } })).toThrow(/excerpts of position 32 need/);
    const c = new LayerCollector({ ...opts, shard: { first: 24, lo: 32, hi: 64 } });
    expect(() => c.push(new Float64Array(16), 16)).toThrow(/straddle the shard/);
  });
});

const skip = mpiSkipReason();
if (skip) console.warn(`dist-collect mpirun tests skipped: ${skip}`);

describe.skipIf(skip !== null)('neurons collect under mpirun', () => {
  let dir: string, ckpt: string;
  const collectArgs = (out: string) => [
    'neurons',
    'collect',
    '--checkpoint',
    ckpt,
    '--data',
    path.join(dir, 'corpus.txt'),
    '--cache-dir',
    path.join(dir, 'cache'),
    '--tokens',
    '3000',
    '--batch',
    '3',
    '--variant',
    'both',
    '--seed',
    '5',
    '--backend',
    'cpu',
    '--threads',
    '1',
    '--out',
    out,
  ];
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-dist-collect-'));
    const words = ['the', 'whale', 'sea', 'ship', 'Ahab', 'white', 'boat', 'harpoon', 'and', 'of'];
    fs.writeFileSync(path.join(dir, 'corpus.txt'), Array.from({ length: 3000 }, (_, i) => words[(i * 7 + (i >> 3)) % words.length]).join(' '));
    ckpt = path.join(dir, 'run');
    const t = spawnSync(
      process.execPath,
      [
        CLI,
        'train',
        '--backend',
        'cpu',
        '--threads',
        '1',
        '--data',
        path.join(dir, 'corpus.txt'),
        '--cache-dir',
        path.join(dir, 'cache'),
        '--preset',
        'char-tiny',
        '--n-layer',
        '2',
        '--n-embd',
        '32',
        '--n-head',
        '2',
        '--seq',
        '24',
        '--steps',
        '3',
        '--batch',
        '2',
        '--eval-every',
        '0',
        '--eval-windows',
        '2',
        '--sample-tokens',
        '0',
        '--quiet',
        '--out',
        ckpt,
      ],
      { cwd: ROOT, encoding: 'utf8' },
    );
    expect(t.status, t.stderr).toBe(0);
    const one = spawnSync(process.execPath, [CLI, ...collectArgs(path.join(dir, 'one'))], { cwd: ROOT, encoding: 'utf8' });
    expect(one.status, one.stderr).toBe(0);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const FILES = [
    'tokens.u32',
    'layer-0/records.jsonl',
    'layer-0/positions.jsonl',
    'layer-0/stats.jsonl',
    'layer-1/records.jsonl',
    'layer-1/positions.jsonl',
    'layer-1/stats.jsonl',
  ];
  const TIMING = ['created', 'elapsed_s', 'tokens_per_s', 'cpu_s', 'peak_rss_bytes'];

  for (const ranks of [2, 3]) {
    it(`${ranks} ranks write byte-identical records, positions, stats and tokens.u32; the manifest differs only in timing`, async () => {
      const out = path.join(dir, `ranks-${ranks}`);
      const r = await runMpi(ranks, [...collectArgs(out), '--dist', 'mpi']);
      expect(r.code, r.stderr).toBe(0);
      for (const f of FILES) expect(fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(dir, 'one', f))), f).toBe(true);
      const strip = (m: Record<string, unknown>) => Object.fromEntries(Object.entries(m).filter(([k]) => !TIMING.includes(k)));
      const m1 = JSON.parse(fs.readFileSync(path.join(dir, 'one', 'manifest.json'), 'utf8')) as Record<string, unknown>;
      const mN = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')) as Record<string, unknown>;
      expect(strip(mN)).toEqual(strip(m1));
      expect(Object.keys(mN).sort()).toEqual(Object.keys(m1).sort());
      // one summary line, from rank 0
      expect(r.stdout.split('\n').filter((l) => l.startsWith('collected '))).toHaveLength(1);
    });
  }
});
