// LayerNorm over the last dimension, biased (population) variance, eps inside the sqrt (spec 3.1).

/**
 * y = (x − μ) / sqrt(σ² + eps) · weight + bias,  μ, σ² over the C features of each row.
 * out, inp: (N,C); weight, bias: (C); mean, rstd: (N) saved for backward.
 */
export function layernormForward(
  out: Float64Array,
  mean: Float64Array,
  rstd: Float64Array,
  inp: Float64Array,
  weight: Float64Array,
  bias: Float64Array | null,
  N: number,
  C: number,
  eps: number,
): void {
  for (let n = 0; n < N; n++) {
    const o = n * C;
    let m = 0;
    for (let c = 0; c < C; c++) m += inp[o + c];
    m /= C;
    let v = 0;
    for (let c = 0; c < C; c++) {
      const d = inp[o + c] - m;
      v += d * d;
    }
    v /= C;
    const s = 1 / Math.sqrt(v + eps);
    for (let c = 0; c < C; c++) {
      out[o + c] = (inp[o + c] - m) * s * weight[c] + (bias ? bias[c] : 0);
    }
    mean[n] = m;
    rstd[n] = s;
  }
}

/**
 * With x̂ = (x − μ)·rstd and g = dout·weight:
 *   dx = rstd · (g − mean(g) − x̂ · mean(g · x̂))      (written)
 *   dweight += Σ_n dout · x̂,  dbias += Σ_n dout       (accumulated)
 */
export function layernormBackward(
  dinp: Float64Array,
  dweight: Float64Array,
  dbias: Float64Array | null,
  dout: Float64Array,
  inp: Float64Array,
  weight: Float64Array,
  mean: Float64Array,
  rstd: Float64Array,
  N: number,
  C: number,
): void {
  for (let n = 0; n < N; n++) {
    const o = n * C;
    const m = mean[n],
      s = rstd[n];
    let gMean = 0,
      gxMean = 0;
    for (let c = 0; c < C; c++) {
      const xhat = (inp[o + c] - m) * s;
      const g = dout[o + c] * weight[c];
      gMean += g;
      gxMean += g * xhat;
    }
    gMean /= C;
    gxMean /= C;
    for (let c = 0; c < C; c++) {
      const xhat = (inp[o + c] - m) * s;
      const g = dout[o + c] * weight[c];
      dinp[o + c] = s * (g - gMean - xhat * gxMean);
      dweight[c] += dout[o + c] * xhat;
      if (dbias) dbias[c] += dout[o + c];
    }
  }
}
