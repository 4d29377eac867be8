// The float64 SAE reference (src/reference/sae.ts) against central finite differences of the whole
// loss, and the top-k's tie rule, k = 1 and k = S. The native twins are tied to this reference by
// test/differential.test.ts.
import { describe, expect, test } from 'vitest';
import { saeDecoderProject, saeMseLoss, saeNormalizeRows, saeTopk } from '../src/reference/sae.js';
import { Rng } from '../src/util/rng.js';
import { checkFd, randn } from './helpers/sae-fd.js';

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
