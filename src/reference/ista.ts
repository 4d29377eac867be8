// The sparse-coding block of CRATE: overcomplete ISTA (paper A, spec E17/E19) and
// complete ISTA (paper B, spec E14).
import { relu } from './elementwise.js';

/**
 * Overcomplete ISTA from zero with decode, no residual (spec E17, E19).
 * With A = ista.weight = Dᵀ (H×C, H = overcomplete·C, rows are dictionary atoms):
 *   a_0 = 0
 *   a_t = relu(a_{t−1} + η (u − a_{t−1} A) Aᵀ − ηλ)      t = 1..steps   (one-sided threshold)
 *   out = a_steps A                                     (decode D·a; REPLACES the residual stream)
 * With steps = 2 this is exactly the code's
 *   a1 = relu(η u Aᵀ − ηλ);  a2 = relu(a1 + η (u − a1 A) Aᵀ − ηλ);  x = a2 A.
 * u: (N,C), A: (H,C), codes: (steps,N,H) = a_1..a_steps ("neurons" = the last), out: (N,C)
 */
export function istaForward(
  out: Float64Array,
  codes: Float64Array,
  u: Float64Array,
  A: Float64Array,
  N: number,
  C: number,
  H: number,
  eta: number,
  lam: number,
  steps: number,
): void {
  const r = new Float64Array(C);
  for (let n = 0; n < N; n++) {
    for (let t = 1; t <= steps; t++) {
      const cur = ((t - 1) * N + n) * H;
      const prev = ((t - 2) * N + n) * H; // only read when t ≥ 2
      // r = u − a_{t−1} A
      for (let c = 0; c < C; c++) r[c] = u[n * C + c];
      if (t > 1) {
        for (let k = 0; k < H; k++) {
          const a = codes[prev + k];
          for (let c = 0; c < C; c++) r[c] -= a * A[k * C + c];
        }
      }
      // a_t = relu(a_{t−1} + η r Aᵀ − ηλ)
      for (let k = 0; k < H; k++) {
        let g = 0;
        for (let c = 0; c < C; c++) g += r[c] * A[k * C + c];
        const pre = (t > 1 ? codes[prev + k] : 0) + eta * g - eta * lam;
        codes[cur + k] = relu(pre);
      }
    }
    const last = ((steps - 1) * N + n) * H;
    for (let c = 0; c < C; c++) {
      let s = 0;
      for (let k = 0; k < H; k++) s += codes[last + k] * A[k * C + c];
      out[n * C + c] = s;
    }
  }
}

/**
 * Backward of istaForward, unrolled through every step (du written, dA accumulated).
 *   out = a_S A:        g_S = dout Aᵀ,  dA += a_Sᵀ dout
 *   for t = S..1, with r_t = u − a_{t−1} A, pre_t = a_{t−1} + η r_t Aᵀ − ηλ,  δ = g_t · 1[pre_t > 0]:
 *     g_{t−1} += δ;   dr = η δ A;   dA += η δᵀ r_t
 *     du += dr;       g_{t−1} −= dr Aᵀ;   dA −= a_{t−1}ᵀ dr
 * The ReLU derivative is 1[pre > 0] (zero at exactly 0, as PyTorch); pre > 0 ⇔ a_t > 0.
 */
export function istaBackward(
  du: Float64Array,
  dA: Float64Array,
  dout: Float64Array,
  u: Float64Array,
  A: Float64Array,
  codes: Float64Array,
  N: number,
  C: number,
  H: number,
  eta: number,
  _lam: number,
  steps: number,
): void {
  const g = new Float64Array(H);
  const r = new Float64Array(C);
  const dr = new Float64Array(C);
  for (let n = 0; n < N; n++) {
    const last = ((steps - 1) * N + n) * H;
    for (let k = 0; k < H; k++) {
      let s = 0;
      for (let c = 0; c < C; c++) s += dout[n * C + c] * A[k * C + c];
      g[k] = s;
      for (let c = 0; c < C; c++) dA[k * C + c] += codes[last + k] * dout[n * C + c];
    }
    for (let c = 0; c < C; c++) du[n * C + c] = 0;
    for (let t = steps; t >= 1; t--) {
      const cur = ((t - 1) * N + n) * H;
      const prev = ((t - 2) * N + n) * H;
      for (let c = 0; c < C; c++) r[c] = u[n * C + c];
      if (t > 1) {
        for (let k = 0; k < H; k++) for (let c = 0; c < C; c++) r[c] -= codes[prev + k] * A[k * C + c];
      }
      // δ = g · 1[a_t > 0]; g now becomes g_{t−1}, starting from δ (identity path a_{t−1} → pre_t)
      dr.fill(0);
      for (let k = 0; k < H; k++) {
        const delta = codes[cur + k] > 0 ? g[k] : 0;
        g[k] = delta;
        if (delta === 0) continue;
        for (let c = 0; c < C; c++) {
          dr[c] += eta * delta * A[k * C + c];
          dA[k * C + c] += eta * delta * r[c];
        }
      }
      for (let c = 0; c < C; c++) du[n * C + c] += dr[c];
      if (t > 1) {
        for (let k = 0; k < H; k++) {
          let s = 0;
          for (let c = 0; c < C; c++) {
            s += dr[c] * A[k * C + c];
            dA[k * C + c] -= codes[prev + k] * dr[c];
          }
          g[k] -= s;
        }
      }
    }
  }
}

/**
 * Complete ISTA, paper B (spec E14), one step warm-started at the input, D = W square:
 *   out = relu(x + η (x W − x Wᵀ W) − ηλ)
 * (x W is the row form of Dᵀx, x Wᵀ W of DᵀDx; no decode, the code is the output.)
 * x, out: (N,C), W: (C,C)
 */
export function istaCompleteForward(out: Float64Array, x: Float64Array, W: Float64Array, N: number, C: number, eta: number, lam: number): void {
  const xw = new Float64Array(C),
    xwt = new Float64Array(C);
  for (let n = 0; n < N; n++) {
    const o = n * C;
    for (let j = 0; j < C; j++) {
      let s = 0,
        st = 0;
      for (let i = 0; i < C; i++) {
        s += x[o + i] * W[i * C + j];
        st += x[o + i] * W[j * C + i];
      }
      xw[j] = s;
      xwt[j] = st;
    }
    for (let j = 0; j < C; j++) {
      let s = 0; // (x Wᵀ W)_j = Σ_i xwt_i W[i,j]
      for (let i = 0; i < C; i++) s += xwt[i] * W[i * C + j];
      const pre = x[o + j] + eta * (xw[j] - s) - eta * lam;
      out[o + j] = relu(pre);
    }
  }
}

/**
 * Backward of istaCompleteForward (dx written, dW accumulated). With δ = dout · 1[out > 0],
 * s = x Wᵀ and q = δ Wᵀ (pre = x + η x W − η s W − ηλ):
 *   dx = δ + η q − η q W
 *   dW += η xᵀδ − η sᵀδ − η qᵀx
 */
export function istaCompleteBackward(
  dx: Float64Array,
  dW: Float64Array,
  dout: Float64Array,
  x: Float64Array,
  W: Float64Array,
  out: Float64Array,
  N: number,
  C: number,
  eta: number,
  _lam: number,
): void {
  const delta = new Float64Array(C),
    s = new Float64Array(C),
    dWtd = new Float64Array(C);
  for (let n = 0; n < N; n++) {
    const o = n * C;
    for (let j = 0; j < C; j++) delta[j] = out[o + j] > 0 ? dout[o + j] : 0;
    // s = x Wᵀ  (s_i = Σ_k x_k W[i,k]);  q = δ Wᵀ (q_i = Σ_j δ_j W[i,j])
    for (let i = 0; i < C; i++) {
      let si = 0,
        qi = 0;
      for (let k = 0; k < C; k++) {
        si += x[o + k] * W[i * C + k];
        qi += delta[k] * W[i * C + k];
      }
      s[i] = si;
      dWtd[i] = qi;
    }
    // term x W:        d/dx_i = η Σ_j δ_j W[i,j] = η q_i;            dW[i,j] += η x_i δ_j
    // term −x Wᵀ W = −s W with s = x Wᵀ:
    //   ds_i = −η q_i;  dW[i,j] −= η s_i δ_j   (from s W)
    //   s = x Wᵀ: dx_k += Σ_i ds_i W[i,k];     dW[i,k] += ds_i x_k
    for (let k = 0; k < C; k++) {
      let acc = 0;
      for (let i = 0; i < C; i++) acc += -eta * dWtd[i] * W[i * C + k];
      dx[o + k] = delta[k] + eta * dWtd[k] + acc;
    }
    for (let i = 0; i < C; i++) {
      for (let j = 0; j < C; j++) {
        dW[i * C + j] += eta * x[o + i] * delta[j] - eta * s[i] * delta[j] - eta * dWtd[i] * x[o + j];
      }
    }
  }
}
