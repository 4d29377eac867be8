// Coding rates, the sparse rate reduction objective, their gradients, the theory MSSA operator and
// the non-negative LASSO behind ISTA: the mathematics of paper B (spec sections 2.1–2.3, 2.5), in
// float64, for the property checks of spec section 4 (src/verify/properties.ts).
//
// LAYOUT (spec section 1, "gotcha"). Everything in this file uses the PAPER's convention:
//   Z is d×N with one token per COLUMN, U_k is d×p (an orthonormal basis in theory), D is d×h (atoms are
//   columns), codes a are h×N (one code per column).
// The model code stores tokens as ROWS, x: (N, d), so a paper product M·Z is x·Mᵀ in code. Use
//   tokensToColumns / columnsToTokens   to move between x (N,d) and Z (d×N),
//   subspacesFromCAttn                  to read U_k from attn.c_attn.weight (rows k·p..k·p+p−1 are U_kᵀ),
//   dictionaryFromIstaWeight            to read D from ista.weight (= Dᵀ, shape (h, d)).
// Matrices are linalg.ts Mats: { rows, cols, data } with data row-major.
import {
  type Mat,
  mat,
  transpose,
  matmul,
  matmulTN,
  gram,
  gramOuter,
  logdetSPD,
  solveSPD,
  addScaledIdentity,
  scale,
  lincomb,
  axpyInPlace,
  zeros,
  sub,
  singularValues,
  sigmaMax,
} from './linalg.js';

export type Form = 'N' | 'd' | 'auto';

// ---- layout helpers -------------------------------------------------------------------------------

/** Code layout x (N tokens × d, row-major) → paper layout Z (d×N, tokens as columns). */
export function tokensToColumns(x: ArrayLike<number>, N: number, d: number): Mat {
  if (x.length !== N * d) throw new Error(`tokensToColumns: ${x.length} values for N=${N} tokens of width d=${d}`);
  return transpose(mat(N, d, x));
}

/** Paper layout Z (d×N) → code layout x (N×d, row-major). */
export function columnsToTokens(Z: Mat): Float64Array {
  return transpose(Z).data;
}

/**
 * The K subspace bases U_k (d×p) of one layer from attn.c_attn.weight (d×d, PyTorch weight[out, in]):
 * rows k·p..k·p+p−1 of the weight are U_kᵀ, so v = LN(x)·weightᵀ gives head k = U_kᵀ z per token.
 */
export function subspacesFromCAttn(w: ArrayLike<number>, d: number, K: number): Mat[] {
  if (w.length !== d * d) throw new Error(`subspacesFromCAttn: ${w.length} values, expected d·d = ${d * d}`);
  if (d % K !== 0) throw new Error(`subspacesFromCAttn: d=${d} is not divisible by K=${K}`);
  const p = d / K,
    out: Mat[] = [];
  for (let k = 0; k < K; k++) {
    const Ut = mat(p, d);
    for (let i = 0; i < p; i++) for (let j = 0; j < d; j++) Ut.data[i * d + j] = w[(k * p + i) * d + j];
    out.push(transpose(Ut));
  }
  return out;
}

/** D (d×h, atoms as columns) from ista.weight (h×d, = Dᵀ, rows are atoms). */
export function dictionaryFromIstaWeight(w: ArrayLike<number>, h: number, d: number): Mat {
  return transpose(mat(h, d, w));
}

// ---- (E1) coding rate -------------------------------------------------------------------------------

/** α = d / (N ε²) */
export function alphaOf(d: number, N: number, eps: number): number {
  return d / (N * eps * eps);
}
/** β = p / (N ε²) */
export function betaOf(p: number, N: number, eps: number): number {
  return p / (N * eps * eps);
}

/**
 * ½ logdet(I + c·MᵀM) in the requested form: 'N' uses the cols×cols Gram MᵀM, 'd' the rows×rows
 * Gram M Mᵀ (equal by Sylvester's determinant identity), 'auto' the smaller one.
 */
function halfLogdetGram(M: Mat, c: number, form: Form): number {
  const useCols = form === 'N' || (form === 'auto' && M.cols <= M.rows);
  const G = useCols ? gram(M) : gramOuter(M);
  return 0.5 * logdetSPD(addScaledIdentity(G, c));
}

/**
 * (E1) R(Z) = ½ logdet(I_N + α ZᵀZ) = ½ logdet(I_d + α Z Zᵀ),  α = d/(Nε²),  Z d×N.
 * form 'N' is the first expression, 'd' the second, 'auto' whichever matrix is smaller.
 */
export function codingRate(Z: Mat, eps: number, form: Form = 'auto'): number {
  return halfLogdetGram(Z, alphaOf(Z.rows, Z.cols, eps), form);
}

/** (P4) R(Z) = ½ Σ_i log(1 + α σ_i(Z)²) from the singular values. */
export function codingRateSpectral(Z: Mat, eps: number): number {
  const a = alphaOf(Z.rows, Z.cols, eps);
  let s = 0;
  for (const sv of singularValues(Z)) s += Math.log1p(a * sv * sv);
  return 0.5 * s;
}

// ---- (E2) compression term, (E3) rate reduction, (E4) sparse rate reduction ----------------------

function checkSubspaces(Z: Mat, U: Mat[]): void {
  if (U.length === 0) throw new Error('need at least one subspace U_k');
  for (const [k, Uk] of U.entries()) {
    if (Uk.rows !== Z.rows) throw new Error(`U_${k} is ${Uk.rows}×${Uk.cols}, Z has d = ${Z.rows} rows`);
  }
}

/**
 * (E2) R^c(Z | U_[K]) = Σ_k R(U_kᵀZ) = ½ Σ_k logdet(I_N + β (U_kᵀZ)ᵀ(U_kᵀZ)),  β = p/(Nε²),
 * with p = U_k's column count (each U_k is d×p).
 */
export function compressionRate(Z: Mat, U: Mat[], eps: number, form: Form = 'auto'): number {
  checkSubspaces(Z, U);
  let s = 0;
  for (const Uk of U) s += halfLogdetGram(matmulTN(Uk, Z), betaOf(Uk.cols, Z.cols, eps), form);
  return s;
}

/** (E3) ΔR(Z | U_[K]) = R(Z) − R^c(Z | U_[K]). */
export function rateReduction(Z: Mat, U: Mat[], eps: number): number {
  return codingRate(Z, eps) - compressionRate(Z, U, eps);
}

/** ‖Z‖₁ = Σ |Z_ij| */
export function l1(Z: Mat): number {
  let s = 0;
  for (const v of Z.data) s += Math.abs(v);
  return s;
}

/**
 * (E4) Sparse rate reduction, ℓ0 relaxed to ℓ1 (the quantity the layers are meant to increase):
 * ΔR(Z | U_[K]) − λ‖Z‖₁ = R(Z) − R^c(Z | U_[K]) − λ‖Z‖₁.
 */
export function sparseRateReduction(Z: Mat, U: Mat[], eps: number, lam: number): number {
  return rateReduction(Z, U, eps) - lam * l1(Z);
}

// ---- (E7) exact gradients -----------------------------------------------------------------------------

/**
 * ∇_Z R(Z) = α Z (I_N + α ZᵀZ)^{-1} = α (I_d + α Z Zᵀ)^{-1} Z   (d×N); the smaller system is solved.
 */
export function gradCodingRate(Z: Mat, eps: number): Mat {
  const a = alphaOf(Z.rows, Z.cols, eps);
  if (Z.cols <= Z.rows) {
    // Z M⁻¹ = (M⁻¹ Zᵀ)ᵀ with M = I_N + α ZᵀZ symmetric
    return scale(transpose(solveSPD(addScaledIdentity(gram(Z), a), transpose(Z))), a);
  }
  return scale(solveSPD(addScaledIdentity(gramOuter(Z), a), Z), a);
}

/**
 * (E7) ∇_Z R^c(Z | U) = β Σ_k U_k W_k (I_N + β W_kᵀW_k)^{-1},  W_k = U_kᵀZ (p×N).
 * Computed through the push-through identity W (I_N + β WᵀW)^{-1} = (I_p + β W Wᵀ)^{-1} W when p < N.
 */
export function gradCompressionRate(Z: Mat, U: Mat[], eps: number): Mat {
  checkSubspaces(Z, U);
  const g = zeros(Z.rows, Z.cols);
  for (const Uk of U) {
    const b = betaOf(Uk.cols, Z.cols, eps),
      W = matmulTN(Uk, Z);
    const Winv = W.rows < W.cols ? solveSPD(addScaledIdentity(gramOuter(W), b), W) : transpose(solveSPD(addScaledIdentity(gram(W), b), transpose(W)));
    axpyInPlace(g, b, matmul(Uk, Winv));
  }
  return g;
}

/** ∇ΔR = ∇R − ∇R^c. */
export function gradRateReduction(Z: Mat, U: Mat[], eps: number): Mat {
  return sub(gradCodingRate(Z, eps), gradCompressionRate(Z, U, eps));
}

/** Gradient of (E4) where Z has no zero entry: ∇R − ∇R^c − λ sign(Z) (sign(0) taken as 0). */
export function gradSparseRateReduction(Z: Mat, U: Mat[], eps: number, lam: number): Mat {
  const g = gradRateReduction(Z, U, eps);
  for (let i = 0; i < g.data.length; i++) g.data[i] -= lam * Math.sign(Z.data[i]);
  return g;
}

// ---- (E8), (E9) Neumann-series approximations ------------------------------------------------------

/** Zeroth order: (I + βA)^{-1} ≈ I, so ∇R^c ≈ β Σ_k U_k U_kᵀ Z. */
export function gradCompressionNeumann0(Z: Mat, U: Mat[], eps: number): Mat {
  checkSubspaces(Z, U);
  const g = zeros(Z.rows, Z.cols);
  for (const Uk of U) axpyInPlace(g, betaOf(Uk.cols, Z.cols, eps), matmul(Uk, matmulTN(Uk, Z)));
  return g;
}

/** Σ_k β² U_k W_k (W_kᵀ W_k): the second-order term of E8/E9. */
function neumannSecondTerm(Z: Mat, U: Mat[], eps: number): Mat {
  const g = zeros(Z.rows, Z.cols);
  for (const Uk of U) {
    const b = betaOf(Uk.cols, Z.cols, eps),
      W = matmulTN(Uk, Z);
    // W (WᵀW) = (W Wᵀ) W, the p×p form is cheaper
    axpyInPlace(g, b * b, matmul(Uk, matmul(gramOuter(W), W)));
  }
  return g;
}

/** (E8) First order: (I + βA)^{-1} ≈ I − βA, ∇R^c ≈ β Σ_k U_k W_k − β² Σ_k U_k W_k (W_kᵀ W_k). */
export function gradCompressionNeumann1(Z: Mat, U: Mat[], eps: number): Mat {
  return sub(gradCompressionNeumann0(Z, U, eps), neumannSecondTerm(Z, U, eps));
}

/**
 * (E9) E8 with the spanning assumption Σ_k U_k U_kᵀ = I (orthonormal U_k of equal width p jointly
 * spanning R^d): ∇R^c ≈ βZ − β² Σ_k U_k W_k (W_kᵀW_k). Uses β of U_0's width.
 */
export function gradCompressionSpanning(Z: Mat, U: Mat[], eps: number): Mat {
  checkSubspaces(Z, U);
  const b = betaOf(U[0].cols, Z.cols, eps);
  return sub(scale(Z, b), neumannSecondTerm(Z, U, eps));
}

// ---- (E10), (E11) theory MSSA --------------------------------------------------------------------------

/** Softmax of each COLUMN of S (each column becomes a probability vector). */
export function columnSoftmax(S: Mat): Mat {
  const o = mat(S.rows, S.cols);
  for (let j = 0; j < S.cols; j++) {
    let m = -Infinity;
    for (let i = 0; i < S.rows; i++) m = Math.max(m, S.data[i * S.cols + j]);
    let s = 0;
    for (let i = 0; i < S.rows; i++) {
      const e = Math.exp(S.data[i * S.cols + j] - m);
      o.data[i * S.cols + j] = e;
      s += e;
    }
    for (let i = 0; i < S.rows; i++) o.data[i * S.cols + j] /= s;
  }
  return o;
}

/**
 * (E10) SSA(Z | U_k) = (U_kᵀZ) · softmax((U_kᵀZ)ᵀ(U_kᵀZ))   (p×N), softmax over each column,
 * no 1/sqrt(p) temperature, no mask (the theory operator; spec 2.6 items 2–3 list the code's changes).
 */
export function ssa(Z: Mat, Uk: Mat): Mat {
  const W = matmulTN(Uk, Z);
  return matmul(W, columnSoftmax(gram(W)));
}

/**
 * (E10) MSSA(Z | U_[K]) = β [U_1 … U_K] [SSA(Z|U_1); …; SSA(Z|U_K)] = β Σ_k U_k SSA(Z|U_k)   (d×N):
 * tied query/key/value AND tied output projection U_k, scalar β = p/(Nε²).
 */
export function mssaTheory(Z: Mat, U: Mat[], eps: number): Mat {
  checkSubspaces(Z, U);
  const o = zeros(Z.rows, Z.cols);
  for (const Uk of U) axpyInPlace(o, betaOf(Uk.cols, Z.cols, eps), matmul(Uk, ssa(Z, Uk)));
  return o;
}

/** (E11) Z^{ℓ+1/2} = (1 − κβ) Z + κβ · MSSA(Z | U), β of U_0's width. */
export function mssaCompressionStep(Z: Mat, U: Mat[], eps: number, kappa: number): Mat {
  const kb = kappa * betaOf(U[0].cols, Z.cols, eps);
  return lincomb(1 - kb, Z, kb, mssaTheory(Z, U, eps));
}

/** (E6) exact gradient step Z − κ ∇R^c(Z | U). */
export function gradientCompressionStep(Z: Mat, U: Mat[], eps: number, kappa: number): Mat {
  return lincomb(1, Z, -kappa, gradCompressionRate(Z, U, eps));
}

// ---- (E13), (E14), (E17) non-negative LASSO and its proximal-gradient (ISTA) step ---------------------

/**
 * (E13) F(a) = ½‖u − D a‖_F² + λ‖a‖₁, restricted to a ≥ 0 (the model's one-sided threshold).
 * u: d×N (one signal per column), D: d×h, a: h×N. For a ≥ 0, ‖a‖₁ = Σ a.
 */
export function lassoObjective(u: Mat, D: Mat, a: Mat, lam: number): number {
  const r = sub(u, matmul(D, a));
  let s = 0;
  for (const v of r.data) s += v * v;
  return 0.5 * s + lam * l1(a);
}

/** Gradient of the smooth part ½‖u − Da‖²: −Dᵀ(u − Da)  (h×N). */
export function lassoSmoothGradient(u: Mat, D: Mat, a: Mat): Mat {
  return scale(matmulTN(D, sub(u, matmul(D, a))), -1);
}

/**
 * One proximal-gradient (ISTA) step for F with step η (E14, E17 with the code's one-sided threshold):
 *   a⁺ = relu(a + η Dᵀ(u − D a) − ηλ)
 * (the gradient step on ½‖u − Da‖², then the prox of ηλ‖·‖₁ + indicator(a ≥ 0), which is relu(· − ηλ)).
 */
export function istaStep(a: Mat, u: Mat, D: Mat, eta: number, lam: number): Mat {
  const g = matmulTN(D, sub(u, matmul(D, a))); // Dᵀ(u − Da)
  const o = mat(a.rows, a.cols);
  for (let i = 0; i < o.data.length; i++) {
    const pre = a.data[i] + eta * g.data[i] - eta * lam;
    o.data[i] = pre > 0 ? pre : 0;
  }
  return o;
}

/** (E14) complete ISTA, paper B: one step warm-started at the input, ISTA(Z | D) = relu(Z + ηDᵀ(Z − DZ) − ηλ). */
export function istaCompleteStep(Z: Mat, D: Mat, eta: number, lam: number): Mat {
  return istaStep(Z, Z, D, eta, lam);
}

/** The overcomplete ISTA of paper A (E17) from a₀ = 0: returns [a_1, …, a_steps]. */
export function istaFromZero(u: Mat, D: Mat, eta: number, lam: number, steps: number): Mat[] {
  const out: Mat[] = [];
  let a = zeros(D.cols, u.cols);
  for (let t = 0; t < steps; t++) {
    a = istaStep(a, u, D, eta, lam);
    out.push(a);
  }
  return out;
}

/** L_D = σ_max(D)², the Lipschitz constant of ∇ ½‖u − Da‖². ISTA decreases F monotonically when η ≤ 1/L_D. */
export function lipschitzConstant(D: Mat): number {
  const s = sigmaMax(D);
  return s * s;
}

// ---- (E21) measured compression of a trained model ---------------------------------------------------

export interface CompressionMeasurement {
  /** Σ_k R^c-term per sequence (length B). */
  perSequence: number[];
  mean: number;
  /** Sample standard deviation over sequences (n − 1 denominator, like torch.std); 0 when B = 1. */
  std: number;
  /** Mean over sequences of each head's term (length K). */
  perHead: number[];
}

/**
 * (E21) The CRATE authors' layer-wise compression measurement. v is the output of the QKV projection
 * in CODE layout, (B·T, C) row-major: token (b, t), head k is v[(b·T + t)·C + k·p … + p). For each
 * sequence and head, every token vector is normalised to unit ℓ2 norm (a zero vector stays zero), then
 *   ½ logdet(I_T + (p / (T·e)) WᵀW),  W = the p×T matrix of normalised tokens,  e = ε² = 0.01,
 * summed over heads, then mean and std over the batch. (Computed in the p×p form when p < T; equal by
 * Sylvester.)
 */
export function measuredCompression(v: ArrayLike<number>, B: number, T: number, C: number, K: number, e = 0.01): CompressionMeasurement {
  if (v.length !== B * T * C) throw new Error(`measuredCompression: ${v.length} values, expected B·T·C = ${B}·${T}·${C}`);
  if (C % K !== 0) throw new Error(`measuredCompression: C=${C} is not divisible by K=${K}`);
  const p = C / K,
    perSequence: number[] = [],
    perHead = new Array<number>(K).fill(0);
  for (let b = 0; b < B; b++) {
    let total = 0;
    for (let k = 0; k < K; k++) {
      const W = mat(p, T);
      for (let t = 0; t < T; t++) {
        const o = (b * T + t) * C + k * p;
        let n = 0;
        for (let i = 0; i < p; i++) n += v[o + i] * v[o + i];
        const inv = n > 0 ? 1 / Math.sqrt(n) : 0;
        for (let i = 0; i < p; i++) W.data[i * T + t] = v[o + i] * inv;
      }
      const r = halfLogdetGram(W, p / (T * e), 'auto');
      perHead[k] += r / B;
      total += r;
    }
    perSequence.push(total);
  }
  const mean = perSequence.reduce((a, b) => a + b, 0) / B;
  const std = B > 1 ? Math.sqrt(perSequence.reduce((a, x) => a + (x - mean) ** 2, 0) / (B - 1)) : 0;
  return { perSequence, mean, std, perHead };
}
