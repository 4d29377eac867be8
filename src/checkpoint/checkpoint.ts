// Checkpoints. A training run writes a run directory (saveRunCheckpoint), laid out as Hugging Face
// users expect:
//   model.safetensors      the parameters under PyTorch state_dict names (F64 on the reference
//                          backend, F32 on native ones) and __metadata__: format, format_version,
//                          config (fixture-style JSON), tokenizer (and tokenizer_vocab for `char`),
//                          dtype, backend and checksum (the SHA-256 of every tensor and metadata
//                          entry, checksum.ts): the file alone describes and loads the model;
//   config.json            the model configuration with the PyTorch/nanoGPT field names (vocab_size,
//                          block_size, n_layer, n_head, n_embd, ...), for readers that never open
//                          a safetensors header;
//   optimizer.safetensors  the AdamW moments (optimizer.m.<name>, optimizer.v.<name>, the weights'
//                          dtype) and __metadata__ train_state (step, data-sampler RNG state,
//                          hyper-parameters, data source: what a bitwise resume needs) and
//                          weights_sha256, which ties it to the model.safetensors it was saved with;
//   train.jsonl            the run's JSON log (src/train/jsonlog.ts), which holds the loss history.
// crate-ts before 0.2 wrote one file, ckpt.safetensors, holding the weights, the moments and a
// train_state with the whole loss history; such files keep loading and resuming, and saveCheckpoint
// still writes that single-file form (a self-contained snapshot). A path RUN/ckpt.safetensors that
// does not exist resolves to RUN/model.safetensors (resolveCheckpointPath).
// Every file is written to a temp file and renamed (src/io/safetensors.ts), so a kill during a save
// leaves the previous file intact; optimizer.safetensors is written first and model.safetensors
// last, and a pair from two different saves is detected by weights_sha256.
//
// Loading treats the file as untrusted (validate.ts): the format version, every config field, the
// parameter count the config implies against the tensors the file holds, the train_state's shape,
// and the checksum are checked, in that order, before a model is allocated from it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import type { LanguageModel } from '../model/lm.js';
import { LanguageModel as LM } from '../model/lm.js';
import type { ModelConfig } from '../model/config.js';
import type { Backend } from '../backend/types.js';
import { cpuKernelOf } from '../backend/cpu.js';
import { TOKENIZER_NAMES } from '../data/tokenizer.js';
import { CheckpointError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic.js';
import { elide, quote, readSafetensors, tensorBytes, writeSafetensors, type SafetensorsFile, type TensorInput } from '../io/safetensors.js';
import { configToJson, configToMetadata, flatFromNamed, loadStateDict, namedTensors, stateDictFromModel } from './statedict.js';
import { checkParameterCount, checkpointError, parseConfigJson, parseTrainState } from './validate.js';
import { CHECKSUM_KEY, makeChecksum, verifyChecksum } from './checksum.js';

export const CHECKPOINT_FORMAT = 'crate-ts-checkpoint';
/** The version saveCheckpoint writes. 1: no checksum; 2: a `checksum` metadata entry (required). */
export const CHECKPOINT_VERSION = '2';
/** Versions loadCheckpoint reads (a newer file is refused with a message). */
export const CHECKPOINT_VERSIONS_READ: readonly string[] = ['1', '2'];

/** Hyperparameters of a run (stored so --resume continues with the same ones). */
export interface TrainHyper {
  steps: number;
  batch: number;
  seq: number;
  gradAccum: number;
  lr: number;
  minLr: number;
  warmup: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  clip: number;
  seed: number;
  evalEvery: number;
  evalWindows: number;
  saveEvery: number;
  logEvery: number;
  valFraction: number;
}

export interface HistoryPoint {
  step: number;
  loss: number;
  lr: number;
}
export interface EvalPoint {
  step: number;
  val: number;
}

/** Everything besides tensors that a resumed run needs. */
export interface TrainState {
  /** Completed optimizer steps (AdamW's t). */
  step: number;
  /** State of the data sampler's Rng: the data position. */
  dataRng: number[];
  tokensSeen: number;
  /** Seconds of training so far (for reporting only). */
  elapsed: number;
  hyper: TrainHyper;
  data: { source: string; contentHash: string; kind: string; split: string; unigramEntropy: number };
  /**
   * Loss history: only in pre-0.2 single-file checkpoints (and empty when absent); a run directory
   * keeps it in train.jsonl.
   */
  history: HistoryPoint[];
  evals: EvalPoint[];
  preset?: string;
}

/** File names of a run directory. */
export const WEIGHTS_FILE = 'model.safetensors';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const CONFIG_FILE = 'config.json';
/** The single-file checkpoint name of crate-ts before 0.2 (weights, moments and train_state together). */
export const LEGACY_CHECKPOINT_FILE = 'ckpt.safetensors';
export const OPTIMIZER_FORMAT = 'crate-ts-optimizer';
export const OPTIMIZER_VERSION = '1';

export interface Checkpoint {
  /** The weights file (model.safetensors, or a single-file checkpoint). */
  path: string;
  config: ModelConfig;
  tokenizer: string;
  /** The `char` tokenizer's vocabulary (id -> string), null for the others. */
  tokenizerVocab: string[] | null;
  dtype: string;
  backend: string;
  train: TrainState | null;
  file: SafetensorsFile;
  /** Where the AdamW moments are: this file (pre-0.2 single file), optimizer.safetensors beside it, or null. */
  optimizerPath: string | null;
  /** Why training state beside the weights was not used (it belongs to another save, ...), or null. */
  trainProblem: string | null;
}

export interface SaveInput {
  model: LanguageModel<unknown>;
  tokenizer: string;
  /** The `char` tokenizer's vocabulary, stored as metadata tokenizer_vocab (required for `char`). */
  tokenizerVocab?: readonly string[] | null;
  optimizer?: { m: Float64Array; v: Float64Array } | null;
  train?: TrainState | null;
}

export interface LoadCheckpointOptions {
  /**
   * Recompute and compare the SHA-256 of every tensor and metadata entry when the file has a
   * checksum (default true). false skips it, for speed on large trusted files.
   */
  verifyChecksum?: boolean;
}

const dtypeOf = (model: LanguageModel<unknown>): 'F64' | 'F32' => (model.backend.dtype === 'f64' ? 'F64' : 'F32');

/** The weights' metadata (format, config, tokenizer, dtype, backend), without the checksum. */
function weightsMetadata(input: SaveInput, dtype: string): Record<string, string> {
  const md: Record<string, string> = {
    format: CHECKPOINT_FORMAT,
    format_version: CHECKPOINT_VERSION,
    ...configToMetadata(input.model.config),
    tokenizer: input.tokenizer,
    dtype,
    backend: input.model.backend.name,
  };
  // the cpu backend's SGEMM kernel: runs are bitwise reproducible per kernel, not across kernels
  const kernel = cpuKernelOf(input.model.backend);
  if (kernel !== null) md.cpu_kernel = kernel;
  if (input.tokenizer === 'char') {
    if (!input.tokenizerVocab || input.tokenizerVocab.length === 0)
      throw new CheckpointError('saving a checkpoint with the char tokenizer needs its vocabulary (tokenizerVocab)');
    md[VOCAB_KEY] = JSON.stringify(input.tokenizerVocab);
  }
  return md;
}

/** Add the checksum entry to `metadata` for `tensors` (in place) and return it. */
function withChecksum(tensors: Map<string, TensorInput>, metadata: Record<string, string>): Record<string, string> {
  metadata[CHECKSUM_KEY] = makeChecksum(
    (function* () {
      for (const [k, t] of tensors) yield [k, tensorBytes(k, t)] as [string, Uint8Array];
    })(),
    metadata,
  );
  return metadata;
}

function momentTensors(model: LanguageModel<unknown>, optimizer: { m: Float64Array; v: Float64Array }, dtype: 'F64' | 'F32'): Map<string, TensorInput> {
  const tensors = new Map<string, TensorInput>();
  for (const [k, v] of namedTensors(model, optimizer.m, 'optimizer.m.', dtype)) tensors.set(k, v);
  for (const [k, v] of namedTensors(model, optimizer.v, 'optimizer.v.', dtype)) tensors.set(k, v);
  return tensors;
}

/**
 * Write a single-file checkpoint atomically: the weights and their metadata, plus (when given) the
 * AdamW moments and train_state in the same file. This is the layout of crate-ts before 0.2 and a
 * self-contained snapshot; training runs write a run directory (saveRunCheckpoint).
 */
export function saveCheckpoint(file: string, input: SaveInput): void {
  const { model } = input;
  const dtype = dtypeOf(model);
  const tensors = new Map<string, TensorInput>(Object.entries(stateDictFromModel(model, dtype)));
  if (input.optimizer) for (const [k, v] of momentTensors(model, input.optimizer, dtype)) tensors.set(k, v);
  const metadata = weightsMetadata(input, dtype);
  if (input.train) metadata.train_state = JSON.stringify(input.train);
  writeSafetensors(file, tensors, withChecksum(tensors, metadata));
}

export interface RunCheckpointFiles {
  weights: string;
  config: string;
  optimizer: string | null;
}

/**
 * Write a checkpoint into the run directory `dir` (which must exist): optimizer.safetensors (when
 * the input has moments or a train state), config.json, then model.safetensors, each atomically.
 * The loss history is not stored here (the run's train.jsonl holds it): input.train.history and
 * .evals are left out.
 */
export function saveRunCheckpoint(dir: string, input: SaveInput): RunCheckpointFiles {
  const { model } = input;
  const dtype = dtypeOf(model);
  const weights = new Map<string, TensorInput>(Object.entries(stateDictFromModel(model, dtype)));
  const metadata = withChecksum(weights, weightsMetadata(input, dtype));
  const files: RunCheckpointFiles = { weights: path.join(dir, WEIGHTS_FILE), config: path.join(dir, CONFIG_FILE), optimizer: null };
  if (input.optimizer || input.train) {
    const moments = input.optimizer ? momentTensors(model, input.optimizer, dtype) : new Map<string, TensorInput>();
    const om: Record<string, string> = { format: OPTIMIZER_FORMAT, format_version: OPTIMIZER_VERSION, weights_sha256: weightsLink(metadata) };
    if (input.train) {
      const { history: _h, evals: _e, ...rest } = input.train;
      om.train_state = JSON.stringify(rest);
    }
    files.optimizer = path.join(dir, OPTIMIZER_FILE);
    writeSafetensors(files.optimizer, moments, withChecksum(moments, om));
  }
  writeTextAtomic(files.config, JSON.stringify(configToJson(model.config, { tokenizer: input.tokenizer, dtype }), null, 2) + '\n');
  writeSafetensors(files.weights, weights, metadata);
  return files;
}

/** What optimizer.safetensors records of the weights it belongs to: the SHA-256 of their checksum entry. */
function weightsLink(weightsMd: Record<string, string>): string {
  return createHash('sha256')
    .update(weightsMd[CHECKSUM_KEY] ?? '')
    .digest('hex');
}

function writeTextAtomic(file: string, text: string): void {
  try {
    writeFileAtomic(file, text, { fsync: true });
  } catch (e) {
    throw new CheckpointError((e as Error).message, { cause: e });
  }
}

/**
 * The weights file a path names: a file as it is; a run directory's model.safetensors (or, for a
 * run of crate-ts before 0.2, its ckpt.safetensors); and RUN/ckpt.safetensors, when that file does
 * not exist but RUN/model.safetensors does, the latter (ckpt.safetensors is the pre-0.2 name).
 */
export function resolveCheckpointPath(p: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch {
    const renamed = path.join(path.dirname(p), WEIGHTS_FILE);
    if (path.basename(p) === LEGACY_CHECKPOINT_FILE && isFile(renamed)) return renamed;
    throw new CheckpointError(`checkpoint '${elide(p, 200)}' does not exist`);
  }
  if (!st.isDirectory()) return p;
  for (const name of [WEIGHTS_FILE, LEGACY_CHECKPOINT_FILE]) {
    const f = path.join(p, name);
    if (isFile(f)) return f;
  }
  throw new CheckpointError(`'${elide(p, 160)}' is a directory without a checkpoint (${WEIGHTS_FILE}, or ${LEGACY_CHECKPOINT_FILE} of crate-ts before 0.2)`);
}

/** resolveCheckpointPath for a path that exists or is a renamed ckpt.safetensors; anything else as it is (the reader names the problem). */
function resolveForLoad(p: string): string {
  try {
    return resolveCheckpointPath(p);
  } catch (e) {
    if (fs.existsSync(p)) throw e;
    return p;
  }
}

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** The metadata key of the char tokenizer's vocabulary (a JSON array of strings, id order). */
export const VOCAB_KEY = 'tokenizer_vocab';
/** Largest char vocabulary accepted (token ids are uint16 in the data files). */
const MAX_CHAR_VOCAB = 65536;

/** Parse and check tokenizer_vocab: an array of distinct non-empty strings no longer than the model's vocabulary. */
function parseVocab(json: string | undefined, file: string, vocabSize: number): string[] {
  if (json === undefined) throw checkpointError(file, `metadata "tokenizer" is "char" but "${VOCAB_KEY}" (its vocabulary) is missing`);
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    throw checkpointError(file, `metadata "${VOCAB_KEY}" is not valid JSON`);
  }
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > MAX_CHAR_VOCAB)
    throw checkpointError(file, `metadata "${VOCAB_KEY}" must be a non-empty JSON array of at most ${MAX_CHAR_VOCAB} strings`);
  if (raw.length > vocabSize) throw checkpointError(file, `metadata "${VOCAB_KEY}" holds ${raw.length} tokens, more than the model's vocab_size ${vocabSize}`);
  const seen = new Set<string>();
  raw.forEach((s, i) => {
    if (typeof s !== 'string' || s.length === 0) throw checkpointError(file, `metadata "${VOCAB_KEY}" entry ${i} must be a non-empty string, got ${quote(s)}`);
    if (seen.has(s)) throw checkpointError(file, `metadata "${VOCAB_KEY}" lists ${quote(s)} twice`);
    seen.add(s);
  });
  return raw as string[];
}

/**
 * Read a checkpoint (or any safetensors state_dict whose metadata has a config), validating it as an
 * untrusted file. `file` may be a run directory (resolveCheckpointPath). The training state of a
 * run directory is read from the optimizer.safetensors beside the weights (its header only; the
 * moments are read by optimizerFromCheckpoint). Throws a CheckpointError naming the file and the
 * field or tensor at fault.
 */
export function loadCheckpoint(file: string, opts: LoadCheckpointOptions = {}): Checkpoint {
  file = resolveForLoad(file);
  let st: SafetensorsFile;
  try {
    st = readSafetensors(file);
  } catch (e) {
    throw checkpointError('cannot read checkpoint', (e as Error).message, e);
  }
  const md = st.metadata;
  const foreign = foreignGpt2(st);
  if (foreign) throw checkpointError(file, foreign);
  if (md.config === undefined) {
    throw checkpointError(
      file,
      'not a crate-ts checkpoint (its safetensors metadata has no "config"; a bare state_dict can be loaded with loadStateDict into a model of known configuration)',
    );
  }
  // A crate-ts checkpoint says which version wrote it; PyTorch-made files and fixtures have no "format".
  const ours = md.format === CHECKPOINT_FORMAT;
  if (ours) checkVersion(md.format_version, file);
  const config = parseConfigJson(md.config, file, md.arch);
  if (md.tokenizer !== undefined && !(TOKENIZER_NAMES as readonly string[]).includes(md.tokenizer)) {
    throw checkpointError(file, `metadata "tokenizer" is ${quote(md.tokenizer)}; known tokenizers: ${TOKENIZER_NAMES.join(', ')}`);
  }
  checkParameterCount(config, st.tensors, file);
  let train = md.train_state === undefined ? null : parseTrainState(md.train_state, file, config);
  if (opts.verifyChecksum !== false) {
    if (ours && md.format_version !== '1' && md[CHECKSUM_KEY] === undefined) {
      throw checkpointError(
        file,
        `metadata "${CHECKSUM_KEY}" is missing; format_version ${md.format_version} checkpoints always carry one (the file was edited)`,
      );
    }
    verifyChecksum(st, file);
  }
  const tokenizerVocab = md.tokenizer === 'char' ? parseVocab(md[VOCAB_KEY], file, config.vocabSize) : null;
  let optimizerPath: string | null = null,
    trainProblem: string | null = null;
  if (train) {
    if (st.tensors.has('optimizer.m.' + firstParamName(st))) optimizerPath = file;
  } else {
    const beside = path.join(path.dirname(file), OPTIMIZER_FILE);
    if (ours && isFile(beside)) {
      const om = readMetadataOnly(beside);
      if (om.format !== OPTIMIZER_FORMAT) trainProblem = `${beside} is not a crate-ts optimizer state (metadata "format" is ${quote(om.format)})`;
      else if (om.format_version !== OPTIMIZER_VERSION)
        trainProblem = `${beside} has format_version ${quote(om.format_version)}; this crate-ts reads ${OPTIMIZER_VERSION}`;
      else if (om.weights_sha256 !== weightsLink(md))
        trainProblem = `${beside} belongs to another save than ${path.basename(file)} (a save was interrupted between the two files, or one was replaced)`;
      else {
        if (om.train_state !== undefined) train = parseTrainState(om.train_state, beside, config);
        optimizerPath = beside;
      }
    }
  }
  return {
    path: file,
    config,
    tokenizer: md.tokenizer ?? (config.vocabSize <= 256 ? 'byte' : 'gpt2'),
    tokenizerVocab,
    dtype: md.dtype ?? '?',
    backend: md.backend ?? '?',
    train,
    file: st,
    optimizerPath,
    trainProblem,
  };
}

/**
 * Hugging Face / nanoGPT GPT-2 weights (GELU MLP, biases in every Linear and LayerNorm) are another
 * model than the paper's GPT-2 baseline (ReLU MLP, bias=False) and cannot be loaded: say so by
 * name, instead of a parameter-count or missing-config message. Recognised by a bias on the MLP or
 * the attention projection of a block (`[transformer.]h.<i>.mlp.c_fc.bias`, `.attn.c_attn.bias`).
 */
function foreignGpt2(st: SafetensorsFile): string | null {
  for (const name of st.tensors.keys()) {
    if (/^(transformer\.)?h\.\d+\.(mlp\.c_fc|attn\.c_attn)\.bias$/.test(name)) {
      return `holds a GPT-2 with biases (${elide(name, 40)}): Hugging Face/nanoGPT GPT-2 weights (GELU, biases) are another model than the paper's baseline (ReLU, bias=False) and cannot be loaded`;
    }
  }
  return null;
}

/** The name of the first parameter tensor of a state_dict file (for the optimizer.m.<name> probe). */
function firstParamName(st: SafetensorsFile): string {
  return st.tensors.has('transformer.wte.weight') ? 'transformer.wte.weight' : ([...st.tensors.keys()].find((k) => k.startsWith('transformer.')) ?? '');
}

/** The __metadata__ of a safetensors file, reading only its header (the moments can be large). */
function readMetadataOnly(file: string): Record<string, string> {
  const fail = (problem: string): never => {
    throw checkpointError(file, problem);
  };
  let fd: number | null = null;
  try {
    fd = fs.openSync(file, 'r');
    const size = fs.fstatSync(fd).size;
    const head = Buffer.alloc(8);
    if (size < 8 || fs.readSync(fd, head, 0, 8, 0) !== 8) fail(`truncated: ${size} bytes, shorter than the 8-byte header length prefix`);
    const n = head.readBigUInt64LE(0);
    if (n > BigInt(Math.min(MAX_HEADER, size - 8)))
      fail(`header length ${n} extends past the end of the file (${size} bytes) or the limit of ${MAX_HEADER} bytes`);
    const buf = Buffer.alloc(Number(n));
    if (fs.readSync(fd, buf, 0, buf.length, 8) !== buf.length) fail('header could not be read whole');
    let header: unknown;
    try {
      header = JSON.parse(buf.toString('utf8'));
    } catch {
      fail('header is not valid JSON');
    }
    const md = (header as Record<string, unknown> | null)?.__metadata__;
    if (md === undefined || md === null) return {};
    if (typeof md !== 'object' || Array.isArray(md) || Object.values(md).some((v) => typeof v !== 'string'))
      fail('"__metadata__" must be an object of strings');
    return Object.fromEntries(Object.entries(md as Record<string, string>));
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    throw checkpointError(file, `cannot read file: ${(e as Error).message}`, e);
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}
const MAX_HEADER = 100_000_000;

/** Accept the versions this crate-ts has written; refuse newer (or malformed) ones by name. */
function checkVersion(v: string | undefined, file: string): void {
  if (v === undefined) throw checkpointError(file, `metadata "format_version" is missing (a ${CHECKPOINT_FORMAT} always has one)`);
  if (CHECKPOINT_VERSIONS_READ.includes(v)) return;
  if (/^[1-9][0-9]{0,8}$/.test(v) && Number(v) > Number(CHECKPOINT_VERSION)) {
    throw checkpointError(
      file,
      `format_version ${v} was written by a newer crate-ts; this one reads versions ${CHECKPOINT_VERSIONS_READ.join(', ')} (upgrade crate-ts)`,
    );
  }
  throw checkpointError(file, `metadata "format_version" is ${quote(v)}, not a version this crate-ts reads (${CHECKPOINT_VERSIONS_READ.join(', ')})`);
}

/** Build a model on `backend` from a checkpoint's parameters (validated by loadStateDict). */
export function modelFromCheckpoint<Buf>(ck: Checkpoint, backend: Backend<Buf>): LanguageModel<Buf> {
  // A Checkpoint may be assembled by hand: recheck the size before allocating from its config.
  checkParameterCount(ck.config, ck.file.tensors, ck.path);
  const model = new LM(backend, ck.config, { seed: 0 });
  try {
    loadStateDict(model as LanguageModel<unknown>, ck.file.tensors, ck.path);
  } catch (e) {
    model.free();
    throw e;
  }
  return model;
}

/**
 * The AdamW moments of a checkpoint, or null when it has none: from the file itself (a pre-0.2
 * single-file checkpoint) or from the optimizer.safetensors beside it (read and checksum-verified
 * here).
 */
export function optimizerFromCheckpoint(ck: Checkpoint, model: LanguageModel<unknown>): { m: Float64Array; v: Float64Array } | null {
  const first = model.table[0].name;
  let tensors = ck.file.tensors,
    source = ck.path;
  const beside = ck.optimizerPath;
  if (beside && beside !== ck.path) {
    let st: SafetensorsFile;
    try {
      st = readSafetensors(beside);
    } catch (e) {
      throw checkpointError('cannot read the optimizer state', (e as Error).message, e);
    }
    verifyChecksum(st, beside);
    tensors = st.tensors;
    source = beside;
  }
  if (!tensors.has('optimizer.m.' + first)) return null;
  return {
    m: flatFromNamed(model, tensors, 'optimizer.m.', source),
    v: flatFromNamed(model, tensors, 'optimizer.v.', source),
  };
}
