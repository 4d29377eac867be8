// The float64 SAE reference (src/reference/sae.ts) against central finite differences of the whole
// loss, and the top-k's tie rule, k = 1 and k = S. The native twins are tied to this reference by
// test/differential.test.ts.
import { describe, expect, test } from 'vitest';
import {
  saeDecodeBackward,
  saeDecodeForward,
  saeDecoderProject,
  saeEncodeBackward,
  saeEncodeForward,
  saeMseLoss,
  saeNormalizeRows,
  saeTopk,
} from '../src/reference/sae.js';
import { Rng } from '../src/util/rng.js';

interface Params {
  We: Float64Array;
  be: Float64Array;
  Wd: Float64Array;
  bd: Float64Array;
}

function randn(rng: Rng, n: number, s = 1): Float64Array {
  return Float64Array.from({ length: n }, () => s * rng.normal());
}

/** L = normalised MSE + l1/N Σh, plus (auxK > 0) the AuxK term on the features with mask != 0. */
function loss(
  p: Params,
  x: Float64Array,
  N: number,
  D: number,
  S: number,
  k: number,
  l1: number,
  aux?: { mask: Float64Array; kAux: number; coef: number; target?: Float64Array },
): number {
  const pre = new Float64Array(N * S),
    h = new Float64Array(N * S),
    xh = new Float64Array(N * D);
  saeEncodeForward(pre, h, x, p.We, p.be, p.bd, N, D, S, k);
  saeDecodeForward(xh, h, p.Wd, p.bd, N, D, S);
  let L = saeMseLoss(null, xh, x, N, D, 1) + (l1 / N) * h.reduce((a, b) => a + b, 0);
  if (aux) {
    // AuxK: e = x − x̂ is a constant target (computed at the current parameters and held fixed)
    const ha = new Float64Array(N * S),
      eh = new Float64Array(N * D);
    saeTopk(ha, pre, aux.mask, N, S, aux.kAux);
    saeDecodeForward(eh, ha, p.Wd, null, N, D, S);
    L += aux.coef * saeMseLoss(null, eh, aux.target!, N, D, 1);
  }
  return L;
}

function grads(
  p: Params,
  x: Float64Array,
  N: number,
  D: number,
  S: number,
  k: number,
  l1: number,
  aux?: { mask: Float64Array; kAux: number; coef: number; target?: Float64Array },
): Params {
  const g: Params = { We: new Float64Array(D * S), be: new Float64Array(S), Wd: new Float64Array(S * D), bd: new Float64Array(D) };
  const pre = new Float64Array(N * S),
    h = new Float64Array(N * S),
    xh = new Float64Array(N * D),
    dxh = new Float64Array(N * D),
    dpre = new Float64Array(N * S);
  saeEncodeForward(pre, h, x, p.We, p.be, p.bd, N, D, S, k);
  saeDecodeForward(xh, h, p.Wd, p.bd, N, D, S);
  saeMseLoss(dxh, xh, x, N, D, 1);
  saeDecodeBackward(dpre, g.Wd, g.bd, dxh, h, p.Wd, N, D, S, l1 / N);
  saeEncodeBackward(g.We, g.be, g.bd, dpre, x, p.We, p.bd, N, D, S);
  if (aux) {
    const ha = new Float64Array(N * S),
      eh = new Float64Array(N * D),
      deh = new Float64Array(N * D),
      dpa = new Float64Array(N * S);
    saeTopk(ha, pre, aux.mask, N, S, aux.kAux);
    saeDecodeForward(eh, ha, p.Wd, null, N, D, S);
    saeMseLoss(deh, eh, aux.target!, N, D, aux.coef);
    saeDecodeBackward(dpa, g.Wd, null, deh, ha, p.Wd, N, D, S, 0);
    saeEncodeBackward(g.We, g.be, g.bd, dpa, x, p.We, p.bd, N, D, S);
  }
  return g;
}

function checkFd(N: number, D: number, S: number, k: number, l1: number, seed: number, withAux = false): void {
  const rng = new Rng(seed);
  const x = randn(rng, N * D, 1);
  const p: Params = { We: randn(rng, D * S, 0.7), be: randn(rng, S, 0.3), Wd: randn(rng, S * D), bd: randn(rng, D, 0.2) };
  saeNormalizeRows(p.Wd, S, D);
  let aux: { mask: Float64Array; kAux: number; coef: number; target: Float64Array } | undefined;
  if (withAux) {
    const mask = Float64Array.from({ length: S }, (_, j) => (j % 2 === 1 ? 1 : 0));
    // target: the residual at the starting parameters, held fixed (as the trainer does)
    const pre = new Float64Array(N * S),
      h = new Float64Array(N * S),
      xh = new Float64Array(N * D);
    saeEncodeForward(pre, h, x, p.We, p.be, p.bd, N, D, S, k);
    saeDecodeForward(xh, h, p.Wd, p.bd, N, D, S);
    aux = { mask, kAux: 2, coef: 1 / 32, target: x.map((v, e) => v - xh[e]) };
  }
  const g = grads(p, x, N, D, S, k, l1, aux);
  const eps = 1e-6;
  let checked = 0;
  for (const name of ['We', 'be', 'Wd', 'bd'] as const) {
    const a = p[name];
    for (let i = 0; i < a.length; i++) {
      const v = a[i];
      a[i] = v + eps;
      const lp = loss(p, x, N, D, S, k, l1, aux as never);
      a[i] = v - eps;
      const lm = loss(p, x, N, D, S, k, l1, aux as never);
      a[i] = v;
      const fd = (lp - lm) / (2 * eps);
      expect(Math.abs(fd - g[name][i]), `${name}[${i}] fd ${fd} analytic ${g[name][i]} (N=${N} D=${D} S=${S} k=${k})`).toBeLessThan(1e-6 + 1e-5 * Math.abs(fd));
      checked++;
    }
  }
  expect(checked).toBe(2 * D * S + S + D);
}

describe('SAE reference: gradients against central finite differences of the whole loss', () => {
  test('relu (k = S) with the L1 term', () => checkFd(6, 4, 10, 10, 0.05, 1));
  test('relu written as k > S', () => checkFd(5, 3, 7, 100, 0.2, 2));
  test('topk k = 1', () => checkFd(6, 4, 9, 1, 0, 3));
  test('topk k = 3 with AuxK on the odd features', () => checkFd(7, 5, 12, 3, 0, 4, true));
  test('a sample of one row (the variance normaliser falls back to N)', () => checkFd(1, 3, 5, 2, 0.01, 5));
});

describe('SAE reference: top-k', () => {
  test('ties keep the lower index; k = 1 keeps the first maximum; negatives become 0', () => {
    const pre = Float64Array.from([1, 3, 3, -1, 3, 2]);
    const h = new Float64Array(6);
    saeTopk(h, pre, null, 1, 6, 2);
    expect(Array.from(h)).toEqual([0, 3, 3, 0, 0, 0]);
    saeTopk(h, pre, null, 1, 6, 1);
    expect(Array.from(h)).toEqual([0, 3, 0, 0, 0, 0]);
    saeTopk(h, pre, null, 1, 6, 3);
    expect(Array.from(h)).toEqual([0, 3, 3, 0, 3, 0]);
    // a kept entry that is <= 0 still becomes 0 (relu after the selection)
    const neg = Float64Array.from([5, 5, 5]);
    saeTopk(neg, Float64Array.from([-2, -1, -3]), null, 1, 3, 1);
    expect(Array.from(neg)).toEqual([0, 0, 0]);
  });
  test('k = S and k > S are the plain relu; the mask restricts the candidates', () => {
    const rng = new Rng(7);
    const pre = randn(rng, 4 * 9);
    const a = new Float64Array(36),
      b = new Float64Array(36);
    saeTopk(a, pre, null, 4, 9, 9);
    saeTopk(b, pre, null, 4, 9, 1000);
    expect(Array.from(a)).toEqual(Array.from(pre, (v) => Math.max(v, 0)));
    expect(Array.from(b)).toEqual(Array.from(a));
    const mask = Float64Array.from([0, 1, 0, 1, 0, 1, 0, 1, 0]);
    const m = new Float64Array(9);
    saeTopk(m, Float64Array.from([9, 1, 8, 2, 7, 3, 6, 4, 5]), mask, 1, 9, 2);
    expect(Array.from(m)).toEqual([0, 0, 0, 0, 0, 3, 0, 4, 0]);
  });
});

describe('SAE reference: decoder geometry', () => {
  test('the projected gradient is orthogonal to its row; normalised rows have unit norm; zero rows stay 0', () => {
    const rng = new Rng(3);
    const S = 5,
      D = 7;
    const W = randn(rng, S * D, 3),
      g = randn(rng, S * D);
    W.fill(0, 0, D);
    const g0 = g.slice(0, D);
    saeDecoderProject(g, W, S, D);
    expect(Array.from(g.slice(0, D))).toEqual(Array.from(g0));
    for (let j = 1; j < S; j++) {
      let dot = 0;
      for (let i = 0; i < D; i++) dot += g[j * D + i] * W[j * D + i];
      expect(Math.abs(dot)).toBeLessThan(1e-12);
    }
    saeNormalizeRows(W, S, D);
    expect(Array.from(W.slice(0, D))).toEqual(new Array(D).fill(0));
    for (let j = 1; j < S; j++) {
      let n = 0;
      for (let i = 0; i < D; i++) n += W[j * D + i] ** 2;
      expect(Math.abs(n - 1)).toBeLessThan(1e-14);
    }
  });
  test('the normalised loss is the FVU: 1 for the mean reconstruction, 0 for the exact one', () => {
    const rng = new Rng(9);
    const N = 8,
      D = 3;
    const x = randn(rng, N * D);
    const mean = new Float64Array(N * D);
    for (let i = 0; i < D; i++) {
      let m = 0;
      for (let n = 0; n < N; n++) m += x[n * D + i] / N;
      for (let n = 0; n < N; n++) mean[n * D + i] = m;
    }
    expect(saeMseLoss(null, mean, x, N, D, 1)).toBeCloseTo(1, 12);
    expect(saeMseLoss(null, x, x, N, D, 1)).toBe(0);
    expect(Number.isNaN(saeMseLoss(null, x, x, 0, D, 1))).toBe(true);
  });
});
