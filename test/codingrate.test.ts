// The float64 coding-rate reference (src/verify/codingrate.ts) and its linear algebra
// (src/verify/linalg.ts): gradients against finite differences, Sylvester's identity on random
// shapes, the Cholesky error, and the small factorizations the property checks rely on.
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { Rng } from '../src/util/rng.js';
import {
  type Mat,
  mat,
  fromRows,
  eye,
  randn,
  transpose,
  matmul,
  matmulTN,
  gram,
  add,
  sub,
  scale,
  dot,
  frobenius,
  maxAbsDiff,
  cholesky,
  logdetSPD,
  solveSPD,
  solve,
  inverse,
  symEig,
  singularValues,
  sigmaMax,
  qr,
  randomOrthogonal,
  randomOrthonormal,
  colSlice,
  NotPositiveDefiniteError,
} from '../src/verify/linalg.js';
import {
  codingRate,
  codingRateSpectral,
  compressionRate,
  rateReduction,
  sparseRateReduction,
  gradCodingRate,
  gradCompressionRate,
  gradRateReduction,
  gradSparseRateReduction,
  gradCompressionNeumann1,
  gradCompressionSpanning,
  columnSoftmax,
  ssa,
  mssaTheory,
  betaOf,
  alphaOf,
  lassoObjective,
  istaStep,
  istaCompleteStep,
  istaFromZero,
  lipschitzConstant,
  measuredCompression,
  tokensToColumns,
  columnsToTokens,
  subspacesFromCAttn,
  dictionaryFromIstaWeight,
} from '../src/verify/codingrate.js';
import { istaForward } from '../src/reference/ista.js';
import { linearForward } from '../src/reference/linear.js';

function spanning(d: number, K: number, rng: Rng): Mat[] {
  const Q = randomOrthogonal(d, rng),
    p = d / K;
  return Array.from({ length: K }, (_, k) => colSlice(Q, k * p, (k + 1) * p));
}

/** Max over all coordinates of |analytic − central FD| / (1e-8 + |FD|·…), as a relative error. */
function fdWorst(Z: Mat, f: (z: Mat) => number, g: Mat, h = 1e-6): number {
  let worst = 0;
  const gn = frobenius(g);
  for (let i = 0; i < Z.data.length; i++) {
    const z0 = Z.data[i];
    Z.data[i] = z0 + h;
    const fp = f(Z);
    Z.data[i] = z0 - h;
    const fm = f(Z);
    Z.data[i] = z0;
    const fd = (fp - fm) / (2 * h);
    worst = Math.max(worst, Math.abs(fd - g.data[i]) / Math.max(Math.abs(fd), 1e-2 * gn));
  }
  return worst;
}

describe('linalg', () => {
  it('Cholesky rejects a non-positive-definite matrix, naming its size and the failing pivot', () => {
    const A = fromRows([
      [1, 2, 0],
      [2, 1, 0],
      [0, 0, 1],
    ]); // pivot 1: 1 − 4 = −3
    expect(() => cholesky(A)).toThrow(NotPositiveDefiniteError);
    expect(() => cholesky(A)).toThrow(/3×3 matrix is not positive definite: pivot 1 \(0-based\) is -3/);
    try {
      cholesky(A);
    } catch (e) {
      const err = e as NotPositiveDefiniteError;
      expect(err.size).toBe(3);
      expect(err.pivotIndex).toBe(1);
      expect(err.pivotValue).toBe(-3);
    }
    expect(() => logdetSPD(fromRows([[-1]]))).toThrow(/1×1 matrix .* pivot 0/);
    expect(() =>
      cholesky(
        fromRows([
          [0, 0],
          [0, 1],
        ]),
      ),
    ).toThrow(/pivot 0 \(0-based\) is 0/);
    expect(() => cholesky(fromRows([[NaN]]))).toThrow(NotPositiveDefiniteError);
    expect(() => cholesky(mat(2, 3))).toThrow(/square/);
    // a Gram matrix of a rank-deficient Z is singular: I + αZᵀZ is what keeps the coding rate defined
    const rng = new Rng(1),
      Z = randn(3, 6, rng);
    expect(() => cholesky(gram(Z))).toThrow(NotPositiveDefiniteError);
  });

  it('Cholesky, solves, inverse, logdet and eigenvalues agree', () => {
    const rng = new Rng(2);
    for (const n of [1, 2, 5, 12]) {
      const X = randn(n + 3, n, rng),
        A = add(gram(X), eye(n));
      const L = cholesky(A);
      expect(maxAbsDiff(matmul(L, transpose(L)), A)).toBeLessThan(1e-12);
      const B = randn(n, 3, rng);
      expect(maxAbsDiff(matmul(A, solveSPD(A, B)), B)).toBeLessThan(1e-11);
      expect(maxAbsDiff(matmul(A, solve(A, B)), B)).toBeLessThan(1e-11);
      expect(maxAbsDiff(matmul(A, inverse(A)), eye(n))).toBeLessThan(1e-11);
      const { values, vectors } = symEig(A);
      const logdetEig = values.reduce((s, v) => s + Math.log(v), 0);
      expect(Math.abs(logdetSPD(A) - logdetEig)).toBeLessThan(1e-10);
      // A V = V Λ, V orthogonal
      const AV = matmul(A, vectors);
      for (let j = 0; j < n; j++) for (let i = 0; i < n; i++) expect(Math.abs(AV.data[i * n + j] - values[j] * vectors.data[i * n + j])).toBeLessThan(1e-10);
      expect(maxAbsDiff(matmulTN(vectors, vectors), eye(n))).toBeLessThan(1e-12);
      for (let j = 1; j < n; j++) expect(values[j]).toBeLessThanOrEqual(values[j - 1]);
    }
    expect(() =>
      solve(
        fromRows([
          [1, 2],
          [2, 4],
        ]),
        eye(2),
      ),
    ).toThrow(/singular/);
  });

  it('QR and random orthogonal matrices; σ_max by power iteration matches the SVD', () => {
    const rng = new Rng(3);
    const A = randn(9, 5, rng),
      { q, r } = qr(A);
    expect(maxAbsDiff(matmul(q, r), A)).toBeLessThan(1e-12);
    expect(maxAbsDiff(matmulTN(q, q), eye(5))).toBeLessThan(1e-12);
    for (let i = 0; i < 5; i++) {
      expect(r.data[i * 5 + i]).toBeGreaterThanOrEqual(0);
      for (let j = 0; j < i; j++) expect(r.data[i * 5 + j]).toBe(0);
    }
    const Q = randomOrthogonal(7, rng);
    expect(maxAbsDiff(matmulTN(Q, Q), eye(7))).toBeLessThan(1e-12);
    expect(maxAbsDiff(matmul(Q, transpose(Q)), eye(7))).toBeLessThan(1e-12);
    const U = randomOrthonormal(10, 3, rng);
    expect(maxAbsDiff(matmulTN(U, U), eye(3))).toBeLessThan(1e-12);
    const D = randn(16, 64, rng, 0.25);
    expect(Math.abs(sigmaMax(D) - singularValues(D)[0]) / singularValues(D)[0]).toBeLessThan(1e-9);
  });
});

describe('coding rates (E1–E4)', () => {
  it('P1 Sylvester: the N×N and d×d forms of R(Z) agree on random shapes (fast-check)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 24 }),
        fc.integer({ min: 1, max: 24 }),
        fc.constantFrom(0.05, 0.1, 0.5, 1, 2),
        fc.double({ min: 0.01, max: 5, noNaN: true }),
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        (d, N, eps, s, seed) => {
          const Z = randn(d, N, new Rng(seed), s);
          const rN = codingRate(Z, eps, 'N'),
            rd = codingRate(Z, eps, 'd');
          // Float64 Cholesky log-determinants of I + αZᵀZ (N×N) and I + αZZᵀ (d×d) each carry a
          // rounding error of order size·u·(1 + α‖Z‖²) when one direction dominates (small ε, large
          // Z), so the tolerance is 1e-10 relative plus that bound: a correct pair never fails on a
          // badly conditioned draw (d 17, N 1, ε 0.05, scale 4.3, a 13-column U gave 7.7e-10 on
          // R^c, whose β‖UᵀZ‖² was 2.9e7, against a fixed 7.2e-10).
          const sq = (m: { data: Float64Array }) => m.data.reduce((a, v) => a + v * v, 0);
          const tol = (value: number, size: number, cond: number) => 1e-10 * Math.max(1, value) + 8 * size * Number.EPSILON * (1 + cond);
          const tR = tol(rN, d + N, alphaOf(d, N, eps) * sq(Z));
          expect(Math.abs(rN - rd)).toBeLessThanOrEqual(tR);
          expect(Math.abs(codingRateSpectral(Z, eps) - rN)).toBeLessThanOrEqual(tR);
          // R^c per head, both forms
          const U = [randn(d, 1 + (seed % Math.max(1, d)), new Rng(seed + 1))];
          const p = U[0].cols,
            rc = compressionRate(Z, U, eps, 'N');
          expect(Math.abs(rc - compressionRate(Z, U, eps, 'd'))).toBeLessThanOrEqual(tol(rc, p + N, betaOf(p, N, eps) * sq(matmulTN(U[0], Z))));
        },
      ),
      { numRuns: 150 },
    );
  });

  it('R^c with one full orthonormal basis is R; ΔR = R − R^c; the E4 objective subtracts λ‖Z‖₁', () => {
    const rng = new Rng(4),
      Z = randn(8, 5, rng),
      eps = 0.5;
    const Q = randomOrthogonal(8, rng);
    expect(Math.abs(compressionRate(Z, [Q], eps) - codingRate(Z, eps))).toBeLessThan(1e-12);
    const U = spanning(8, 2, rng);
    expect(rateReduction(Z, U, eps)).toBeCloseTo(codingRate(Z, eps) - compressionRate(Z, U, eps), 14);
    const l1 = Z.data.reduce((s, v) => s + Math.abs(v), 0);
    expect(sparseRateReduction(Z, U, eps, 0.3)).toBeCloseTo(rateReduction(Z, U, eps) - 0.3 * l1, 12);
  });

  it('gradients of R, R^c (E7), ΔR and E4 match central finite differences coordinate by coordinate', () => {
    const rng = new Rng(5);
    for (const [d, N, K, eps] of [
      [16, 10, 4, 0.5],
      [6, 15, 3, 1],
      [8, 3, 2, 0.3],
    ] as const) {
      const Z = randn(d, N, rng);
      const Us = [spanning(d, K, rng), Array.from({ length: K }, () => randn(d, d / K, rng, 0.5))];
      expect(fdWorst(Z, (z) => codingRate(z, eps), gradCodingRate(Z, eps))).toBeLessThan(1e-6);
      for (const U of Us) {
        expect(fdWorst(Z, (z) => compressionRate(z, U, eps), gradCompressionRate(Z, U, eps))).toBeLessThan(1e-6);
        expect(fdWorst(Z, (z) => rateReduction(z, U, eps), gradRateReduction(Z, U, eps))).toBeLessThan(1e-6);
        expect(fdWorst(Z, (z) => sparseRateReduction(z, U, eps, 0.1), gradSparseRateReduction(Z, U, eps, 0.1))).toBeLessThan(1e-6);
      }
    }
  });

  it('E7 in the N×N form (as written) equals the push-through form used', () => {
    const rng = new Rng(6),
      d = 12,
      N = 9,
      eps = 0.5,
      U = spanning(d, 3, rng),
      Z = randn(d, N, rng);
    let g = mat(d, N);
    for (const Uk of U) {
      const b = betaOf(Uk.cols, N, eps),
        W = matmulTN(Uk, Z);
      const M = add(eye(N), scale(gram(W), b));
      g = add(g, scale(matmul(matmul(Uk, W), inverse(M)), b));
    }
    expect(maxAbsDiff(g, gradCompressionRate(Z, U, eps))).toBeLessThan(1e-12);
  });

  it('E9 equals E8 when the subspaces are orthonormal and span R^d, not otherwise', () => {
    const rng = new Rng(7),
      Z = randn(8, 6, rng, 0.3);
    const U = spanning(8, 4, rng);
    expect(maxAbsDiff(gradCompressionSpanning(Z, U, 0.5), gradCompressionNeumann1(Z, U, 0.5))).toBeLessThan(1e-13);
    const V = U.slice(0, 2); // not spanning
    expect(maxAbsDiff(gradCompressionSpanning(Z, V, 0.5), gradCompressionNeumann1(Z, V, 0.5))).toBeGreaterThan(1e-3);
  });
});

describe('theory MSSA (E10, E11)', () => {
  it('column softmax makes probability columns; SSA = W softmax(WᵀW) with tied U; MSSA = β Σ U_k SSA_k', () => {
    const rng = new Rng(8),
      d = 8,
      N = 5,
      eps = 0.5,
      U = spanning(d, 2, rng),
      Z = randn(d, N, rng);
    const P = columnSoftmax(gram(matmulTN(U[0], Z)));
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let i = 0; i < N; i++) {
        s += P.data[i * N + j];
        expect(P.data[i * N + j]).toBeGreaterThan(0);
      }
      expect(s).toBeCloseTo(1, 14);
    }
    // column softmax of a symmetric matrix = transposed row softmax: output column j = Σ_i w_i P[i,j]
    const W = matmulTN(U[0], Z),
      S = ssa(Z, U[0]);
    for (let j = 0; j < N; j++)
      for (let r = 0; r < W.rows; r++) {
        let acc = 0;
        for (let i = 0; i < N; i++) acc += W.data[r * N + i] * P.data[i * N + j];
        expect(Math.abs(S.data[r * N + j] - acc)).toBeLessThan(1e-14);
      }
    const b = betaOf(4, N, eps);
    const expected = add(scale(matmul(U[0], ssa(Z, U[0])), b), scale(matmul(U[1], ssa(Z, U[1])), b));
    expect(maxAbsDiff(mssaTheory(Z, U, eps), expected)).toBeLessThan(1e-14);
  });
});

describe('LASSO / ISTA (E13, E14, E17)', () => {
  it('istaStep equals the reference istaForward step by step (layouts converted)', () => {
    const rng = new Rng(9),
      d = 6,
      h = 24,
      N = 4,
      steps = 3,
      eta = 0.1,
      lam = 0.1;
    const D = randn(d, h, rng, 0.4),
      u = randn(d, N, rng);
    const codes = new Float64Array(steps * N * h),
      out = new Float64Array(N * d);
    istaForward(out, codes, columnsToTokens(u), transpose(D).data, N, d, h, eta, lam, steps);
    const mine = istaFromZero(u, D, eta, lam, steps);
    for (let t = 0; t < steps; t++) {
      const ref = tokensToColumns(codes.subarray(t * N * h, (t + 1) * N * h), N, h);
      expect(maxAbsDiff(ref, mine[t])).toBeLessThan(1e-14);
    }
    expect(maxAbsDiff(tokensToColumns(out, N, d), matmul(D, mine[steps - 1]))).toBeLessThan(1e-14);
    // dictionaryFromIstaWeight reads D back from ista.weight = Dᵀ
    expect(maxAbsDiff(dictionaryFromIstaWeight(transpose(D).data, h, d), D)).toBe(0);
  });

  it('with η ≤ 1/L_D the objective never increases; the complete step is E14', () => {
    const rng = new Rng(10),
      d = 10,
      h = 40,
      D = randn(d, h, rng, 0.3),
      u = randn(d, 3, rng),
      lam = 0.2;
    const eta = 1 / lipschitzConstant(D);
    let a = mat(h, 3),
      f = lassoObjective(u, D, a, lam);
    expect(f).toBeCloseTo(0.5 * dot(u, u), 14);
    for (let t = 0; t < 50; t++) {
      a = istaStep(a, u, D, eta, lam);
      const f2 = lassoObjective(u, D, a, lam);
      expect(f2).toBeLessThanOrEqual(f * (1 + 1e-14));
      f = f2;
    }
    const W = randn(d, d, rng, 0.3),
      Z = randn(d, 4, rng);
    // relu(Z + ηDᵀ(Z − DZ) − ηλ) with η = λ = 0.1
    const direct = add(Z, scale(matmulTN(W, sub(Z, matmul(W, Z))), 0.1));
    for (let i = 0; i < direct.data.length; i++) direct.data[i] = Math.max(direct.data[i] - 0.01, 0);
    expect(maxAbsDiff(istaCompleteStep(Z, W, 0.1, 0.1), direct)).toBeLessThan(1e-14);
  });
});

describe('layout helpers and the E21 measurement', () => {
  it('subspacesFromCAttn: head k of v = LN(x)·c_attnᵀ is U_kᵀ z', () => {
    const rng = new Rng(11),
      d = 8,
      K = 2,
      N = 3,
      w = randn(d, d, rng).data,
      x = randn(N, d, rng).data;
    const v = new Float64Array(N * d);
    linearForward(v, x, w, null, N, d, d);
    const Z = tokensToColumns(x, N, d),
      U = subspacesFromCAttn(w, d, K);
    for (let k = 0; k < K; k++) {
      const Wk = matmulTN(U[k], Z); // p×N
      for (let n = 0; n < N; n++) for (let i = 0; i < d / K; i++) expect(Math.abs(Wk.data[i * N + n] - v[n * d + k * (d / K) + i])).toBeLessThan(1e-14);
    }
  });

  it('measuredCompression = Σ_k R(normalised head k) with ε² = e, invariant to per-token scaling', () => {
    const rng = new Rng(12),
      B = 3,
      T = 7,
      C = 8,
      K = 2,
      p = 4;
    const v = randn(B * T, C, rng).data;
    const r = measuredCompression(v, B, T, C, K, 0.01);
    for (let b = 0; b < B; b++) {
      let expected = 0;
      for (let k = 0; k < K; k++) {
        const W = mat(p, T);
        for (let t = 0; t < T; t++) {
          let nrm = 0;
          for (let i = 0; i < p; i++) nrm += v[(b * T + t) * C + k * p + i] ** 2;
          for (let i = 0; i < p; i++) W.data[i * T + t] = v[(b * T + t) * C + k * p + i] / Math.sqrt(nrm);
        }
        expected += codingRate(W, Math.sqrt(0.01)); // α = p/(T·e)
      }
      expect(r.perSequence[b]).toBeCloseTo(expected, 12);
    }
    const scaled = Float64Array.from(v, (x, i) => x * (1 + (Math.floor(i / p) % 5)));
    expect(measuredCompression(scaled, B, T, C, K, 0.01).mean).toBeCloseTo(r.mean, 12);
    expect(r.perHead.reduce((a, b) => a + b, 0)).toBeCloseTo(r.mean, 12);
    expect(measuredCompression(v, 1, B * T, C, K).std).toBe(0);
    expect(() => measuredCompression(v, B, T, C, 3)).toThrow(/divisible/);
  });
});
