// Small dense float64 linear algebra for the coding-rate reference (src/verify/codingrate.ts)
// and the property checks (src/verify). Written for clarity on matrices of a few hundred rows at
// most, not for speed.
//
// Storage: a Mat is { rows, cols, data } with data row-major, element (i, j) at data[i·cols + j].
// Functions never modify their inputs unless the name says so (…InPlace) and always return fresh
// matrices.
import type { Rng } from '../util/rng.js';

export interface Mat {
  rows: number;
  cols: number;
  /** Row-major: element (i, j) is data[i * cols + j]. */
  data: Float64Array;
}

/** Thrown by cholesky() when the matrix is not (numerically) symmetric positive definite. */
export class NotPositiveDefiniteError extends Error {
  constructor(
    readonly size: number,
    readonly pivotIndex: number,
    readonly pivotValue: number,
  ) {
    super(`cholesky: the ${size}×${size} matrix is not positive definite: pivot ${pivotIndex} (0-based) is ${pivotValue} (must be > 0)`);
    this.name = 'NotPositiveDefiniteError';
  }
}

// ---- construction ---------------------------------------------------------------------------------

export function mat(rows: number, cols: number, data?: ArrayLike<number>): Mat {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 0 || cols < 0) throw new Error(`mat: bad shape ${rows}×${cols}`);
  const d = new Float64Array(rows * cols);
  if (data !== undefined) {
    if (data.length !== rows * cols) throw new Error(`mat: ${data.length} values for a ${rows}×${cols} matrix`);
    d.set(data);
  }
  return { rows, cols, data: d };
}

export function zeros(rows: number, cols: number): Mat {
  return mat(rows, cols);
}

export function eye(n: number): Mat {
  const m = mat(n, n);
  for (let i = 0; i < n; i++) m.data[i * n + i] = 1;
  return m;
}

/** From an array of rows. */
export function fromRows(rows: number[][]): Mat {
  const r = rows.length,
    c = r ? rows[0].length : 0;
  const m = mat(r, c);
  rows.forEach((row, i) => {
    if (row.length !== c) throw new Error(`fromRows: row ${i} has ${row.length} entries, row 0 has ${c}`);
    m.data.set(row, i * c);
  });
  return m;
}

export function clone(a: Mat): Mat {
  return { rows: a.rows, cols: a.cols, data: Float64Array.from(a.data) };
}

export function get(a: Mat, i: number, j: number): number {
  return a.data[i * a.cols + j];
}

/** Entries i.i.d. N(0, scale²). */
export function randn(rows: number, cols: number, rng: Rng, scale = 1): Mat {
  const m = mat(rows, cols);
  for (let i = 0; i < m.data.length; i++) m.data[i] = scale * rng.normal();
  return m;
}

// ---- elementwise and shape ------------------------------------------------------------------------

function sameShape(a: Mat, b: Mat, what: string): void {
  if (a.rows !== b.rows || a.cols !== b.cols) throw new Error(`${what}: shapes ${a.rows}×${a.cols} and ${b.rows}×${b.cols} differ`);
}

export function transpose(a: Mat): Mat {
  const t = mat(a.cols, a.rows);
  for (let i = 0; i < a.rows; i++) for (let j = 0; j < a.cols; j++) t.data[j * a.rows + i] = a.data[i * a.cols + j];
  return t;
}

export function add(a: Mat, b: Mat): Mat {
  sameShape(a, b, 'add');
  const o = mat(a.rows, a.cols);
  for (let i = 0; i < o.data.length; i++) o.data[i] = a.data[i] + b.data[i];
  return o;
}

export function sub(a: Mat, b: Mat): Mat {
  sameShape(a, b, 'sub');
  const o = mat(a.rows, a.cols);
  for (let i = 0; i < o.data.length; i++) o.data[i] = a.data[i] - b.data[i];
  return o;
}

export function scale(a: Mat, s: number): Mat {
  const o = mat(a.rows, a.cols);
  for (let i = 0; i < o.data.length; i++) o.data[i] = s * a.data[i];
  return o;
}

/** a·x + b·y */
export function lincomb(a: number, x: Mat, b: number, y: Mat): Mat {
  sameShape(x, y, 'lincomb');
  const o = mat(x.rows, x.cols);
  for (let i = 0; i < o.data.length; i++) o.data[i] = a * x.data[i] + b * y.data[i];
  return o;
}

/** acc += s·x, in place. */
export function axpyInPlace(acc: Mat, s: number, x: Mat): void {
  sameShape(acc, x, 'axpy');
  for (let i = 0; i < acc.data.length; i++) acc.data[i] += s * x.data[i];
}

export function relu(a: Mat): Mat {
  const o = mat(a.rows, a.cols);
  for (let i = 0; i < o.data.length; i++) o.data[i] = a.data[i] > 0 ? a.data[i] : 0;
  return o;
}

/** I + s·A for square A. */
export function addScaledIdentity(a: Mat, s: number, identityWeight = 1): Mat {
  if (a.rows !== a.cols) throw new Error(`addScaledIdentity: ${a.rows}×${a.cols} is not square`);
  const o = scale(a, s);
  for (let i = 0; i < a.rows; i++) o.data[i * a.cols + i] += identityWeight;
  return o;
}

/** Frobenius inner product ⟨A, B⟩ = Σ A_ij B_ij. */
export function dot(a: Mat, b: Mat): number {
  sameShape(a, b, 'dot');
  let s = 0;
  for (let i = 0; i < a.data.length; i++) s += a.data[i] * b.data[i];
  return s;
}

export function frobenius(a: Mat): number {
  return Math.sqrt(dot(a, a));
}

export function trace(a: Mat): number {
  let s = 0;
  for (let i = 0; i < Math.min(a.rows, a.cols); i++) s += a.data[i * a.cols + i];
  return s;
}

export function maxAbsDiff(a: Mat, b: Mat): number {
  sameShape(a, b, 'maxAbsDiff');
  let m = 0;
  for (let i = 0; i < a.data.length; i++) m = Math.max(m, Math.abs(a.data[i] - b.data[i]));
  return m;
}

/** Columns [c0, c1) of a. */
export function colSlice(a: Mat, c0: number, c1: number): Mat {
  const o = mat(a.rows, c1 - c0);
  for (let i = 0; i < a.rows; i++) for (let j = c0; j < c1; j++) o.data[i * o.cols + j - c0] = a.data[i * a.cols + j];
  return o;
}

/** Rows [r0, r1) of a. */
export function rowSlice(a: Mat, r0: number, r1: number): Mat {
  return { rows: r1 - r0, cols: a.cols, data: a.data.slice(r0 * a.cols, r1 * a.cols) };
}

/** [A_1, A_2, …] side by side (same row count). */
export function hcat(parts: Mat[]): Mat {
  const rows = parts[0].rows,
    cols = parts.reduce((s, p) => s + p.cols, 0);
  const o = mat(rows, cols);
  let c0 = 0;
  for (const p of parts) {
    if (p.rows !== rows) throw new Error(`hcat: ${p.rows} rows vs ${rows}`);
    for (let i = 0; i < rows; i++) for (let j = 0; j < p.cols; j++) o.data[i * cols + c0 + j] = p.data[i * p.cols + j];
    c0 += p.cols;
  }
  return o;
}

/** Reorder columns: out column j = a column perm[j]. */
export function permuteCols(a: Mat, perm: number[]): Mat {
  const o = mat(a.rows, perm.length);
  for (let i = 0; i < a.rows; i++) for (let j = 0; j < perm.length; j++) o.data[i * o.cols + j] = a.data[i * a.cols + perm[j]];
  return o;
}

// ---- products --------------------------------------------------------------------------------------

/** A B */
export function matmul(a: Mat, b: Mat): Mat {
  if (a.cols !== b.rows) throw new Error(`matmul: ${a.rows}×${a.cols} times ${b.rows}×${b.cols}`);
  const o = mat(a.rows, b.cols);
  const n = a.cols,
    m = b.cols;
  for (let i = 0; i < a.rows; i++) {
    for (let k = 0; k < n; k++) {
      const aik = a.data[i * n + k];
      if (aik === 0) continue;
      const bo = k * m,
        oo = i * m;
      for (let j = 0; j < m; j++) o.data[oo + j] += aik * b.data[bo + j];
    }
  }
  return o;
}

/** Aᵀ B */
export function matmulTN(a: Mat, b: Mat): Mat {
  if (a.rows !== b.rows) throw new Error(`matmulTN: (${a.rows}×${a.cols})ᵀ times ${b.rows}×${b.cols}`);
  const o = mat(a.cols, b.cols);
  for (let k = 0; k < a.rows; k++) {
    for (let i = 0; i < a.cols; i++) {
      const aki = a.data[k * a.cols + i];
      if (aki === 0) continue;
      for (let j = 0; j < b.cols; j++) o.data[i * b.cols + j] += aki * b.data[k * b.cols + j];
    }
  }
  return o;
}

/** A Bᵀ */
export function matmulNT(a: Mat, b: Mat): Mat {
  if (a.cols !== b.cols) throw new Error(`matmulNT: ${a.rows}×${a.cols} times (${b.rows}×${b.cols})ᵀ`);
  const o = mat(a.rows, b.rows);
  for (let i = 0; i < a.rows; i++) {
    for (let j = 0; j < b.rows; j++) {
      let s = 0;
      for (let k = 0; k < a.cols; k++) s += a.data[i * a.cols + k] * b.data[j * b.cols + k];
      o.data[i * b.rows + j] = s;
    }
  }
  return o;
}

/** Gram matrix AᵀA (cols×cols), exactly symmetric. */
export function gram(a: Mat): Mat {
  const n = a.cols,
    o = mat(n, n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let s = 0;
      for (let k = 0; k < a.rows; k++) s += a.data[k * n + i] * a.data[k * n + j];
      o.data[i * n + j] = s;
      o.data[j * n + i] = s;
    }
  }
  return o;
}

/** Outer Gram A Aᵀ (rows×rows), exactly symmetric. */
export function gramOuter(a: Mat): Mat {
  return gram(transpose(a));
}

// ---- factorizations ----------------------------------------------------------------------------------

function assertSquare(a: Mat, what: string): void {
  if (a.rows !== a.cols) throw new Error(`${what}: expected a square matrix, got ${a.rows}×${a.cols}`);
}

/**
 * Cholesky factor L (lower triangular, A = L Lᵀ) of a symmetric positive definite matrix. Only the
 * lower triangle of A is read. Throws NotPositiveDefiniteError naming the size and the failing pivot
 * (0-based) when a pivot is ≤ 0 or not finite.
 */
export function cholesky(a: Mat): Mat {
  assertSquare(a, 'cholesky');
  const n = a.rows,
    L = mat(n, n),
    l = L.data,
    x = a.data;
  for (let j = 0; j < n; j++) {
    let s = x[j * n + j];
    for (let k = 0; k < j; k++) s -= l[j * n + k] * l[j * n + k];
    if (!(s > 0) || !Number.isFinite(s)) throw new NotPositiveDefiniteError(n, j, s);
    const d = Math.sqrt(s);
    l[j * n + j] = d;
    for (let i = j + 1; i < n; i++) {
      let t = x[i * n + j];
      for (let k = 0; k < j; k++) t -= l[i * n + k] * l[j * n + k];
      l[i * n + j] = t / d;
    }
  }
  return L;
}

/** log det A for symmetric positive definite A, via Cholesky: 2 Σ log L_ii. */
export function logdetSPD(a: Mat): number {
  const L = cholesky(a);
  let s = 0;
  for (let i = 0; i < a.rows; i++) s += Math.log(L.data[i * a.rows + i]);
  return 2 * s;
}

/** Solve A X = B for symmetric positive definite A (Cholesky; forward then back substitution). */
export function solveSPD(a: Mat, b: Mat): Mat {
  assertSquare(a, 'solveSPD');
  if (b.rows !== a.rows) throw new Error(`solveSPD: A is ${a.rows}×${a.rows}, B has ${b.rows} rows`);
  const n = a.rows,
    m = b.cols,
    L = cholesky(a).data,
    X = clone(b),
    x = X.data;
  for (let c = 0; c < m; c++) {
    for (let i = 0; i < n; i++) {
      let s = x[i * m + c];
      for (let k = 0; k < i; k++) s -= L[i * n + k] * x[k * m + c];
      x[i * m + c] = s / L[i * n + i];
    }
    for (let i = n - 1; i >= 0; i--) {
      let s = x[i * m + c];
      for (let k = i + 1; k < n; k++) s -= L[k * n + i] * x[k * m + c];
      x[i * m + c] = s / L[i * n + i];
    }
  }
  return X;
}

/** Solve A X = B for a general square A (LU with partial pivoting). Throws on a singular A. */
export function solve(a: Mat, b: Mat): Mat {
  assertSquare(a, 'solve');
  if (b.rows !== a.rows) throw new Error(`solve: A is ${a.rows}×${a.rows}, B has ${b.rows} rows`);
  const n = a.rows,
    m = b.cols,
    A = Float64Array.from(a.data),
    X = clone(b),
    x = X.data;
  for (let k = 0; k < n; k++) {
    let p = k,
      best = Math.abs(A[k * n + k]);
    for (let i = k + 1; i < n; i++)
      if (Math.abs(A[i * n + k]) > best) {
        best = Math.abs(A[i * n + k]);
        p = i;
      }
    if (best === 0 || !Number.isFinite(best)) throw new Error(`solve: the ${n}×${n} matrix is singular (no non-zero pivot in column ${k})`);
    if (p !== k) {
      for (let j = 0; j < n; j++) {
        const t = A[k * n + j];
        A[k * n + j] = A[p * n + j];
        A[p * n + j] = t;
      }
      for (let j = 0; j < m; j++) {
        const t = x[k * m + j];
        x[k * m + j] = x[p * m + j];
        x[p * m + j] = t;
      }
    }
    const piv = A[k * n + k];
    for (let i = k + 1; i < n; i++) {
      const f = A[i * n + k] / piv;
      if (f === 0) continue;
      for (let j = k; j < n; j++) A[i * n + j] -= f * A[k * n + j];
      for (let j = 0; j < m; j++) x[i * m + j] -= f * x[k * m + j];
    }
  }
  for (let i = n - 1; i >= 0; i--) {
    for (let j = 0; j < m; j++) {
      let s = x[i * m + j];
      for (let k = i + 1; k < n; k++) s -= A[i * n + k] * x[k * m + j];
      x[i * m + j] = s / A[i * n + i];
    }
  }
  return X;
}

export function inverse(a: Mat): Mat {
  return solve(a, eye(a.rows));
}

/**
 * Eigen-decomposition of a symmetric matrix by the cyclic Jacobi method: A = V diag(values) Vᵀ,
 * values sorted descending, V's columns the matching orthonormal eigenvectors.
 */
export function symEig(a: Mat, opts: { tol?: number; maxSweeps?: number } = {}): { values: Float64Array; vectors: Mat } {
  assertSquare(a, 'symEig');
  const n = a.rows,
    A = Float64Array.from(a.data),
    V = eye(n).data;
  // symmetrise (the lower triangle wins ties of rounding)
  for (let i = 0; i < n; i++)
    for (let j = 0; j < i; j++) {
      const s = 0.5 * (A[i * n + j] + A[j * n + i]);
      A[i * n + j] = s;
      A[j * n + i] = s;
    }
  const tol = opts.tol ?? 1e-15,
    maxSweeps = opts.maxSweeps ?? 100;
  let total = 0;
  for (let i = 0; i < n * n; i++) total += A[i] * A[i];
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let off = 0;
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) off += A[i * n + j] * A[i * n + j];
    if (off <= tol * tol * total || off === 0) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = A[p * n + q];
        if (apq === 0) continue;
        const app = A[p * n + p],
          aqq = A[q * n + q];
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1),
          s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = A[k * n + p],
            akq = A[k * n + q];
          A[k * n + p] = c * akp - s * akq;
          A[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = A[p * n + k],
            aqk = A[q * n + k];
          A[p * n + k] = c * apk - s * aqk;
          A[q * n + k] = s * apk + c * aqk;
        }
        A[p * n + q] = 0;
        A[q * n + p] = 0;
        for (let k = 0; k < n; k++) {
          const vkp = V[k * n + p],
            vkq = V[k * n + q];
          V[k * n + p] = c * vkp - s * vkq;
          V[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => A[j * n + j] - A[i * n + i]);
  const values = Float64Array.from(order, (i) => A[i * n + i]);
  const vectors = mat(n, n);
  for (let k = 0; k < n; k++) for (let j = 0; j < n; j++) vectors.data[k * n + j] = V[k * n + order[j]];
  return { values, vectors };
}

/** Singular values of A, descending (square roots of the eigenvalues of the smaller Gram matrix). */
export function singularValues(a: Mat): Float64Array {
  const g = a.rows <= a.cols ? gramOuter(a) : gram(a);
  return symEig(g).values.map((v) => Math.sqrt(Math.max(v, 0)));
}

/**
 * Largest singular value σ_max(A) by power iteration on AᵀA (cheap for large A), to relative
 * accuracy `tol` in σ². Deterministic start vector (all ones, then a fixed pseudo-random tilt).
 */
export function sigmaMax(a: Mat, opts: { tol?: number; maxIter?: number } = {}): number {
  const tol = opts.tol ?? 1e-12,
    maxIter = opts.maxIter ?? 10000;
  const n = a.cols;
  if (n === 0 || a.rows === 0) return 0;
  let v = mat(n, 1);
  for (let i = 0; i < n; i++) v.data[i] = 1 + 0.1 * Math.sin(1 + 7 * i);
  let lam = 0;
  for (let it = 0; it < maxIter; it++) {
    const nv = frobenius(v);
    if (nv === 0) return 0;
    v = scale(v, 1 / nv);
    const w = matmulTN(a, matmul(a, v)); // AᵀA v
    const next = dot(v, w);
    v = w;
    if (it > 2 && Math.abs(next - lam) <= tol * Math.abs(next)) {
      lam = next;
      break;
    }
    lam = next;
  }
  return Math.sqrt(Math.max(lam, 0));
}

/**
 * Thin QR by Householder reflections: A (m×n, m ≥ n) = Q R with Q m×n orthonormal columns and R
 * n×n upper triangular. R's diagonal is made non-negative (so the factorisation is unique for full
 * column rank).
 */
export function qr(a: Mat): { q: Mat; r: Mat } {
  const m = a.rows,
    n = a.cols;
  if (m < n) throw new Error(`qr: needs rows ≥ cols, got ${m}×${n}`);
  const R = Float64Array.from(a.data);
  const vs: Float64Array[] = [];
  for (let k = 0; k < n; k++) {
    const v = new Float64Array(m);
    let norm = 0;
    for (let i = k; i < m; i++) norm += R[i * n + k] * R[i * n + k];
    norm = Math.sqrt(norm);
    const alpha = R[k * n + k] > 0 ? -norm : norm;
    for (let i = k; i < m; i++) v[i] = R[i * n + k];
    v[k] -= alpha;
    let vn = 0;
    for (let i = k; i < m; i++) vn += v[i] * v[i];
    if (vn > 0) {
      for (let j = k; j < n; j++) {
        let s = 0;
        for (let i = k; i < m; i++) s += v[i] * R[i * n + j];
        const f = (2 * s) / vn;
        for (let i = k; i < m; i++) R[i * n + j] -= f * v[i];
      }
    }
    vs.push(v);
  }
  // Q = H_0 H_1 … H_{n−1} applied to the first n columns of the identity
  const Q = mat(m, n);
  for (let i = 0; i < n; i++) Q.data[i * n + i] = 1;
  for (let k = n - 1; k >= 0; k--) {
    const v = vs[k];
    let vn = 0;
    for (let i = k; i < m; i++) vn += v[i] * v[i];
    if (vn === 0) continue;
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let i = k; i < m; i++) s += v[i] * Q.data[i * n + j];
      const f = (2 * s) / vn;
      for (let i = k; i < m; i++) Q.data[i * n + j] -= f * v[i];
    }
  }
  const Rm = mat(n, n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) Rm.data[i * n + j] = R[i * n + j];
  for (let i = 0; i < n; i++) {
    if (Rm.data[i * n + i] < 0) {
      for (let j = i; j < n; j++) Rm.data[i * n + j] = -Rm.data[i * n + j];
      for (let r = 0; r < m; r++) Q.data[r * n + i] = -Q.data[r * n + i];
    }
  }
  return { q: Q, r: Rm };
}

/** A Haar-random m×n matrix with orthonormal columns (n ≤ m): QR of a Gaussian with R_ii > 0. */
export function randomOrthonormal(m: number, n: number, rng: Rng): Mat {
  return qr(randn(m, n, rng)).q;
}

/** A Haar-random n×n orthogonal matrix. */
export function randomOrthogonal(n: number, rng: Rng): Mat {
  return randomOrthonormal(n, n, rng);
}

/** A uniformly random permutation of 0..n−1 (Fisher–Yates). */
export function randomPermutation(n: number, rng: Rng): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}
