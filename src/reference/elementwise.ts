// Elementwise helpers: ReLU (the GPT-2 baseline's MLP, spec 3.3), residual add, scaling.

/**
 * max(x, 0) that propagates NaN, as PyTorch's relu does (a NaN must never be silently turned into
 * a clean zero: audits locate the first operator where one appears).
 */
export function relu(x: number): number {
  return x > 0 || Number.isNaN(x) ? x : 0;
}

/** out = max(inp, 0) (NaN stays NaN) */
export function reluForward(out: Float64Array, inp: Float64Array): void {
  for (let i = 0; i < out.length; i++) out[i] = relu(inp[i]);
}

/** dinp = dout · 1[out > 0]  (zero gradient at exactly 0, as PyTorch) */
export function reluBackward(dinp: Float64Array, dout: Float64Array, out: Float64Array): void {
  for (let i = 0; i < dinp.length; i++) dinp[i] = out[i] > 0 ? dout[i] : 0;
}

/** out = a + b */
export function add(out: Float64Array, a: Float64Array, b: Float64Array): void {
  for (let i = 0; i < out.length; i++) out[i] = a[i] + b[i];
}
