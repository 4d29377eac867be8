// Spec 4.1: properties of the coding rate (E1-E3) and of the MSSA step, P1-P9.
import { Rng } from '../../util/rng.js';
import type { PropertyCheck } from './types.js';
import { type Mat, zeros, matmul, sub, add, scale, dot, frobenius, randn, randomOrthogonal, randomPermutation, permuteCols } from '../linalg.js';
import {
  codingRate,
  codingRateSpectral,
  compressionRate,
  rateReduction,
  sparseRateReduction,
  alphaOf,
  betaOf,
  gradCodingRate,
  gradCompressionRate,
  gradRateReduction,
  gradSparseRateReduction,
  gradCompressionNeumann0,
  gradCompressionNeumann1,
  gradCompressionSpanning,
  mssaTheory,
} from '../codingrate.js';
import { fmt, rel, spanningSubspaces, gaussianSubspaces, stats } from './helpers.js';

// ---- 4.1 coding rate ----------------------------------------------------------------------------------

export const P1: PropertyCheck = {
  id: 'P1',
  statement: 'Sylvester: ½logdet(I_N+αZᵀZ) = ½logdet(I_d+αZZᵀ)',
  measure: 'max |R_N − R_d| / max(1, |R|) ≤ tol',
  run(rng) {
    let worst = 0,
      n = 0;
    const shapes: [number, number, number][] = [[16, 10, 0.5]];
    for (let i = 0; i < 40; i++) shapes.push([1 + rng.int(24), 1 + rng.int(24), [0.1, 0.5, 1][rng.int(3)]]);
    for (const [d, N, eps] of shapes) {
      const Z = randn(d, N, rng, 0.1 + 3 * rng.uniform());
      worst = Math.max(worst, rel(codingRate(Z, eps, 'N'), codingRate(Z, eps, 'd')));
      n++;
    }
    return { instances: n, worst, tolerance: 1e-10, pass: worst <= 1e-10 };
  },
};

export const P2: PropertyCheck = {
  id: 'P2',
  statement: 'Token permutation: R(ZΠ) = R(Z), R^c(ZΠ|U) = R^c(Z|U)',
  measure: 'max relative change of R and R^c ≤ tol',
  run(rng) {
    let worst = 0,
      n = 0;
    for (let i = 0; i < 30; i++) {
      const d = 16,
        N = 4 + rng.int(30),
        K = 4,
        eps = [0.1, 0.5, 1][rng.int(3)];
      const U = i % 2 ? spanningSubspaces(d, K, rng) : gaussianSubspaces(d, d / K, K, rng);
      const Z = randn(d, N, rng),
        Zp = permuteCols(Z, randomPermutation(N, rng));
      worst = Math.max(worst, rel(codingRate(Zp, eps), codingRate(Z, eps)), rel(compressionRate(Zp, U, eps), compressionRate(Z, U, eps)));
      n++;
    }
    return { instances: n, worst, tolerance: 1e-10, pass: worst <= 1e-10 };
  },
};

export const P3: PropertyCheck = {
  id: 'P3',
  statement: 'Rotation: R(QZ) = R(Z), R^c(QZ|QU) = R^c(Z|U) (not R^c(QZ|U))',
  measure: 'max relative change of R(QZ) and R^c(QZ|QU) ≤ tol; and R^c(QZ|U) must differ',
  run(rng) {
    let worst = 0,
      n = 0,
      minNonInv = Infinity;
    for (let i = 0; i < 30; i++) {
      const d = 16,
        N = 4 + rng.int(30),
        K = 4,
        eps = [0.1, 0.5, 1][rng.int(3)];
      const U = i % 2 ? spanningSubspaces(d, K, rng) : gaussianSubspaces(d, d / K, K, rng);
      const Z = randn(d, N, rng),
        Q = randomOrthogonal(d, rng),
        QZ = matmul(Q, Z);
      const QU = U.map((Uk) => matmul(Q, Uk));
      const rc = compressionRate(Z, U, eps);
      worst = Math.max(worst, rel(codingRate(QZ, eps), codingRate(Z, eps)), rel(compressionRate(QZ, QU, eps), rc));
      minNonInv = Math.min(minNonInv, Math.abs(compressionRate(QZ, U, eps) - rc));
      n++;
    }
    const pass = worst <= 1e-10 && minNonInv > 1e-6;
    return {
      instances: n,
      worst,
      tolerance: 1e-10,
      pass,
      note: `rotating Z alone changes R^c by ≥ ${fmt(minNonInv)} (must be > 1e-6: R^c is not rotation invariant)`,
    };
  },
};

export const P4: PropertyCheck = {
  id: 'P4',
  statement: 'R = ½Σlog(1+ασ²); R(0)=0, R≥0, R(cZ)↑ in |c|, concavity bound',
  measure: 'max relative |R − spectral form| ≤ tol, and no violated inequality',
  run(rng) {
    let worst = 0,
      n = 0,
      violations = 0;
    const cs = [0.05, 0.1, 0.3, 1, 2, 5];
    for (let i = 0; i < 25; i++) {
      const d = 1 + rng.int(20),
        N = 1 + rng.int(20),
        eps = [0.1, 0.5, 1][rng.int(3)];
      const Z = randn(d, N, rng, 0.2 + 2 * rng.uniform());
      const R = codingRate(Z, eps);
      worst = Math.max(worst, rel(R, codingRateSpectral(Z, eps)));
      if (codingRate(zeros(d, N), eps) !== 0) violations++;
      if (!(R >= 0)) violations++;
      let prev = 0;
      for (const c of cs) {
        const Rc = codingRate(scale(Z, c), eps);
        if (!(Rc > prev)) violations++;
        if (codingRate(scale(Z, -c), eps) !== Rc) violations++;
        prev = Rc;
      }
      const r = Math.min(d, N),
        f2 = dot(Z, Z);
      if (R > (r / 2) * Math.log1p((alphaOf(d, N, eps) * f2) / r) * (1 + 1e-12)) violations++;
      n++;
    }
    return { instances: n, worst, tolerance: 1e-10, pass: worst <= 1e-10 && violations === 0, note: `${violations} inequality violations` };
  },
};

export const P5: PropertyCheck = {
  id: 'P5',
  statement: '∇R = αZ(I+αZᵀZ)⁻¹ and ∇R^c (E7) match finite differences',
  measure: 'max |FD − ⟨∇f, E⟩| / max(|⟨∇f, E⟩|, 0.1‖∇f‖) over R, R^c, ΔR, E4, unit E (h = 1e-6) ≤ tol',
  run(rng) {
    let worst = 0,
      n = 0;
    const h = 1e-6;
    for (let i = 0; i < 10; i++) {
      const d = 16,
        N = 10,
        K = 4,
        eps = [0.5, 1][rng.int(2)],
        lam = 0.1;
      const U = i % 2 ? spanningSubspaces(d, K, rng) : gaussianSubspaces(d, d / K, K, rng);
      const Z = randn(d, N, rng);
      const fns: [(z: Mat) => number, Mat][] = [
        [(z) => codingRate(z, eps), gradCodingRate(Z, eps)],
        [(z) => compressionRate(z, U, eps), gradCompressionRate(Z, U, eps)],
        [(z) => rateReduction(z, U, eps), gradRateReduction(Z, U, eps)],
        [(z) => sparseRateReduction(z, U, eps, lam), gradSparseRateReduction(Z, U, eps, lam)],
      ];
      for (const [f, g] of fns) {
        // two random unit directions and the gradient's own direction
        const dirs = [randn(d, N, rng), randn(d, N, rng), g].map((E) => scale(E, 1 / frobenius(E)));
        for (const En of dirs) {
          const fd = (f(add(Z, scale(En, h))) - f(sub(Z, scale(En, h)))) / (2 * h);
          const an = dot(g, En);
          worst = Math.max(worst, Math.abs(fd - an) / Math.max(Math.abs(an), 0.1 * frobenius(g)));
          n++;
        }
      }
    }
    return { instances: n, worst, tolerance: 1e-6, pass: worst <= 1e-6 };
  },
};

export const P6: PropertyCheck = {
  id: 'P6',
  statement: 'Neumann: 0th-order error O(s²), E8 error O(s⁴); E9 = E8 if U spans',
  measure: 'max |ratio/expected − 1| for halving s (1st: 16, 0th: 4) ≤ tol (accepts 10–22 for 16); E9 vs E8 ≤ 1e-12',
  run(rng) {
    let worst = 0,
      n = 0,
      e9 = 0;
    const r1s: number[] = [],
      r0s: number[] = [];
    for (let i = 0; i < 20; i++) {
      const d = 16,
        N = 10,
        K = 4,
        eps = 0.5;
      const U = spanningSubspaces(d, K, rng),
        Z = randn(d, N, rng);
      const errs = [0.02, 0.01].map((s) => {
        const Zs = scale(Z, s),
          g = gradCompressionRate(Zs, U, eps),
          ng = frobenius(g);
        const g1 = gradCompressionNeumann1(Zs, U, eps);
        e9 = Math.max(e9, frobenius(sub(gradCompressionSpanning(Zs, U, eps), g1)) / ng);
        return [frobenius(sub(gradCompressionNeumann0(Zs, U, eps), g)) / ng, frobenius(sub(g1, g)) / ng];
      });
      const r0 = errs[0][0] / errs[1][0],
        r1 = errs[0][1] / errs[1][1];
      r0s.push(r0);
      r1s.push(r1);
      worst = Math.max(worst, Math.abs(r1 / 16 - 1), Math.abs(r0 / 4 - 1));
      n++;
    }
    const a = stats(r1s),
      b = stats(r0s);
    return {
      instances: n,
      worst,
      tolerance: 0.375,
      pass: worst <= 0.375 && e9 <= 1e-12,
      note: `error ratio s=0.02→0.01: first order ${fmt(a.min)}..${fmt(a.max)} (expect 16), zeroth order ${fmt(b.min)}..${fmt(b.max)} (expect 4); |E9 − E8|/|∇| ≤ ${fmt(e9)}`,
    };
  },
};

export const P7: PropertyCheck = {
  id: 'P7',
  statement: 'Exact descent: R^c(Z − κ∇R^c) < R^c(Z), κ = 1e-3, 1e-2, 1e-1',
  measure: 'max [R^c(Z − κ∇R^c) − R^c(Z)] < tol = 0',
  run(rng) {
    let worst = -Infinity,
      n = 0;
    for (let i = 0; i < 30; i++) {
      const d = 16,
        N = 10,
        K = 4,
        eps = 0.5;
      const U = spanningSubspaces(d, K, rng),
        Z = randn(d, N, rng, 0.1 + 2.9 * rng.uniform());
      const r0 = compressionRate(Z, U, eps),
        g = gradCompressionRate(Z, U, eps);
      for (const kappa of [1e-3, 1e-2, 1e-1]) {
        worst = Math.max(worst, compressionRate(sub(Z, scale(g, kappa)), U, eps) - r0);
        n++;
      }
    }
    return { instances: n, worst, tolerance: 0, pass: worst < 0, note: 'U orthonormal spanning, d=16 N=10 K=4 ε=0.5 (κβ ≤ 0.16), token scale 0.1–3' };
  },
};

/** P8 measurements for one regime (exported so tests and reports can read the numbers). */
export function p8Regime(
  rng: Rng,
  lo: number,
  hi: number,
  trials: number,
  kappa = 0.01,
): { cos: number[]; dRc: number[]; decreased: number; plainDecreased: number } {
  const cos: number[] = [],
    dRc: number[] = [];
  let decreased = 0,
    plainDecreased = 0;
  for (let t = 0; t < trials; t++) {
    const d = 16,
      N = 10,
      K = 4,
      eps = 0.5;
    const U = spanningSubspaces(d, K, rng);
    const Z = randn(d, N, rng, lo + (hi - lo) * rng.uniform());
    const b = betaOf(d / K, N, eps),
      M = mssaTheory(Z, U, eps);
    const delta = scale(sub(M, Z), kappa * b); // (E11): Z⁺ − Z = κβ(MSSA(Z) − Z)
    const g = gradCompressionRate(Z, U, eps);
    cos.push(-dot(delta, g) / (frobenius(delta) * frobenius(g)));
    const r0 = compressionRate(Z, U, eps),
      r1 = compressionRate(add(Z, delta), U, eps);
    dRc.push(r1 - r0);
    if (r1 < r0) decreased++;
    if (compressionRate(add(Z, scale(M, 0.01)), U, eps) < r0) plainDecreased++;
  }
  return { cos, dRc, decreased, plainDecreased };
}

export const P8: PropertyCheck = {
  id: 'P8',
  statement: 'FINDING: MSSA step (E11) lowers R^c only for small tokens',
  measure: 'min cos(Δ, −∇R^c) over small-signal trials > tol = 0, and R^c decreased in all of them (unit scale: note only)',
  run(rng) {
    const trials = 200,
      kappa = 0.01;
    const small = p8Regime(rng, 0.05, 0.2, trials, kappa),
      unit = p8Regime(rng, 1, 3, trials, kappa);
    const cs = stats(small.cos),
      cu = stats(unit.cos),
      ds = stats(small.dRc),
      du = stats(unit.dRc);
    const pass = cs.min > 0 && small.decreased === trials;
    const note =
      `κ=${kappa}, U orthonormal spanning, d=16 N=10 K=4 ε=0.5. ` +
      `small-signal (scale 0.05–0.2): cos min/median/max ${fmt(cs.min)}/${fmt(cs.median)}/${fmt(cs.max)}, R^c decreased ${small.decreased}/${trials} (mean ΔR^c ${fmt(ds.mean)}). ` +
      `unit scale (1–3), not asserted: cos ${fmt(cu.min)}/${fmt(cu.median)}/${fmt(cu.max)}, R^c decreased ${unit.decreased}/${trials} (mean ΔR^c ${fmt(du.mean)}); ` +
      `plain Z + 0.01·MSSA(Z) decreased R^c ${unit.plainDecreased}/${trials} at unit scale, ${small.plainDecreased}/${trials} small-signal`;
    return { instances: 2 * trials, worst: cs.min, tolerance: 0, pass, note };
  },
};

export const P9: PropertyCheck = {
  id: 'P9',
  statement: 'Tokens in the subspaces compress better: R^c(Z|U) < R^c(G|U)',
  measure: 'max [R^c(Z) − R^c(G)] < tol = 0 (ΔR(Z) > ΔR(G) reported, not asserted)',
  run(rng) {
    let worst = -Infinity,
      n = 0;
    const dr: string[] = [];
    for (const [d, N, K, eps] of [
      [16, 10, 4, 0.5],
      [16, 40, 4, 0.5],
      [32, 64, 8, 0.1],
      [16, 40, 4, 1.0],
    ]) {
      const trials = 50,
        p = d / K;
      let drWins = 0;
      for (let t = 0; t < trials; t++) {
        const U = spanningSubspaces(d, K, rng);
        const Z = zeros(d, N);
        for (let j = 0; j < N; j++) {
          const Uk = U[rng.int(K)],
            c = randn(p, 1, rng),
            z = matmul(Uk, c);
          for (let i = 0; i < d; i++) Z.data[i * N + j] = z.data[i];
        }
        const G0 = randn(d, N, rng),
          G = scale(G0, frobenius(Z) / frobenius(G0));
        worst = Math.max(worst, compressionRate(Z, U, eps) - compressionRate(G, U, eps));
        if (rateReduction(Z, U, eps) > rateReduction(G, U, eps)) drWins++;
        n++;
      }
      dr.push(`(${d},${N},${K},${eps}) ${drWins}/${trials}`);
    }
    return { instances: n, worst, tolerance: 0, pass: worst < 0, note: `ΔR(Z) > ΔR(G) in ${dr.join(', ')}` };
  },
};
