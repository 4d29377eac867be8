// Elementwise helpers: ReLU (the GPT-2 baseline's MLP, spec 3.3), residual add, scaling.

/** out = max(inp, 0) */
export function reluForward(out: Float64Array, inp: Float64Array): void {
  for (let i = 0; i < out.length; i++) out[i] = inp[i] > 0 ? inp[i] : 0;
}

/** dinp = dout · 1[out > 0]  (zero gradient at exactly 0, as PyTorch) */
export function reluBackward(dinp: Float64Array, dout: Float64Array, out: Float64Array): void {
  for (let i = 0; i < dinp.length; i++) dinp[i] = out[i] > 0 ? dout[i] : 0;
}

/** out = a + b */
export function add(out: Float64Array, a: Float64Array, b: Float64Array): void {
  for (let i = 0; i < out.length; i++) out[i] = a[i] + b[i];
}
