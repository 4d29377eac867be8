// Named hook points (TransformerLens conventions) and the activation cache.
//
// Every intermediate of a forward pass has a name such as `blocks.0.ln1.hook_normalized`. A caller
// can read any of them (LanguageModel.runWithCache) or replace any of them (runWithHooks) for the
// duration of one call; nothing stays installed afterwards. Values are float64 `ndarray` views on
// the host, whatever the backend: reading a hooked tensor downloads only that tensor, and a
// replacement is uploaded back before the next operator reads it.
import ndarray from 'ndarray';
import type { NdArray } from 'ndarray';
import type { ModelConfig } from './config.js';
import { UsageError } from '../errors.js';

export type Activation = NdArray<Float64Array>;

/**
 * A hook receives the activation (a float64 view of the documented shape) and its name. It may
 * modify the view in place, or return a replacement of the same shape (an ndarray or a flat array
 * in row-major order); returning nothing keeps the (possibly modified) values.
 */
export type HookFn = (act: Activation, name: string) => Activation | ArrayLike<number> | void;

/** Where a hook name's tensor comes from and what shape it has, for a batch of B sequences of T tokens. */
export interface HookPoint {
  name: string;
  shape: number[];
  /** What the tensor is (one line, for the README's table and error messages). */
  doc: string;
}

/** The architecture's neuron tensor, which `blocks.{l}.hook_neurons` aliases. */
export function neuronHook(config: ModelConfig, layer: number): string {
  if (config.arch === 'gpt2') return `blocks.${layer}.mlp.hook_post`;
  return `blocks.${layer}.ista.hook_code`;
}

/** Every hook point of a model, in execution order (aliases excluded). */
export function hookPoints(c: ModelConfig, B: number, T: number): HookPoint[] {
  const C = c.nEmbd,
    NH = c.nHead,
    p = C / NH,
    H = c.overcomplete * C,
    V = c.vocabSize;
  const pts: HookPoint[] = [
    { name: 'hook_embed', shape: [B, T, C], doc: 'token embedding wte[idx]' },
    { name: 'hook_pos_embed', shape: [B, T, C], doc: 'position embedding wpe[t]' },
  ];
  for (let l = 0; l < c.nLayer; l++) {
    const b = `blocks.${l}.`;
    pts.push(
      { name: b + 'hook_resid_pre', shape: [B, T, C], doc: 'residual stream entering the block (hook_embed + hook_pos_embed for block 0)' },
      { name: b + 'ln1.hook_normalized', shape: [B, T, C], doc: 'LN₁ output (CRATE: with bias)' },
    );
    if (c.arch === 'gpt2') {
      pts.push(
        { name: b + 'attn.hook_q', shape: [B, T, NH, p], doc: 'queries, per head' },
        { name: b + 'attn.hook_k', shape: [B, T, NH, p], doc: 'keys, per head' },
        { name: b + 'attn.hook_v', shape: [B, T, NH, p], doc: 'values, per head' },
      );
    } else {
      pts.push({ name: b + 'attn.hook_qkv', shape: [B, T, NH, p], doc: 'the shared projection U*ᵀ LN₁(z): query = key = value (c_attn output)' });
    }
    pts.push(
      { name: b + 'attn.hook_pattern', shape: [B, NH, T, T], doc: 'causal softmax attention pattern (query, key); computed on the host from the projection' },
      { name: b + 'attn.hook_z', shape: [B, T, NH, p], doc: 'attention output per head, before c_proj' },
      { name: b + 'hook_attn_out', shape: [B, T, C], doc: 'c_proj output (the attention branch added to the residual)' },
      { name: b + 'hook_resid_mid', shape: [B, T, C], doc: 'residual stream after the attention branch' },
      { name: b + 'ln2.hook_normalized', shape: [B, T, C], doc: 'LN₂ output' },
    );
    if (c.arch === 'crate') {
      pts.push(
        { name: b + 'ista.hook_code1', shape: [B, T, H], doc: 'ISTA code after the first step, a1 = relu(η u Aᵀ − ηλ)' },
        { name: b + 'ista.hook_code', shape: [B, T, H], doc: `ISTA code after the last step (a${c.istaSteps}): the paper's neurons` },
        { name: b + 'hook_ista_out', shape: [B, T, C], doc: 'decoded code D·a (replaces the residual stream: no residual around ISTA)' },
      );
    } else if (c.arch === 'crate-complete') {
      pts.push({ name: b + 'ista.hook_code', shape: [B, T, C], doc: "complete-ISTA code relu(x + η(xW − xWᵀW) − ηλ): the neurons, and the block's output" });
    } else {
      pts.push(
        { name: b + 'mlp.hook_pre', shape: [B, T, H], doc: 'MLP pre-activation c_fc(LN₂ x)' },
        { name: b + 'mlp.hook_post', shape: [B, T, H], doc: 'MLP hidden after ReLU: the neurons' },
        { name: b + 'hook_mlp_out', shape: [B, T, C], doc: 'MLP output c_proj(hook_post)' },
      );
    }
    pts.push({ name: b + 'hook_resid_post', shape: [B, T, C], doc: 'residual stream leaving the block (= hook_resid_pre of the next block)' });
  }
  pts.push(
    { name: 'ln_final.hook_normalized', shape: [B, T, C], doc: 'final LayerNorm output' },
    { name: 'unembed.hook_out', shape: [B, T, V], doc: 'logits (tied head: ln_f(x) wteᵀ)' },
  );
  return pts;
}

/** Resolve `blocks.{l}.hook_neurons` to its tensor's name; other names are returned unchanged. */
export function canonicalHookName(config: ModelConfig, name: string): string {
  const m = /^blocks\.(\d+)\.hook_neurons$/.exec(name);
  return m ? neuronHook(config, Number(m[1])) : name;
}

/** Throw a UsageError naming the valid hooks when a name is unknown. */
export function checkHookNames(config: ModelConfig, names: Iterable<string>): void {
  const valid = new Set(hookPoints(config, 1, 1).map((p) => p.name));
  for (const n of names) {
    if (valid.has(canonicalHookName(config, n))) continue;
    const layerMatch = /^blocks\.(\d+)\./.exec(n);
    const hint = layerMatch && Number(layerMatch[1]) >= config.nLayer ? ` (the model has ${config.nLayer} layers: 0..${config.nLayer - 1})` : '';
    const sample = [...valid].filter((v) => !v.startsWith('blocks.') || v.startsWith('blocks.0.')).join(', ');
    throw new UsageError(
      `unknown hook name '${n}'${hint}; a ${config.arch} model has: ${sample}, blocks.{l}.hook_neurons, and the same blocks.{l}.* for every layer`,
    );
  }
}

/** The activations cached by runWithCache, by the names asked for (aliases included). */
export class ActivationCache {
  private readonly map = new Map<string, Activation>();

  /** The activation under `name`; throws if it was not cached. */
  get(name: string): Activation {
    const a = this.map.get(name);
    if (!a) throw new UsageError(`no activation '${name}' in the cache (cached: ${[...this.map.keys()].join(', ') || 'none'})`);
    return a;
  }

  has(name: string): boolean {
    return this.map.has(name);
  }
  keys(): string[] {
    return [...this.map.keys()];
  }
  get size(): number {
    return this.map.size;
  }
  /** @internal */
  set(name: string, a: Activation): void {
    this.map.set(name, a);
  }
}

/** A float64 view of `shape` over `data` (row-major, or explicit strides and offset). */
export function view(data: Float64Array, shape: number[], stride?: number[], offset = 0): Activation {
  return ndarray(data, shape, stride, offset);
}

/** Row-major copy of an activation's elements (it may be a strided view). */
export function toDense(a: Activation): Float64Array {
  const n = a.shape.reduce((x, y) => x * y, 1);
  const out = new Float64Array(n);
  const idx = new Array<number>(a.shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    let off = a.offset;
    for (let d = 0; d < idx.length; d++) off += idx[d] * a.stride[d];
    out[i] = a.data[off];
    for (let d = idx.length - 1; d >= 0; d--) {
      if (++idx[d] < a.shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

/** Write row-major `values` into an activation view (it may be strided). */
export function assignDense(a: Activation, values: ArrayLike<number>): void {
  const n = a.shape.reduce((x, y) => x * y, 1);
  const idx = new Array<number>(a.shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    let off = a.offset;
    for (let d = 0; d < idx.length; d++) off += idx[d] * a.stride[d];
    a.data[off] = values[i];
    for (let d = idx.length - 1; d >= 0; d--) {
      if (++idx[d] < a.shape[d]) break;
      idx[d] = 0;
    }
  }
}

/**
 * Call a hook and apply its result to `act`: a returned replacement must have the same number of
 * elements (and, for an ndarray, the same shape) and finite values.
 */
export function applyHook(fn: HookFn, act: Activation, name: string): void {
  const r = fn(act, name);
  if (r === undefined || r === null || r === act) return;
  const n = act.shape.reduce((x, y) => x * y, 1);
  let values: ArrayLike<number>;
  if (typeof (r as Activation).shape === 'object' && (r as Activation).data !== undefined) {
    const nd = r as Activation;
    if (nd.shape.length !== act.shape.length || nd.shape.some((s, i) => s !== act.shape[i])) {
      throw new UsageError(`hook for '${name}' returned shape [${nd.shape.join(', ')}], expected [${act.shape.join(', ')}]`);
    }
    values = toDense(nd);
  } else {
    values = r as ArrayLike<number>;
    if (typeof values.length !== 'number' || values.length !== n) {
      throw new UsageError(
        `hook for '${name}' returned ${typeof values.length === 'number' ? values.length : 'a non-array with no'} values, expected ${n} (shape [${act.shape.join(', ')}])`,
      );
    }
  }
  assignDense(act, values);
}
