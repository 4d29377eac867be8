// Training checkpoints: one safetensors file holding
//   - the parameters under PyTorch state_dict names (F64 on the reference backend, F32 on native ones),
//   - the AdamW moments as optimizer.m.<name> / optimizer.v.<name> (same dtype),
//   - __metadata__: format, format_version, config (fixture-style JSON), tokenizer, dtype, backend,
//     train_state (step, data-sampler RNG state, hyperparameters, data source, loss history), and
//     (format_version 2) checksum: the SHA-256 of every tensor and metadata entry (checksum.ts).
// Files are written to a temp file and renamed (src/io/safetensors.ts), so a kill during a save
// leaves the previous checkpoint intact.
//
// Loading treats the file as untrusted (validate.ts): the format version, every config field, the
// parameter count the config implies against the tensors the file holds, the checksum, and the
// train_state's shape are checked before a model is allocated from it.
import type { LanguageModel } from '../model/lm.js';
import { LanguageModel as LM } from '../model/lm.js';
import type { ModelConfig } from '../model/config.js';
import type { Backend } from '../backend/types.js';
import { TOKENIZER_NAMES } from '../data/tokenizer.js';
import { quote, readSafetensors, tensorBytes, writeSafetensors, type SafetensorsFile, type TensorInput } from '../io/safetensors.js';
import { configToMetadata, flatFromNamed, loadStateDict, namedTensors, stateDictFromModel } from './statedict.js';
import { checkParameterCount, checkpointError, parseConfigJson, parseTrainState } from './validate.js';
import { CHECKSUM_KEY, makeChecksum, verifyChecksum } from './checksum.js';

export const CHECKPOINT_FORMAT = 'crate-ts-checkpoint';
/** The version saveCheckpoint writes. 1: no checksum; 2: a `checksum` metadata entry (required). */
export const CHECKPOINT_VERSION = '2';
/** Versions loadCheckpoint reads (a newer file is refused with a message). */
export const CHECKPOINT_VERSIONS_READ: readonly string[] = ['1', '2'];

/** Hyperparameters of a run (stored so --resume continues with the same ones). */
export interface TrainHyper {
  steps: number; batch: number; seq: number; gradAccum: number;
  lr: number; minLr: number; warmup: number; weightDecay: number;
  beta1: number; beta2: number; eps: number; clip: number;
  seed: number; evalEvery: number; evalWindows: number; saveEvery: number; logEvery: number;
  valFraction: number;
}

export interface HistoryPoint { step: number; loss: number; lr: number }
export interface EvalPoint { step: number; val: number }

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
  history: HistoryPoint[];
  evals: EvalPoint[];
  preset?: string;
}

export interface Checkpoint {
  path: string;
  config: ModelConfig;
  tokenizer: string;
  dtype: string;
  backend: string;
  train: TrainState | null;
  file: SafetensorsFile;
}

export interface SaveInput {
  model: LanguageModel<unknown>;
  tokenizer: string;
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

/** Write a checkpoint atomically. */
export function saveCheckpoint(file: string, input: SaveInput): void {
  const { model } = input;
  const dtype = model.backend.dtype === 'f64' ? 'F64' : 'F32';
  const tensors = new Map<string, TensorInput>(Object.entries(stateDictFromModel(model, dtype)));
  if (input.optimizer) {
    for (const [k, v] of namedTensors(model, input.optimizer.m, 'optimizer.m.', dtype)) tensors.set(k, v);
    for (const [k, v] of namedTensors(model, input.optimizer.v, 'optimizer.v.', dtype)) tensors.set(k, v);
  }
  const metadata: Record<string, string> = {
    format: CHECKPOINT_FORMAT,
    format_version: CHECKPOINT_VERSION,
    ...configToMetadata(model.config),
    tokenizer: input.tokenizer,
    dtype,
    backend: model.backend.name,
  };
  if (input.train) metadata.train_state = JSON.stringify(input.train);
  metadata[CHECKSUM_KEY] = makeChecksum(function* () { for (const [k, t] of tensors) yield [k, tensorBytes(k, t)] as [string, Uint8Array]; }(), metadata);
  writeSafetensors(file, tensors, metadata);
}

/**
 * Read a checkpoint (or any safetensors state_dict whose metadata has a config), validating it as an
 * untrusted file. Throws a CheckpointError naming the file and the field or tensor at fault.
 */
export function loadCheckpoint(file: string, opts: LoadCheckpointOptions = {}): Checkpoint {
  let st: SafetensorsFile;
  try {
    st = readSafetensors(file);
  } catch (e) {
    throw checkpointError('cannot read checkpoint', (e as Error).message, e);
  }
  const md = st.metadata;
  if (md.config === undefined) {
    throw checkpointError(file, 'not a crate-ts checkpoint (its safetensors metadata has no "config"; a bare state_dict can be loaded with loadStateDict into a model of known configuration)');
  }
  // A crate-ts checkpoint says which version wrote it; PyTorch-made files and fixtures have no "format".
  const ours = md.format === CHECKPOINT_FORMAT;
  if (ours) checkVersion(md.format_version, file);
  const config = parseConfigJson(md.config, file, md.arch);
  if (md.tokenizer !== undefined && !(TOKENIZER_NAMES as readonly string[]).includes(md.tokenizer)) {
    throw checkpointError(file, `metadata "tokenizer" is ${quote(md.tokenizer)}; known tokenizers: ${TOKENIZER_NAMES.join(', ')}`);
  }
  checkParameterCount(config, st.tensors, file);
  if (opts.verifyChecksum !== false) {
    if (ours && md.format_version !== '1' && md[CHECKSUM_KEY] === undefined) {
      throw checkpointError(file, `metadata "${CHECKSUM_KEY}" is missing; format_version ${md.format_version} checkpoints always carry one (the file was edited)`);
    }
    verifyChecksum(st, file);
  }
  const train = md.train_state === undefined ? null : parseTrainState(md.train_state, file, config);
  return { path: file, config, tokenizer: md.tokenizer ?? (config.vocabSize <= 256 ? 'byte' : 'gpt2'), dtype: md.dtype ?? '?', backend: md.backend ?? '?', train, file: st };
}

/** Accept the versions this crate-ts has written; refuse newer (or malformed) ones by name. */
function checkVersion(v: string | undefined, file: string): void {
  if (v === undefined) throw checkpointError(file, `metadata "format_version" is missing (a ${CHECKPOINT_FORMAT} always has one)`);
  if (CHECKPOINT_VERSIONS_READ.includes(v)) return;
  if (/^[1-9][0-9]{0,8}$/.test(v) && Number(v) > Number(CHECKPOINT_VERSION)) {
    throw checkpointError(file, `format_version ${v} was written by a newer crate-ts; this one reads versions ${CHECKPOINT_VERSIONS_READ.join(', ')} (upgrade crate-ts)`);
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

/** The AdamW moments stored in a checkpoint, or null when it has none. */
export function optimizerFromCheckpoint(ck: Checkpoint, model: LanguageModel<unknown>): { m: Float64Array; v: Float64Array } | null {
  const first = model.table[0].name;
  if (!ck.file.tensors.has('optimizer.m.' + first)) return null;
  return {
    m: flatFromNamed(model, ck.file.tensors, 'optimizer.m.', ck.path),
    v: flatFromNamed(model, ck.file.tensors, 'optimizer.v.', ck.path),
  };
}
