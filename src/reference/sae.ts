// Sparse autoencoder (the paper's dictionary-learning baseline, spec 7.6; README "Sparse autoencoders"), float64.
//
//   x̃ = x − b_dec                          (N, D)   b_dec subtracted from the input (apply_b_dec_to_input)
//   pre = x̃ W_enc + b_enc                  (N, S)   W_enc: (D, S), b_enc: (S)
//   h = relu(topk_k(pre))                  (N, S)   topk_k keeps the k largest entries of each row (the
//                                                   rest become 0); k >= S keeps all: the relu SAE
//   x̂ = h W_dec + b_dec                    (N, D)   W_dec: (S, D), rows unit norm
//
// Loss (README "Sparse autoencoders"): L = Σ_n‖x̂_n − x_n‖² / Σ_n‖x_n − x̄‖² + λ/N Σ_{n,j} h_nj   (relu; h ≥ 0 so
// |h| = h), with the same normalised term for the topk recipe and its AuxK term.
//
// Top-k order: entry a beats entry b when pre_a > pre_b, or pre_a = pre_b and a's index is lower; the k
// entries beaten by fewer than k others are kept. This is a strict total order, so every twin keeps the
// same entries, ties included. Inputs must be finite (the trainer checks before calling).

/** True when (va, a) beats (vb, b) in the top-k order. */
function beats(va: number, a: number, vb: number, b: number): boolean {
  return va > vb || (va === vb && a < b);
}

/**
 * h = relu(topk_k(pre restricted to eligible features)) row by row.
 * h, pre: (N, S); mask: (S) or null (feature j eligible when mask[j] != 0; null: all); k >= 1.
 * Ineligible features get 0. k >= (number eligible) keeps every eligible entry.
 */
export function saeTopk(h: Float64Array, pre: Float64Array, mask: Float64Array | null, N: number, S: number, k: number): void {
  const idx: number[] = [];
  for (let j = 0; j < S; j++) if (!mask || mask[j] !== 0) idx.push(j);
  for (let n = 0; n < N; n++) {
    const r = n * S;
    for (let j = 0; j < S; j++) h[r + j] = 0;
    let keep = idx;
    if (k < idx.length) {
      keep = idx
        .slice()
        .sort((a, b) => (beats(pre[r + a], a, pre[r + b], b) ? -1 : 1))
        .slice(0, k);
    }
    for (const j of keep) h[r + j] = pre[r + j] > 0 ? pre[r + j] : 0;
  }
}

/**
 * pre = (x − b_dec) W_enc + b_enc;  h = relu(topk_k(pre)).
 * pre, h: (N, S); x: (N, D); W_enc: (D, S); b_enc: (S); b_dec: (D); k >= S: plain relu.
 */
export function saeEncodeForward(
  pre: Float64Array,
  h: Float64Array,
  x: Float64Array,
  Wenc: Float64Array,
  benc: Float64Array,
  bdec: Float64Array,
  N: number,
  D: number,
  S: number,
  k: number,
): void {
  for (let n = 0; n < N; n++) {
    const r = n * S;
    for (let j = 0; j < S; j++) pre[r + j] = benc[j];
    for (let i = 0; i < D; i++) {
      const xi = x[n * D + i] - bdec[i];
      for (let j = 0; j < S; j++) pre[r + j] += xi * Wenc[i * S + j];
    }
  }
  saeTopk(h, pre, null, N, S, k);
}

/**
 * x̂ = h W_dec + b_dec.  xhat: (N, D); h: (N, S); W_dec: (S, D); b_dec: (D) or null (AuxK's
 * reconstruction of the error has no bias).
 */
export function saeDecodeForward(xhat: Float64Array, h: Float64Array, Wdec: Float64Array, bdec: Float64Array | null, N: number, D: number, S: number): void {
  for (let n = 0; n < N; n++) {
    const o = n * D;
    for (let i = 0; i < D; i++) xhat[o + i] = bdec ? bdec[i] : 0;
    for (let j = 0; j < S; j++) {
      const a = h[n * S + j];
      if (a === 0) continue;
      for (let i = 0; i < D; i++) xhat[o + i] += a * Wdec[j * D + i];
    }
  }
}

/**
 * Backward of the decode and of the activation, with the L1 penalty l1·Σh:
 *   dpre[n,j] = [h[n,j] > 0] · (dxhat[n] · W_dec[j] + l1)     (N, S) written
 *   dW_dec[j] += Σ_n h[n,j] dxhat[n]                          (S, D) accumulated
 *   db_dec    += Σ_n dxhat[n]                                 (D)    accumulated (skipped when null)
 * The mask [h > 0] is the derivative of relu∘topk away from ties (a feature not kept, or kept with
 * pre <= 0, passes no gradient).
 */
export function saeDecodeBackward(
  dpre: Float64Array,
  dWdec: Float64Array,
  dbdec: Float64Array | null,
  dxhat: Float64Array,
  h: Float64Array,
  Wdec: Float64Array,
  N: number,
  D: number,
  S: number,
  l1: number,
): void {
  for (let n = 0; n < N; n++) {
    const g = n * D;
    if (dbdec) for (let i = 0; i < D; i++) dbdec[i] += dxhat[g + i];
    for (let j = 0; j < S; j++) {
      const a = h[n * S + j];
      if (!(a > 0)) {
        dpre[n * S + j] = 0;
        continue;
      }
      let s = 0;
      for (let i = 0; i < D; i++) {
        s += dxhat[g + i] * Wdec[j * D + i];
        dWdec[j * D + i] += a * dxhat[g + i];
      }
      dpre[n * S + j] = s + l1;
    }
  }
}

/**
 * Backward of pre = (x − b_dec) W_enc + b_enc:
 *   dW_enc += (x − b_dec)ᵀ dpre      (D, S) accumulated
 *   db_enc += Σ_n dpre[n]            (S)    accumulated
 *   db_dec −= Σ_n W_enc dpre[n]      (D)    accumulated (the input path of b_dec)
 */
export function saeEncodeBackward(
  dWenc: Float64Array,
  dbenc: Float64Array,
  dbdec: Float64Array,
  dpre: Float64Array,
  x: Float64Array,
  Wenc: Float64Array,
  bdec: Float64Array,
  N: number,
  D: number,
  S: number,
): void {
  for (let n = 0; n < N; n++) {
    const r = n * S;
    for (let j = 0; j < S; j++) dbenc[j] += dpre[r + j];
    for (let i = 0; i < D; i++) {
      const xi = x[n * D + i] - bdec[i];
      let s = 0;
      for (let j = 0; j < S; j++) {
        const g = dpre[r + j];
        dWenc[i * S + j] += xi * g;
        s += Wenc[i * S + j] * g;
      }
      dbdec[i] -= s;
    }
  }
}

/**
 * Normalised reconstruction loss and its gradient:
 *   den = Σ_n ‖x_n − x̄‖² (x̄ the mean row; den = N when that is 0),
 *   L = Σ_n ‖x̂_n − x_n‖² / den,   dxhat = gradScale · 2 (x̂ − x) / den  (written unless null).
 * xhat, x, dxhat: (N, D). Returns L (NaN when N = 0).
 */
export function saeMseLoss(dxhat: Float64Array | null, xhat: Float64Array, x: Float64Array, N: number, D: number, gradScale: number): number {
  if (N === 0) return NaN;
  let den = 0;
  for (let i = 0; i < D; i++) {
    let m = 0;
    for (let n = 0; n < N; n++) m += x[n * D + i];
    m /= N;
    for (let n = 0; n < N; n++) den += (x[n * D + i] - m) ** 2;
  }
  if (!(den > 0)) den = N;
  let num = 0;
  for (let e = 0; e < N * D; e++) {
    const d = xhat[e] - x[e];
    num += d * d;
    if (dxhat) dxhat[e] = (gradScale * 2 * d) / den;
  }
  return num / den;
}

/**
 * Remove from each decoder row's gradient its component along the row (the row stays on the unit
 * sphere to first order): dW_dec[j] −= (dW_dec[j]·w_j / ‖w_j‖²) w_j; rows with w_j = 0 are left.
 * dW_dec, W_dec: (S, D).
 */
export function saeDecoderProject(dWdec: Float64Array, Wdec: Float64Array, S: number, D: number): void {
  for (let j = 0; j < S; j++) {
    let dot = 0,
      nn = 0;
    for (let i = 0; i < D; i++) {
      dot += dWdec[j * D + i] * Wdec[j * D + i];
      nn += Wdec[j * D + i] ** 2;
    }
    if (!(nn > 0)) continue;
    const c = dot / nn;
    for (let i = 0; i < D; i++) dWdec[j * D + i] -= c * Wdec[j * D + i];
  }
}

/** W[j] ← W[j] / ‖W[j]‖ for each row of W: (S, D); zero rows are left at 0. */
export function saeNormalizeRows(W: Float64Array, S: number, D: number): void {
  for (let j = 0; j < S; j++) {
    let nn = 0;
    for (let i = 0; i < D; i++) nn += W[j * D + i] ** 2;
    if (!(nn > 0)) continue;
    const r = 1 / Math.sqrt(nn);
    for (let i = 0; i < D; i++) W[j * D + i] *= r;
  }
}

/**
 * counts[j] = #{n : h[n,j] > 0} (written); returns Σ_{n,j} h[n,j] (the L1 sum; h ≥ 0).
 * counts: (S); h: (N, S).
 */
export function saeFireCounts(counts: Float64Array, h: Float64Array, N: number, S: number): number {
  counts.fill(0, 0, S);
  let sum = 0;
  for (let n = 0; n < N; n++) {
    for (let j = 0; j < S; j++) {
      const a = h[n * S + j];
      if (a > 0) counts[j]++;
      sum += a;
    }
  }
  return sum;
}
