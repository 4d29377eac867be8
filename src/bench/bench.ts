// Benchmarks: training steps (forward + backward + AdamW) of the CPU configs (C-*), the MSSA and
// ISTA blocks alone, and a 1024³ matrix product, per backend. Medians over timed repetitions
// after warm-up; the FLOP count of each measurement is stated beside it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Backend } from '../backend/types.js';
import { crateTsVersion, machineInfo } from '../util/version.js';
import { LanguageModel } from '../model/lm.js';
import { makeConfig, type ModelConfig } from '../model/config.js';
import { AdamW } from '../train/optimizer.js';
import { Rng } from '../util/rng.js';

export interface BenchRow {
  config: string;
  backend: string;
  /** Batch and sequence length of a training-step config (absent for kernels). */
  batch?: number;
  seq?: number;
  threads?: number;
  /** Median milliseconds per step (or per call for kernels). */
  msPerStep: number;
  /** All timed repetitions, ms. */
  samples: number[];
  tokensPerSec: number;
  gflops: number;
  flopFormula: string;
  /** Model FLOP utilization: gflops / peak, when a peak is given (--peak-gflops). */
  mfu?: number;
}

export interface StepConfig {
  name: string;
  model: Partial<ModelConfig>;
  B: number;
  T: number;
}

/** The CPU training-step configs (C-*) and the paper's sizes for a GPU (G-*). */
export const STEP_CONFIGS: StepConfig[] = [
  { name: 'C-char', model: { vocabSize: 256, nLayer: 2, nHead: 4, nEmbd: 128, blockSize: 128 }, B: 16, T: 128 },
  { name: 'C-small', model: { vocabSize: 50304, nLayer: 4, nHead: 4, nEmbd: 256, blockSize: 128 }, B: 8, T: 128 },
  { name: 'C-1L', model: { vocabSize: 50304, nLayer: 1, nHead: 8, nEmbd: 512, blockSize: 256 }, B: 4, T: 256 },
];

/**
 * The paper's sizes at T = 1024 for a GPU; selected with --config, not run by default.
 * Batch sizes keep activations well inside an H100's memory in float32.
 */
export const GPU_CONFIGS: StepConfig[] = [
  { name: 'G-1L', model: { vocabSize: 50304, nLayer: 1, nHead: 4, nEmbd: 128, blockSize: 1024 }, B: 16, T: 1024 },
  { name: 'G-2L', model: { vocabSize: 50304, nLayer: 2, nHead: 4, nEmbd: 128, blockSize: 1024 }, B: 16, T: 1024 },
  { name: 'G-3L', model: { vocabSize: 50304, nLayer: 3, nHead: 4, nEmbd: 128, blockSize: 1024 }, B: 16, T: 1024 },
  { name: 'G-S', model: { vocabSize: 50304, nLayer: 6, nHead: 12, nEmbd: 768, blockSize: 1024 }, B: 8, T: 1024 },
  { name: 'G-B', model: { vocabSize: 50304, nLayer: 12, nHead: 12, nEmbd: 768, blockSize: 1024 }, B: 8, T: 1024 },
];

export const KERNEL_CONFIGS = ['mssa-fwd', 'mssa-fwdbwd', 'ista-fwd', 'ista-fwdbwd', 'matmul-1024'] as const;

/** FLOP per training step: 3 × [2Vd + L(36d² + 4Td)] per token (notes/CPU.md; ISTA's matrix is used 4 times). */
export function stepFlops(c: ModelConfig, B: number, T: number): number {
  const d = c.nEmbd;
  return 3 * (2 * c.vocabSize * d + c.nLayer * (36 * d * d + 4 * T * d)) * B * T;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Per-repetition wall times; `sync` waits for asynchronous backends (CUDA) before each clock read. */
function time(fn: () => void, warmup: number, reps: number, sync: () => void = () => {}): number[] {
  for (let i = 0; i < warmup; i++) fn();
  sync();
  const out: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    sync();
    out.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return out;
}

function row(config: string, backend: string, samples: number[], tokens: number, flops: number, formula: string, threads?: number): BenchRow {
  const ms = median(samples);
  return { config, backend, threads, msPerStep: ms, samples, tokensPerSec: tokens / (ms / 1e3), gflops: flops / (ms / 1e3) / 1e9, flopFormula: formula };
}

/** A step config with its batch and/or sequence length replaced (the block size grows to fit T). */
export function withShape(sc: StepConfig, B?: number, T?: number): StepConfig {
  if (B === undefined && T === undefined) return sc;
  const t = T ?? sc.T;
  return { ...sc, B: B ?? sc.B, T: t, model: { ...sc.model, blockSize: Math.max(t, sc.model.blockSize ?? t) } };
}

/** Median time of a full training step: forward, backward, gradient clipping, AdamW. */
export function benchStep<Buf>(be: Backend<Buf>, sc: StepConfig, opts: { warmup: number; steps: number; threads?: number }): BenchRow {
  const cfg = makeConfig(undefined, sc.model);
  const model = new LanguageModel(be, cfg, { seed: 1 });
  const opt = new AdamW(model);
  const rng = new Rng(2),
    n = sc.B * sc.T;
  const idx = Int32Array.from({ length: n }, () => rng.int(cfg.vocabSize));
  const tg = Int32Array.from({ length: n }, () => rng.int(cfg.vocabSize));
  try {
    const samples = time(
      () => {
        model.zeroGrad();
        model.forward(idx, sc.B, sc.T, tg, { returnLogits: false });
        model.backward();
        opt.step(1e-4);
      },
      opts.warmup,
      opts.steps,
      () => be.synchronize?.(),
    );
    return { ...row(sc.name, be.name, samples, n, stepFlops(cfg, sc.B, sc.T), '3·[2Vd + L(36d² + 4Td)]·B·T', opts.threads), batch: sc.B, seq: sc.T };
  } finally {
    opt.free();
    model.free();
  }
}

/** The MSSA block (LN → shared projection → causal attention → c_proj) or the ISTA block (LN → 2 ISTA steps → decode). */
export function benchKernel<Buf>(be: Backend<Buf>, name: (typeof KERNEL_CONFIGS)[number], opts: { warmup: number; steps: number; threads?: number }): BenchRow {
  const rng = new Rng(3);
  const bufs: Buf[] = [];
  const mk = (n: number, scale = 1): Buf => {
    const b = be.alloc(n);
    bufs.push(b);
    if (scale !== 0)
      be.upload(
        b,
        Float64Array.from({ length: n }, () => scale * rng.normal()),
      );
    return b;
  };
  try {
    if (name === 'matmul-1024') {
      const M = 1024,
        x = mk(M * M),
        w = mk(M * M),
        out = mk(M * M, 0);
      const samples = time(
        () => be.linearForward(out, x, w, null, M, M, M),
        opts.warmup,
        opts.steps,
        () => be.synchronize?.(),
      );
      return row(name, be.name, samples, 0, 2 * M * M * M, '2·M·N·K', opts.threads);
    }
    if (name.startsWith('mssa')) {
      const B = 8,
        T = 256,
        C = 512,
        NH = 8,
        N = B * T;
      const x = mk(N * C),
        lnw = mk(C),
        lnb = mk(C),
        wa = mk(C * C, 0.02),
        wp = mk(C * C, 0.02),
        bp = mk(C);
      const ln = mk(N * C, 0),
        mean = mk(N, 0),
        rstd = mk(N, 0),
        v = mk(N * C, 0),
        y = mk(N * C, 0),
        o = mk(N * C, 0);
      const st = mk(be.attentionSavedSize(B, NH, T), 0);
      const dln = mk(N * C, 0),
        dv = mk(N * C, 0),
        dy = mk(N * C, 0),
        dx = mk(N * C, 0),
        dout = mk(N * C);
      const g = { lnw: mk(C, 0), lnb: mk(C, 0), wa: mk(C * C, 0), wp: mk(C * C, 0), bp: mk(C, 0) };
      const fwd = () => {
        be.layernormForward(ln, mean, rstd, x, lnw, lnb, N, C, 1e-5);
        be.linearForward(v, ln, wa, null, N, C, C);
        be.mssaForward(y, st, v, B, T, C, NH);
        be.linearForward(o, y, wp, bp, N, C, C);
      };
      const bwd = () => {
        be.linearBackward(dy, g.wp, g.bp, dout, y, wp, N, C, C);
        be.mssaBackward(dv, dy, v, y, st, B, T, C, NH);
        be.linearBackward(dln, g.wa, null, dv, ln, wa, N, C, C);
        be.layernormBackward(dx, g.lnw, g.lnb, dln, x, lnw, mean, rstd, N, C);
      };
      const both = name === 'mssa-fwdbwd';
      const samples = time(
        () => {
          fwd();
          if (both) bwd();
        },
        opts.warmup,
        opts.steps,
        () => be.synchronize?.(),
      );
      const f = 4 * C * C * N + 4 * T * C * N; // projections + QKᵀ and PV (full, as in the step formula)
      return row(name, be.name, samples, N, both ? 3 * f : f, both ? '3·(4d² + 4Td)·N' : '(4d² + 4Td)·N', opts.threads);
    }
    const N = 2048,
      C = 512,
      H = 4 * C;
    const x = mk(N * C),
      lnw = mk(C),
      lnb = mk(C),
      A = mk(H * C, Math.sqrt(2 / C));
    const ln = mk(N * C, 0),
      mean = mk(N, 0),
      rstd = mk(N, 0),
      codes = mk(2 * N * H, 0),
      out = mk(N * C, 0);
    const dout = mk(N * C),
      dln = mk(N * C, 0),
      dx = mk(N * C, 0),
      dA = mk(H * C, 0),
      dlnw = mk(C, 0),
      dlnb = mk(C, 0);
    const both = name === 'ista-fwdbwd';
    const samples = time(
      () => {
        be.layernormForward(ln, mean, rstd, x, lnw, lnb, N, C, 1e-5);
        be.istaForward(out, codes, ln, A, N, C, H, 0.1, 0.1, 2);
        if (both) {
          be.istaBackward(dln, dA, dout, ln, A, codes, N, C, H, 0.1, 0.1, 2);
          be.layernormBackward(dx, dlnw, dlnb, dln, x, lnw, mean, rstd, N, C);
        }
      },
      opts.warmup,
      opts.steps,
      () => be.synchronize?.(),
    );
    const f = 4 * 2 * C * H * N; // four d×4d products
    return row(name, be.name, samples, N, both ? 3 * f : f, both ? '3·4·(2·d·4d)·N' : '4·(2·d·4d)·N', opts.threads);
  } finally {
    for (const b of bufs) be.free(b);
  }
}

// ---- where a number was measured ------------------------------------------------------------------

/** What a benchmark number needs to be traced: the machine, its vector extensions, the code and the time. */
export interface BenchEnvironment {
  date: string;
  crate_ts: string;
  /** The git commit of the checkout this ran from, or null (an installed package). */
  git_commit: string | null;
  machine: ReturnType<typeof machineInfo> & { cpu_flags: string[] };
}

/** The SIMD flags that decide which kernels run (from /proc/cpuinfo; empty where there is none). */
export function cpuFlags(cpuinfo?: string): string[] {
  let text = cpuinfo;
  if (text === undefined) {
    try {
      text = fs.readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      return [];
    }
  }
  const line = /^(flags|Features)\s*:(.*)$/m.exec(text);
  if (!line) return [];
  const have = new Set(line[2].trim().split(/\s+/));
  return ['sse4_2', 'avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512vl', 'avx512_vnni', 'asimd', 'neon'].filter((f) => have.has(f));
}

/** The commit checked out at `root` (HEAD, a symbolic ref or a packed ref), read from .git without running git. */
export function gitCommit(root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')): string | null {
  try {
    let gitDir = path.join(root, '.git');
    if (fs.statSync(gitDir).isFile()) {
      // a worktree or submodule: "gitdir: <path>"
      const m = /^gitdir:\s*(.+)$/m.exec(fs.readFileSync(gitDir, 'utf8'));
      if (!m) return null;
      gitDir = path.resolve(root, m[1].trim());
    }
    const head = fs.readFileSync(path.join(gitDir, 'HEAD'), 'utf8').trim();
    if (/^[0-9a-f]{40}$/.test(head)) return head;
    const ref = /^ref:\s*(\S+)$/.exec(head)?.[1];
    if (!ref) return null;
    const common = fs.existsSync(path.join(gitDir, 'commondir'))
      ? path.resolve(gitDir, fs.readFileSync(path.join(gitDir, 'commondir'), 'utf8').trim())
      : gitDir;
    for (const dir of [gitDir, common]) {
      const f = path.join(dir, ref);
      if (fs.existsSync(f)) return fs.readFileSync(f, 'utf8').trim();
    }
    const packed = fs.readFileSync(path.join(common, 'packed-refs'), 'utf8');
    return new RegExp(`^([0-9a-f]{40}) ${ref.replace(/[/.]/g, '\\$&')}$`, 'm').exec(packed)?.[1] ?? null;
  } catch {
    return null;
  }
}

export function benchEnvironment(): BenchEnvironment {
  return { date: new Date().toISOString(), crate_ts: crateTsVersion(), git_commit: gitCommit(), machine: { ...machineInfo(), cpu_flags: cpuFlags() } };
}
