// Causal attention: CRATE's multi-head subspace self-attention (MSSA, q = k = v, spec E16/E18)
// and the GPT-2 baseline's attention with separate q, k, v (spec 3.3).
//
// Per sequence b and head h (p = C/NH, columns h·p..h·p+p−1 of each token vector):
//   S[i,j] = <q_i, k_j> / sqrt(p)   for j ≤ i  (−inf for j > i: causal mask)
//   P      = row-softmax(S)
//   y_i    = Σ_j P[i,j] v_j
// The reference keeps the whole probability matrix P: att (B,NH,T,T), zeros above the diagonal.

/** Elements of `att` the reference keeps per forward: the full (B,NH,T,T) probabilities. */
export function attentionSavedSize(B: number, NH: number, T: number): number {
  return B * NH * T * T;
}

interface Qkv {
  q: Float64Array;
  k: Float64Array;
  v: Float64Array;
  qo: number;
  ko: number;
  vo: number;
  stride: number;
}

function attentionCoreForward(y: Float64Array, att: Float64Array, s: Qkv, B: number, T: number, C: number, NH: number): void {
  const p = C / NH;
  const scale = 1 / Math.sqrt(p);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let i = 0; i < T; i++) {
        const qi = (b * T + i) * s.stride + s.qo + h * p;
        const row = ((b * NH + h) * T + i) * T;
        let max = -Infinity;
        for (let j = 0; j <= i; j++) {
          const kj = (b * T + j) * s.stride + s.ko + h * p;
          let dot = 0;
          for (let c = 0; c < p; c++) dot += s.q[qi + c] * s.k[kj + c];
          att[row + j] = dot * scale;
          if (att[row + j] > max) max = att[row + j];
        }
        let sum = 0;
        for (let j = 0; j <= i; j++) {
          att[row + j] = Math.exp(att[row + j] - max);
          sum += att[row + j];
        }
        for (let j = 0; j <= i; j++) att[row + j] /= sum;
        for (let j = i + 1; j < T; j++) att[row + j] = 0;
        const yi = (b * T + i) * C + h * p;
        for (let c = 0; c < p; c++) y[yi + c] = 0;
        for (let j = 0; j <= i; j++) {
          const vj = (b * T + j) * s.stride + s.vo + h * p;
          const a = att[row + j];
          for (let c = 0; c < p; c++) y[yi + c] += a * s.v[vj + c];
        }
      }
    }
  }
}

/**
 * Backward of the core, accumulating into dq, dk, dv (which the callers zero first):
 *   dP[i,j] = <dy_i, v_j>;  dS[i,j] = P[i,j] (dP[i,j] − Σ_k P[i,k] dP[i,k])
 *   dq_i += Σ_j dS[i,j] k_j / sqrt(p);  dk_j += dS[i,j] q_i / sqrt(p);  dv_j += P[i,j] dy_i
 */
function attentionCoreBackward(
  dq: Float64Array,
  dk: Float64Array,
  dv: Float64Array,
  dy: Float64Array,
  s: Qkv,
  att: Float64Array,
  B: number,
  T: number,
  C: number,
  NH: number,
): void {
  const p = C / NH;
  const scale = 1 / Math.sqrt(p);
  const dP = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let i = 0; i < T; i++) {
        const row = ((b * NH + h) * T + i) * T;
        const yi = (b * T + i) * C + h * p;
        const qi = (b * T + i) * s.stride + s.qo + h * p;
        let dot = 0;
        for (let j = 0; j <= i; j++) {
          const vj = (b * T + j) * s.stride + s.vo + h * p;
          let d = 0;
          for (let c = 0; c < p; c++) d += dy[yi + c] * s.v[vj + c];
          dP[j] = d;
          dot += att[row + j] * d;
          for (let c = 0; c < p; c++) dv[vj + c] += att[row + j] * dy[yi + c];
        }
        for (let j = 0; j <= i; j++) {
          const dS = att[row + j] * (dP[j] - dot) * scale;
          const kj = (b * T + j) * s.stride + s.ko + h * p;
          for (let c = 0; c < p; c++) {
            dq[qi + c] += dS * s.k[kj + c];
            dk[kj + c] += dS * s.q[qi + c];
          }
        }
      }
    }
  }
}

/**
 * MSSA core (spec E18): q = k = v = v (the shared projection U_kᵀ LN(x) of every head).
 * y: (B,T,C) concatenated heads, att: (B,NH,T,T), v: (B,T,C)
 */
export function mssaForward(y: Float64Array, att: Float64Array, v: Float64Array, B: number, T: number, C: number, NH: number): void {
  attentionCoreForward(y, att, { q: v, k: v, v, qo: 0, ko: 0, vo: 0, stride: C }, B, T, C, NH);
}

/** dv = dq + dk + dv of the three tied paths (written).  dv, dy, v, y: (B,T,C) */
export function mssaBackward(
  dv: Float64Array,
  dy: Float64Array,
  v: Float64Array,
  _y: Float64Array,
  att: Float64Array,
  B: number,
  T: number,
  C: number,
  NH: number,
): void {
  dv.fill(0, 0, B * T * C);
  attentionCoreBackward(dv, dv, dv, dy, { q: v, k: v, v, qo: 0, ko: 0, vo: 0, stride: C }, att, B, T, C, NH);
}

/** GPT-2 attention (spec 3.3): qkv (B,T,3C) holds [q | k | v] per token; y: (B,T,C). */
export function attentionForward(y: Float64Array, att: Float64Array, qkv: Float64Array, B: number, T: number, C: number, NH: number): void {
  attentionCoreForward(y, att, { q: qkv, k: qkv, v: qkv, qo: 0, ko: C, vo: 2 * C, stride: 3 * C }, B, T, C, NH);
}

/** dqkv (B,T,3C) written. */
export function attentionBackward(
  dqkv: Float64Array,
  dy: Float64Array,
  qkv: Float64Array,
  _y: Float64Array,
  att: Float64Array,
  B: number,
  T: number,
  C: number,
  NH: number,
): void {
  dqkv.fill(0, 0, B * T * 3 * C);
  const s = { q: qkv, k: qkv, v: qkv, qo: 0, ko: C, vo: 2 * C, stride: 3 * C };
  // The three gradients live in disjoint column blocks of dqkv, so one buffer serves all three.
  attentionCoreBackward(dqkv, dqkv, dqkv, dy, s, att, B, T, C, NH);
}

/**
 * Attention of one new position per sequence against cached keys and values (incremental decoding):
 * for each sequence b and head h (width p = C/NH),
 *   s_j = <q[b,h], k[b,j,h]> / √p  (j = 0..t),  P = softmax(s),  y[b,h] = Σ_j P_j v[b,j,h].
 * q, y: (B,C); k, v: (B,Tmax,C) caches of which rows 0..t are read. q may alias a row of k (CRATE:
 * q = k = v). The order of operations (scores, max, exp, sum, normalise, weighted sum) is that of
 * attentionCoreForward, so decoding reproduces the full forward.
 */
export function attentionDecode(
  y: Float64Array,
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  B: number,
  t: number,
  Tmax: number,
  C: number,
  NH: number,
): void {
  const p = C / NH,
    scale = 1 / Math.sqrt(p),
    att = new Float64Array(t + 1);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      const qo = b * C + h * p;
      let max = -Infinity;
      for (let j = 0; j <= t; j++) {
        const ko = (b * Tmax + j) * C + h * p;
        let dot = 0;
        for (let c = 0; c < p; c++) dot += q[qo + c] * k[ko + c];
        att[j] = dot * scale;
        if (att[j] > max) max = att[j];
      }
      let sum = 0;
      for (let j = 0; j <= t; j++) {
        att[j] = Math.exp(att[j] - max);
        sum += att[j];
      }
      for (let j = 0; j <= t; j++) att[j] /= sum;
      for (let c = 0; c < p; c++) y[qo + c] = 0;
      for (let j = 0; j <= t; j++) {
        const a = att[j],
          vo = (b * Tmax + j) * C + h * p;
        for (let c = 0; c < p; c++) y[qo + c] += a * v[vo + c];
      }
    }
  }
}
