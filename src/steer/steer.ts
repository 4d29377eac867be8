// Steering by clamping one neuron (spec 8, paper A's "feature enhancement" figure): the next-token
// distribution after a prompt without and with the clamp, and the tokens whose probability rises
// most. The figure's prompt is "1 2 3 4 5"; the clamp value it used is not stated (spec 9.6).
//
// For a prompt of T tokens the model runs once on (1, T) without hooks and once with the clamp hook
// (every position clamped, as the authors' code does), on the model's backend. The effect of a token
// is delta = p_after − p_before of the next token after the prompt (the last position's softmax), and
// logitDelta = logit_after − logit_before (raw logits of that position).
import type { LanguageModel } from '../model/lm.js';
import type { HookFn } from '../model/hooks.js';
import { UsageError } from '../errors.js';
import { checkClamp, clampHooks, type Clamp } from './clamp.js';

/** The paper's steering prompt (spec 8). */
export const PAPER_PROMPT = '1 2 3 4 5';

export interface TokenEffect {
  id: number;
  pBefore: number;
  pAfter: number;
  /** pAfter − pBefore. */
  delta: number;
  /** Raw logit after − before. */
  logitDelta: number;
}

export interface Distribution {
  /** Logits of the next token after the prompt (V). */
  logits: Float64Array;
  /** softmax(logits), in float64 (V). */
  probs: Float64Array;
}

export interface SteerResult {
  /** The prompt ids the model saw (the last blockSize tokens of the prompt). */
  prompt: number[];
  layer: number;
  neuron: number;
  value: number;
  allLayers: boolean;
  before: Distribution;
  after: Distribution;
  /** The `top` tokens with the largest delta, descending (ties: smaller id first). */
  top: TokenEffect[];
  /** The `top` most likely next tokens without and with the clamp. */
  topBefore: { id: number; p: number }[];
  topAfter: { id: number; p: number }[];
  /** KL(after ‖ before) in nats: how far the clamp moves the whole distribution. */
  kl: number;
}

export interface SteerOptions {
  /** How many tokens to list (default 10). */
  top?: number;
  /** Clamp the same index in every layer (the authors' GPT-2 quirk, spec 8). Default false. */
  allLayers?: boolean;
  /** List only ids below this (a tokenizer's real vocabulary; the padded ids have no text). */
  maxId?: number;
}

/** Numerically stable softmax in float64. */
export function softmax(logits: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  const out = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    out[i] = Math.exp(logits[i] - max);
    sum += out[i];
  }
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}

/** The prompt as the model sees it: at least one token, at most the block size (the last ones). */
export function fitPrompt(model: LanguageModel<unknown>, ids: readonly number[]): number[] {
  if (ids.length === 0) throw new UsageError('the prompt must hold at least one token');
  return ids.slice(-model.config.blockSize);
}

/** Next-token distribution after `ids` (one forward on (1, T)), with optional hooks. */
export function nextToken<Buf>(model: LanguageModel<Buf>, ids: readonly number[], hooks?: Record<string, HookFn>): Distribution {
  const prompt = fitPrompt(model as LanguageModel<unknown>, ids),
    T = prompt.length,
    V = model.config.vocabSize;
  const r = hooks && Object.keys(hooks).length ? model.runWithHooks(prompt, 1, T, hooks) : model.forward(prompt, 1, T, null, { grad: false });
  const logits = (r.logits as Float64Array).slice((T - 1) * V, T * V);
  return { logits, probs: softmax(logits) };
}

/** The k largest entries of `score` over ids [0, n), descending; ties by smaller id. */
export function topIds(score: (id: number) => number, n: number, k: number): number[] {
  // One pass keeping a sorted list of at most k (k is small; a full sort of V = 50304 ids per call
  // would dominate a viewer export that steers every neuron).
  const ids: number[] = [],
    vals: number[] = [];
  if (k < 1) return ids;
  for (let i = 0; i < n; i++) {
    const s = score(i);
    if (Number.isNaN(s)) continue;
    if (ids.length === k && !(s > vals[k - 1])) continue;
    let j = ids.length === k ? k - 1 : ids.length;
    while (j > 0 && s > vals[j - 1]) {
      if (j < k) {
        ids[j] = ids[j - 1];
        vals[j] = vals[j - 1];
      }
      j--;
    }
    ids[j] = i;
    vals[j] = s;
  }
  return ids;
}

/** KL(p ‖ q) = Σ p log(p / q) in nats (terms with p = 0 contribute 0). */
export function klDivergence(p: ArrayLike<number>, q: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < p.length; i++) if (p[i] > 0) s += p[i] * Math.log(p[i] / q[i]);
  return s;
}

/** Compare two next-token distributions: the effects of an intervention, listed by delta. */
export function compareDistributions(
  before: Distribution,
  after: Distribution,
  k: number,
  maxId: number,
): Pick<SteerResult, 'top' | 'topBefore' | 'topAfter' | 'kl'> {
  const n = Math.min(maxId, before.probs.length);
  const effect = (id: number): TokenEffect => ({
    id,
    pBefore: before.probs[id],
    pAfter: after.probs[id],
    delta: after.probs[id] - before.probs[id],
    logitDelta: after.logits[id] - before.logits[id],
  });
  return {
    top: topIds((i) => after.probs[i] - before.probs[i], n, k).map(effect),
    topBefore: topIds((i) => before.probs[i], n, k).map((id) => ({ id, p: before.probs[id] })),
    topAfter: topIds((i) => after.probs[i], n, k).map((id) => ({ id, p: after.probs[id] })),
    kl: klDivergence(after.probs, before.probs),
  };
}

/**
 * Clamp neuron `clamp.neuron` of layer `clamp.layer` to `clamp.value` at every position of the
 * prompt and compare the next-token distribution with the unclamped one.
 */
export function steer<Buf>(model: LanguageModel<Buf>, ids: readonly number[], clamp: Clamp, opts: SteerOptions = {}, before?: Distribution): SteerResult {
  checkClamp(model.config, clamp);
  const k = opts.top ?? 10;
  if (!Number.isInteger(k) || k < 1) throw new UsageError(`top must be a positive integer, got ${k}`);
  const prompt = fitPrompt(model as LanguageModel<unknown>, ids);
  const b = before ?? nextToken(model, prompt);
  const a = nextToken(model, prompt, clampHooks(model.config, [clamp], { allLayers: opts.allLayers }));
  return {
    prompt,
    layer: clamp.layer,
    neuron: clamp.neuron,
    value: clamp.value,
    allLayers: Boolean(opts.allLayers),
    before: b,
    after: a,
    ...compareDistributions(b, a, k, opts.maxId ?? model.config.vocabSize),
  };
}

/** steer() at several clamp values (the unclamped forward is run once). */
export function sweep<Buf>(
  model: LanguageModel<Buf>,
  ids: readonly number[],
  layer: number,
  neuron: number,
  values: readonly number[],
  opts: SteerOptions = {},
): SteerResult[] {
  if (values.length === 0) throw new UsageError('the sweep needs at least one value');
  for (const value of values) checkClamp(model.config, { layer, neuron, value });
  const before = nextToken(model, fitPrompt(model as LanguageModel<unknown>, ids));
  return values.map((value) => steer(model, ids, { layer, neuron, value }, opts, before));
}

/**
 * Steering with any intervention: `hooksFor(value)` gives the hooks of the clamp to `value` (e.g. an
 * SAE feature's, src/sae/features.ts); each result is labelled with `layer` and `neuron` (the
 * feature index). The unclamped forward is run once.
 */
export function sweepWith<Buf>(
  model: LanguageModel<Buf>,
  ids: readonly number[],
  label: { layer: number; neuron: number },
  values: readonly number[],
  hooksFor: (value: number) => Record<string, HookFn>,
  opts: SteerOptions = {},
): SteerResult[] {
  if (values.length === 0) throw new UsageError('the sweep needs at least one value');
  const k = opts.top ?? 10;
  if (!Number.isInteger(k) || k < 1) throw new UsageError(`top must be a positive integer, got ${k}`);
  const hooks = values.map(hooksFor); // every value checked before any forward
  const prompt = fitPrompt(model as LanguageModel<unknown>, ids);
  const before = nextToken(model, prompt);
  return values.map((value, i) => {
    const after = nextToken(model, prompt, hooks[i]);
    return { prompt, ...label, value, allLayers: false, before, after, ...compareDistributions(before, after, k, opts.maxId ?? model.config.vocabSize) };
  });
}
