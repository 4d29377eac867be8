// Training checkpoints: one safetensors file holding
//   - the parameters under PyTorch state_dict names (F64 on the reference backend, F32 on native ones),
//   - the AdamW moments as optimizer.m.<name> / optimizer.v.<name> (same dtype),
//   - __metadata__: format, config (fixture-style JSON), tokenizer, dtype, backend, and train_state
//     (step, data-sampler RNG state, hyperparameters, data source, loss history).
// Files are written to a temp file and renamed (src/io/safetensors.ts), so a kill during a save
// leaves the previous checkpoint intact.
import type { LanguageModel } from '../model/lm.js';
import { LanguageModel as LM } from '../model/lm.js';
import type { ModelConfig } from '../model/config.js';
import type { Backend } from '../backend/types.js';
import { readSafetensors, writeSafetensors, type SafetensorsFile, type TensorInput } from '../io/safetensors.js';
import { configFromMetadata, configToMetadata, flatFromNamed, loadStateDict, namedTensors, stateDictFromModel } from './statedict.js';

export const CHECKPOINT_FORMAT = 'crate-ts-checkpoint';
export const CHECKPOINT_VERSION = '1';

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
  writeSafetensors(file, tensors, metadata);
}

/** Read a checkpoint (or any safetensors state_dict whose metadata has a config). */
export function loadCheckpoint(file: string): Checkpoint {
  let st: SafetensorsFile;
  try {
    st = readSafetensors(file);
  } catch (e) {
    throw new Error(`cannot read checkpoint: ${(e as Error).message}`);
  }
  const md = st.metadata;
  if (md.config === undefined) {
    throw new Error(`${file}: not a crate-ts checkpoint (its safetensors metadata has no "config"; a bare state_dict can be loaded with loadStateDict into a model of known configuration)`);
  }
  const config = configFromMetadata(md.config, file);
  let train: TrainState | null = null;
  if (md.train_state !== undefined) {
    try {
      train = JSON.parse(md.train_state) as TrainState;
    } catch (e) {
      throw new Error(`${file}: metadata "train_state" is not valid JSON (${(e as Error).message})`);
    }
  }
  return { path: file, config, tokenizer: md.tokenizer ?? (config.vocabSize <= 256 ? 'byte' : 'gpt2'), dtype: md.dtype ?? '?', backend: md.backend ?? '?', train, file: st };
}

/** Build a model on `backend` from a checkpoint's parameters (validated by loadStateDict). */
export function modelFromCheckpoint<Buf>(ck: Checkpoint, backend: Backend<Buf>): LanguageModel<Buf> {
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
