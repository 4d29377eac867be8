// crate-ts public API.
export type { Backend, BackendName } from './backend/types.js';
export { ReferenceBackend } from './backend/reference.js';
export { selectBackend, type BackendChoice, type SelectedBackend } from './backend/select.js';
export { LanguageModel, type ForwardResult, type ForwardOptions, type RunOptions, type CacheOptions, type CacheResult, type Hooks } from './model/lm.js';
export { Decoder, type DecoderOptions } from './model/decoder.js';
export { ActivationCache, hookPoints, neuronHook, type Activation, type HookFn, type HookPoint } from './model/hooks.js';
export { CrateError, UsageError, DataError, CheckpointError, NumericsError, InternalError, isUserError, type ErrorKind } from './errors.js';
export { loadTokenizer, TOKENIZER_NAMES, type Tokenizer, type TokenizerName } from './data/tokenizer.js';
export { loadDataset, EMBEDDED_NAME, type Dataset, type LoadOptions } from './data/corpus.js';
export { BatchSampler, evalBatches, unigramEntropy, type Batch } from './data/batches.js';
export { generate, sampleToken, type SampleOptions } from './sample/generate.js';
export { makeConfig, validateConfig, PRESETS, DEFAULTS, type ModelConfig, type Arch } from './model/config.js';
export { paramTable, numParams, type ParamSpec } from './model/params.js';
export { registerArchitecture, architecture, architectures, archNames } from './model/archs.js';
export type { Architecture, Block, ParamDecl, HookDecl } from './model/blocks/block.js';
export { AdamW, clipGradNorm, lrAt } from './train/optimizer.js';
export {
  Trainer,
  train,
  resolveRun,
  RUN_DEFAULTS,
  type TrainRequest,
  type TrainResult,
  type StepResult,
  type StepEvent,
  type EvalEvent,
  type SaveEvent,
  type RunResult,
} from './train/trainer.js';
export { loadCheckpoint, saveCheckpoint, modelFromCheckpoint } from './checkpoint/checkpoint.js';
export { loadStateDict, stateDictFromModel } from './checkpoint/statedict.js';
export { readSafetensors, writeSafetensors, parseSafetensors, serializeSafetensors } from './io/safetensors.js';
export { runChecks } from './verify/properties.js';
export { auditFixture, loadFixture } from './audit/fixture.js';
export { auditBackends } from './audit/crossbackend.js';
export { Rng } from './util/rng.js';
export { SINGLE, SingleCommunicator, foldInto, type Communicator, type DistKind } from './distributed/communicator.js';
export { openCommunicator, type DistChoice } from './distributed/select.js';
export { launchInfo, type LaunchInfo } from './distributed/launch.js';
export * as reference from './reference/index.js';
export * as codingRate from './verify/codingrate.js';
