// What the weights say about a neuron, for the viewer's neuron page:
//
// Output side (the neuron's "logit effects", as Neuronpedia shows them): the direction the neuron
// writes into the residual stream, v = D e_i for CRATE (row i of ista.weight = Dᵀ, since the block
// decodes x = D a2 = Σ_i a2_i D e_i), column i of mlp.c_proj.weight for GPT-2, and e_i for complete
// ISTA (the code is the block output). It is read through ln_f and the tied head as
//     logit_t = wte_t · (w_f ⊙ (v − mean v) / std v)
// i.e. ln_f without its bias (the bias adds the same vector whatever the neuron, so it would put the
// same tokens on top of every list; the 1/std factor makes the numbers scale-free). Later blocks are
// skipped (a direct-path reading, exact for the last layer of CRATE, whose block output is D a2).
//
// Input side: the tokens whose embeddings excite the neuron most, measured by running the model on
// every token id alone (a one-token context at position 0) and reading the neuron.
//
// An SAE feature j on layer l's neurons writes W_dec[j] into the neuron space, so into the residual
// stream Σ_i W_dec[j, i] v_i (v_i the neurons' output directions; the block is linear in its neurons
// after the non-linearity: GPT-2's c_proj, CRATE's D); its input side encodes the neurons of every
// one-token context with the SAE.
import type { LanguageModel } from '../model/lm.js';
import type { SaeFeatures } from '../sae/features.js';
import { canonicalHookName, neuronHook } from '../model/hooks.js';
import { neuronWidth } from '../steer/clamp.js';

export interface TokenValue {
  id: number;
  value: number;
}

export interface RelatedTokens {
  /** Tokens the neuron's output direction pushes up / down most (logit effect), descending / ascending. */
  up: TokenValue[];
  down: TokenValue[];
  /** Tokens that, alone at position 0, make the neuron fire most (activation), descending. */
  input: TokenValue[];
}

/** True when `hook` is layer l's neuron tensor (so it has an output direction and can be clamped). */
export function isNeuronHook(model: LanguageModel<unknown>, layer: number, hook: string): boolean {
  return canonicalHookName(model.config, hook) === neuronHook(model.config, layer);
}

function param(model: LanguageModel<unknown>, params: Float64Array, name: string): Float64Array {
  const s = model.spec(name);
  return params.subarray(s.offset, s.offset + s.size);
}

/** The output directions of layer l's neurons, (h × d) row-major: row i = what neuron i adds per unit (the block declares them). */
export function outputDirections(model: LanguageModel<unknown>, params: Float64Array, layer: number): Float64Array {
  return model.blocks[layer].neuronDirections((name) => param(model, params, `transformer.h.${layer}.${name}`));
}

/** Rows of X (n × d) → w_f ⊙ (x − mean x) / std x: ln_f without its bias (zero rows stay zero). */
export function lnfDirections(X: Float64Array, n: number, d: number, w: Float64Array, eps: number): Float64Array {
  const Y = new Float64Array(n * d);
  for (let r = 0; r < n; r++) {
    let mu = 0,
      v = 0;
    for (let j = 0; j < d; j++) mu += X[r * d + j];
    mu /= d;
    for (let j = 0; j < d; j++) v += (X[r * d + j] - mu) ** 2;
    v /= d;
    if (!(v > 0)) continue;
    const s = 1 / Math.sqrt(v + eps);
    for (let j = 0; j < d; j++) Y[r * d + j] = (X[r * d + j] - mu) * s * w[j];
  }
  return Y;
}

/** Keep the k best (by `better`) of a stream of (id, value) pairs. */
class TopK {
  readonly items: TokenValue[] = [];
  constructor(
    private readonly k: number,
    private readonly better: (a: number, b: number) => boolean,
  ) {}
  push(id: number, value: number): void {
    const it = this.items;
    if (Number.isNaN(value) || (it.length === this.k && !this.better(value, it[it.length - 1].value))) return;
    let j = it.length === this.k ? this.k - 1 : it.length;
    while (j > 0 && this.better(value, it[j - 1].value)) {
      if (j < this.k) it[j] = it[j - 1];
      j--;
    }
    it[j] = { id, value };
  }
}

/**
 * The output directions of an SAE's features on layer l's neurons, (S × d) row-major: row j =
 * Σ_i W_dec[j, i] · (row i of outputDirections), what feature j adds per unit through the block.
 */
export function featureDirections(model: LanguageModel<unknown>, params: Float64Array, layer: number, sae: SaeFeatures): Float64Array {
  const d = model.config.nEmbd,
    h = neuronWidth(model.config);
  if (sae.D !== h) throw new Error(`the SAE reads ${sae.D} values per token, but layer ${layer} has ${h} neurons`);
  const V = outputDirections(model, params, layer);
  const out = new Float64Array(sae.S * d);
  for (let j = 0; j < sae.S; j++) {
    const w = sae.decoderRow(j),
      o = out.subarray(j * d, (j + 1) * d);
    for (let i = 0; i < h; i++) {
      const wi = w[i];
      if (wi === 0) continue;
      const vi = V.subarray(i * d, (i + 1) * d);
      for (let e = 0; e < d; e++) o[e] += wi * vi[e];
    }
  }
  return out;
}

/**
 * Logit effects of every neuron of a layer (or of the rows of `directions`, (rows × d), e.g. an SAE's
 * featureDirections): per row the k tokens pushed up and down most. The (rows × V) product runs on
 * the model's backend in chunks of rows.
 */
export function logitEffects(
  model: LanguageModel<unknown>,
  params: Float64Array,
  layer: number,
  k: number,
  maxId: number,
  directions?: Float64Array,
): { up: TokenValue[]; down: TokenValue[] }[] {
  const c = model.config,
    d = c.nEmbd,
    V = c.vocabSize,
    be = model.backend;
  const X = directions ?? outputDirections(model, params, layer),
    h = X.length / d;
  const Y = lnfDirections(X, h, d, param(model, params, 'transformer.ln_f.weight'), c.lnEps);
  const rows = Math.max(1, Math.min(h, Math.floor(2 ** 24 / V)));
  const inp = be.alloc(rows * d),
    out = be.alloc(rows * V);
  const res: { up: TokenValue[]; down: TokenValue[] }[] = [];
  try {
    for (let r0 = 0; r0 < h; r0 += rows) {
      const n = Math.min(rows, h - r0);
      const chunk = new Float64Array(rows * d);
      chunk.set(Y.subarray(r0 * d, (r0 + n) * d));
      be.upload(inp, chunk);
      be.linearForward(out, inp, model.param('transformer.wte.weight'), null, rows, d, V);
      const L = be.download(out);
      for (let r = 0; r < n; r++) {
        const up = new TopK(k, (a, b) => a > b),
          down = new TopK(k, (a, b) => a < b);
        const zero = Y.subarray((r0 + r) * d, (r0 + r + 1) * d).every((x) => x === 0);
        if (!zero)
          for (let t = 0; t < Math.min(maxId, V); t++) {
            const x = L[r * V + t];
            up.push(t, x);
            down.push(t, x);
          }
        res.push({ up: up.items, down: down.items });
      }
    }
  } finally {
    be.free(inp);
    be.free(out);
  }
  return res;
}

/**
 * For each requested layer (hook name per layer), per neuron the k token ids that excite it most
 * when fed alone at position 0 (one forward of every token id, in chunks, stopping after the last
 * requested layer). A layer with `sae` reads the SAE's features on its hook instead.
 */
export function inputTokens(
  model: LanguageModel<unknown>,
  hooks: { layer: number; hook: string; sae?: SaeFeatures }[],
  k: number,
  maxId: number,
): Map<number, TokenValue[][]> {
  const c = model.config,
    V = Math.min(maxId, c.vocabSize);
  const stop = Math.max(...hooks.map((x) => x.layer)) + 1;
  const tops = new Map<number, TopK[]>();
  const chunk = 256;
  for (let t0 = 0; t0 < V; t0 += chunk) {
    const n = Math.min(chunk, V - t0);
    const ids = Array.from({ length: n }, (_, j) => t0 + j);
    const { cache } = model.runWithCache(ids, n, 1, { names: [...new Set(hooks.map((x) => x.sae?.hook ?? x.hook))], stopAtLayer: stop });
    for (const { layer, hook, sae } of hooks) {
      let w: number, at: (b: number, i: number) => number;
      if (sae) {
        const hAll = sae.encode(cache.get(sae.hook), n, 1);
        w = sae.S;
        at = (b, i) => hAll[b * w + i];
      } else {
        const a = cache.get(hook);
        w = a.shape[2];
        at = (b, i) => a.get(b, 0, i);
      }
      let list = tops.get(layer);
      if (!list) {
        list = Array.from({ length: w }, () => new TopK(k, (x, y) => x > y));
        tops.set(layer, list);
      }
      for (let b = 0; b < n; b++) for (let i = 0; i < w; i++) list[i].push(t0 + b, at(b, i));
    }
  }
  const out = new Map<number, TokenValue[][]>();
  for (const [l, list] of tops)
    out.set(
      l,
      list.map((t) => t.items),
    );
  return out;
}
