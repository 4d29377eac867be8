// Linear layer y = x Wᵀ + b (PyTorch nn.Linear layout: weight[out, in]).

/**
 * out = inp @ weightᵀ + bias
 * inp: (N,C), weight: (OC,C), bias: (OC) or null, out: (N,OC)
 */
export function linearForward(out: Float64Array, inp: Float64Array, weight: Float64Array, bias: Float64Array | null, N: number, C: number, OC: number): void {
  for (let n = 0; n < N; n++) {
    const x = n * C;
    for (let o = 0; o < OC; o++) {
      const w = o * C;
      let s = bias ? bias[o] : 0;
      for (let c = 0; c < C; c++) s += inp[x + c] * weight[w + c];
      out[n * OC + o] = s;
    }
  }
}

/**
 * dinp = dout @ weight                 (N,C)  written (skipped when null)
 * dweight += doutᵀ @ inp               (OC,C) accumulated
 * dbias += Σ_n dout                    (OC)   accumulated
 */
export function linearBackward(
  dinp: Float64Array | null,
  dweight: Float64Array,
  dbias: Float64Array | null,
  dout: Float64Array,
  inp: Float64Array,
  weight: Float64Array,
  N: number,
  C: number,
  OC: number,
): void {
  if (dinp) {
    dinp.fill(0, 0, N * C);
    for (let n = 0; n < N; n++) {
      for (let o = 0; o < OC; o++) {
        const g = dout[n * OC + o];
        const w = o * C,
          x = n * C;
        for (let c = 0; c < C; c++) dinp[x + c] += g * weight[w + c];
      }
    }
  }
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < OC; o++) {
      const g = dout[n * OC + o];
      if (dbias) dbias[o] += g;
      const w = o * C,
        x = n * C;
      for (let c = 0; c < C; c++) dweight[w + c] += g * inp[x + c];
    }
  }
}
