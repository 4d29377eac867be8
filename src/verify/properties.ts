// The checkable mathematical properties P1–P23 of spec section 4, each run on random instances drawn
// from a seed. Every check reports the number of instances it tried, the worst value it observed of
// its measure, the tolerance that measure is held to, and pass/fail (`measure` says what "worst" is and
// how it is compared). Checks never throw: an exception becomes a failed check with the message as note.
//
// Paper layout (d×N, tokens as columns) throughout, see src/verify/codingrate.ts; conversions to the
// code layout happen where the reference operators (src/reference/ista.ts) or the model are called.
//
// Fault injection: runChecks({ inject: { istaSignFlip: true } }) flips the sign of the gradient term in
// the checks' OWN ISTA step (a + ηDᵀ(u − Da) becomes a − ηDᵀ(u − Da)); the checks that compare with it
// or iterate it (P10, P12, P13, P17) must then fail. The reference operators are never modified.
import { Rng } from '../util/rng.js';
import {
  type Mat, mat, zeros, transpose, matmul, matmulTN, sub, add, scale, dot, frobenius, maxAbsDiff, colSlice,
  randn, randomOrthogonal, randomPermutation, permuteCols, gram, solveSPD,
} from './linalg.js';
import {
  codingRate, codingRateSpectral, compressionRate, rateReduction, sparseRateReduction, alphaOf, betaOf,
  gradCodingRate, gradCompressionRate, gradRateReduction, gradSparseRateReduction, gradCompressionNeumann0,
  gradCompressionNeumann1, gradCompressionSpanning, mssaTheory, lassoObjective, istaStep, lipschitzConstant,
} from './codingrate.js';
import { istaForward, istaCompleteForward } from '../reference/ista.js';
import { layernormForward } from '../reference/layernorm.js';
import { makeConfig, type Arch } from '../model/config.js';
import { paramTable, numParams } from '../model/params.js';
import { ReferenceBackend } from '../backend/reference.js';
import { goldenModel, GOLDEN } from './golden.js';
import { randomTinyConfig, randomTinyModel, randomTokens } from './models.js';
import { IncrementalDecoder as SampleDecoder } from '../sample/decode.js';

// ---- types ----------------------------------------------------------------------------------------

export interface Faults {
  /** Flip the sign of the gradient term in the checks' own ISTA step. */
  istaSignFlip?: boolean;
}

export interface CheckOptions {
  inject?: Faults;
}

export interface CheckResult {
  instances: number;
  worst: number;
  tolerance: number;
  pass: boolean;
  note?: string;
}

export interface PropertyCheck {
  id: string;
  /** Short statement of the property (one table row). */
  statement: string;
  /** What `worst` is and how it is compared with `tolerance`. */
  measure: string;
  run(rng: Rng, opts: CheckOptions): CheckResult;
}

export interface CheckReport extends CheckResult {
  id: string;
  statement: string;
  measure: string;
  /** Wall time of the check in milliseconds. */
  ms: number;
}

export interface RunChecksOptions {
  seed?: number;
  /** Property ids to run (e.g. ['P5', 'P7']); all when absent. */
  only?: string[];
  inject?: Faults;
}

export interface ChecksSummary {
  pass: boolean;
  seed: number;
  checks: CheckReport[];
}

// ---- helpers ----------------------------------------------------------------------------------------

const fmt = (x: number, digits = 3): string => (x === 0 ? '0' : Number.isFinite(x) ? x.toPrecision(digits) : String(x));
const rel = (a: number, b: number): number => Math.abs(a - b) / Math.max(1, Math.abs(b));

/** K orthonormal d×(d/K) bases jointly spanning R^d: the column blocks of a random orthogonal matrix. */
function spanningSubspaces(d: number, K: number, rng: Rng): Mat[] {
  const Q = randomOrthogonal(d, rng), p = d / K;
  return Array.from({ length: K }, (_, k) => colSlice(Q, k * p, (k + 1) * p));
}

/** K unconstrained Gaussian d×p bases (entries N(0, 1/d)). */
function gaussianSubspaces(d: number, p: number, K: number, rng: Rng): Mat[] {
  return Array.from({ length: K }, () => randn(d, p, rng, 1 / Math.sqrt(d)));
}

/** The model's dictionary at init: D = Aᵀ with A = ista.weight (h×d) ~ U(−sqrt(6/d), sqrt(6/d)). */
function paperInitDictionary(d: number, h: number, rng: Rng): Mat {
  const b = Math.sqrt(6 / d), D = mat(d, h);
  for (let i = 0; i < D.data.length; i++) D.data[i] = (2 * rng.uniform() - 1) * b;
  return D;
}

/** N LayerNorm'd (zero-mean, unit-variance, no affine) random tokens as a d×N matrix. */
function lnTokens(d: number, N: number, rng: Rng, spread = 3): Mat {
  const x = new Float64Array(N * d), out = new Float64Array(N * d);
  for (let i = 0; i < x.length; i++) x[i] = spread * rng.normal() + 0.5;
  const w = new Float64Array(d).fill(1), m = new Float64Array(N), r = new Float64Array(N);
  layernormForward(out, m, r, x, w, null, N, d, 1e-5);
  return transpose(mat(N, d, out));
}

/** The checks' own ISTA step, with the optional injected fault. */
function ownIstaStep(opts: CheckOptions): (a: Mat, u: Mat, D: Mat, eta: number, lam: number) => Mat {
  if (!opts.inject?.istaSignFlip) return istaStep;
  return (a, u, D, eta, lam) => {
    const g = matmulTN(D, sub(u, matmul(D, a)));
    const o = mat(a.rows, a.cols);
    for (let i = 0; i < o.data.length; i++) {
      const pre = a.data[i] - eta * g.data[i] - eta * lam; // FAULT: sign of the gradient term flipped
      o.data[i] = pre > 0 ? pre : 0;
    }
    return o;
  };
}

/** The reference overcomplete ISTA (src/reference/ista.ts) on paper-layout inputs: u d×N, D d×h. */
function referenceIsta(u: Mat, D: Mat, eta: number, lam: number, steps: number): { codes: Mat[]; out: Mat } {
  const d = u.rows, N = u.cols, h = D.cols;
  const codes = new Float64Array(steps * N * h), out = new Float64Array(N * d);
  istaForward(out, codes, transpose(u).data, transpose(D).data, N, d, h, eta, lam, steps);
  const per: Mat[] = [];
  for (let t = 0; t < steps; t++) per.push(transpose(mat(N, h, codes.subarray(t * N * h, (t + 1) * N * h))));
  return { codes: per, out: transpose(mat(N, d, out)) };
}

function nnz(a: Mat): number {
  let n = 0;
  for (const v of a.data) if (v !== 0) n++;
  return n;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

function maxAbsDiffArr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function stats(xs: number[]): { min: number; median: number; max: number; mean: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0], median: s[Math.floor(s.length / 2)], max: s[s.length - 1], mean: xs.reduce((a, b) => a + b, 0) / xs.length };
}

// ---- 4.1 coding rate ----------------------------------------------------------------------------------

const P1: PropertyCheck = {
  id: 'P1',
  statement: 'Sylvester: ½logdet(I_N+αZᵀZ) = ½logdet(I_d+αZZᵀ)',
  measure: 'max |R_N − R_d| / max(1, |R|) ≤ tol',
  run(rng) {
    let worst = 0, n = 0;
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

const P2: PropertyCheck = {
  id: 'P2',
  statement: 'Token permutation: R(ZΠ) = R(Z), R^c(ZΠ|U) = R^c(Z|U)',
  measure: 'max relative change of R and R^c ≤ tol',
  run(rng) {
    let worst = 0, n = 0;
    for (let i = 0; i < 30; i++) {
      const d = 16, N = 4 + rng.int(30), K = 4, eps = [0.1, 0.5, 1][rng.int(3)];
      const U = i % 2 ? spanningSubspaces(d, K, rng) : gaussianSubspaces(d, d / K, K, rng);
      const Z = randn(d, N, rng), Zp = permuteCols(Z, randomPermutation(N, rng));
      worst = Math.max(worst, rel(codingRate(Zp, eps), codingRate(Z, eps)), rel(compressionRate(Zp, U, eps), compressionRate(Z, U, eps)));
      n++;
    }
    return { instances: n, worst, tolerance: 1e-10, pass: worst <= 1e-10 };
  },
};

const P3: PropertyCheck = {
  id: 'P3',
  statement: 'Rotation: R(QZ) = R(Z), R^c(QZ|QU) = R^c(Z|U) (not R^c(QZ|U))',
  measure: 'max relative change of R(QZ) and R^c(QZ|QU) ≤ tol; and R^c(QZ|U) must differ',
  run(rng) {
    let worst = 0, n = 0, minNonInv = Infinity;
    for (let i = 0; i < 30; i++) {
      const d = 16, N = 4 + rng.int(30), K = 4, eps = [0.1, 0.5, 1][rng.int(3)];
      const U = i % 2 ? spanningSubspaces(d, K, rng) : gaussianSubspaces(d, d / K, K, rng);
      const Z = randn(d, N, rng), Q = randomOrthogonal(d, rng), QZ = matmul(Q, Z);
      const QU = U.map((Uk) => matmul(Q, Uk));
      const rc = compressionRate(Z, U, eps);
      worst = Math.max(worst, rel(codingRate(QZ, eps), codingRate(Z, eps)), rel(compressionRate(QZ, QU, eps), rc));
      minNonInv = Math.min(minNonInv, Math.abs(compressionRate(QZ, U, eps) - rc));
      n++;
    }
    const pass = worst <= 1e-10 && minNonInv > 1e-6;
    return { instances: n, worst, tolerance: 1e-10, pass, note: `rotating Z alone changes R^c by ≥ ${fmt(minNonInv)} (must be > 1e-6: R^c is not rotation invariant)` };
  },
};

const P4: PropertyCheck = {
  id: 'P4',
  statement: 'R = ½Σlog(1+ασ²); R(0)=0, R≥0, R(cZ)↑ in |c|, concavity bound',
  measure: 'max relative |R − spectral form| ≤ tol, and no violated inequality',
  run(rng) {
    let worst = 0, n = 0, violations = 0;
    const cs = [0.05, 0.1, 0.3, 1, 2, 5];
    for (let i = 0; i < 25; i++) {
      const d = 1 + rng.int(20), N = 1 + rng.int(20), eps = [0.1, 0.5, 1][rng.int(3)];
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
      const r = Math.min(d, N), f2 = dot(Z, Z);
      if (R > (r / 2) * Math.log1p((alphaOf(d, N, eps) * f2) / r) * (1 + 1e-12)) violations++;
      n++;
    }
    return { instances: n, worst, tolerance: 1e-10, pass: worst <= 1e-10 && violations === 0, note: `${violations} inequality violations` };
  },
};

const P5: PropertyCheck = {
  id: 'P5',
  statement: '∇R = αZ(I+αZᵀZ)⁻¹ and ∇R^c (E7) match finite differences',
  measure: 'max |FD − ⟨∇f, E⟩| / max(|⟨∇f, E⟩|, 0.1‖∇f‖) over R, R^c, ΔR, E4, unit E (h = 1e-6) ≤ tol',
  run(rng) {
    let worst = 0, n = 0;
    const h = 1e-6;
    for (let i = 0; i < 10; i++) {
      const d = 16, N = 10, K = 4, eps = [0.5, 1][rng.int(2)], lam = 0.1;
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

const P6: PropertyCheck = {
  id: 'P6',
  statement: 'Neumann: 0th-order error O(s²), E8 error O(s⁴); E9 = E8 if U spans',
  measure: 'max |ratio/expected − 1| for halving s (1st: 16, 0th: 4) ≤ tol (accepts 10–22 for 16); E9 vs E8 ≤ 1e-12',
  run(rng) {
    let worst = 0, n = 0, e9 = 0;
    const r1s: number[] = [], r0s: number[] = [];
    for (let i = 0; i < 20; i++) {
      const d = 16, N = 10, K = 4, eps = 0.5;
      const U = spanningSubspaces(d, K, rng), Z = randn(d, N, rng);
      const errs = [0.02, 0.01].map((s) => {
        const Zs = scale(Z, s), g = gradCompressionRate(Zs, U, eps), ng = frobenius(g);
        const g1 = gradCompressionNeumann1(Zs, U, eps);
        e9 = Math.max(e9, frobenius(sub(gradCompressionSpanning(Zs, U, eps), g1)) / ng);
        return [frobenius(sub(gradCompressionNeumann0(Zs, U, eps), g)) / ng, frobenius(sub(g1, g)) / ng];
      });
      const r0 = errs[0][0] / errs[1][0], r1 = errs[0][1] / errs[1][1];
      r0s.push(r0); r1s.push(r1);
      worst = Math.max(worst, Math.abs(r1 / 16 - 1), Math.abs(r0 / 4 - 1));
      n++;
    }
    const a = stats(r1s), b = stats(r0s);
    return {
      instances: n, worst, tolerance: 0.375, pass: worst <= 0.375 && e9 <= 1e-12,
      note: `error ratio s=0.02→0.01: first order ${fmt(a.min)}..${fmt(a.max)} (expect 16), zeroth order ${fmt(b.min)}..${fmt(b.max)} (expect 4); |E9 − E8|/|∇| ≤ ${fmt(e9)}`,
    };
  },
};

const P7: PropertyCheck = {
  id: 'P7',
  statement: 'Exact descent: R^c(Z − κ∇R^c) < R^c(Z), κ = 1e-3, 1e-2, 1e-1',
  measure: 'max [R^c(Z − κ∇R^c) − R^c(Z)] < tol = 0',
  run(rng) {
    let worst = -Infinity, n = 0;
    for (let i = 0; i < 30; i++) {
      const d = 16, N = 10, K = 4, eps = 0.5;
      const U = spanningSubspaces(d, K, rng), Z = randn(d, N, rng, 0.1 + 2.9 * rng.uniform());
      const r0 = compressionRate(Z, U, eps), g = gradCompressionRate(Z, U, eps);
      for (const kappa of [1e-3, 1e-2, 1e-1]) {
        worst = Math.max(worst, compressionRate(sub(Z, scale(g, kappa)), U, eps) - r0);
        n++;
      }
    }
    return { instances: n, worst, tolerance: 0, pass: worst < 0, note: 'U orthonormal spanning, d=16 N=10 K=4 ε=0.5 (κβ ≤ 0.16), token scale 0.1–3' };
  },
};

/** P8 measurements for one regime (exported so tests and reports can read the numbers). */
export function p8Regime(rng: Rng, lo: number, hi: number, trials: number, kappa = 0.01): { cos: number[]; dRc: number[]; decreased: number; plainDecreased: number } {
  const cos: number[] = [], dRc: number[] = [];
  let decreased = 0, plainDecreased = 0;
  for (let t = 0; t < trials; t++) {
    const d = 16, N = 10, K = 4, eps = 0.5;
    const U = spanningSubspaces(d, K, rng);
    const Z = randn(d, N, rng, lo + (hi - lo) * rng.uniform());
    const b = betaOf(d / K, N, eps), M = mssaTheory(Z, U, eps);
    const delta = scale(sub(M, Z), kappa * b);            // (E11): Z⁺ − Z = κβ(MSSA(Z) − Z)
    const g = gradCompressionRate(Z, U, eps);
    cos.push(-dot(delta, g) / (frobenius(delta) * frobenius(g)));
    const r0 = compressionRate(Z, U, eps), r1 = compressionRate(add(Z, delta), U, eps);
    dRc.push(r1 - r0);
    if (r1 < r0) decreased++;
    if (compressionRate(add(Z, scale(M, 0.01)), U, eps) < r0) plainDecreased++;
  }
  return { cos, dRc, decreased, plainDecreased };
}

const P8: PropertyCheck = {
  id: 'P8',
  statement: 'FINDING: MSSA step (E11) lowers R^c only for small tokens',
  measure: 'min cos(Δ, −∇R^c) over small-signal trials > tol = 0, and R^c decreased in all of them (unit scale: note only)',
  run(rng) {
    const trials = 200, kappa = 0.01;
    const small = p8Regime(rng, 0.05, 0.2, trials, kappa), unit = p8Regime(rng, 1, 3, trials, kappa);
    const cs = stats(small.cos), cu = stats(unit.cos), ds = stats(small.dRc), du = stats(unit.dRc);
    const pass = cs.min > 0 && small.decreased === trials;
    const note = `κ=${kappa}, U orthonormal spanning, d=16 N=10 K=4 ε=0.5. ` +
      `small-signal (scale 0.05–0.2): cos min/median/max ${fmt(cs.min)}/${fmt(cs.median)}/${fmt(cs.max)}, R^c decreased ${small.decreased}/${trials} (mean ΔR^c ${fmt(ds.mean)}). ` +
      `unit scale (1–3), not asserted: cos ${fmt(cu.min)}/${fmt(cu.median)}/${fmt(cu.max)}, R^c decreased ${unit.decreased}/${trials} (mean ΔR^c ${fmt(du.mean)}); ` +
      `plain Z + 0.01·MSSA(Z) decreased R^c ${unit.plainDecreased}/${trials} at unit scale, ${small.plainDecreased}/${trials} small-signal`;
    return { instances: 2 * trials, worst: cs.min, tolerance: 0, pass, note };
  },
};

const P9: PropertyCheck = {
  id: 'P9',
  statement: 'Tokens in the subspaces compress better: R^c(Z|U) < R^c(G|U)',
  measure: 'max [R^c(Z) − R^c(G)] < tol = 0 (ΔR(Z) > ΔR(G) reported, not asserted)',
  run(rng) {
    let worst = -Infinity, n = 0;
    const dr: string[] = [];
    for (const [d, N, K, eps] of [[16, 10, 4, 0.5], [16, 40, 4, 0.5], [32, 64, 8, 0.1], [16, 40, 4, 1.0]]) {
      const trials = 50, p = d / K;
      let drWins = 0;
      for (let t = 0; t < trials; t++) {
        const U = spanningSubspaces(d, K, rng);
        const Z = zeros(d, N);
        for (let j = 0; j < N; j++) {
          const Uk = U[rng.int(K)], c = randn(p, 1, rng), z = matmul(Uk, c);
          for (let i = 0; i < d; i++) Z.data[i * N + j] = z.data[i];
        }
        const G0 = randn(d, N, rng), G = scale(G0, frobenius(Z) / frobenius(G0));
        worst = Math.max(worst, compressionRate(Z, U, eps) - compressionRate(G, U, eps));
        if (rateReduction(Z, U, eps) > rateReduction(G, U, eps)) drWins++;
        n++;
      }
      dr.push(`(${d},${N},${K},${eps}) ${drWins}/${trials}`);
    }
    return { instances: n, worst, tolerance: 0, pass: worst < 0, note: `ΔR(Z) > ΔR(G) in ${dr.join(', ')}` };
  },
};

// ---- 4.2 ISTA / LASSO ------------------------------------------------------------------------------------

const P10: PropertyCheck = {
  id: 'P10',
  statement: 'ISTA codes ≥ 0; each step = relu(a + ηDᵀ(u − Da) − ηλ) exactly',
  measure: 'max |reference a_t − own step(a_{t−1})| ≤ tol, no negative code, clamped entries exactly 0',
  run(rng, opts) {
    const step = ownIstaStep(opts);
    let worst = 0, n = 0, negatives = 0, inexactZeros = 0, decodeErr = 0;
    for (let i = 0; i < 12; i++) {
      const d = [8, 16][rng.int(2)], h = (1 + rng.int(4)) * d, N = 5, steps = 1 + rng.int(3);
      const paper = i % 2 === 0;
      const eta = paper ? 0.1 : 0.02 + 0.2 * rng.uniform(), lam = paper ? 0.1 : rng.uniform();
      const D = paper ? paperInitDictionary(d, h, rng) : randn(d, h, rng, 1 / Math.sqrt(d));
      const u = paper ? lnTokens(d, N, rng) : randn(d, N, rng);
      const { codes, out } = referenceIsta(u, D, eta, lam, steps);
      let prev = zeros(h, N);
      for (const a of codes) {
        const own = step(prev, u, D, eta, lam);
        worst = Math.max(worst, maxAbsDiff(a, own));
        // the pre-activation, to find entries that must be clamped to exactly zero
        const g = matmulTN(D, sub(u, matmul(D, prev)));
        for (let k = 0; k < a.data.length; k++) {
          if (a.data[k] < 0) negatives++;
          const pre = prev.data[k] + eta * g.data[k] - eta * lam;
          if (pre < -1e-12 && a.data[k] !== 0) inexactZeros++;
        }
        prev = a;
        n++;
      }
      decodeErr = Math.max(decodeErr, maxAbsDiff(out, matmul(D, prev)));
    }
    worst = Math.max(worst, decodeErr);
    return {
      instances: n, worst, tolerance: 1e-12, pass: worst <= 1e-12 && negatives === 0 && inexactZeros === 0,
      note: `${negatives} negative codes, ${inexactZeros} clamped entries not exactly 0, decode D·a error ${fmt(decodeErr)}`,
    };
  },
};

const P11: PropertyCheck = {
  id: 'P11',
  statement: 'First step: a1_i > 0 ⇔ (Dᵀu)_i > λ; nnz(a1) non-increasing in λ',
  measure: 'support mismatches + monotonicity violations ≤ tol = 0',
  run(rng) {
    let bad = 0, n = 0, a2NonMonotone = 0;
    const lams = Array.from({ length: 21 }, (_, i) => 0.05 * i);
    for (let i = 0; i < 10; i++) {
      const d = 16, h = 64, N = 6, eta = 0.1;
      const D = paperInitDictionary(d, h, rng), u = lnTokens(d, N, rng);
      const g = matmulTN(D, u);
      const lam = 0.5 * rng.uniform();
      const a1 = referenceIsta(u, D, eta, lam, 1).codes[0];
      for (let k = 0; k < g.data.length; k++) {
        if (Math.abs(g.data[k] - lam) < 1e-12 * (1 + Math.abs(g.data[k]))) continue; // on the boundary
        if ((a1.data[k] > 0) !== (g.data[k] > lam)) bad++;
      }
      let prev1 = Infinity, prev2 = Infinity, a2bad = false;
      for (const l of lams) {
        const { codes } = referenceIsta(u, D, eta, l, 2);
        const z1 = nnz(codes[0]), z2 = nnz(codes[1]);
        if (z1 > prev1) bad++;
        if (z2 > prev2) a2bad = true;
        prev1 = z1; prev2 = z2;
      }
      if (a2bad) a2NonMonotone++;
      n++;
    }
    return { instances: n, worst: bad, tolerance: 0, pass: bad === 0, note: `nnz(a2) was non-monotone in λ in ${a2NonMonotone}/${n} sweeps (allowed)` };
  },
};

const P12: PropertyCheck = {
  id: 'P12',
  statement: 'F(a_{t+1}) ≤ F(a_t) when η ≤ 1/L_D; F(a1) ≤ ½‖u‖² from 0',
  measure: 'max [F(a⁺) − F(a)] / max(1, F(a)) ≤ tol (η = c/L_D, c ∈ {0.25, 0.5, 0.99})',
  run(rng, opts) {
    const step = ownIstaStep(opts);
    let worst = -Infinity, n = 0;
    for (let i = 0; i < 12; i++) {
      const d = 16, h = 64, N = 4, lam = 0.05 + 0.5 * rng.uniform();
      const D = i % 2 ? paperInitDictionary(d, h, rng) : randn(d, h, rng, 1 / Math.sqrt(d));
      const u = i % 2 ? lnTokens(d, N, rng) : randn(d, N, rng);
      const eta = [0.25, 0.5, 0.99][i % 3] / lipschitzConstant(D);
      // from zero, then 10 iterates, and from a random non-negative point
      const starts = [zeros(h, N), mat(h, N, randn(h, N, rng).data.map((v) => Math.max(v, 0)))];
      for (const a0 of starts) {
        let a = a0;
        for (let t = 0; t < 10; t++) {
          const next = step(a, u, D, eta, lam), f0 = lassoObjective(u, D, a, lam);
          worst = Math.max(worst, (lassoObjective(u, D, next, lam) - f0) / Math.max(1, f0));
          a = next;
          n++;
        }
      }
    }
    // the paper's setting, not asserted: D at init, η = 0.1, λ = 0.1, the model's two steps
    const d = 64, h = 256, D = paperInitDictionary(d, h, rng), LD = lipschitzConstant(D);
    const u = lnTokens(d, 100, rng), { codes } = referenceIsta(u, D, 0.1, 0.1, 2);
    let dec = 0;
    const cols = (a: Mat, j: number): Mat => colSlice(a, j, j + 1);
    for (let j = 0; j < u.cols; j++) {
      const uj = cols(u, j), f0 = 0.5 * dot(uj, uj);
      const f1 = lassoObjective(uj, D, cols(codes[0], j), 0.1), f2 = lassoObjective(uj, D, cols(codes[1], j), 0.1);
      if (f1 <= f0 && f2 <= f1) dec++;
    }
    return {
      instances: n, worst, tolerance: 1e-12, pass: worst <= 1e-12,
      note: `paper init d=64 h=256: L_D = ${fmt(LD)}, 1/L_D = ${fmt(1 / LD)} < η = 0.1 (no guarantee); both model steps still decreased F in ${dec}/${u.cols} LN'd columns (not asserted)`,
    };
  },
};

const P13: PropertyCheck = {
  id: 'P13',
  statement: 'LASSO optimum is an ISTA fixed point; KKT after ≥ 5000 steps',
  measure: 'max(one more step change, KKT error) ≤ tol',
  run(rng, opts) {
    const step = ownIstaStep(opts);
    let worstStep = 0, worstKkt = 0, n = 0, active = 0, totalSteps = 0;
    for (let i = 0; i < 3; i++) {
      const d = 16, h = 64, N = 3, lam = 1.0;
      const D = randn(d, h, rng, 1 / Math.sqrt(d)), u = randn(d, N, rng);
      const eta = 0.9 / lipschitzConstant(D);
      let steps = 5000, a: Mat = zeros(h, N);
      for (;;) {
        const { codes } = referenceIsta(u, D, eta, lam, steps);
        a = codes[steps - 1];
        const lastChange = maxAbsDiff(codes[steps - 1], codes[steps - 2]);
        if (lastChange < 1e-12 || steps >= 40000) break;
        steps *= 4; // slow linear convergence on this instance: run the reference longer
      }
      totalSteps += steps;
      worstStep = Math.max(worstStep, maxAbsDiff(step(a, u, D, eta, lam), a));
      // KKT of min ½‖u − Da‖² + λ Σ a, a ≥ 0:  g = Dᵀ(u − Da);  a_i > 0 ⇒ g_i = λ;  a_i = 0 ⇒ g_i ≤ λ
      const g = matmulTN(D, sub(u, matmul(D, a)));
      for (let k = 0; k < a.data.length; k++) {
        if (a.data[k] > 0) { active++; worstKkt = Math.max(worstKkt, Math.abs(g.data[k] - lam)); }
        else worstKkt = Math.max(worstKkt, g.data[k] - lam);
      }
      n++;
    }
    const worst = Math.max(worstStep, worstKkt);
    return {
      instances: n, worst, tolerance: 1e-8, pass: worst <= 1e-8,
      note: `d=16 h=64 λ=1, ${totalSteps} reference steps in all; step change ${fmt(worstStep)}, KKT error ${fmt(worstKkt)}, ${active} active atoms`,
    };
  },
};

const P14: PropertyCheck = {
  id: 'P14',
  statement: 'λ = 0: ISTA(c·u) = c·ISTA(u), c > 0; λ > 0: nnz(a1) grows with c',
  measure: 'max |ISTA(cu) − c·ISTA(u)| / (c·max|ISTA(u)|) ≤ tol, no nnz violation',
  run(rng) {
    let worst = 0, n = 0, violations = 0;
    for (let i = 0; i < 12; i++) {
      const d = [8, 16][rng.int(2)], h = 4 * d, N = 4, steps = 1 + rng.int(3), eta = 0.1;
      const D = paperInitDictionary(d, h, rng), u = lnTokens(d, N, rng);
      const base = referenceIsta(u, D, eta, 0, steps);
      for (const c of [0.5, 2, 7.3]) {
        const sc = referenceIsta(scale(u, c), D, eta, 0, steps);
        const all = [...base.codes.map((a, t) => [a, sc.codes[t]] as const), [base.out, sc.out] as const];
        for (const [a, b] of all) {
          const m = Math.max(maxAbs(a.data), 1e-300);
          worst = Math.max(worst, maxAbsDiff(b, scale(a, c)) / (c * m));
        }
        n++;
      }
      const lam = 0.1 + 0.3 * rng.uniform();
      let prev = -1;
      for (const c of [0.5, 1, 2, 4]) {
        const z = nnz(referenceIsta(scale(u, c), D, eta, lam, 1).codes[0]);
        if (z < prev) violations++;
        prev = z;
      }
    }
    return { instances: n, worst, tolerance: 1e-12, pass: worst <= 1e-12 && violations === 0, note: `${violations} nnz(a1) decreases as u was scaled up (λ > 0)` };
  },
};

const P15: PropertyCheck = {
  id: 'P15',
  statement: 'u = 0 ⇒ a1 = a2 = 0 ⇒ block output 0 (exactly)',
  measure: 'max |code or output| = tol = 0',
  run(rng) {
    let worst = 0, n = 0;
    for (let i = 0; i < 10; i++) {
      const d = [8, 16][rng.int(2)], h = (1 + rng.int(4)) * d, N = 3, steps = 1 + rng.int(3);
      const lam = [0, 0.1, rng.uniform()][i % 3];
      const { codes, out } = referenceIsta(zeros(d, N), paperInitDictionary(d, h, rng), 0.1, lam, steps);
      for (const a of codes) worst = Math.max(worst, maxAbs(a.data));
      worst = Math.max(worst, maxAbs(out.data));
      n++;
    }
    return { instances: n, worst, tolerance: 0, pass: worst === 0 };
  },
};

const P16: PropertyCheck = {
  id: 'P16',
  statement: 'Block output = D·a2, a2 ≥ 0: in the cone of the atoms',
  measure: 'max(|out − D·a|, |LS coords − a| for h < d) ≤ tol, with a ≥ 0',
  run(rng) {
    let worst = 0, n = 0, negatives = 0;
    for (let i = 0; i < 12; i++) {
      const d = 16, N = 5, steps = 1 + rng.int(3);
      // overcomplete (the model) and undercomplete (h < d: the cone is a proper subset, and the
      // least-squares coordinates of the output are unique, so they must be the non-negative code)
      const h = i % 2 ? 4 * d : d / 2;
      const D = i % 2 ? paperInitDictionary(d, h, rng) : randn(d, h, rng, 1 / Math.sqrt(d));
      const u = lnTokens(d, N, rng), lam = 0.1 * rng.uniform();
      const { codes, out } = referenceIsta(u, D, 0.1, lam, steps);
      const a = codes[steps - 1];
      for (const v of a.data) if (v < 0) negatives++;
      worst = Math.max(worst, maxAbsDiff(out, matmul(D, a)));
      if (h < d) {
        const coords = solveSPD(gram(D), matmulTN(D, out)); // (DᵀD)⁻¹Dᵀ out
        worst = Math.max(worst, maxAbsDiff(coords, a) / Math.max(1, maxAbs(a.data)));
      }
      n++;
    }
    return { instances: n, worst, tolerance: 1e-9, pass: worst <= 1e-9 && negatives === 0, note: `${negatives} negative code entries` };
  },
};

const P17: PropertyCheck = {
  id: 'P17',
  statement: 'Complete ISTA (E14) = relu(Z + ηDᵀ(Z − DZ) − ηλ), orthogonal D too',
  measure: 'max |istaCompleteForward − E14 form| ≤ tol',
  run(rng, opts) {
    const step = ownIstaStep(opts);
    let worst = 0, n = 0;
    for (let i = 0; i < 12; i++) {
      const d = [4, 8, 16][rng.int(3)], N = 5, eta = 0.1 + 0.2 * rng.uniform(), lam = 0.1;
      const orth = i % 2 === 1;
      const D = orth ? randomOrthogonal(d, rng) : randn(d, d, rng, 1 / Math.sqrt(d));
      const Z = randn(d, N, rng);
      const out = new Float64Array(N * d);
      istaCompleteForward(out, transpose(Z).data, D.data, N, d, eta, lam); // W = D (spec E14 code form)
      const ref = transpose(mat(N, d, out));
      worst = Math.max(worst, maxAbsDiff(ref, step(Z, Z, D, eta, lam)));
      if (orth) {
        const alt = add(Z, sub(scale(matmulTN(D, Z), eta), scale(Z, eta)));
        for (let k = 0; k < alt.data.length; k++) alt.data[k] = Math.max(alt.data[k] - eta * lam, 0);
        worst = Math.max(worst, maxAbsDiff(ref, alt));
      }
      n++;
    }
    return { instances: n, worst, tolerance: 1e-12, pass: worst <= 1e-12 };
  },
};

// ---- 4.3 whole model -----------------------------------------------------------------------------------------

const ARCHS: Arch[] = ['crate', 'crate-complete', 'gpt2'];

const P18: PropertyCheck = {
  id: 'P18',
  statement: 'Causality: outputs at t unchanged when tokens after t change',
  measure: 'max |Δ| over logits, block outputs, codes at positions ≤ t = tol = 0 (float64)',
  run(rng) {
    let worst = 0, n = 0, changedAfter = 0;
    for (let i = 0; i < 9; i++) {
      const cfg = randomTinyConfig(rng, ARCHS[i % 3]);
      const model = randomTinyModel(rng, cfg);
      const B = 2, T = 2 + rng.int(cfg.blockSize - 1), V = cfg.vocabSize, C = cfg.nEmbd;
      const idx = randomTokens(rng, B * T, V), t = rng.int(T - 1);
      const idx2 = idx.slice();
      for (let b = 0; b < B; b++) for (let s = t + 1; s < T; s++) idx2[b * T + s] = rng.int(V);
      const grab = (ids: number[]) => {
        const names = Array.from({ length: cfg.nLayer }, (_, l) => [`blocks.${l}.hook_resid_post`, `blocks.${l}.hook_neurons`]).flat();
        const { logits, cache } = model.runWithCache(ids, B, T, { names });
        const layers = Array.from({ length: cfg.nLayer }, (_, l) => ({ out: cache.get(`blocks.${l}.hook_resid_post`).data, code: cache.get(`blocks.${l}.hook_neurons`).data }));
        return { logits: logits as Float64Array, layers };
      };
      const r1 = grab(idx), r2 = grab(idx2);
      const cmp = (a: Float64Array, b: Float64Array, width: number): void => {
        for (let bb = 0; bb < B; bb++) for (let s = 0; s <= t; s++) for (let k = 0; k < width; k++) {
          const j = (bb * T + s) * width + k;
          worst = Math.max(worst, Math.abs(a[j] - b[j]));
        }
      };
      cmp(r1.logits, r2.logits, V);
      r1.layers.forEach((L, l) => { cmp(L.out, r2.layers[l].out, C); cmp(L.code, r2.layers[l].code, L.code.length / (B * T)); });
      if (maxAbsDiffArr(r1.logits, r2.logits) > 0) changedAfter++;
      model.free();
      n++;
    }
    return { instances: n, worst, tolerance: 0, pass: worst === 0, note: `crate / crate-complete / gpt2 configs; later positions did change in ${changedAfter}/${n}` };
  },
};

const P19: PropertyCheck = {
  id: 'P19',
  statement: 'Adding c_t·1 to token t of a block input: block output unchanged',
  measure: 'max |Δ block-0 output, Δ logits| / max|value| ≤ tol (shift via wpe rows, |c_t| ~ 3)',
  run(rng) {
    let worst = 0, n = 0, gptChange = 0;
    for (let i = 0; i < 8; i++) {
      const arch: Arch = i % 2 ? 'crate' : 'crate-complete';
      for (const a of [arch, 'gpt2' as Arch]) {
        const cfg = randomTinyConfig(rng, a);
        const model = randomTinyModel(rng, cfg);
        const T = cfg.blockSize, C = cfg.nEmbd, idx = randomTokens(rng, T, cfg.vocabSize);
        const r1 = model.runWithCache(idx, 1, T, { names: ['blocks.0.hook_resid_post'] });
        const l1 = r1.logits, o1 = r1.cache.get('blocks.0.hook_resid_post').data;
        // block 0's input is wte[idx] + wpe[t]: adding c_t to every coordinate of wpe row t shifts token t by c_t·1
        const params = model.getParams(), wpe = model.spec('transformer.wpe.weight');
        for (let t = 0; t < T; t++) { const c = 3 * rng.normal(); for (let k = 0; k < C; k++) params[wpe.offset + t * C + k] += c; }
        model.setParams(params);
        const r2 = model.runWithCache(idx, 1, T, { names: ['blocks.0.hook_resid_post'] });
        const l2 = r2.logits, o2 = r2.cache.get('blocks.0.hook_resid_post').data;
        const err = Math.max(maxAbsDiffArr(o1, o2) / maxAbs(o1), maxAbsDiffArr(l1 as Float64Array, l2 as Float64Array) / maxAbs(l1 as Float64Array));
        if (a === 'gpt2') gptChange = Math.max(gptChange, err);
        else { worst = Math.max(worst, err); n++; }
        model.free();
      }
    }
    return { instances: n, worst, tolerance: 1e-10, pass: worst <= 1e-10, note: `contrast, GPT-2 blocks (residual after the MLP): relative change up to ${fmt(gptChange)}` };
  },
};

const P20: PropertyCheck = {
  id: 'P20',
  statement: 'Incremental decoding with a cache of U_kᵀLN(z_j) = full forward',
  measure: 'max |cached − full logits| / max|logits| ≤ tol',
  run(rng) {
    let worst = 0, n = 0;
    for (let i = 0; i < 9; i++) {
      const cfg = randomTinyConfig(rng, ARCHS[i % 3]);
      const model = randomTinyModel(rng, cfg);
      const T = 1 + rng.int(cfg.blockSize), idx = randomTokens(rng, T, cfg.vocabSize);
      const full = model.forward(idx, 1, T).logits as Float64Array;
      // the decoder `crate-ts sample` uses (src/sample/decode.ts), one token at a time
      const dec = new SampleDecoder(cfg, model.getParams()), V = cfg.vocabSize, smp = new Float64Array(T * V);
      for (let t = 0; t < T; t++) smp.set(dec.step(idx[t]).slice(), t * V);
      const scl = Math.max(1e-300, maxAbs(full));
      worst = Math.max(worst, maxAbsDiffArr(full, smp) / scl);
      model.free();
      n++;
    }
    return {
      instances: n, worst, tolerance: 1e-12, pass: worst <= 1e-12,
      note: 'crate / crate-complete / gpt2 with the sampling decoder of src/sample/decode.ts',
    };
  },
};

const P21: PropertyCheck = {
  id: 'P21',
  statement: 'Tied wte gets gradient from both the embedding and the head',
  measure: 'max(rel |∇wte − (head part + embedding part)|, rel FD error) ≤ tol; both parts non-zero',
  run(rng) {
    let worstSplit = 0, worstFd = 0, n = 0, zeroParts = 0;
    for (let i = 0; i < 4; i++) {
      // d = 8, two heads, the paper's ISTA shape: tinier widths make LayerNorm pass almost no gradient
      const cfg = makeConfig(undefined, {
        arch: i % 2 ? 'crate' : 'crate-complete', vocabSize: 5 + rng.int(12), blockSize: 8, nLayer: 1 + rng.int(2),
        nHead: 2, nEmbd: 8, overcomplete: 4, istaSteps: 2,
      });
      const model = randomTinyModel(rng, cfg);
      const T = cfg.blockSize, V = cfg.vocabSize, C = cfg.nEmbd;
      const idx = randomTokens(rng, T, V), targets = randomTokens(rng, T, V);
      model.zeroGrad();
      const lastOut = `blocks.${cfg.nLayer - 1}.hook_resid_post`;
      const { logits, cache } = model.runWithCache(idx, 1, T, { targets, grad: true, names: [lastOut] });
      model.backward();
      const Gw = model.backend.download(model.grad('transformer.wte.weight'));
      const Gp = model.backend.download(model.grad('transformer.wpe.weight'));
      // head part, independently: dL/dW_head = dlogitsᵀ · LN_f(x_L), dlogits = (softmax − onehot)/T
      const xL = cache.get(lastOut).data, lnf = new Float64Array(T * C);
      const P = model.getParams(), sp = (name: string) => { const s = model.spec(name); return P.subarray(s.offset, s.offset + s.size); };
      layernormForward(lnf, new Float64Array(T), new Float64Array(T), xL, sp('transformer.ln_f.weight'), sp('transformer.ln_f.bias'), T, C, cfg.lnEps);
      const head = new Float64Array(V * C), lg = logits as Float64Array;
      for (let t = 0; t < T; t++) {
        let m = -Infinity, s = 0;
        for (let v = 0; v < V; v++) m = Math.max(m, lg[t * V + v]);
        for (let v = 0; v < V; v++) s += Math.exp(lg[t * V + v] - m);
        for (let v = 0; v < V; v++) {
          const dl = (Math.exp(lg[t * V + v] - m) / s - (v === targets[t] ? 1 : 0)) / T;
          for (let k = 0; k < C; k++) head[v * C + k] += dl * lnf[t * C + k];
        }
      }
      // embedding part: perturbing wte[v] in the lookup only = perturbing wpe[t] for every t with idx[t] = v (B = 1)
      const emb = new Float64Array(V * C);
      for (let t = 0; t < T; t++) for (let k = 0; k < C; k++) emb[idx[t] * C + k] += Gp[t * C + k];
      const scaleG = maxAbs(Gw);
      for (let j = 0; j < Gw.length; j++) worstSplit = Math.max(worstSplit, Math.abs(Gw[j] - head[j] - emb[j]) / scaleG);
      for (const v of new Set(idx)) {
        const nh = Math.hypot(...head.subarray(v * C, (v + 1) * C)), ne = Math.hypot(...emb.subarray(v * C, (v + 1) * C));
        if (!(nh > 1e-12 * scaleG) || !(ne > 1e-12 * scaleG)) zeroParts++;
      }
      // finite differences of the loss in wte (both paths at once). The ISTA ReLUs make the loss
      // piecewise smooth: two step sizes, the better one counts (a kink rarely sits within both).
      const wte = model.spec('transformer.wte.weight');
      const lossAt = (j: number, delta: number): number => {
        const p = P.slice();
        p[wte.offset + j] += delta;
        model.setParams(p);
        return model.forward(idx, 1, T, targets, { grad: false, returnLogits: false }).loss as number;
      };
      for (let r = 0; r < 6; r++) {
        const j = r < 3 ? idx[rng.int(T)] * C + rng.int(C) : rng.int(V * C);
        let best = Infinity;
        for (const h of [1e-5, 1e-6]) {
          const fd = (lossAt(j, h) - lossAt(j, -h)) / (2 * h);
          best = Math.min(best, Math.abs(fd - Gw[j]) / Math.max(Math.abs(fd), 1e-3 * scaleG));
        }
        worstFd = Math.max(worstFd, best);
      }
      model.free();
      n++;
    }
    const worst = Math.max(worstSplit, worstFd);
    return {
      instances: n, worst, tolerance: 1e-6, pass: worst <= 1e-6 && zeroParts === 0,
      note: `split mismatch ${fmt(worstSplit)}, FD rel. error ${fmt(worstFd)}; ${zeroParts} input tokens missing a path`,
    };
  },
};

/** Spec table 5.2, recomputed columns: [preset, CRATE, GPT-2 bias=False]. */
export const PARAM_TABLE: [string, number, number][] = [
  ['1L', 6_538_112, 6_635_904],
  ['2L', 6_637_056, 6_832_768],
  ['3L', 6_736_000, 7_029_632],
  ['S', 59_891_712, 81_110_784],
  ['B', 81_148_416, 123_587_328],
];

const P22: PropertyCheck = {
  id: 'P22',
  statement: 'Param counts = V·d+L(6d²+5d)+2d, V·d+L(12d²+2d)+d = table 5.2',
  measure: 'max |numParams − formula|, |numParams − table| = tol = 0',
  run() {
    let worst = 0, n = 0;
    const rows: string[] = [];
    for (const [preset, crateT, gptT] of PARAM_TABLE) {
      for (const arch of ['crate', 'gpt2'] as Arch[]) {
        const cfg = makeConfig(preset, { arch }), V = cfg.vocabSize, d = cfg.nEmbd, L = cfg.nLayer;
        const got = numParams(paramTable(cfg));
        const formula = arch === 'crate' ? V * d + L * (6 * d * d + 5 * d) + 2 * d : V * d + L * (12 * d * d + 2 * d) + d;
        const table = arch === 'crate' ? crateT : gptT;
        worst = Math.max(worst, Math.abs(got - formula), Math.abs(got - table));
        if (arch === 'crate') rows.push(`${preset} ${(got / 1e6).toFixed(2)}M`);
        n++;
      }
    }
    return { instances: n, worst, tolerance: 0, pass: worst === 0, note: `CRATE ${rows.join(', ')} (the paper prints 55.9M for S: a typo, spec 5.2)` };
  },
};

const P23: PropertyCheck = {
  id: 'P23',
  statement: 'Golden vector (Appendix A): logits, loss, layer-0 code statistics',
  measure: 'max |Δ| over logits (6 decimals), loss, code sums ≤ tol; integer statistics exact',
  run() {
    const model = goldenModel(new ReferenceBackend());
    const T = GOLDEN.idx.length, V = model.config.vocabSize;
    const { logits, loss, cache } = model.runWithCache(GOLDEN.idx, 1, T, { targets: GOLDEN.targets, names: ['blocks.0.hook_neurons'] });
    const lg = logits as Float64Array;
    let worst = Math.max(
      maxAbsDiffArr(lg.subarray((T - 1) * V, T * V), GOLDEN.logitsLast),
      maxAbsDiffArr(lg.subarray(0, V), GOLDEN.logitsFirst),
      Math.abs((loss as number) - GOLDEN.loss),
    );
    const code = cache.get('blocks.0.hook_neurons').data, H = code.length / T;
    const nz: number[] = [], sums: number[] = [];
    let zeros = 0;
    for (let t = 0; t < T; t++) {
      let c = 0, s = 0;
      for (let k = 0; k < H; k++) { const v = code[t * H + k]; if (v !== 0) c++; else zeros++; s += v; }
      nz.push(c); sums.push(s);
    }
    worst = Math.max(worst, maxAbsDiffArr(sums, GOLDEN.code0Sums));
    const intOk = nz.every((v, i) => v === GOLDEN.code0Nonzeros[i]) && zeros / code.length === GOLDEN.code0ZeroFraction;
    model.free();
    return {
      instances: 1, worst, tolerance: 1e-6, pass: worst <= 1e-6 && intOk,
      note: `loss ${(loss as number).toPrecision(16)} (expected ${GOLDEN.loss}); layer-0 nnz [${nz.join(', ')}], zero fraction ${zeros / code.length}${intOk ? '' : ' MISMATCH'}`,
    };
  },
};

// ---- registry and runner -------------------------------------------------------------------------------------

export const CHECKS: PropertyCheck[] = [P1, P2, P3, P4, P5, P6, P7, P8, P9, P10, P11, P12, P13, P14, P15, P16, P17, P18, P19, P20, P21, P22, P23];

export const CHECK_IDS = CHECKS.map((c) => c.id);

/** The check's own random stream: depends on the seed and the id only, so --only reproduces a full run. */
function checkRng(seed: number, id: string): Rng {
  const k = Number(id.slice(1));
  return new Rng(((seed >>> 0) ^ Math.imul(k, 0x9e3779b1)) >>> 0);
}

/** Run the checks (all, or those in `only`), each on its own seeded stream. Never throws for a failing check. */
export function runChecks(opts: RunChecksOptions = {}): ChecksSummary {
  const seed = opts.seed ?? 0;
  let selected = CHECKS;
  if (opts.only && opts.only.length) {
    const wanted = opts.only.map((s) => s.trim().toUpperCase()).filter((s) => s.length);
    const unknown = wanted.filter((w) => !CHECK_IDS.includes(w));
    if (unknown.length) throw new Error(`unknown property id(s) ${unknown.join(', ')}; known: ${CHECK_IDS.join(', ')}`);
    selected = CHECKS.filter((c) => wanted.includes(c.id));
  }
  const checks: CheckReport[] = selected.map((c) => {
    const t0 = performance.now();
    let r: CheckResult;
    try {
      r = c.run(checkRng(seed, c.id), { inject: opts.inject });
    } catch (err) {
      r = { instances: 0, worst: NaN, tolerance: NaN, pass: false, note: `threw: ${(err as Error).message}` };
    }
    return { id: c.id, statement: c.statement, measure: c.measure, ...r, ms: performance.now() - t0 };
  });
  return { pass: checks.every((c) => c.pass), seed, checks };
}
