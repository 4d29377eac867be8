// Cross-entropy over the vocabulary fused with its softmax backward (spec E20).

/**
 * loss = mean over rows n with target[n] ≠ −1 of  −log softmax(logits[n])[target[n]]
 * dlogits[n] = gradScale · (softmax(logits[n]) − onehot(target[n])) / count   (0 for ignored rows)
 * logits, dlogits: (N,V), targets: (N) in [−1,V).  Returns NaN when every row is ignored
 * (PyTorch's mean over zero elements).
 */
export function crossEntropyForward(dlogits: Float64Array | null, logits: Float64Array, targets: Int32Array, N: number, V: number, gradScale: number): number {
  let count = 0;
  for (let n = 0; n < N; n++) if (targets[n] !== -1) count++;
  let total = 0;
  for (let n = 0; n < N; n++) {
    const o = n * V;
    const y = targets[n];
    if (y === -1) {
      if (dlogits) dlogits.fill(0, o, o + V);
      continue;
    }
    let max = -Infinity;
    for (let i = 0; i < V; i++) if (logits[o + i] > max) max = logits[o + i];
    let sum = 0;
    for (let i = 0; i < V; i++) sum += Math.exp(logits[o + i] - max);
    const lse = max + Math.log(sum);
    total += lse - logits[o + y];
    if (dlogits) {
      const s = gradScale / count;
      for (let i = 0; i < V; i++) dlogits[o + i] = s * (Math.exp(logits[o + i] - lse) - (i === y ? 1 : 0));
    }
  }
  return count === 0 ? NaN : total / count;
}
