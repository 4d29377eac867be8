// The cpu backend against the float64 reference on shapes that cross the native kernels' internal
// blocking (GEMM K > 512 and M, N past a block; attention T > 64 = one key block; V = 50304), plus
// T = 1, one head, odd widths and large magnitudes; and determinism: the same inputs give bitwise
// the same outputs for 1 and 2 threads, and the AVX2 / scalar GEMM kernels agree.
// (The shared differential suite in differential.test.ts covers small random shapes for every
// backend; this file covers what is specific to the native implementation.)
import { describe, test, expect, afterAll } from 'vitest';
import type { Backend } from '../src/backend/types.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { tryLoadAddon } from '../src/backend/loader.js';
import { CpuBackend, type NativeBuf } from '../src/backend/cpu.js';
import { Rng } from '../src/util/rng.js';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

const { addon, reason } = tryLoadAddon();
const suite = addon ? describe : describe.skip;
const ref = new ReferenceBackend();

function f32(rng: Rng, n: number, scale = 1, offset = 0): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.fround(offset + scale * rng.normal());
  return a;
}

type Inputs = Record<string, Float64Array>;
function run<B>(
  be: Backend<B>,
  inputs: Inputs,
  outputs: Record<string, number>,
  body: (t: Record<string, B>) => number | void,
): { out: Record<string, Float64Array>; ret: number | void } {
  const bufs: Record<string, B> = {};
  for (const [k, v] of Object.entries(inputs)) {
    bufs[k] = be.alloc(v.length);
    be.upload(bufs[k], v);
  }
  for (const [k, n] of Object.entries(outputs)) if (!(k in bufs)) bufs[k] = be.alloc(n);
  try {
    const ret = body(bufs);
    const out: Record<string, Float64Array> = {};
    for (const k of Object.keys(outputs)) out[k] = be.download(bufs[k]);
    return { out, ret };
  } finally {
    for (const b of Object.values(bufs)) be.free(b);
  }
}

/** max |got - ref| / max |ref| over a tensor (the error relative to the tensor's scale). */
function scaledErr(got: Float64Array, want: Float64Array): number {
  let maxRef = 0,
    maxErr = 0;
  for (let i = 0; i < want.length; i++) {
    maxRef = Math.max(maxRef, Math.abs(want[i]));
    const e = Math.abs(got[i] - want[i]);
    if (!(e <= maxErr)) maxErr = e; // NaN propagates
  }
  return maxRef === 0 ? maxErr : maxErr / maxRef;
}

const report: Record<string, number> = {};
function record(key: string, err: number): void {
  report[key] = Math.max(report[key] ?? 0, err);
}

suite(`cpu vs reference on native blocking boundaries${addon ? '' : ` (skipped: ${reason})`}`, () => {
  const cpu = addon ? new CpuBackend() : (null as unknown as CpuBackend);

  /** Run on both backends and compare each output: scaled error <= tol. */
  function compare(
    op: string,
    inputs: Inputs,
    outputs: Record<string, number>,
    tol: number,
    body: <B>(be: Backend<B>, t: Record<string, B>) => number | void,
  ): void {
    const got = run(cpu, inputs, outputs, (t) => body(cpu, t));
    const want = run(ref, inputs, outputs, (t) => body(ref, t));
    for (const k of Object.keys(outputs)) {
      const e = scaledErr(got.out[k], want.out[k]);
      record(`${op}:${k}`, e);
      expect(e, `cpu ${op} ${k}: scaled error ${e}`).toBeLessThanOrEqual(tol);
    }
    if (typeof want.ret === 'number') {
      const e = Math.abs((got.ret as number) - want.ret) / Math.max(1, Math.abs(want.ret));
      record(`${op}:return`, e);
      expect(e, `cpu ${op} return value`).toBeLessThanOrEqual(tol);
    }
  }

  afterAll(() => {
    const rows = Object.entries(report).map(([k, v]) => `  ${k.padEnd(34)} ${v.toExponential(2)}`);
    console.log(`cpu vs reference, max |got - ref| / max |ref| per output (gemm kernel ${cpu?.gemmKernel()}, ${cpu?.threads()} threads):\n${rows.join('\n')}`);
  });

  test('cpu: linear forward/backward across GEMM blocks (K > 512, M and N past a block, N = 1)', () => {
    const rng = new Rng(7);
    for (const [N, C, OC] of [
      [1, 3, 1],
      [131, 600, 257],
      [200, 97, 3100],
      [7, 1100, 5],
    ]) {
      const inputs = { x: f32(rng, N * C), W: f32(rng, OC * C), b: f32(rng, OC), dout: f32(rng, N * OC), dW: f32(rng, OC * C), db: f32(rng, OC) };
      compare('linear', inputs, { out: N * OC }, 1e-5, (b, t) => b.linearForward(t.out, t.x, t.W, t.b, N, C, OC));
      compare('linear', inputs, { dx: N * C, dW: 0, db: 0 }, 1e-5, (b, t) => b.linearBackward(t.dx, t.dW, t.db, t.dout, t.x, t.W, N, C, OC));
    }
  });

  test('cpu: MSSA and GPT-2 attention with T past one 64-key block, T = 1, one head, large scores', () => {
    const rng = new Rng(11);
    for (const [B, T, NH, p, scale] of [
      [1, 1, 1, 8, 1],
      [2, 70, 3, 5, 1],
      [1, 200, 2, 32, 1],
      [2, 129, 1, 16, 3],
      [1, 65, 4, 7, 0.01],
    ]) {
      const C = NH * p,
        n = B * T * C;
      const inputs = { v: f32(rng, n, scale), qkv: f32(rng, 3 * n, scale), dy: f32(rng, n) };
      compare('mssa', inputs, { y: n, dv: n }, 5e-5, (b, t) => {
        const st = b.alloc(b.attentionSavedSize(B, NH, T));
        b.mssaForward(t.y, st, t.v, B, T, C, NH);
        b.mssaBackward(t.dv, t.dy, t.v, t.y, st, B, T, C, NH);
        b.free(st);
      });
      compare('attention', inputs, { y: n, dqkv: 3 * n }, 5e-5, (b, t) => {
        const st = b.alloc(b.attentionSavedSize(B, NH, T));
        b.attentionForward(t.y, st, t.qkv, B, T, C, NH);
        b.attentionBackward(t.dqkv, t.dy, t.qkv, t.y, st, B, T, C, NH);
        b.free(st);
      });
    }
  });

  test('cpu: overcomplete and complete ISTA at model-like widths', () => {
    const rng = new Rng(13);
    for (const [N, C, H, steps] of [
      [1, 1, 1, 1],
      [33, 64, 256, 2],
      [130, 129, 517, 3],
      [5, 17, 68, 1],
    ]) {
      const inputs = { u: f32(rng, N * C), A: f32(rng, H * C, Math.sqrt(2 / C)), dout: f32(rng, N * C), dA: f32(rng, H * C) };
      compare('ista', inputs, { out: N * C, codes: steps * N * H }, 5e-5, (b, t) => b.istaForward(t.out, t.codes, t.u, t.A, N, C, H, 0.1, 0.1, steps));
      // backward from the reference's codes rounded to float32, so both use the same ReLU masks
      const codes = run(ref, inputs, { codes: steps * N * H, out: N * C }, (t) =>
        ref.istaForward(t.out, t.codes, t.u, t.A, N, C, H, 0.1, 0.1, steps),
      ).out.codes.map(Math.fround);
      compare('ista', { ...inputs, codes }, { du: N * C, dA: 0 }, 1e-4, (b, t) =>
        b.istaBackward(t.du, t.dA, t.dout, t.u, t.A, t.codes, N, C, H, 0.1, 0.1, steps),
      );
    }
    for (const [N, C] of [
      [1, 1],
      [40, 130],
      [3, 600],
    ]) {
      const inputs = { x: f32(rng, N * C), W: f32(rng, C * C, 1 / Math.sqrt(C)), dout: f32(rng, N * C), dW: f32(rng, C * C) };
      compare('istaComplete', inputs, { out: N * C }, 5e-5, (b, t) => b.istaCompleteForward(t.out, t.x, t.W, N, C, 0.1, 0.1));
      const out = run(ref, inputs, { out: N * C }, (t) => ref.istaCompleteForward(t.out, t.x, t.W, N, C, 0.1, 0.1)).out.out.map(Math.fround);
      compare('istaComplete', { ...inputs, out }, { dx: N * C, dW: 0 }, 1e-4, (b, t) =>
        b.istaCompleteBackward(t.dx, t.dW, t.dout, t.x, t.W, t.out, N, C, 0.1, 0.1),
      );
    }
  });

  test('cpu: cross-entropy at the GPT-2 vocabulary (V = 50304) and with huge logits', () => {
    const rng = new Rng(17);
    for (const [N, V, scale] of [
      [3, 50304, 3],
      [9, 1000, 80],
      [1, 2, 1],
    ]) {
      const targets = Int32Array.from({ length: N }, (_, i) => (i === 1 ? -1 : rng.int(V)));
      compare('crossEntropy', { logits: f32(rng, N * V, scale) }, { dlogits: N * V }, 2e-5, (b, t) =>
        b.crossEntropyForward(t.dlogits, t.logits, targets, N, V, 0.5),
      );
    }
  });

  test('cpu: layernorm, embedding, AdamW, elementwise on larger buffers', () => {
    const rng = new Rng(19);
    const N = 300,
      C = 771;
    const ln = { inp: f32(rng, N * C, 2, 500), w: f32(rng, C), bias: f32(rng, C), dout: f32(rng, N * C), dw: f32(rng, C), db: f32(rng, C) };
    compare('layernorm', ln, { out: N * C, mean: N, rstd: N, dinp: N * C, dw: 0, db: 0 }, 2e-4, (b, t) => {
      b.layernormForward(t.out, t.mean, t.rstd, t.inp, t.w, t.bias, N, C, 1e-5);
      b.layernormBackward(t.dinp, t.dw, t.db, t.dout, t.inp, t.w, t.mean, t.rstd, N, C);
    });
    const B = 3,
      T = 70,
      V = 101;
    const idx = Int32Array.from({ length: B * T }, () => rng.int(V));
    compare(
      'embedding',
      { wte: f32(rng, V * C), wpe: f32(rng, 80 * C), dout: f32(rng, B * T * C), dwte: f32(rng, V * C), dwpe: f32(rng, 80 * C) },
      { out: B * T * C, dwte: 0, dwpe: 0 },
      1e-6,
      (b, t) => {
        b.embeddingForward(t.out, idx, t.wte, t.wpe, B, T, C);
        b.embeddingBackward(t.dwte, t.dwpe, t.dout, idx, B, T, C);
      },
    );
    const n = 100_003;
    compare(
      'adamw',
      { p: f32(rng, n), g: f32(rng, n), m: f32(rng, n, 0.1), v: f32(rng, n, 0.1).map((x) => Math.fround(x * x)) },
      { p: 0, m: 0, v: 0 },
      1e-5,
      (b, t) => {
        for (let step = 1; step <= 3; step++) b.adamwUpdate(t.p, t.g, t.m, t.v, 1e-3, 0.9, 0.95, 1e-8, 0.1, step);
      },
    );
    compare('sumSquares', { x: f32(rng, n, 3) }, {}, 1e-12, (b, t) => b.sumSquares(t.x));
  });

  test('cpu: bitwise identical results for 1 and 2 threads (training-step operators)', () => {
    const rng = new Rng(23);
    const B = 2,
      T = 90,
      NH = 3,
      p = 11,
      C = NH * p,
      N = B * T,
      H = 4 * C,
      V = 300;
    const inputs = { x: f32(rng, N * C), W: f32(rng, H * C, 0.2), dout: f32(rng, N * C), logits: f32(rng, N * V, 4), dy: f32(rng, N * C), w: f32(rng, C) };
    const targets = Int32Array.from({ length: N }, () => rng.int(V));
    const body = (t: Record<string, NativeBuf>) => {
      const st = cpu.alloc(B * NH * T),
        codes = cpu.alloc(2 * N * H),
        dW = cpu.alloc(H * C),
        dx = cpu.alloc(N * C),
        y = cpu.alloc(N * C),
        dl = cpu.alloc(N * V);
      const mean = cpu.alloc(N),
        rstd = cpu.alloc(N),
        dw = cpu.alloc(C),
        db = cpu.alloc(C),
        ln = cpu.alloc(N * C);
      cpu.mssaForward(y, st, t.x, B, T, C, NH);
      cpu.mssaBackward(dx, t.dy, t.x, y, st, B, T, C, NH);
      cpu.istaForward(t.out, codes, t.x, t.W, N, C, H, 0.1, 0.1, 2);
      cpu.istaBackward(t.du, dW, t.dout, t.x, t.W, codes, N, C, H, 0.1, 0.1, 2);
      cpu.layernormForward(ln, mean, rstd, t.x, t.w, t.w, N, C, 1e-5);
      cpu.layernormBackward(t.dln, dw, db, t.dout, t.x, t.w, mean, rstd, N, C);
      const loss = cpu.crossEntropyForward(dl, t.logits, targets, N, V, 1);
      const out = [y, dx, codes, dW, ln, dw, db, dl].map((b) => cpu.downloadF32(b));
      for (const b of [st, codes, dW, dx, y, dl, mean, rstd, dw, db, ln]) cpu.free(b);
      return { out, loss, ss: cpu.sumSquares(t.x) };
    };
    const before = cpu.threads();
    const results = [1, 2].map((th) => {
      cpu.setThreads(th);
      let r: ReturnType<typeof body> | undefined;
      run(cpu, inputs, { out: N * C, du: N * C, dln: N * C }, (t) => {
        r = body(t);
      });
      return r!;
    });
    cpu.setThreads(before);
    expect(results[1].loss).toBe(results[0].loss);
    expect(results[1].ss).toBe(results[0].ss);
    results[0].out.forEach((a, i) => expect(Buffer.from(results[1].out[i].buffer).equals(Buffer.from(a.buffer)), `output ${i}`).toBe(true));
  });

  test('cpu: changing the thread count right before a job never loses the job (pool start-up race)', () => {
    // A worker created by setThreads must not miss a job published before it first runs.
    const before = cpu.threads();
    const x = cpu.alloc(1 << 17);
    cpu.fill(x, 0.5);
    try {
      for (let i = 0; i < 300; i++) {
        cpu.setThreads(1 + (i % 3));
        expect(cpu.sumSquares(x)).toBe((1 << 17) * 0.25);
      }
    } finally {
      cpu.setThreads(before);
      cpu.free(x);
    }
  });

  test('cpu: every GEMM micro-kernel this CPU supports agrees with the reference', () => {
    const rng = new Rng(29);
    const M = 77,
      N = 91,
      K = 530;
    const inputs = { A: f32(rng, M * K), Bm: f32(rng, K * N), C0: f32(rng, M * N) };
    // reference: C0 + 0.5 * A B (both untransposed)
    const want = new Float64Array(M * N);
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += inputs.A[i * K + k] * inputs.Bm[k * N + j];
        want[i * N + j] = inputs.C0[i * N + j] + 0.5 * s;
      }
    const original = cpu.gemmKernel();
    // op(A) = A^T and op(B) = B^T read the same matrices through the other packing routines (the
    // AVX2 kernel has its own vector packers for both); M, N, K are odd, so rows start at addresses
    // that are only 4-byte aligned.
    const At = new Float64Array(K * M),
      Bt = new Float64Array(N * K);
    for (let i = 0; i < M; i++) for (let k = 0; k < K; k++) At[k * M + i] = inputs.A[i * K + k];
    for (let k = 0; k < K; k++) for (let j = 0; j < N; j++) Bt[j * K + k] = inputs.Bm[k * N + j];
    const all = { ...inputs, At, Bt };
    try {
      for (const k of cpu.supportedGemmKernels()) {
        expect(cpu.setGemmKernel(k)).toBe(true);
        expect(cpu.gemmKernel()).toBe(k);
        for (const [tA, tB] of [
          [false, false],
          [true, false],
          [false, true],
          [true, true],
        ] as const) {
          const got = run(cpu, all, { C0: 0 }, (t) => cpu.sgemm(tA, tB, M, N, K, 0.5, tA ? t.At : t.A, tB ? t.Bt : t.Bm, true, t.C0)).out.C0;
          const e = scaledErr(got, want);
          if (!tA && !tB) record(`sgemm[${k}]:C`, e);
          expect(e, `kernel ${k}, transA ${tA}, transB ${tB}`).toBeLessThan(1e-5);
        }
      }
    } finally {
      cpu.setGemmKernel(original as 'auto');
    }
  });

  test('cpu: CRATE_TS_CPU_KERNEL forces a kernel from the start; an unknown or unavailable one is a one-line error', () => {
    // A child process, because the addon reads the variable when it loads. Uses the built dist/.
    const probe = (kernel: string) =>
      spawnSync(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `import { createCpuBackend } from './dist/backend/cpu.js';
           try { const b = createCpuBackend(); console.log('kernel=' + b.gemmKernel() + ' supported=' + b.supportedGemmKernels().join(',')); }
           catch (e) { console.log('error=' + e.name + ': ' + e.message); }`,
        ],
        { env: { ...process.env, CRATE_TS_CPU_KERNEL: kernel }, encoding: 'utf8', cwd: repoRoot },
      ).stdout.trim();
    const supported = cpu.supportedGemmKernels();
    expect(supported[0]).toBe('scalar');
    for (const k of supported) expect(probe(k)).toBe(`kernel=${k} supported=${supported.join(',')}`);
    expect(probe('auto')).toBe(`kernel=${supported[supported.length - 1]} supported=${supported.join(',')}`);
    expect(probe('sse9')).toBe('error=UsageError: CRATE_TS_CPU_KERNEL=sse9 is not a kernel name (use auto, scalar, avx2, avx512)');
    for (const k of ['avx2', 'avx512'].filter((x) => !supported.includes(x as 'avx2')))
      expect(probe(k)).toBe(`error=UsageError: CRATE_TS_CPU_KERNEL=${k}: this CPU cannot run the ${k} kernel (it can run: ${supported.join(', ')})`);
  });
});
