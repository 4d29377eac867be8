// AdamW with decoupled weight decay (Loshchilov & Hutter; PyTorch torch.optim.AdamW semantics).

/**
 * m ← β₁ m + (1−β₁) g;   v ← β₂ v + (1−β₂) g²
 * m̂ = m / (1−β₁ᵗ);       v̂ = v / (1−β₂ᵗ)
 * p ← p − lr (m̂ / (sqrt(v̂) + eps) + wd · p)      t = step ≥ 1
 * param, grad, m, v: same length
 */
export function adamwUpdate(
  param: Float64Array,
  grad: Float64Array,
  m: Float64Array,
  v: Float64Array,
  lr: number,
  beta1: number,
  beta2: number,
  eps: number,
  weightDecay: number,
  step: number,
): void {
  const bc1 = 1 - Math.pow(beta1, step);
  const bc2 = 1 - Math.pow(beta2, step);
  for (let i = 0; i < param.length; i++) {
    const g = grad[i];
    m[i] = beta1 * m[i] + (1 - beta1) * g;
    v[i] = beta2 * v[i] + (1 - beta2) * g * g;
    const mhat = m[i] / bc1;
    const vhat = v[i] / bc2;
    param[i] -= lr * (mhat / (Math.sqrt(vhat) + eps) + weightDecay * param[i]);
  }
}
