// Sampling and log-probabilities on the host for `crate-ts serve`: from a row of V logits to the
// log-sum-exp, the k most likely ids and a draw with temperature, top-k and top-p. Every function
// reads only the row it is given (and the request's own Rng), so a row computed in a batch of
// requests gives the same answer as the same row computed alone.
import type { LanguageModel } from '../model/lm.js';
import type { Rng } from '../util/rng.js';
import { logSumExpRow, sampleLogits, topRow } from '../reference/logits.js';

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
  return logSumExpRow(logits, off, V);
}

/** The k largest of logits[off, off+n) (ids < n), descending, ties to the lower id. */
export function topK(logits: Logits, off: number, n: number, k: number, lse: number): TopEntry[] {
  return topRow(logits, off, n, k).map((id) => ({ id, logprob: logits[off + id] - lse }));
}

/**
 * Draw an id < n from logits with temperature, top-k and top-p (greedy when temperature is 0): the
 * float64 draw of src/reference/logits.ts (the reference of the backends' sampleLogits), with one
 * uniform from the request's Rng when the temperature is above 0.
 */
export function sampleId(logits: Logits, n: number, o: { temperature: number; topK: number; topP: number; rng: Rng }): number {
  const u = o.temperature > 0 ? o.rng.uniform() : 0;
  return sampleLogits(logits, logits.length, n, o.temperature, o.topK, o.topP, u);
}
