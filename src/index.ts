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
export { SINGLE, SingleCommunicator, foldInto, type Communicator, type DeviceCollectives, type DistKind } from './distributed/communicator.js';
export { GradientReducer, gradientBuckets, DEFAULT_BUCKET_BYTES, type Bucket, type ReducerOptions } from './distributed/reducer.js';
export { openCommunicator, type DistChoice } from './distributed/select.js';
export { launchInfo, type LaunchInfo } from './distributed/launch.js';
export * as reference from './reference/index.js';
export * as codingRate from './verify/codingrate.js';
// Hook tensors: float64 ndarray views, and their dense copies.
export { toDense, view } from './model/hooks.js';
// Steering (paper A, spec 8): clamp one neuron and compare next-token distributions.
export {
  steer,
  sweep,
  nextToken,
  softmax,
  klDivergence,
  PAPER_PROMPT,
  type SteerResult,
  type SteerOptions,
  type TokenEffect,
  type Distribution,
} from './steer/steer.js';
export { clampHooks, parseClamp, type Clamp, type ClampHookOptions } from './steer/clamp.js';
// Neuron records: the streaming collector, collection of a checkpoint, the collection files.
export { LayerCollector, type LayerCollectorOptions, type NeuronSelection, type Selected } from './neurons/collector.js';
export { collect, CollectInterrupted, type CollectOptions, type CollectSummary } from './neurons/collect.js';
export { readManifest, readLayer, readTokens, type ActivationRecord, type NeuronRecord, type CollectionManifest } from './neurons/format.js';
// Scores (spec 7.3-7.8): correlation over the concatenated records, R² about zero, absolute
// deviation explained, prompt normalisation, the splits, and the offline token-lookup scorer.
export {
  pearson,
  rSquaredAboutZero,
  absoluteDevExplained,
  normalizeActivations,
  maxActivation,
  flatten,
  tarSplit,
  randomOnlySplit,
  anthropicSplit,
  splitFor,
  meanOfFinite,
  populationVariance,
  SPLIT_NAMES,
  type SplitName,
  type Split,
  type NeuronRecords,
} from './neurons/scoring.js';
export { scoreCollection, scoreNeuron, type CollectionScores, type LayerScore, type NeuronScore } from './neurons/score.js';
export { decodeText, TEXT_ENCODINGS, type TextEncodingName } from './data/corpus.js';
