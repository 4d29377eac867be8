// Token + position embedding (spec E20), float64.

/**
 * x⁰ = wte[idx] + wpe[0..T−1]   (spec E20; dropout p = 0)
 * out: (B,T,C), idx: (B,T) token ids in [0,V), wte: (V,C), wpe: (block_size,C)
 */
export function embeddingForward(out: Float64Array, idx: Int32Array, wte: Float64Array, wpe: Float64Array, B: number, T: number, C: number): void {
  for (let bt = 0; bt < B * T; bt++) {
    const t = bt % T;
    const tok = idx[bt];
    const o = bt * C,
      w = tok * C,
      p = t * C;
    for (let c = 0; c < C; c++) out[o + c] = wte[w + c] + wpe[p + c];
  }
}

/**
 * dwte[idx[b,t]] += dout[b,t];  dwpe[t] += Σ_b dout[b,t]   (accumulates)
 * dout: (B,T,C)
 */
export function embeddingBackward(dwte: Float64Array, dwpe: Float64Array, dout: Float64Array, idx: Int32Array, B: number, T: number, C: number): void {
  for (let bt = 0; bt < B * T; bt++) {
    const t = bt % T;
    const o = bt * C,
      w = idx[bt] * C,
      p = t * C;
    for (let c = 0; c < C; c++) {
      dwte[w + c] += dout[o + c];
      dwpe[p + c] += dout[o + c];
    }
  }
}
