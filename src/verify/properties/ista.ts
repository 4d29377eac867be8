// Spec 4.2: properties of ISTA and the LASSO (E13, E14, E17, E19), P10-P17.
import type { PropertyCheck } from './types.js';
import {
  type Mat,
  mat,
  zeros,
  transpose,
  matmul,
  matmulTN,
  sub,
  add,
  scale,
  dot,
  maxAbsDiff,
  colSlice,
  randn,
  randomOrthogonal,
  gram,
  solveSPD,
} from '../linalg.js';
import { lassoObjective, lipschitzConstant } from '../codingrate.js';
import { istaCompleteForward } from '../../reference/ista.js';
import { fmt, paperInitDictionary, lnTokens, ownIstaStep, referenceIsta, nnz, maxAbs } from './helpers.js';

// ---- 4.2 ISTA / LASSO ------------------------------------------------------------------------------------

export const P10: PropertyCheck = {
  id: 'P10',
  statement: 'ISTA codes ≥ 0; each step = relu(a + ηDᵀ(u − Da) − ηλ) exactly',
  measure: 'max |reference a_t − own step(a_{t−1})| ≤ tol, no negative code, clamped entries exactly 0',
  run(rng, opts) {
    const step = ownIstaStep(opts);
    let worst = 0,
      n = 0,
      negatives = 0,
      inexactZeros = 0,
      decodeErr = 0;
    for (let i = 0; i < 12; i++) {
      const d = [8, 16][rng.int(2)],
        h = (1 + rng.int(4)) * d,
        N = 5,
        steps = 1 + rng.int(3);
      const paper = i % 2 === 0;
      const eta = paper ? 0.1 : 0.02 + 0.2 * rng.uniform(),
        lam = paper ? 0.1 : rng.uniform();
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
      instances: n,
      worst,
      tolerance: 1e-12,
      pass: worst <= 1e-12 && negatives === 0 && inexactZeros === 0,
      note: `${negatives} negative codes, ${inexactZeros} clamped entries not exactly 0, decode D·a error ${fmt(decodeErr)}`,
    };
  },
};

export const P11: PropertyCheck = {
  id: 'P11',
  statement: 'First step: a1_i > 0 ⇔ (Dᵀu)_i > λ; nnz(a1) non-increasing in λ',
  measure: 'support mismatches + monotonicity violations ≤ tol = 0',
  run(rng) {
    let bad = 0,
      n = 0,
      a2NonMonotone = 0;
    const lams = Array.from({ length: 21 }, (_, i) => 0.05 * i);
    for (let i = 0; i < 10; i++) {
      const d = 16,
        h = 64,
        N = 6,
        eta = 0.1;
      const D = paperInitDictionary(d, h, rng),
        u = lnTokens(d, N, rng);
      const g = matmulTN(D, u);
      const lam = 0.5 * rng.uniform();
      const a1 = referenceIsta(u, D, eta, lam, 1).codes[0];
      for (let k = 0; k < g.data.length; k++) {
        if (Math.abs(g.data[k] - lam) < 1e-12 * (1 + Math.abs(g.data[k]))) continue; // on the boundary
        if (a1.data[k] > 0 !== g.data[k] > lam) bad++;
      }
      let prev1 = Infinity,
        prev2 = Infinity,
        a2bad = false;
      for (const l of lams) {
        const { codes } = referenceIsta(u, D, eta, l, 2);
        const z1 = nnz(codes[0]),
          z2 = nnz(codes[1]);
        if (z1 > prev1) bad++;
        if (z2 > prev2) a2bad = true;
        prev1 = z1;
        prev2 = z2;
      }
      if (a2bad) a2NonMonotone++;
      n++;
    }
    return { instances: n, worst: bad, tolerance: 0, pass: bad === 0, note: `nnz(a2) was non-monotone in λ in ${a2NonMonotone}/${n} sweeps (allowed)` };
  },
};

export const P12: PropertyCheck = {
  id: 'P12',
  statement: 'F(a_{t+1}) ≤ F(a_t) when η ≤ 1/L_D; F(a1) ≤ ½‖u‖² from 0',
  measure: 'max [F(a⁺) − F(a)] / max(1, F(a)) ≤ tol (η = c/L_D, c ∈ {0.25, 0.5, 0.99})',
  run(rng, opts) {
    const step = ownIstaStep(opts);
    let worst = -Infinity,
      n = 0;
    for (let i = 0; i < 12; i++) {
      const d = 16,
        h = 64,
        N = 4,
        lam = 0.05 + 0.5 * rng.uniform();
      const D = i % 2 ? paperInitDictionary(d, h, rng) : randn(d, h, rng, 1 / Math.sqrt(d));
      const u = i % 2 ? lnTokens(d, N, rng) : randn(d, N, rng);
      const eta = [0.25, 0.5, 0.99][i % 3] / lipschitzConstant(D);
      // from zero, then 10 iterates, and from a random non-negative point
      const starts = [
        zeros(h, N),
        mat(
          h,
          N,
          randn(h, N, rng).data.map((v) => Math.max(v, 0)),
        ),
      ];
      for (const a0 of starts) {
        let a = a0;
        for (let t = 0; t < 10; t++) {
          const next = step(a, u, D, eta, lam),
            f0 = lassoObjective(u, D, a, lam);
          worst = Math.max(worst, (lassoObjective(u, D, next, lam) - f0) / Math.max(1, f0));
          a = next;
          n++;
        }
      }
    }
    // the paper's setting, not asserted: D at init, η = 0.1, λ = 0.1, the model's two steps
    const d = 64,
      h = 256,
      D = paperInitDictionary(d, h, rng),
      LD = lipschitzConstant(D);
    const u = lnTokens(d, 100, rng),
      { codes } = referenceIsta(u, D, 0.1, 0.1, 2);
    let dec = 0;
    const cols = (a: Mat, j: number): Mat => colSlice(a, j, j + 1);
    for (let j = 0; j < u.cols; j++) {
      const uj = cols(u, j),
        f0 = 0.5 * dot(uj, uj);
      const f1 = lassoObjective(uj, D, cols(codes[0], j), 0.1),
        f2 = lassoObjective(uj, D, cols(codes[1], j), 0.1);
      if (f1 <= f0 && f2 <= f1) dec++;
    }
    return {
      instances: n,
      worst,
      tolerance: 1e-12,
      pass: worst <= 1e-12,
      note: `paper init d=64 h=256: L_D = ${fmt(LD)}, 1/L_D = ${fmt(1 / LD)} < η = 0.1 (no guarantee); both model steps still decreased F in ${dec}/${u.cols} LN'd columns (not asserted)`,
    };
  },
};

export const P13: PropertyCheck = {
  id: 'P13',
  statement: 'LASSO optimum is an ISTA fixed point; KKT after ≥ 5000 steps',
  measure: 'max(one more step change, KKT error) ≤ tol',
  run(rng, opts) {
    const step = ownIstaStep(opts);
    let worstStep = 0,
      worstKkt = 0,
      n = 0,
      active = 0,
      totalSteps = 0;
    for (let i = 0; i < 3; i++) {
      const d = 16,
        h = 64,
        N = 3,
        lam = 1.0;
      const D = randn(d, h, rng, 1 / Math.sqrt(d)),
        u = randn(d, N, rng);
      const eta = 0.9 / lipschitzConstant(D);
      let steps = 5000,
        a: Mat = zeros(h, N);
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
        if (a.data[k] > 0) {
          active++;
          worstKkt = Math.max(worstKkt, Math.abs(g.data[k] - lam));
        } else worstKkt = Math.max(worstKkt, g.data[k] - lam);
      }
      n++;
    }
    const worst = Math.max(worstStep, worstKkt);
    return {
      instances: n,
      worst,
      tolerance: 1e-8,
      pass: worst <= 1e-8,
      note: `d=16 h=64 λ=1, ${totalSteps} reference steps in all; step change ${fmt(worstStep)}, KKT error ${fmt(worstKkt)}, ${active} active atoms`,
    };
  },
};

export const P14: PropertyCheck = {
  id: 'P14',
  statement: 'λ = 0: ISTA(c·u) = c·ISTA(u), c > 0; λ > 0: nnz(a1) grows with c',
  measure: 'max |ISTA(cu) − c·ISTA(u)| / (c·max|ISTA(u)|) ≤ tol, no nnz violation',
  run(rng) {
    let worst = 0,
      n = 0,
      violations = 0;
    for (let i = 0; i < 12; i++) {
      const d = [8, 16][rng.int(2)],
        h = 4 * d,
        N = 4,
        steps = 1 + rng.int(3),
        eta = 0.1;
      const D = paperInitDictionary(d, h, rng),
        u = lnTokens(d, N, rng);
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
    return {
      instances: n,
      worst,
      tolerance: 1e-12,
      pass: worst <= 1e-12 && violations === 0,
      note: `${violations} nnz(a1) decreases as u was scaled up (λ > 0)`,
    };
  },
};

export const P15: PropertyCheck = {
  id: 'P15',
  statement: 'u = 0 ⇒ a1 = a2 = 0 ⇒ block output 0 (exactly)',
  measure: 'max |code or output| = tol = 0',
  run(rng) {
    let worst = 0,
      n = 0;
    for (let i = 0; i < 10; i++) {
      const d = [8, 16][rng.int(2)],
        h = (1 + rng.int(4)) * d,
        N = 3,
        steps = 1 + rng.int(3);
      const lam = [0, 0.1, rng.uniform()][i % 3];
      const { codes, out } = referenceIsta(zeros(d, N), paperInitDictionary(d, h, rng), 0.1, lam, steps);
      for (const a of codes) worst = Math.max(worst, maxAbs(a.data));
      worst = Math.max(worst, maxAbs(out.data));
      n++;
    }
    return { instances: n, worst, tolerance: 0, pass: worst === 0 };
  },
};

export const P16: PropertyCheck = {
  id: 'P16',
  statement: 'Block output = D·a2, a2 ≥ 0: in the cone of the atoms',
  measure: 'max(|out − D·a|, |LS coords − a| for h < d) ≤ tol, with a ≥ 0',
  run(rng) {
    let worst = 0,
      n = 0,
      negatives = 0;
    for (let i = 0; i < 12; i++) {
      const d = 16,
        N = 5,
        steps = 1 + rng.int(3);
      // overcomplete (the model) and undercomplete (h < d: the cone is a proper subset, and the
      // least-squares coordinates of the output are unique, so they must be the non-negative code)
      const h = i % 2 ? 4 * d : d / 2;
      const D = i % 2 ? paperInitDictionary(d, h, rng) : randn(d, h, rng, 1 / Math.sqrt(d));
      const u = lnTokens(d, N, rng),
        lam = 0.1 * rng.uniform();
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

export const P17: PropertyCheck = {
  id: 'P17',
  statement: 'Complete ISTA (E14) = relu(Z + ηDᵀ(Z − DZ) − ηλ), orthogonal D too',
  measure: 'max |istaCompleteForward − E14 form| ≤ tol',
  run(rng, opts) {
    const step = ownIstaStep(opts);
    let worst = 0,
      n = 0;
    for (let i = 0; i < 12; i++) {
      const d = [4, 8, 16][rng.int(3)],
        N = 5,
        eta = 0.1 + 0.2 * rng.uniform(),
        lam = 0.1;
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
