// The CUDA backend (src/backend/cuda.ts over native/cuda/): what must hold on every machine, and
// what is checked when a GPU answers.
//
// Everywhere: constructing the backend without a usable device throws one clear Error ("no CUDA
// device: <reason>" or "the addon was built without CUDA: run npm run build:cuda"), selectBackend
// reports it, and 'auto' falls back to another backend. With CRATE_TS_REQUIRE_CUDA=1 (npm run
// test:gpu) an unavailable CUDA backend is a failure instead of a skip.
// With a GPU: memory and views, errors that name the operator (bad handles, other backends' buffers,
// out of memory with the bytes), every PyTorch fixture reproduced (logits, loss, every gradient) at
// the fixture tolerance, bitwise-identical training steps from the same state (no atomics), and the
// TF32 precision switch. Operator-by-operator agreement with the float64 reference is the shared
// differential suite (test/differential.test.ts), which runs on the cuda backend too.
import { describe, test, expect } from 'vitest';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CudaBackend, CudaBuf, probeCuda, hasNvidiaDriver } from '../src/backend/cuda.js';
import { UsageError } from '../src/errors.js';
import { selectBackend } from '../src/backend/select.js';
import { loadFixture, auditFixture } from '../src/audit/fixture.js';
import { FIXTURE_TOLERANCE } from '../src/audit/tolerances.js';
import { LanguageModel } from '../src/model/lm.js';
import { makeConfig } from '../src/model/config.js';
import { AdamW } from '../src/train/optimizer.js';
import { Rng } from '../src/util/rng.js';

const REQUIRE = process.env.CRATE_TS_REQUIRE_CUDA === '1';
const probe = probeCuda();
let be: CudaBackend | null = null;
let why = probe.reason ?? '';
if (probe.reason === null) {
  try {
    be = new CudaBackend();
  } catch (e) {
    why = (e as Error).message;
  }
}
const gpu = be !== null;
/** scripts/check-cuda.sh --emulate runs this file on the CPU emulator: thousands of times slower than a GPU. */
const EMULATED = /emulator/.test(be?.info.device ?? '');
const FIXTURES = readdirSync('fixtures')
  .filter((f) => f.endsWith('.safetensors'))
  .map((f) => join('fixtures', f));

describe('cuda backend: availability', () => {
  test(`cuda: available${gpu ? ` (${be?.info.device}, cc ${be?.info.computeCapability})` : ` - no (${why})`}`, () => {
    if (REQUIRE) expect(gpu, `CRATE_TS_REQUIRE_CUDA=1 but the cuda backend is unavailable: ${why}`).toBe(true);
    if (!gpu) {
      expect(why).toMatch(
        /^(no CUDA device: .+|the addon was built without CUDA: run npm run build:cuda|no NVIDIA driver on this machine|the native addon is not available .+)$/,
      );
      expect(() => new CudaBackend()).toThrow(why);
      // a machine without an NVIDIA driver is not told on every command to build CUDA
      if (!hasNvidiaDriver()) expect(why).not.toMatch(/build:cuda/);
    }
  });

  test('cuda: selectBackend reports the reason, and auto falls back', async () => {
    if (gpu) {
      const r = await selectBackend('cuda');
      expect(r.name).toBe('cuda');
      return;
    }
    await expect(selectBackend('cuda')).rejects.toThrow(/backend 'cuda' was requested but is unavailable/);
    const r = await selectBackend('auto');
    expect(r.name).not.toBe('cuda');
    expect(r.reason).toContain('cuda (');
  });
});

const suite = gpu ? describe : describe.skip;

suite(`cuda backend on ${gpu ? be?.info.device : 'no device'}`, () => {
  const cu = be as CudaBackend;

  test('cuda: alloc is zero-filled; upload, views, fill, copy, download round-trip; liveBuffers counts', () => {
    const before = cu.liveBuffers();
    const a = cu.alloc(7),
      b = cu.alloc(7);
    expect(cu.liveBuffers()).toBe(before + 2);
    expect(Array.from(cu.download(a))).toEqual([0, 0, 0, 0, 0, 0, 0]);
    cu.upload(a, [1, 2, 3, 4, 5, 6, 7]);
    cu.fill(cu.view(a, 2, 3), -1);
    cu.copy(b, a);
    cu.upload(cu.view(b, 6, 1), Float32Array.of(Infinity));
    expect(Array.from(cu.download(a))).toEqual([1, 2, -1, -1, -1, 6, 7]);
    expect(Array.from(cu.downloadF32(b))).toEqual([1, 2, -1, -1, -1, 6, Infinity]);
    expect(cu.allFinite(b)).toBe(false);
    expect(cu.allFinite(cu.view(b, 0, 6))).toBe(true);
    expect(cu.sumSquares(a)).toBe(1 + 4 + 1 + 1 + 1 + 36 + 49);
    expect(() => cu.free(cu.view(a, 0, 1))).toThrow(/view/);
    cu.free(a);
    cu.free(b);
    expect(cu.liveBuffers()).toBe(before);
  });

  test('cuda: errors name the operator: freed buffers, foreign buffers, bad sizes, out of memory', () => {
    const a = cu.alloc(4);
    cu.free(a);
    expect(() => cu.download(a)).toThrow(/cuda\.download: src refers to CUDA buffer .* freed or never allocated/);
    expect(() => cu.add({ handle: 1, offset: 0, length: 4 } as unknown as CudaBuf, a, a)).toThrow(UsageError);
    const x = cu.alloc(6),
      w = cu.alloc(5),
      o = cu.alloc(2);
    expect(() => cu.linearForward(o, x, w, null, 2, 3, 1)).toThrow(/cuda\.linear_forward: weight has 5 elements, expected OC\*C = 3/);
    expect(() => cu.alloc(2 ** 39)).toThrow(/cuda\.alloc: out of GPU memory: cannot allocate \d+ bytes/);
    // the device is still usable after an out-of-memory error
    cu.upload(x, [1, 2, 3, 4, 5, 6]);
    expect(cu.sumSquares(x)).toBe(91);
    for (const b of [x, w, o]) cu.free(b);
  });

  for (const f of FIXTURES) {
    test(`cuda: reproduces ${f} (logits, loss, every gradient) at the fixture tolerance`, () => {
      const res = auditFixture(loadFixture(f), cu, FIXTURE_TOLERANCE.cuda);
      const bad = res.rows.filter((r) => !r.pass).map((r) => `${r.name}: abs ${r.maxAbsErr} rel ${r.maxRelErr}`);
      expect(bad).toEqual([]);
    });
  }

  test(
    'cuda: two training steps from the same state are bitwise identical (deterministic kernels)',
    () => {
      const cfg = makeConfig(undefined, { vocabSize: 300, blockSize: 96, nLayer: 2, nHead: 2, nEmbd: 64 });
      const rng = new Rng(5),
        B = 3,
        T = 96,
        n = B * T;
      const idx = Int32Array.from({ length: n }, () => rng.int(cfg.vocabSize));
      const tg = Int32Array.from({ length: n }, () => rng.int(cfg.vocabSize));
      const run = () => {
        const m = new LanguageModel(cu, cfg, { seed: 11 });
        const opt = new AdamW(m);
        const losses: number[] = [];
        try {
          for (let s = 0; s < 3; s++) {
            m.zeroGrad();
            losses.push(m.forward(idx, B, T, tg, { returnLogits: false }).loss as number);
            m.backward();
            opt.step(1e-3);
          }
          return { losses, params: m.getParams() };
        } finally {
          opt.free();
          m.free();
        }
      };
      const r1 = run(),
        r2 = run();
      expect(r2.losses).toEqual(r1.losses);
      expect(Buffer.from(r2.params.buffer).equals(Buffer.from(r1.params.buffer))).toBe(true);
    },
    EMULATED ? 1_800_000 : undefined,
  ); // six training steps take minutes on the CPU emulator (5 to 9 min measured on the loaded 2-core VM)

  // (the CPU emulator of scripts/check-cuda.sh --emulate has no tensor cores)
  test.skipIf(/emulator/.test(cu?.info.device ?? ''))('cuda: the TF32 switch changes only the precision of matrix products', () => {
    const rng = new Rng(3),
      N = 200,
      C = 300,
      OC = 150;
    const xs = Float64Array.from({ length: N * C }, () => Math.fround(rng.normal()));
    const ws = Float64Array.from({ length: OC * C }, () => Math.fround(rng.normal()));
    const x = cu.alloc(N * C),
      w = cu.alloc(OC * C),
      o = cu.alloc(N * OC);
    cu.upload(x, xs);
    cu.upload(w, ws);
    try {
      cu.linearForward(o, x, w, null, N, C, OC);
      const fp32 = cu.download(o);
      cu.setPrecision('tf32');
      expect(cu.precision()).toBe('tf32');
      cu.linearForward(o, x, w, null, N, C, OC);
      const tf32 = cu.download(o);
      let maxRef = 0,
        maxErr = 0;
      for (let i = 0; i < fp32.length; i++) {
        maxRef = Math.max(maxRef, Math.abs(fp32[i]));
        maxErr = Math.max(maxErr, Math.abs(tf32[i] - fp32[i]));
      }
      // TF32 keeps 10 mantissa bits of each input: over C = 300 products the results must move
      // (by ~1e-4 of the largest output), or the switch did nothing; by far less than 1%.
      expect(maxErr).toBeGreaterThan(1e-5 * maxRef);
      expect(maxErr).toBeLessThan(1e-2 * maxRef);
    } finally {
      cu.setPrecision('fp32');
      for (const b of [x, w, o]) cu.free(b);
    }
  });
});
