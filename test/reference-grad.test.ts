// Every reference operator's backward checked against central finite differences in float64,
// on shapes and values drawn by fast-check (T = 1, one head, widths not multiples of 4 included).
// Each case is registered with fdTest(method, ...) under the Backend method whose gradient it checks,
// and the last test fails when an operator of the table (native/ops.json) that computes a gradient
// (a backward, or a forward fused with one such as crossEntropyForward's dlogits) has no case here.
import { checkFd, checkProjectFd } from './helpers/sae-fd.js';
import { describe, test, expect } from 'vitest';
import fc from 'fast-check';
import { Rng } from '../src/util/rng.js';
import { fdCheck, randn, randTokens, dot } from './helpers/fd.js';
import { embeddingForward, embeddingBackward } from '../src/reference/embedding.js';
import { layernormForward, layernormBackward } from '../src/reference/layernorm.js';
import { linearForward, linearBackward } from '../src/reference/linear.js';
import { reluForward, reluBackward } from '../src/reference/elementwise.js';
import { mssaForward, mssaBackward, attentionForward, attentionBackward, attentionSavedSize } from '../src/reference/mssa.js';
import { istaForward, istaBackward, istaCompleteForward, istaCompleteBackward } from '../src/reference/ista.js';
import { crossEntropyForward } from '../src/reference/loss.js';
import { OPERATORS, type OpSpec } from '../src/backend/op-table.js';

const RUNS = { numRuns: 12 };
const seedArb = fc.integer({ min: 1, max: 1 << 30 });
const expectPass = (r: { worst: number; at: number; analytic: number; numeric: number }, what: string) =>
  expect(r.worst, `${what}: coordinate ${r.at} analytic ${r.analytic} vs numeric ${r.numeric}`).toBeLessThanOrEqual(1);

/** Backend methods that have a finite-difference case below. */
const FD_COVERED = new Set<string>();
/** A finite-difference case for the gradient(s) that operator `method` computes. */
function fdTest(method: string, title: string, fn: () => void): void {
  FD_COVERED.add(method);
  test(`${method}: ${title}`, fn);
}

/**
 * The operators of the table that compute a gradient: every backward, and every forward with a
 * gradient output (an output buffer named d<x>, e.g. dlogits). Helpers (fill, copy, ...) are not operators.
 */
function gradientOperators(ops: readonly OpSpec[]): string[] {
  return ops
    .filter(
      (o) => o.group === 'operator' && (o.direction === 'backward' || o.args.some((a) => (a.kind === 'out' || a.kind === 'acc') && /^d[a-zA-Z]/.test(a.name))),
    )
    .map((o) => o.method);
}

describe('reference: finite differences', () => {
  fdTest('embeddingBackward', 'embedding: dwte (with repeated ids, so rows accumulate) and dwpe', () => {
    fc.assert(
      fc.property(
        seedArb,
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 7 }),
        fc.integer({ min: 1, max: 4 }),
        (seed, B, T, C, V) => {
          const rng = new Rng(seed);
          const wte = randn(rng, V * C),
            wpe = randn(rng, T * C),
            idx = randTokens(rng, B * T, V),
            R = randn(rng, B * T * C);
          const out = new Float64Array(B * T * C);
          const L = () => {
            embeddingForward(out, idx, wte, wpe, B, T, C);
            return dot(out, R);
          };
          const dwte = new Float64Array(V * C),
            dwpe = new Float64Array(T * C);
          embeddingBackward(dwte, dwpe, R, idx, B, T, C);
          expectPass(fdCheck(wte, L, dwte, rng), 'dwte');
          expectPass(fdCheck(wpe, L, dwpe, rng), 'dwpe');
        },
      ),
      RUNS,
    );
  });

  fdTest('layernormBackward', 'layernorm: dinp, dweight, dbias (including large offsets and scales)', () => {
    fc.assert(
      fc.property(seedArb, fc.integer({ min: 1, max: 6 }), fc.integer({ min: 2, max: 11 }), fc.constantFrom(1, 1e-2, 30), (seed, N, C, scale) => {
        const rng = new Rng(seed);
        const inp = randn(rng, N * C, scale),
          w = randn(rng, C),
          b = randn(rng, C),
          R = randn(rng, N * C);
        for (let i = 0; i < inp.length; i++) inp[i] += 3 * scale;
        const out = new Float64Array(N * C),
          mean = new Float64Array(N),
          rstd = new Float64Array(N);
        const L = () => {
          layernormForward(out, mean, rstd, inp, w, b, N, C, 1e-5);
          return dot(out, R);
        };
        L();
        const dinp = new Float64Array(N * C),
          dw = new Float64Array(C),
          db = new Float64Array(C);
        layernormBackward(dinp, dw, db, R, inp, w, mean, rstd, N, C);
        const h = 1e-6 * scale;
        expectPass(fdCheck(inp, L, dinp, rng, { h, rtol: 1e-5, atol: 1e-7 }), 'dinp');
        expectPass(fdCheck(w, L, dw, rng), 'dweight');
        expectPass(fdCheck(b, L, db, rng), 'dbias');
      }),
      RUNS,
    );
  });

  fdTest('linearBackward', 'linear: dinp, dweight, dbias; gradients accumulate', () => {
    fc.assert(
      fc.property(
        seedArb,
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 1, max: 9 }),
        fc.boolean(),
        (seed, N, C, OC, withBias) => {
          const rng = new Rng(seed);
          const x = randn(rng, N * C),
            W = randn(rng, OC * C),
            b = withBias ? randn(rng, OC) : null,
            R = randn(rng, N * OC);
          const out = new Float64Array(N * OC);
          const L = () => {
            linearForward(out, x, W, b, N, C, OC);
            return dot(out, R);
          };
          const dx = new Float64Array(N * C),
            dW = new Float64Array(OC * C),
            db = withBias ? new Float64Array(OC) : null;
          linearBackward(dx, dW, db, R, x, W, N, C, OC);
          expectPass(fdCheck(x, L, dx, rng), 'dinp');
          expectPass(fdCheck(W, L, dW, rng), 'dweight');
          if (b && db) expectPass(fdCheck(b, L, db, rng), 'dbias');
          // accumulation: a second backward doubles the parameter gradients, rewrites dinp
          const dW1 = Float64Array.from(dW),
            dx1 = Float64Array.from(dx);
          linearBackward(dx, dW, db, R, x, W, N, C, OC);
          for (let i = 0; i < dW.length; i++) expect(dW[i]).toBeCloseTo(2 * dW1[i], 12);
          expect(Array.from(dx)).toEqual(Array.from(dx1));
        },
      ),
      RUNS,
    );
  });

  fdTest('reluBackward', 'relu: gradient 1 above 0, exactly 0 at and below 0', () => {
    const inp = Float64Array.from([-2, -0, 0, 1e-300, 3, NaN]);
    const out = new Float64Array(6),
      d = new Float64Array(6);
    reluForward(out, inp);
    reluBackward(d, Float64Array.from([1, 1, 1, 1, 1, 1]), out);
    expect(Array.from(out)).toEqual([0, 0, 0, 1e-300, 3, NaN]); // NaN propagates, as in PyTorch
    expect(Array.from(d)).toEqual([0, 0, 0, 1, 1, 0]);
  });

  const attnShape = fc.record({
    seed: seedArb,
    B: fc.integer({ min: 1, max: 2 }),
    T: fc.integer({ min: 1, max: 6 }),
    NH: fc.integer({ min: 1, max: 3 }),
    p: fc.integer({ min: 1, max: 5 }),
    scale: fc.constantFrom(0.5, 1, 4),
  });

  fdTest('mssaBackward', 'MSSA (q = k = v): dv through all three tied paths', () => {
    fc.assert(
      fc.property(attnShape, ({ seed, B, T, NH, p, scale }) => {
        const rng = new Rng(seed),
          C = NH * p;
        const v = randn(rng, B * T * C, scale),
          R = randn(rng, B * T * C);
        const y = new Float64Array(B * T * C),
          att = new Float64Array(attentionSavedSize(B, NH, T));
        const L = () => {
          mssaForward(y, att, v, B, T, C, NH);
          return dot(y, R);
        };
        L();
        const dv = new Float64Array(B * T * C);
        mssaBackward(dv, R, v, y, att, B, T, C, NH);
        expectPass(fdCheck(v, L, dv, rng, { rtol: 1e-5, atol: 1e-7 }), 'dv');
      }),
      RUNS,
    );
  });

  fdTest('attentionBackward', 'GPT-2 attention (separate q, k, v): dqkv', () => {
    fc.assert(
      fc.property(attnShape, ({ seed, B, T, NH, p, scale }) => {
        const rng = new Rng(seed),
          C = NH * p;
        const qkv = randn(rng, B * T * 3 * C, scale),
          R = randn(rng, B * T * C);
        const y = new Float64Array(B * T * C),
          att = new Float64Array(attentionSavedSize(B, NH, T));
        const L = () => {
          attentionForward(y, att, qkv, B, T, C, NH);
          return dot(y, R);
        };
        L();
        const d = new Float64Array(B * T * 3 * C);
        attentionBackward(d, R, qkv, y, att, B, T, C, NH);
        expectPass(fdCheck(qkv, L, d, rng, { rtol: 1e-5, atol: 1e-7 }), 'dqkv');
      }),
      RUNS,
    );
  });

  /** The pre-activations of every ISTA step, to keep finite differences away from ReLU kinks. */
  function istaPre(u: Float64Array, A: Float64Array, N: number, C: number, H: number, eta: number, lam: number, steps: number): number {
    const codes = new Float64Array(steps * N * H),
      out = new Float64Array(N * C);
    let minAbs = Infinity;
    for (let s = 1; s <= steps; s++) {
      // a_s pre-activation = a_s computed with lam shifted: pre = relu^-1 is not available, so recompute directly
      istaForward(out, codes, u, A, N, C, H, eta, lam, s);
      const prevCodes = codes.slice((s - 2) * N * H, (s - 1) * N * H);
      for (let n = 0; n < N; n++)
        for (let k = 0; k < H; k++) {
          let g = 0;
          for (let c = 0; c < C; c++) {
            let r = u[n * C + c];
            if (s > 1) for (let j = 0; j < H; j++) r -= prevCodes[n * H + j] * A[j * C + c];
            g += r * A[k * C + c];
          }
          const pre = (s > 1 ? prevCodes[n * H + k] : 0) + eta * g - eta * lam;
          minAbs = Math.min(minAbs, Math.abs(pre));
        }
    }
    return minAbs;
  }

  fdTest('istaBackward', 'overcomplete ISTA (1-3 steps from zero, decode): du and dA', () => {
    fc.assert(
      fc.property(
        seedArb,
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 3 }),
        (seed, N, C, factor, steps) => {
          const rng = new Rng(seed),
            H = factor * C,
            eta = 0.3,
            lam = 0.1;
          const u = randn(rng, N * C, 2),
            A = randn(rng, H * C, 0.8),
            R = randn(rng, N * C);
          fc.pre(istaPre(u, A, N, C, H, eta, lam, steps) > 1e-4);
          const out = new Float64Array(N * C),
            codes = new Float64Array(steps * N * H);
          const L = () => {
            istaForward(out, codes, u, A, N, C, H, eta, lam, steps);
            return dot(out, R);
          };
          L();
          const du = new Float64Array(N * C),
            dA = new Float64Array(H * C);
          istaBackward(du, dA, R, u, A, codes, N, C, H, eta, lam, steps);
          expectPass(fdCheck(u, L, du, rng, { rtol: 1e-5, atol: 1e-7 }), 'du');
          expectPass(fdCheck(A, L, dA, rng, { rtol: 1e-5, atol: 1e-7 }), 'dA');
        },
      ),
      { numRuns: 20 },
    );
  });

  test('ISTA: an entry exactly at the threshold is zero and passes no gradient', () => {
    // One atom, u chosen so that η·<u, atom> − ηλ = 0 exactly for step 1.
    const C = 2,
      H = 1,
      eta = 0.5,
      lam = 0.25;
    const A = Float64Array.from([1, 0]);
    const u = Float64Array.from([0.25, 1]); // η·u·Aᵀ = 0.125 = ηλ
    const out = new Float64Array(C),
      codes = new Float64Array(H);
    istaForward(out, codes, u, A, 1, C, H, eta, lam, 1);
    expect(codes[0]).toBe(0);
    expect(Array.from(out)).toEqual([0, 0]);
    const du = new Float64Array(C),
      dA = new Float64Array(H * C);
    istaBackward(du, dA, Float64Array.from([1, 1]), u, A, codes, 1, C, H, eta, lam, 1);
    expect(Array.from(du)).toEqual([0, 0]);
    expect(Array.from(dA)).toEqual([0, 0]);
  });

  fdTest('istaCompleteBackward', 'complete ISTA (paper B, E14): dx and dW', () => {
    fc.assert(
      fc.property(seedArb, fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 7 }), (seed, N, C) => {
        const rng = new Rng(seed),
          eta = 0.3,
          lam = 0.1;
        const x = randn(rng, N * C),
          W = randn(rng, C * C, 0.7),
          R = randn(rng, N * C);
        const out = new Float64Array(N * C);
        // keep away from the kink: pre = out where positive; check min |pre| via a lam-shifted probe
        const probe = new Float64Array(N * C),
          probe2 = new Float64Array(N * C);
        istaCompleteForward(probe, x, W, N, C, eta, lam - 1e-3);
        istaCompleteForward(probe2, x, W, N, C, eta, lam + 1e-3);
        let kink = false;
        for (let i = 0; i < probe.length; i++) if (probe[i] > 0 !== probe2[i] > 0) kink = true;
        fc.pre(!kink);
        const L = () => {
          istaCompleteForward(out, x, W, N, C, eta, lam);
          return dot(out, R);
        };
        L();
        const dx = new Float64Array(N * C),
          dW = new Float64Array(C * C);
        istaCompleteBackward(dx, dW, R, x, W, out, N, C, eta, lam);
        expectPass(fdCheck(x, L, dx, rng, { rtol: 1e-5, atol: 1e-7 }), 'dx');
        expectPass(fdCheck(W, L, dW, rng, { rtol: 1e-5, atol: 1e-7 }), 'dW');
      }),
      RUNS,
    );
  });

  fdTest('crossEntropyForward', 'cross-entropy fused with softmax backward: dlogits, ignore index -1, gradScale', () => {
    fc.assert(
      fc.property(seedArb, fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 9 }), fc.constantFrom(1, 10, 80), (seed, N, V, scale) => {
        const rng = new Rng(seed);
        const logits = randn(rng, N * V, scale);
        const targets = new Int32Array(N);
        for (let n = 0; n < N; n++) targets[n] = n === 0 ? rng.int(V) : rng.uniform() < 0.25 ? -1 : rng.int(V);
        const dl = new Float64Array(N * V);
        const loss = crossEntropyForward(dl, logits, targets, N, V, 0.5);
        expect(Number.isFinite(loss)).toBe(true);
        // atol grows with the logit scale: the loss is O(scale), so float64 cancellation in the difference is ~1e-16·scale/h
        const L = () => 0.5 * crossEntropyForward(null, logits, targets, N, V, 1);
        expectPass(fdCheck(logits, L, dl, rng, { h: 1e-6, rtol: 1e-5, atol: 1e-7 * scale }), 'dlogits');
        for (let n = 0; n < N; n++) if (targets[n] === -1) for (let i = 0; i < V; i++) expect(dl[n * V + i]).toBe(0);
      }),
      RUNS,
    );
    expect(Number.isNaN(crossEntropyForward(null, new Float64Array(3), Int32Array.from([-1]), 1, 3, 1))).toBe(true);
  });

  // The SAE operators are checked through the whole SAE loss (test/helpers/sae-fd.ts): the MSE's
  // dx̂, the decoder's and the encoder's backward (relu with L1, top-k, AuxK), and the decoder-row
  // projection as the derivative of the loss of renormalised rows.
  fdTest('saeMseLoss', 'SAE normalised MSE: dx̂, through the whole loss (relu + L1)', () => checkFd(6, 4, 10, 10, 0.05, 1));
  fdTest('saeDecodeBackward', 'SAE decode backward: dh (L1 included), dW_dec, db_dec (top-k, k = 3, AuxK)', () => checkFd(7, 5, 12, 3, 0, 4, true));
  fdTest('saeEncodeBackward', 'SAE encode backward: dW_enc, db_enc, db_dec through the input centring (k = 1)', () => checkFd(6, 4, 9, 1, 0, 3));
  fdTest('saeDecoderProject', 'SAE decoder projection: the derivative of the loss of renormalised rows', () => checkProjectFd(5, 4, 7, 3, 8));

  test('every operator of the table that computes a gradient has a finite-difference case here', () => {
    const needed = gradientOperators(OPERATORS as readonly OpSpec[]);
    expect(needed).toContain('istaBackward');
    expect(needed).toContain('crossEntropyForward');
    expect(needed).not.toContain('istaForward');
    const methods = new Set(OPERATORS.map((o) => o.method as string));
    const unknown = [...FD_COVERED].filter((m) => !methods.has(m));
    expect(unknown, `fdTest names methods the operator table does not have: ${unknown.join(', ')}`).toEqual([]);
    const missing = needed.filter((m) => !FD_COVERED.has(m));
    expect(missing, `operators with a gradient but no finite-difference case in test/reference-grad.test.ts: ${missing.join(', ')}`).toEqual([]);
  });
});
