// What `crate-ts serve` reports of logit rows, in float64 (the reference of native/serve_rows.cc):
// the log-sum-exp, the target's logit and the k largest logits of each row (logitsStats), and one
// draw with temperature, top-k and top-p (sampleLogits, which src/serve/sampling.ts's sampleId is).

/**
 * stats (N,3): per row the log-sum-exp over all V entries as the pair (lse, 0), then
 * logits[n, targets[n]]; top (N,K,2): the K largest logits among ids < min(M,V) as (id, logit),
 * larger value first, equal values by lower id; places past min(M,V) entries hold (−1, −∞).
 */
export function logitsStats(
  stats: Float64Array,
  top: Float64Array,
  logits: Float64Array,
  targets: Int32Array,
  N: number,
  V: number,
  M: number,
  K: number,
): void {
  for (let r = 0; r < N; r++) {
    const off = r * V;
    const lse = logSumExpRow(logits, off, V);
    stats[3 * r] = lse;
    stats[3 * r + 1] = 0;
    stats[3 * r + 2] = logits[off + targets[r]];
    const best = topRow(logits, off, Math.min(M, V), K);
    for (let i = 0; i < K; i++) {
      top[(r * K + i) * 2] = i < best.length ? best[i] : -1;
      top[(r * K + i) * 2 + 1] = i < best.length ? logits[off + best[i]] : -Infinity;
    }
  }
}

/** log-sum-exp of logits[off, off+V) (max + log Σ exp(x − max)). */
export function logSumExpRow(logits: ArrayLike<number>, off: number, V: number): number {
  let max = -Infinity;
  for (let j = 0; j < V; j++) if (logits[off + j] > max) max = logits[off + j];
  let s = 0;
  for (let j = 0; j < V; j++) s += Math.exp(logits[off + j] - max);
  return max + Math.log(s);
}

/** The ids of the k largest of logits[off, off+n), larger value first, equal values by lower id. */
export function topRow(logits: ArrayLike<number>, off: number, n: number, k: number): number[] {
  if (k <= 0) return [];
  const ids: number[] = [],
    vals: number[] = [];
  for (let j = 0; j < n; j++) {
    const v = logits[off + j];
    if (ids.length === k && v <= vals[k - 1]) continue;
    let p = ids.length < k ? ids.length : k - 1;
    while (p > 0 && vals[p - 1] < v) p--;
    ids.splice(p, 0, j);
    vals.splice(p, 0, v);
    if (ids.length > k) {
      ids.pop();
      vals.pop();
    }
  }
  return ids;
}

/** Weights of the full distribution, reused between calls (one draw at a time). */
let scratch = new Float64Array(0);

/**
 * One draw from logits[0, n) (n > V counts as V), returned as a number. temperature 0: the argmax
 * (ties: lowest id; u unused). Otherwise the candidates are every id in id order, or with
 * 0 < topK < n the topK largest, or else with topP < 1 every id, both larger value first (equal
 * values: lower id); weights w = exp((x − max)/temperature); with topP < 1 the shortest prefix
 * whose normalised mass reaches topP is kept and re-summed; r = u·total, and the walk subtracts the
 * weights in order and returns the first id at which r < 0 (the last candidate if none).
 */
export function sampleLogits(logits: ArrayLike<number>, V: number, n: number, temperature: number, topK: number, topP: number, u: number): number {
  n = Math.min(n, V);
  if (temperature <= 0) {
    let best = 0;
    for (let j = 1; j < n; j++) if (logits[j] > logits[best]) best = j;
    return best;
  }
  if (!(topK > 0 && topK < n) && !(topP < 1)) {
    // every id, in id order, without building arrays of n ids
    if (scratch.length < n) scratch = new Float64Array(n);
    const w = scratch;
    let max = -Infinity;
    for (let j = 0; j < n; j++) if (logits[j] > max) max = logits[j];
    let total = 0;
    for (let j = 0; j < n; j++) {
      w[j] = Math.exp((logits[j] - max) / temperature);
      total += w[j];
    }
    let r = u * total;
    for (let j = 0; j < n; j++) {
      r -= w[j];
      if (r < 0) return j;
    }
    return n - 1;
  }
  let ids: number[];
  if (topK > 0 && topK < n) ids = topRow(logits, 0, n, topK);
  else {
    ids = Array.from({ length: n }, (_, j) => j);
    ids.sort((a, b) => logits[b] - logits[a] || a - b);
  }
  let max = -Infinity;
  for (const j of ids) if (logits[j] > max) max = logits[j];
  let w = ids.map((j) => Math.exp((logits[j] - max) / temperature));
  let total = w.reduce((a, b) => a + b, 0);
  if (topP < 1) {
    // ids are in descending order here: keep the shortest prefix whose mass reaches topP
    let acc = 0,
      keep = ids.length;
    for (let i = 0; i < ids.length; i++) {
      acc += w[i] / total;
      if (acc >= topP) {
        keep = i + 1;
        break;
      }
    }
    ids = ids.slice(0, keep);
    w = w.slice(0, keep);
    total = w.reduce((a, b) => a + b, 0);
  }
  let r = u * total;
  for (let i = 0; i < ids.length; i++) {
    r -= w[i];
    if (r < 0) return ids[i];
  }
  return ids[ids.length - 1];
}
