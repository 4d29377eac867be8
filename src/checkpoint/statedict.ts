// PyTorch state_dict <-> LanguageModel: the parameters under their PyTorch names (spec 3.2), the
// tied lm_head not stored separately. Loading accepts what real PyTorch checkpoints contain: the
// tied `lm_head.weight`, `attn.bias` causal-mask buffers (ignored), and the `_orig_mod.` prefix of a
// torch.compile'd model; it names every missing or mis-shaped tensor, rejects a checkpoint of another
// architecture, and rejects NaN/Inf naming the tensor.
import type { LanguageModel } from '../model/lm.js';
import type { Arch, ModelConfig } from '../model/config.js';
import { validateConfig, DEFAULTS } from '../model/config.js';
import { toFloat64, type TensorEntry, type TensorInput } from '../io/safetensors.js';

/** A tensor as loadStateDict accepts it: a safetensors entry or any { shape, data } of numbers. */
export type LoadableTensor = TensorEntry | { shape: readonly number[]; data: ArrayLike<number> };
export type TensorMap = Map<string, LoadableTensor> | Record<string, LoadableTensor>;

/** Keys that may share a file with the parameters and are not parameters (fixtures, optimizer state). */
export interface LoadOptions {
  /** Names the error messages (e.g. the file path). Default 'state_dict'. */
  source?: string;
  /** Extra (non-parameter) keys to skip silently, besides the built-in ones. */
  allowExtra?: (name: string) => boolean;
}

const NON_PARAM = /^(optimizer\.|grad\.|idx$|targets$|logits$|loss$)/;
const MASK_BUFFER = /^transformer\.h\.\d+\.attn\.bias$/;
const COMPILE_PREFIX = '_orig_mod.';

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

function entries(tensors: TensorMap): [string, LoadableTensor][] {
  return tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
}

function asFloat64(name: string, t: LoadableTensor): Float64Array {
  if ('dtype' in t && typeof t.dtype === 'string') return toFloat64(t as TensorEntry, name);
  const d = t.data;
  if (d instanceof Float64Array) return d;
  const out = new Float64Array(d.length);
  for (let i = 0; i < d.length; i++) out[i] = Number(d[i]);
  return out;
}

export interface NormalizedStateDict {
  /** Parameter tensors by canonical name. */
  params: Map<string, { shape: number[]; data: Float64Array }>;
  /** Keys dropped on the way, with the reason (mask buffers, the tied head, non-parameter entries). */
  ignored: string[];
}

/** Strip `_orig_mod.`, drop mask buffers and non-parameter entries, fold a tied `lm_head.weight` into wte. */
export function normalizeStateDict(tensors: TensorMap, allowExtra?: (name: string) => boolean): NormalizedStateDict {
  const params = new Map<string, { shape: number[]; data: Float64Array }>();
  const ignored: string[] = [];
  let head: { shape: number[]; data: Float64Array } | null = null;
  for (const [raw, t] of entries(tensors)) {
    const name = raw.startsWith(COMPILE_PREFIX) ? raw.slice(COMPILE_PREFIX.length) : raw;
    if (NON_PARAM.test(name) || allowExtra?.(raw) || allowExtra?.(name)) continue;
    if (MASK_BUFFER.test(name)) { ignored.push(`${raw} (causal-mask buffer)`); continue; }
    const v = { shape: [...t.shape], data: asFloat64(raw, t) };
    if (name === 'lm_head.weight') { head = v; continue; }
    if (params.has(name)) throw new Error(`state_dict holds '${name}' twice (with and without the '${COMPILE_PREFIX}' prefix)`);
    params.set(name, v);
  }
  if (head) {
    const wte = params.get('transformer.wte.weight');
    if (!wte) {
      params.set('transformer.wte.weight', head);
      ignored.push('lm_head.weight (used as the tied transformer.wte.weight)');
    } else {
      const same = fmt(wte.shape) === fmt(head.shape) && wte.data.every((x, i) => Object.is(x, head!.data[i]) || x === head!.data[i]);
      if (!same) throw new Error('lm_head.weight differs from transformer.wte.weight; this model ties them (spec 3.2), so they must be equal');
      ignored.push('lm_head.weight (tied to transformer.wte.weight)');
    }
  }
  return { params, ignored };
}

/** The architecture a set of parameter names belongs to, or null if it holds no block. */
export function detectArch(params: Map<string, { shape: number[] }>): { arch: Arch; evidence: string } | null {
  for (const [name, t] of params) {
    if (/^transformer\.h\.\d+\.mlp\.c_fc\.weight$/.test(name)) return { arch: 'gpt2', evidence: name };
    if (/^transformer\.h\.\d+\.ista\.weight$/.test(name)) {
      const [rows, cols] = t.shape;
      return { arch: rows === cols ? 'crate-complete' : 'crate', evidence: `${name} of shape ${fmt(t.shape)}` };
    }
  }
  return null;
}

/**
 * Load parameters into a model. Throws, naming the tensors, on: another architecture, missing or
 * mis-shaped tensors, unexpected `transformer.*` tensors, and non-finite values.
 * Returns the keys that were ignored (and why).
 */
export function loadStateDict(model: LanguageModel<unknown>, tensors: TensorMap, opts: string | LoadOptions = {}): { ignored: string[] } {
  const o: LoadOptions = typeof opts === 'string' ? { source: opts } : opts;
  const source = o.source ?? 'state_dict';
  const { params, ignored } = normalizeStateDict(tensors, o.allowExtra);
  const want = model.config.arch;
  const found = detectArch(params);
  if (found && found.arch !== want) {
    throw new Error(`${source} holds a ${found.arch} model (${found.evidence}), but the model being loaded is ${want}; use --arch ${found.arch} or a ${want} checkpoint`);
  }
  const flat = new Float64Array(model.numParameters);
  const missing: string[] = [], misshaped: string[] = [];
  for (const p of model.table) {
    const t = params.get(p.name);
    if (!t) { missing.push(p.name); continue; }
    if (fmt(t.shape) !== fmt(p.shape)) { misshaped.push(`${p.name}: ${fmt(t.shape)} in ${source}, ${fmt(p.shape)} in the model`); continue; }
    flat.set(t.data, p.offset);
  }
  const known = new Set(model.table.map((p) => p.name));
  const unexpected = [...params.keys()].filter((k) => !known.has(k) && (k.startsWith('transformer.') || k.startsWith('lm_head.')));
  const problems: string[] = [];
  if (missing.length) problems.push(`missing tensors: ${missing.join(', ')}`);
  if (misshaped.length) problems.push(`tensors with the wrong shape: ${misshaped.join('; ')}`);
  if (unexpected.length) problems.push(`unexpected tensors (another configuration?): ${unexpected.join(', ')}`);
  if (problems.length) throw new Error(`${source} does not match the ${want} model (${describe(model.config)}): ${problems.join('; ')}`);
  for (const p of model.table) {
    const d = params.get(p.name)!.data;
    for (let i = 0; i < d.length; i++) {
      if (!Number.isFinite(d[i])) throw new Error(`${source}: tensor ${p.name} holds a non-finite value (${d[i]}) at flat index ${i}`);
    }
  }
  model.setParams(flat);
  for (const k of params.keys()) if (!known.has(k)) ignored.push(`${k} (not a parameter of this model)`);
  return { ignored };
}

function describe(c: ModelConfig): string {
  return `V ${c.vocabSize}, T ${c.blockSize}, L ${c.nLayer}, heads ${c.nHead}, d ${c.nEmbd}${c.arch === 'gpt2' ? '' : `, ISTA x${c.overcomplete}`}`;
}

/** The model's parameters as named tensors (f64 or f32 as the backend stores them); lm_head not stored. */
export function stateDictFromModel(model: LanguageModel<unknown>, dtype: 'F64' | 'F32' = model.backend.dtype === 'f64' ? 'F64' : 'F32', prefix = ''): Record<string, TensorInput> {
  return Object.fromEntries(namedTensors(model, model.getParams(), prefix, dtype));
}

/** Split a flat buffer laid out like the model's parameters into named tensors (with a name prefix). */
export function namedTensors(model: LanguageModel<unknown>, flat: Float64Array, prefix: string, dtype: 'F64' | 'F32'): Map<string, TensorInput> {
  const out = new Map<string, TensorInput>();
  for (const p of model.table) {
    const v = flat.subarray(p.offset, p.offset + p.size);
    out.set(prefix + p.name, { dtype, shape: p.shape, data: dtype === 'F32' ? Float32Array.from(v) : v });
  }
  return out;
}

/** Gather named tensors `prefix + name` back into a flat buffer in table order (for optimizer moments). */
export function flatFromNamed(model: LanguageModel<unknown>, tensors: TensorMap, prefix: string, source: string): Float64Array {
  const map = new Map(entries(tensors));
  const flat = new Float64Array(model.numParameters);
  for (const p of model.table) {
    const t = map.get(prefix + p.name);
    if (!t) throw new Error(`${source} is missing tensor ${prefix + p.name}`);
    if (fmt(t.shape) !== fmt(p.shape)) throw new Error(`${source}: tensor ${prefix + p.name} has shape ${fmt(t.shape)}, expected ${fmt(p.shape)}`);
    const d = asFloat64(prefix + p.name, t);
    for (let i = 0; i < d.length; i++) if (!Number.isFinite(d[i])) throw new Error(`${source}: tensor ${prefix + p.name} holds a non-finite value (${d[i]}) at flat index ${i}`);
    flat.set(d, p.offset);
  }
  return flat;
}

// ---- config metadata -----------------------------------------------------------------------------

/**
 * The `config` metadata entry: { config: JSON } with the fixture format's snake_case keys
 * (DESIGN.md "Fixtures": vocab_size, block_size, n_layer, n_head, n_embd, overcomplete, eta, lam,
 * ln_eps) plus arch and ista_steps, so checkpoints and fixtures describe models the same way.
 * Spread it into a safetensors metadata object.
 */
export function configToMetadata(c: ModelConfig): { config: string } {
  return { config: configJson(c) };
}

export function configJson(c: ModelConfig): string {
  return JSON.stringify({
    arch: c.arch, vocab_size: c.vocabSize, block_size: c.blockSize, n_layer: c.nLayer, n_head: c.nHead,
    n_embd: c.nEmbd, overcomplete: c.overcomplete, eta: c.eta, lam: c.lam, ista_steps: c.istaSteps, ln_eps: c.lnEps,
  });
}

/**
 * Parse the model config from safetensors metadata (the whole metadata object, or its "config"
 * string): snake_case as written here or in fixtures, or camelCase.
 */
export function configFromMetadata(metadata: Record<string, string> | string, source = 'checkpoint'): ModelConfig {
  let json: string;
  if (typeof metadata === 'string') json = metadata;
  else {
    if (metadata.config === undefined) throw new Error(`${source}: the safetensors metadata has no "config" entry (a JSON model configuration)`);
    json = metadata.config;
  }
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(json) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${source}: metadata "config" is not valid JSON (${(e as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null) throw new Error(`${source}: metadata "config" must be a JSON object`);
  const pick = (snake: string, camel: keyof ModelConfig): unknown => raw[snake] ?? raw[camel];
  const cfg: ModelConfig = {
    arch: (pick('arch', 'arch') as Arch | undefined) ?? 'crate',
    vocabSize: Number(pick('vocab_size', 'vocabSize') ?? NaN),
    blockSize: Number(pick('block_size', 'blockSize') ?? NaN),
    nLayer: Number(pick('n_layer', 'nLayer') ?? NaN),
    nHead: Number(pick('n_head', 'nHead') ?? NaN),
    nEmbd: Number(pick('n_embd', 'nEmbd') ?? NaN),
    overcomplete: Number(pick('overcomplete', 'overcomplete') ?? DEFAULTS.overcomplete),
    eta: Number(pick('eta', 'eta') ?? DEFAULTS.eta),
    lam: Number(pick('lam', 'lam') ?? DEFAULTS.lam),
    istaSteps: Number(pick('ista_steps', 'istaSteps') ?? DEFAULTS.istaSteps),
    lnEps: Number(pick('ln_eps', 'lnEps') ?? DEFAULTS.lnEps),
  };
  try {
    validateConfig(cfg);
  } catch (e) {
    throw new Error(`${source}: metadata "config" is not a valid model configuration: ${(e as Error).message}`);
  }
  return cfg;
}
