// Autoregressive sampling with the incremental decoder: temperature, top-k, a seeded Rng.
import { Rng } from '../util/rng.js';
import type { ModelConfig } from '../model/config.js';
import { LanguageModel } from '../model/lm.js';
import type { HookFn } from '../model/hooks.js';
import { ReferenceBackend } from '../backend/reference.js';
import { UsageError } from '../errors.js';

export interface SampleOptions {
  /** Number of tokens to generate. */
  tokens: number;
  /** Softmax temperature; 0 means greedy (argmax). Default 0.8. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 or undefined: all). */
  topK?: number;
  seed?: number;
  /** Token ids the model may not produce (e.g. the padding ids past a tokenizer's vocabulary). */
  maxId?: number;
  /** Called with each new token id as soon as it is drawn. */
  onToken?: (id: number) => void;
  /** Hooks held at every decoding step (e.g. a neuron clamp: {'blocks.0.hook_neurons': (a) => ...}). */
  hooks?: Record<string, HookFn>;
}

/** a before b: higher logit first, then lower id (a total order, so ties resolve the same way everywhere). */
const before = (logits: Float64Array, a: number, b: number): boolean => logits[a] > logits[b] || (logits[a] === logits[b] && a < b);

/**
 * The k best ids in that order, in O(n log k): a min-heap (by the same order) of the best seen so far,
 * then the k survivors sorted. Equal to sorting all n ids and keeping the first k.
 */
export function topKIds(logits: Float64Array, n: number, k: number): number[] {
  const heap: number[] = [];
  const worse = (i: number, j: number) => before(logits, heap[j], heap[i]); // heap[i] ranks below heap[j]
  const down = (i: number) => {
    for (;;) {
      const l = 2 * i + 1,
        r = l + 1;
      let m = i;
      if (l < heap.length && worse(l, m)) m = l;
      if (r < heap.length && worse(r, m)) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m], heap[i]];
      i = m;
    }
  };
  for (let id = 0; id < n; id++) {
    if (heap.length < k) {
      heap.push(id);
      for (let i = heap.length - 1; i > 0;) {
        const p = (i - 1) >> 1;
        if (!worse(i, p)) break;
        [heap[i], heap[p]] = [heap[p], heap[i]];
        i = p;
      }
    } else if (before(logits, id, heap[0])) {
      heap[0] = id;
      down(0);
    }
  }
  return heap.sort((a, b) => (before(logits, a, b) ? -1 : 1));
}

/** Draw one token id from logits. */
export function sampleToken(logits: Float64Array, rng: Rng, temperature: number, topK: number, maxId = logits.length): number {
  const n = Math.min(maxId, logits.length);
  if (temperature <= 0) {
    let best = 0;
    for (let i = 1; i < n; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  let ids: number[];
  if (topK > 0 && topK < n) {
    ids = topKIds(logits, n, topK);
  } else {
    ids = Array.from({ length: n }, (_, i) => i);
  }
  let max = -Infinity;
  for (const i of ids) if (logits[i] > max) max = logits[i];
  const w = ids.map((i) => Math.exp((logits[i] - max) / temperature));
  const total = w.reduce((a, b) => a + b, 0);
  let r = rng.uniform() * total;
  for (let k = 0; k < ids.length; k++) {
    r -= w[k];
    if (r < 0) return ids[k];
  }
  return ids[ids.length - 1];
}

/**
 * Continue `prompt` (at least one token) by `opts.tokens` tokens with the model's incremental
 * decoder, on the model's backend. When the context reaches the block size, the decoder restarts
 * from the most recent half block (re-fed), so generation can run past it.
 * generate(config, params, prompt, opts) decodes a flat parameter vector on the float64 reference.
 */
export function generate<Buf>(model: LanguageModel<Buf>, prompt: readonly number[], opts: SampleOptions): number[];
export function generate(config: ModelConfig, params: Float64Array, prompt: readonly number[], opts: SampleOptions): number[];
export function generate<Buf>(
  a: LanguageModel<Buf> | ModelConfig,
  b: Float64Array | readonly number[],
  c?: readonly number[] | SampleOptions,
  d?: SampleOptions,
): number[] {
  if (a instanceof LanguageModel) return run(a, b as readonly number[], c as SampleOptions);
  const model = new LanguageModel(new ReferenceBackend(), a, { params: b as Float64Array });
  try {
    return run(model, c as readonly number[], d as SampleOptions);
  } finally {
    model.free();
  }
}

function run<Buf>(model: LanguageModel<Buf>, prompt: readonly number[], opts: SampleOptions): number[] {
  if (prompt.length === 0) throw new UsageError('the prompt must hold at least one token');
  const dec = model.createDecoder(1, { hooks: opts.hooks });
  try {
    const rng = new Rng(opts.seed ?? 1337);
    const T = model.config.blockSize;
    const context = prompt.slice(-T);
    let logits = dec.prefill([context]);
    const out: number[] = [];
    const all = [...context];
    for (let i = 0; i < opts.tokens; i++) {
      const id = sampleToken(logits, rng, opts.temperature ?? 0.8, opts.topK ?? 0, opts.maxId);
      out.push(id);
      all.push(id);
      opts.onToken?.(id);
      if (i + 1 === opts.tokens) break;
      if (dec.position >= T) {
        dec.reset();
        logits = dec.prefill([all.slice(-Math.ceil(T / 2))]);
      } else {
        logits = dec.step([id]);
      }
    }
    return out;
  } finally {
    dec.free();
  }
}
