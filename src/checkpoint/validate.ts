// Validation of what a checkpoint's metadata claims, before anything is allocated from it. A
// checkpoint is an untrusted file: its `config` decides how much memory a model takes, and its
// `train_state` decides how a resumed run continues. So every field is type- and range-checked, a
// present-but-invalid field is an error (only an absent one takes its default), and the parameter
// count the config implies must equal what the file's parameter tensors hold. Every error is a
// CheckpointError of one line (at most MAX_MESSAGE_LENGTH characters) naming the file and the field.
import { CheckpointError } from '../errors.js';
import { CONFIG_LIMITS, DEFAULTS, configParameterCount, validateConfig, type ModelConfig } from '../model/config.js';
import { archNames, isArch } from '../model/archs.js';
import { boundedMessage, elide, quote, MAX_MESSAGE_LENGTH, type TensorEntry } from '../io/safetensors.js';
import type { TrainState } from './checkpoint.js';

/** A message on one line and at most MAX_MESSAGE_LENGTH characters (cut at the end). */
export function clipMessage(msg: string): string {
  const m = msg.replace(/[\r\n]+/g, ' ');
  return m.length <= MAX_MESSAGE_LENGTH ? m : m.slice(0, MAX_MESSAGE_LENGTH - 1) + '…';
}

/** A CheckpointError "<source>: <problem>", bounded to one short line. */
export function checkpointError(source: string, problem: string, cause?: unknown): CheckpointError {
  return new CheckpointError(boundedMessage(source, problem), cause === undefined ? undefined : { cause });
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const has = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);

// ---- config --------------------------------------------------------------------------------------

type FieldKind = 'int' | 'number' | 'arch';
/** [snake_case key (written here and by fixtures), camelCase key (accepted too), ModelConfig key, kind, required] */
const CONFIG_FIELDS: [string, string, keyof ModelConfig, FieldKind, boolean][] = [
  ['arch', 'arch', 'arch', 'arch', false],
  ['vocab_size', 'vocabSize', 'vocabSize', 'int', true],
  ['block_size', 'blockSize', 'blockSize', 'int', true],
  ['n_layer', 'nLayer', 'nLayer', 'int', true],
  ['n_head', 'nHead', 'nHead', 'int', true],
  ['n_embd', 'nEmbd', 'nEmbd', 'int', true],
  ['overcomplete', 'overcomplete', 'overcomplete', 'int', false],
  ['eta', 'eta', 'eta', 'number', false],
  ['lam', 'lam', 'lam', 'number', false],
  ['ista_steps', 'istaSteps', 'istaSteps', 'int', false],
  ['ln_eps', 'lnEps', 'lnEps', 'number', false],
];

/** Open or closed range of the float fields (CONFIG_LIMITS). */
const FLOAT_RANGE: Partial<Record<keyof ModelConfig, [number, number, boolean]>> = {
  eta: [0, CONFIG_LIMITS.etaMax, true],
  lam: [0, CONFIG_LIMITS.lamMax, false],
  lnEps: [0, CONFIG_LIMITS.lnEpsMax, true],
};

/**
 * Parse and validate the JSON of a `config` metadata entry. `archFallback` is the file's separate
 * `arch` metadata entry (fixtures carry the architecture there), used when the config has none.
 */
export function parseConfigJson(json: string, source: string, archFallback?: string): ModelConfig {
  const fail = (problem: string): never => {
    throw checkpointError(source, problem);
  };
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (e) {
    fail(`metadata "config" is not valid JSON (${elide((e as Error).message, 100)})`);
  }
  if (!isPlainObject(raw)) fail(`metadata "config" must be a JSON object, got ${quote(raw)}`);
  const obj = raw as Record<string, unknown>;
  const cfg: Record<string, unknown> = { ...DEFAULTS };
  for (const [snake, camel, key, kind, required] of CONFIG_FIELDS) {
    const inSnake = has(obj, snake),
      inCamel = snake !== camel && has(obj, camel);
    if (inSnake && inCamel && !Object.is(obj[snake], obj[camel])) {
      fail(`config fields "${snake}" (${quote(obj[snake])}) and "${camel}" (${quote(obj[camel])}) disagree`);
    }
    const field = inSnake ? snake : camel;
    if (!inSnake && !inCamel) {
      if (kind === 'arch' && archFallback !== undefined) {
        if (!isArch(archFallback)) fail(`metadata "arch" must be ${archNames().join(', ')}; got ${quote(archFallback)}`);
        cfg.arch = archFallback;
      } else if (required) {
        fail(`config field "${snake}" is missing`);
      }
      continue; // absent: the default stays
    }
    const v = obj[field];
    if (kind === 'arch') {
      if (!isArch(v)) fail(`config field "${field}" must be one of ${archNames().join(', ')}; got ${quote(v)}`);
      if (archFallback !== undefined && archFallback !== v) fail(`config field "${field}" is ${quote(v)} but metadata "arch" is ${quote(archFallback)}`);
    } else if (kind === 'int') {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) fail(`config field "${field}" must be a positive integer, got ${quote(v)}`);
      const limit = CONFIG_LIMITS[key as 'vocabSize'];
      if ((v as number) > limit) fail(`config field "${field}" is ${v}, above the limit of ${limit}`);
    } else {
      if (typeof v !== 'number' || !Number.isFinite(v)) fail(`config field "${field}" must be a finite number, got ${quote(v)}`);
      const [lo, hi, open] = FLOAT_RANGE[key]!;
      const x = v as number;
      if (x > hi || x < lo || (open && x === lo)) fail(`config field "${field}" is ${x}, outside ${open ? '(' : '['}${lo}, ${hi}]`);
    }
    cfg[key] = v;
  }
  const config = cfg as unknown as ModelConfig;
  if (config.nEmbd % config.nHead !== 0) fail(`config field "n_embd" (${config.nEmbd}) is not divisible by "n_head" (${config.nHead})`);
  try {
    validateConfig(config); // the cross-field checks (the parameter limit)
  } catch (e) {
    fail(`metadata "config" is not a valid model configuration: ${(e as Error).message}`);
  }
  return config;
}

// ---- parameter count -----------------------------------------------------------------------------

/** Names that share a file with the parameters but are not parameters (optimizer state, fixtures). */
export const NON_PARAM = /^(optimizer\.|grad\.|idx$|targets$|logits$|loss$)/;
/** PyTorch's causal-mask buffers, not parameters. */
export const MASK_BUFFER = /^transformer\.h\.\d+\.attn\.bias$/;
export const COMPILE_PREFIX = '_orig_mod.';

const count = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const fmtInt = (n: number) => n.toLocaleString('en-US');

/**
 * Check, before any model is built, that the parameter count `config` implies equals the elements
 * the file's parameter tensors hold (by name: `transformer.*`, or `lm_head.weight` standing in for a
 * missing wte; optimizer moments, fixture tensors and mask buffers excluded). On a mismatch the
 * message names the config field the tensors contradict (vocab_size, n_embd, block_size, n_layer,
 * overcomplete, arch) when one can be told from their shapes.
 */
export function checkParameterCount(config: ModelConfig, tensors: Map<string, TensorEntry>, source: string): void {
  const params = new Map<string, readonly number[]>();
  let head: readonly number[] | null = null;
  for (const [raw, t] of tensors) {
    const name = raw.startsWith(COMPILE_PREFIX) ? raw.slice(COMPILE_PREFIX.length) : raw;
    if (NON_PARAM.test(name) || MASK_BUFFER.test(name)) continue;
    if (name === 'lm_head.weight') head = t.shape;
    else if (name.startsWith('transformer.')) params.set(name, t.shape);
  }
  if (head && !params.has('transformer.wte.weight')) params.set('transformer.wte.weight', head);
  let held = 0;
  for (const s of params.values()) held += count(s);
  const implied = configParameterCount(config);
  if (held === implied) return;

  const fail = (field: string, says: unknown, holds: string): never => {
    throw checkpointError(
      source,
      `config field "${field}" is ${says} but the file holds ${holds} (the config implies ${fmtInt(implied)} parameters, the file's parameter tensors hold ${fmtInt(held)})`,
    );
  };
  const d = config.nEmbd;
  const wte = params.get('transformer.wte.weight');
  if (wte && wte.length === 2) {
    if (wte[1] !== d) fail('n_embd', d, `embeddings of width ${wte[1]}`);
    if (wte[0] !== config.vocabSize) fail('vocab_size', config.vocabSize, `${wte[0]} token embeddings`);
  }
  const wpe = params.get('transformer.wpe.weight');
  if (wpe && wpe.length === 2 && wpe[0] !== config.blockSize) fail('block_size', config.blockSize, `${wpe[0]} position embeddings`);
  const layers = new Set<string>();
  let isGpt2 = false,
    inner: readonly number[] | null = null;
  for (const [name, shape] of params) {
    const m = /^transformer\.h\.(\d+)\.(.*)$/.exec(name);
    if (!m) continue;
    layers.add(m[1]);
    if (m[2] === 'mlp.c_fc.weight') {
      isGpt2 = true;
      inner = shape;
    }
    if (m[2] === 'ista.weight') inner = shape;
  }
  if (layers.size > 0 && isGpt2 !== (config.arch === 'gpt2'))
    fail('arch', config.arch, isGpt2 ? 'a gpt2 model (mlp.c_fc tensors)' : 'a CRATE model (ista tensors)');
  if (layers.size !== config.nLayer) fail('n_layer', config.nLayer, `${layers.size} blocks (transformer.h.<i>)`);
  if (inner && inner.length === 2 && inner[1] === d) {
    if (config.arch === 'crate-complete' && inner[0] !== d) fail('arch', config.arch, `an overcomplete ISTA of ${inner[0]} x ${d}`);
    if (config.arch !== 'crate-complete' && inner[0] !== config.overcomplete * d)
      fail('overcomplete', config.overcomplete, `${isGpt2 ? 'an MLP' : 'an ISTA dictionary'} of width ${inner[0]} = ${inner[0] / d} x n_embd`);
  }
  throw checkpointError(source, `the config implies ${fmtInt(implied)} parameters but the file's parameter tensors hold ${fmtInt(held)}`);
}

// ---- train_state ---------------------------------------------------------------------------------

/** Hyperparameters: [name, kind] where int1 = positive integer, int0 = non-negative integer. */
const HYPER_FIELDS: [string, 'int1' | 'int0' | 'pos' | 'nonneg' | 'unit'][] = [
  ['steps', 'int0'], // 0: a run that saved its initial model (train --steps 0)
  ['batch', 'int1'],
  ['seq', 'int1'],
  ['gradAccum', 'int1'],
  ['lr', 'pos'],
  ['minLr', 'nonneg'],
  ['warmup', 'int0'],
  ['weightDecay', 'nonneg'],
  ['beta1', 'unit'],
  ['beta2', 'unit'],
  ['eps', 'nonneg'],
  ['clip', 'nonneg'],
  ['seed', 'int0'],
  ['evalEvery', 'int0'],
  ['evalWindows', 'int0'],
  ['saveEvery', 'int0'],
  ['logEvery', 'int0'],
  ['valFraction', 'unit'],
];
const MAX_INT = 2 ** 31 - 1;

/**
 * Parse and validate the `train_state` metadata JSON: the shape TrainState declares, every number
 * finite and in range, hyper.seq within the model's block size. Fields this version does not know
 * are kept; absent `history`/`evals`/`preset` take their defaults.
 */
export function parseTrainState(json: string, source: string, config: ModelConfig): TrainState {
  const fail = (problem: string): never => {
    throw checkpointError(source, problem);
  };
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (e) {
    fail(`metadata "train_state" is not valid JSON (${elide((e as Error).message, 100)})`);
  }
  if (!isPlainObject(raw)) fail(`metadata "train_state" must be a JSON object, got ${quote(raw)}`);
  const st = raw as Record<string, unknown>;
  const bad = (field: string, what: string, v: unknown): never => fail(`train_state field "${field}" must be ${what}, got ${quote(v)}`);
  const int = (o: Record<string, unknown>, k: string, field: string, min: number, max = MAX_INT) => {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) bad(field, `an integer in [${min}, ${max}]`, v);
  };
  const num = (o: Record<string, unknown>, k: string, field: string, ok: (x: number) => boolean, what: string, nullable = false) => {
    const v = o[k];
    if (nullable && v === null) return; // JSON writes NaN as null (a diverged loss)
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) bad(field, what, v);
  };
  const obj = (o: Record<string, unknown>, k: string, field: string): Record<string, unknown> => {
    const v = o[k];
    if (!isPlainObject(v)) bad(field, 'an object', v);
    return v as Record<string, unknown>;
  };
  const str = (o: Record<string, unknown>, k: string, field: string) => {
    if (typeof o[k] !== 'string') bad(field, 'a string', o[k]);
  };

  int(st, 'step', 'step', 0);
  const rng = st.dataRng;
  if (!Array.isArray(rng) || rng.length !== 4) bad('dataRng', 'an array of 4 unsigned 32-bit integers', rng);
  (rng as unknown[]).forEach((x, i) => {
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x > 0xffffffff) bad(`dataRng[${i}]`, 'an unsigned 32-bit integer', x);
  });
  int(st, 'tokensSeen', 'tokensSeen', 0, Number.MAX_SAFE_INTEGER);
  num(st, 'elapsed', 'elapsed', (x) => x >= 0, 'a non-negative number');

  const hyper = obj(st, 'hyper', 'hyper');
  for (const [k, kind] of HYPER_FIELDS) {
    const field = `hyper.${k}`;
    if (!has(hyper, k)) fail(`train_state field "${field}" is missing`);
    if (kind === 'int1') int(hyper, k, field, 1);
    else if (kind === 'int0') int(hyper, k, field, 0, k === 'seed' ? 0xffffffff : MAX_INT);
    else if (kind === 'pos') num(hyper, k, field, (x) => x > 0, 'a positive number');
    else if (kind === 'nonneg') num(hyper, k, field, (x) => x >= 0, 'a non-negative number');
    else num(hyper, k, field, (x) => x >= 0 && x < 1, 'a number in [0, 1)');
  }
  if ((hyper.seq as number) > config.blockSize) fail(`train_state field "hyper.seq" is ${hyper.seq}, more than the config's block_size ${config.blockSize}`);

  const data = obj(st, 'data', 'data');
  for (const k of ['source', 'contentHash', 'kind', 'split']) str(data, k, `data.${k}`);
  num(data, 'unigramEntropy', 'data.unigramEntropy', (x) => x >= 0, 'a non-negative number', true);

  if (has(st, 'history')) {
    if (!Array.isArray(st.history)) bad('history', 'an array', st.history);
    (st.history as unknown[]).forEach((p, i) => {
      const f = `history[${i}]`;
      if (!isPlainObject(p)) bad(f, 'an object {step, loss, lr}', p);
      const q = p as Record<string, unknown>;
      int(q, 'step', `${f}.step`, 0);
      num(q, 'loss', `${f}.loss`, () => true, 'a number', true);
      num(q, 'lr', `${f}.lr`, (x) => x >= 0, 'a non-negative number');
    });
  } else st.history = [];
  if (has(st, 'evals')) {
    if (!Array.isArray(st.evals)) bad('evals', 'an array', st.evals);
    (st.evals as unknown[]).forEach((p, i) => {
      const f = `evals[${i}]`;
      if (!isPlainObject(p)) bad(f, 'an object {step, val}', p);
      const q = p as Record<string, unknown>;
      int(q, 'step', `${f}.step`, 0);
      num(q, 'val', `${f}.val`, () => true, 'a number', true);
    });
  } else st.evals = [];
  if (has(st, 'preset') && st.preset !== undefined && typeof st.preset !== 'string') bad('preset', 'a string', st.preset);
  return st as unknown as TrainState;
}
