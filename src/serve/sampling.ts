// Sampling and log-probabilities on the host for `crate-ts serve`: from a row of V logits to the
// log-sum-exp, the k most likely ids and a draw with temperature, top-k and top-p. Every function
// reads only the row it is given (and the request's own Rng), so a row computed in a batch of
// requests gives the same answer as the same row computed alone.
import type { LanguageModel } from '../model/lm.js';
import type { Rng } from '../util/rng.js';

export type Logits = Float64Array | Float32Array;

/**
 * Logits to the host without widening when the backend can (native backends compute in float32,
 * so a float32 copy holds the same values in half the bytes); float64 arithmetic follows either way.
 */
export function downloadLogits(be: LanguageModel<unknown>['backend'], buf: unknown): Logits {
  const f32 = (be as { downloadF32?: (b: unknown) => Float32Array }).downloadF32;
  return typeof f32 === 'function' ? f32.call(be, buf) : be.download(buf);
}

export interface TopEntry {
  id: number;
  logprob: number;
}

export interface PromptLogprobs {
  /** logprob of ids[i] given ids[<i]; null for i = 0. */
  tokenLogprobs: (number | null)[];
  /** The k most likely ids at position i (descending), null for i = 0; empty arrays when k = 0. */
  top: (TopEntry[] | null)[];
}

export interface GenerateOptions {
  maxTokens: number;
  /** 0: greedy. */
  temperature: number;
  /** Nucleus: keep the smallest set of tokens whose probability reaches topP (1: all). */
  topP: number;
  /** Keep the k most likely tokens (0: all). */
  topK: number;
  rng: Rng;
  /** Stop strings: generation ends before the first occurrence of any of them. */
  stop: string[];
  /** Number of alternatives to report per generated token (null: no logprobs). */
  logprobs: number | null;
  /** Stop at the tokenizer's end-of-text token (default true). */
  stopAtEot?: boolean;
}

export interface GeneratedToken {
  id: number;
  /** Text this token adds (see src/serve/tokens.ts). */
  text: string;
  /** Its log-probability under the model; NaN when the options asked for no logprobs (not computed). */
  logprob: number;
  top: TopEntry[];
}

export interface GenerateResult {
  tokens: GeneratedToken[];
  /** The generated text (cut before a stop string). */
  text: string;
  finishReason: 'stop' | 'length';
}

/** Yield to the event loop (so the server keeps answering while a long request computes). */
export const yieldNow = (): Promise<void> => new Promise((r) => setImmediate(r));

/** log-sum-exp of logits[off, off+V). */
export function logSumExp(logits: Logits, off: number, V: number): number {
  let max = -Infinity;
  for (let j = 0; j < V; j++) if (logits[off + j] > max) max = logits[off + j];
  let s = 0;
  for (let j = 0; j < V; j++) s += Math.exp(logits[off + j] - max);
  return max + Math.log(s);
}

/** The k largest of logits[off, off+n) (ids < n), descending, ties to the lower id. */
export function topK(logits: Logits, off: number, n: number, k: number, lse: number): TopEntry[] {
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
  return ids.map((id, i) => ({ id, logprob: vals[i] - lse }));
}

/** Draw an id < n from logits with temperature, top-k and top-p (greedy when temperature is 0). */
export function sampleId(logits: Logits, n: number, o: { temperature: number; topK: number; topP: number; rng: Rng }): number {
  if (o.temperature <= 0) {
    let best = 0;
    for (let j = 1; j < n; j++) if (logits[j] > logits[best]) best = j;
    return best;
  }
  if (!(o.topK > 0 && o.topK < n) && !(o.topP < 1)) return sampleAll(logits, n, o.temperature, o.rng);
  let ids: number[];
  if (o.topK > 0 && o.topK < n) ids = topK(logits, 0, n, o.topK, 0).map((e) => e.id);
  else if (o.topP < 1) {
    ids = Array.from({ length: n }, (_, j) => j);
    ids.sort((a, b) => logits[b] - logits[a] || a - b);
  } else ids = Array.from({ length: n }, (_, j) => j);
  let max = -Infinity;
  for (const j of ids) if (logits[j] > max) max = logits[j];
  let w = ids.map((j) => Math.exp((logits[j] - max) / o.temperature));
  let total = w.reduce((a, b) => a + b, 0);
  if (o.topP < 1) {
    // ids are in descending order here: keep the shortest prefix whose mass reaches topP
    let acc = 0,
      keep = ids.length;
    for (let i = 0; i < ids.length; i++) {
      acc += w[i] / total;
      if (acc >= o.topP) {
        keep = i + 1;
        break;
      }
    }
    ids = ids.slice(0, keep);
    w = w.slice(0, keep);
    total = w.reduce((a, b) => a + b, 0);
  }
  let r = o.rng.uniform() * total;
  for (let i = 0; i < ids.length; i++) {
    r -= w[i];
    if (r < 0) return ids[i];
  }
  return ids[ids.length - 1];
}

/** Weights of the full distribution, reused between calls (one decoding step at a time). */
let sampleScratch = new Float64Array(0);

/**
 * Draw an id < n from softmax(logits / temperature) over all ids: the same weights, sum and walk
 * (in id order) as the filtered path of sampleId, without building arrays of n ids per token.
 */
function sampleAll(logits: Logits, n: number, temperature: number, rng: Rng): number {
  if (sampleScratch.length < n) sampleScratch = new Float64Array(n);
  const w = sampleScratch;
  let max = -Infinity;
  for (let j = 0; j < n; j++) if (logits[j] > max) max = logits[j];
  let total = 0;
  for (let j = 0; j < n; j++) {
    w[j] = Math.exp((logits[j] - max) / temperature);
    total += w[j];
  }
  let r = rng.uniform() * total;
  for (let j = 0; j < n; j++) {
    r -= w[j];
    if (r < 0) return j;
  }
  return n - 1;
}
