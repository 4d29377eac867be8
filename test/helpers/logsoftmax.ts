// log_softmax of one row of a flat logits array, in float64: the recompute the serve tests compare
// the server's log-probabilities with.
export function logSoftmax(logits: Float64Array, off: number, V: number): Float64Array {
  let max = -Infinity;
  for (let j = 0; j < V; j++) max = Math.max(max, logits[off + j]);
  let s = 0;
  for (let j = 0; j < V; j++) s += Math.exp(logits[off + j] - max);
  const lse = max + Math.log(s),
    out = new Float64Array(V);
  for (let j = 0; j < V; j++) out[j] = logits[off + j] - lse;
  return out;
}
