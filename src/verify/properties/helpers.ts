// Shared helpers of the property checks: random subspaces, dictionaries, tokens, the checks' own ISTA step.
import { Rng } from '../../util/rng.js';
import type { CheckOptions } from './types.js';
import { type Mat, mat, transpose, matmul, matmulTN, sub, colSlice, randn, randomOrthogonal } from '../linalg.js';
import { istaStep } from '../codingrate.js';
import { istaForward } from '../../reference/ista.js';
import { layernormForward } from '../../reference/layernorm.js';

export const fmt = (x: number, digits = 3): string => (x === 0 ? '0' : Number.isFinite(x) ? x.toPrecision(digits) : String(x));
export const rel = (a: number, b: number): number => Math.abs(a - b) / Math.max(1, Math.abs(b));

/** K orthonormal d×(d/K) bases jointly spanning R^d: the column blocks of a random orthogonal matrix. */
export function spanningSubspaces(d: number, K: number, rng: Rng): Mat[] {
  const Q = randomOrthogonal(d, rng),
    p = d / K;
  return Array.from({ length: K }, (_, k) => colSlice(Q, k * p, (k + 1) * p));
}

/** K unconstrained Gaussian d×p bases (entries N(0, 1/d)). */
export function gaussianSubspaces(d: number, p: number, K: number, rng: Rng): Mat[] {
  return Array.from({ length: K }, () => randn(d, p, rng, 1 / Math.sqrt(d)));
}

/** The model's dictionary at init: D = Aᵀ with A = ista.weight (h×d) ~ U(−sqrt(6/d), sqrt(6/d)). */
export function paperInitDictionary(d: number, h: number, rng: Rng): Mat {
  const b = Math.sqrt(6 / d),
    D = mat(d, h);
  for (let i = 0; i < D.data.length; i++) D.data[i] = (2 * rng.uniform() - 1) * b;
  return D;
}

/** N LayerNorm'd (zero-mean, unit-variance, no affine) random tokens as a d×N matrix. */
export function lnTokens(d: number, N: number, rng: Rng, spread = 3): Mat {
  const x = new Float64Array(N * d),
    out = new Float64Array(N * d);
  for (let i = 0; i < x.length; i++) x[i] = spread * rng.normal() + 0.5;
  const w = new Float64Array(d).fill(1),
    m = new Float64Array(N),
    r = new Float64Array(N);
  layernormForward(out, m, r, x, w, null, N, d, 1e-5);
  return transpose(mat(N, d, out));
}

/** The checks' own ISTA step, with the optional injected fault. */
export function ownIstaStep(opts: CheckOptions): (a: Mat, u: Mat, D: Mat, eta: number, lam: number) => Mat {
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
export function referenceIsta(u: Mat, D: Mat, eta: number, lam: number, steps: number): { codes: Mat[]; out: Mat } {
  const d = u.rows,
    N = u.cols,
    h = D.cols;
  const codes = new Float64Array(steps * N * h),
    out = new Float64Array(N * d);
  istaForward(out, codes, transpose(u).data, transpose(D).data, N, d, h, eta, lam, steps);
  const per: Mat[] = [];
  for (let t = 0; t < steps; t++) per.push(transpose(mat(N, h, codes.subarray(t * N * h, (t + 1) * N * h))));
  return { codes: per, out: transpose(mat(N, d, out)) };
}

export function nnz(a: Mat): number {
  let n = 0;
  for (const v of a.data) if (v !== 0) n++;
  return n;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

export function maxAbsDiffArr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export function stats(xs: number[]): { min: number; median: number; max: number; mean: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0], median: s[Math.floor(s.length / 2)], max: s[s.length - 1], mean: xs.reduce((a, b) => a + b, 0) / xs.length };
}
