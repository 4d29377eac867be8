// PyTorch state_dict <-> LanguageModel: the parameters under their PyTorch names (spec 3.2), the
// tied lm_head not stored separately. Loading accepts what real PyTorch checkpoints contain: the
// tied `lm_head.weight`, `attn.bias` causal-mask buffers (ignored), and the `_orig_mod.` prefix of a
// torch.compile'd model; it names every missing or mis-shaped tensor, rejects a checkpoint of another
// architecture, and rejects NaN/Inf naming the tensor.
import type { LanguageModel } from '../model/lm.js';
import type { Arch, ModelConfig } from '../model/config.js';
import { architecture, architectures } from '../model/archs.js';
import { elide, quote, toFloat64, type TensorEntry, type TensorInput } from '../io/safetensors.js';
import { CheckpointError } from '../errors.js';
import { checkpointError, clipMessage, parseConfigJson, NON_PARAM, MASK_BUFFER, COMPILE_PREFIX } from './validate.js';

/** A tensor as loadStateDict accepts it: a safetensors entry or any { shape, data } of numbers. */
export type LoadableTensor = TensorEntry | TensorInput | { shape: readonly number[]; data: ArrayLike<number> };
export type TensorMap = Map<string, LoadableTensor> | Record<string, LoadableTensor>;

/** Keys that may share a file with the parameters and are not parameters (fixtures, optimizer state). */
export interface LoadOptions {
  /** Names the error messages (e.g. the file path). Default 'state_dict'. */
  source?: string;
  /** Extra (non-parameter) keys to skip silently, besides the built-in ones. */
  allowExtra?: (name: string) => boolean;
}

/** Parameters are stored as floats; an integer or BOOL "parameter" is a corrupt or relabelled file. */
const FLOAT_DTYPES: readonly string[] = ['F64', 'F32', 'F16', 'BF16'];

const fmt = (s: readonly number[]) => (s.length <= 8 ? `[${s.join(', ')}]` : `[${s.slice(0, 6).join(', ')}, … (${s.length} dims)]`);

/** Up to `n` names for a message, then how many more there are. */
function listNames(names: string[], n = 3): string {
  const shown = names
    .slice(0, n)
    .map((x) => quote(x, 60).slice(1, -1))
    .join(', ');
  return names.length > n ? `${shown} and ${names.length - n} more` : shown;
}

function entries(tensors: TensorMap): [string, LoadableTensor][] {
  return tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
}

/**
 * A tensor's values as float64. A safetensors entry must have a float dtype (an I32 relabelling of
 * float bytes would otherwise load as a different model); a plain { shape, data } must hold exactly
 * prod(shape) values.
 */
function asFloat64(name: string, t: LoadableTensor, source: string): Float64Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  if (t.data.length !== n) throw checkpointError(source, `tensor ${quote(name, 80)} holds ${t.data.length} values but its shape ${fmt(t.shape)} needs ${n}`);
  if ('dtype' in t && typeof t.dtype === 'string') {
    if (!FLOAT_DTYPES.includes(t.dtype))
      throw checkpointError(
        source,
        `tensor ${quote(name, 80)} has dtype ${/^[A-Z0-9_]{1,12}$/.test(t.dtype) ? t.dtype : quote(t.dtype)}; parameters must be ${FLOAT_DTYPES.join(', ')}`,
      );
    // F16/BF16 as read from a file are raw bit patterns (a Uint16Array); anything else holds values.
    if ((t.dtype === 'F16' || t.dtype === 'BF16') && t.data instanceof Uint16Array) return toFloat64(t as TensorEntry, name);
  }
  const d = t.data;
  if (d instanceof Float64Array) return d;
  const out = new Float64Array(d.length);
  for (let i = 0; i < d.length; i++) {
    const v = d[i];
    if (typeof v !== 'number') throw checkpointError(source, `tensor ${quote(name, 80)} holds a ${typeof v} at flat index ${i}; parameters are numbers`);
    out[i] = v;
  }
  return out;
}

export interface NormalizedStateDict {
  /** Parameter tensors by canonical name. */
  params: Map<string, { shape: number[]; data: Float64Array }>;
  /** Keys dropped on the way, with the reason (mask buffers, the tied head, non-parameter entries). */
  ignored: string[];
}

/**
 * Strip `_orig_mod.`, drop mask buffers and non-parameter entries, fold a tied `lm_head.weight` into
 * wte. Names outside `transformer.*` and `lm_head.weight` are not parameters of any model here: they
 * are listed as ignored without being read. `source` names the error messages.
 */
export function normalizeStateDict(tensors: TensorMap, allowExtra?: (name: string) => boolean, source = 'state_dict'): NormalizedStateDict {
  const params = new Map<string, { shape: number[]; data: Float64Array }>();
  const ignored: string[] = [];
  let head: { shape: number[]; data: Float64Array } | null = null;
  for (const [raw, t] of entries(tensors)) {
    const name = raw.startsWith(COMPILE_PREFIX) ? raw.slice(COMPILE_PREFIX.length) : raw;
    if (NON_PARAM.test(name) || allowExtra?.(raw) || allowExtra?.(name)) continue;
    if (MASK_BUFFER.test(name)) {
      ignored.push(`${raw} (causal-mask buffer)`);
      continue;
    }
    if (name !== 'lm_head.weight' && !name.startsWith('transformer.')) {
      ignored.push(`${raw} (not a parameter of this model)`);
      continue;
    }
    const v = { shape: [...t.shape], data: asFloat64(raw, t, source) };
    if (name === 'lm_head.weight') {
      head = v;
      continue;
    }
    if (params.has(name)) throw new CheckpointError(clipMessage(`${source} holds ${quote(name, 80)} twice (with and without the '${COMPILE_PREFIX}' prefix)`));
    params.set(name, v);
  }
  if (head) {
    const wte = params.get('transformer.wte.weight');
    if (!wte) {
      params.set('transformer.wte.weight', head);
      ignored.push('lm_head.weight (used as the tied transformer.wte.weight)');
    } else {
      const same = fmt(wte.shape) === fmt(head.shape) && wte.data.every((x, i) => Object.is(x, head!.data[i]) || x === head!.data[i]);
      if (!same) throw checkpointError(source, 'lm_head.weight differs from transformer.wte.weight; this model ties them (spec 3.2), so they must be equal');
      ignored.push('lm_head.weight (tied to transformer.wte.weight)');
    }
  }
  return { params, ignored };
}

/**
 * The architecture a set of parameter names belongs to, or null if it holds no block tensor that an
 * architecture recognizes (Architecture.recognizes; the first such tensor decides).
 */
export function detectArch(params: Map<string, { shape: number[] }>): { arch: Arch; evidence: string } | null {
  const archs = architectures();
  for (const [name, t] of params) {
    const m = /^transformer\.h\.\d+\.(.+)$/.exec(name);
    if (!m) continue;
    for (const a of archs) {
      const how = a.recognizes(m[1], t.shape);
      if (how) return { arch: a.name as Arch, evidence: how === 'by shape' ? `${name} of shape ${fmt(t.shape)}` : name };
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
  const { params, ignored } = normalizeStateDict(tensors, o.allowExtra, source);
  const want = model.config.arch;
  const found = detectArch(params);
  if (found && found.arch !== want) {
    throw new CheckpointError(
      (n) =>
        clipMessage(
          `${source} holds a ${found.arch} model (${found.evidence}), but the model being loaded is ${want}; use ${n('arch')} ${found.arch} or a ${want} checkpoint`,
        ),
      { option: 'arch' },
    );
  }
  const flat = new Float64Array(model.numParameters);
  const missing: string[] = [],
    misshaped: string[] = [];
  for (const p of model.table) {
    const t = params.get(p.name);
    if (!t) {
      missing.push(p.name);
      continue;
    }
    if (fmt(t.shape) !== fmt(p.shape)) {
      misshaped.push(`${p.name}: ${fmt(t.shape)} in the file, ${fmt(p.shape)} in the model`);
      continue;
    }
    flat.set(t.data, p.offset);
  }
  const known = new Set(model.table.map((p) => p.name));
  const unexpected = [...params.keys()].filter((k) => !known.has(k) && (k.startsWith('transformer.') || k.startsWith('lm_head.')));
  const problems: string[] = [];
  if (missing.length) problems.push(`missing tensors: ${listNames(missing)}`);
  if (misshaped.length)
    problems.push(
      `tensors with the wrong shape: ${misshaped[0]}${
        misshaped.length > 1
          ? `; also ${listNames(
              misshaped.slice(1).map((m) => m.slice(0, m.indexOf(':'))),
              1,
            )}`
          : ''
      }`,
    );
  if (unexpected.length) problems.push(`unexpected tensors (another configuration?): ${listNames(unexpected)}`);
  if (problems.length)
    throw new CheckpointError(clipMessage(`${elide(source, 120)} does not match the ${want} model (${describe(model.config)}): ${problems.join('; ')}`));
  for (const p of model.table) {
    const d = params.get(p.name)!.data;
    for (let i = 0; i < d.length; i++) {
      if (!Number.isFinite(d[i])) throw checkpointError(source, `tensor ${p.name} holds a non-finite value (${d[i]}) at flat index ${i}`);
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
export function stateDictFromModel(
  model: LanguageModel<unknown>,
  dtype: 'F64' | 'F32' = model.backend.dtype === 'f64' ? 'F64' : 'F32',
  prefix = '',
): Record<string, TensorInput> {
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
    if (!t) throw new CheckpointError(clipMessage(`${source} is missing tensor ${prefix + p.name}`));
    if (fmt(t.shape) !== fmt(p.shape)) throw checkpointError(source, `tensor ${prefix + p.name} has shape ${fmt(t.shape)}, expected ${fmt(p.shape)}`);
    const d = asFloat64(prefix + p.name, t, source);
    for (let i = 0; i < d.length; i++)
      if (!Number.isFinite(d[i])) throw checkpointError(source, `tensor ${prefix + p.name} holds a non-finite value (${d[i]}) at flat index ${i}`);
    flat.set(d, p.offset);
  }
  return flat;
}

// ---- config metadata -----------------------------------------------------------------------------

/**
 * The one ModelConfig -> JSON of crate-ts, in two forms with the same snake_case keys (the fixture
 * format's, docs/FIXTURES.md: vocab_size, block_size, n_layer, n_head, n_embd, overcomplete, eta,
 * lam, ln_eps, plus arch and ista_steps), so that checkpoints and fixtures describe models the same
 * way:
 * - without `file`: the `config` metadata entry of a safetensors file;
 * - with `file`: a run's config.json, which adds the PyTorch/nanoGPT fields (GPTConfig's dropout and
 *   bias, scripts/crate_torch.py's model_type), the tokenizer, the weights' dtype and tied embeddings.
 * Key order is part of the format (the files are compared byte for byte), so it is fixed here.
 */
export function configToJson(c: ModelConfig, file?: { tokenizer: string; dtype: string }): Record<string, unknown> {
  const arch = file ? architecture(c.arch) : null;
  return {
    ...(arch ? { model_type: arch.modelType } : {}),
    arch: c.arch,
    vocab_size: c.vocabSize,
    block_size: c.blockSize,
    n_layer: c.nLayer,
    n_head: c.nHead,
    n_embd: c.nEmbd,
    ...(arch ? { dropout: 0.0, bias: arch.bias } : {}),
    overcomplete: c.overcomplete,
    eta: c.eta,
    lam: c.lam,
    ista_steps: c.istaSteps,
    ln_eps: c.lnEps,
    ...(file ? { tokenizer: file.tokenizer, torch_dtype: file.dtype === 'F64' ? 'float64' : 'float32', tie_word_embeddings: true } : {}),
  };
}

/** The `config` metadata entry ({ config: JSON }, configToJson's first form): spread it into a safetensors metadata object. */
export function configToMetadata(c: ModelConfig): { config: string } {
  return { config: JSON.stringify(configToJson(c)) };
}

/**
 * Parse the model config from safetensors metadata (the whole metadata object, or its "config"
 * string): snake_case as written here or in fixtures, or camelCase. Every present field is type-
 * and range-checked (src/checkpoint/validate.ts); only absent optional fields take their defaults.
 * Given the whole metadata, a separate `arch` entry (fixtures) supplies the architecture.
 */
export function configFromMetadata(metadata: Record<string, string> | string, source = 'checkpoint'): ModelConfig {
  if (typeof metadata === 'string') return parseConfigJson(metadata, source);
  if (metadata.config === undefined) throw checkpointError(source, 'the safetensors metadata has no "config" entry (a JSON model configuration)');
  return parseConfigJson(metadata.config, source, metadata.arch);
}
