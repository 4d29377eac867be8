// crate-ts public API.
export type { Backend, BackendName } from './backend/types.js';
export { ReferenceBackend } from './backend/reference.js';
export { selectBackend, type BackendChoice, type SelectedBackend } from './backend/select.js';
export { LanguageModel, type ForwardResult, type ForwardOptions } from './model/lm.js';
export { makeConfig, validateConfig, PRESETS, DEFAULTS, type ModelConfig, type Arch } from './model/config.js';
export { paramTable, numParams, type ParamSpec } from './model/params.js';
export { AdamW, clipGradNorm, lrAt } from './train/optimizer.js';
export { loadCheckpoint, saveCheckpoint, modelFromCheckpoint } from './checkpoint/checkpoint.js';
export { loadStateDict, stateDictFromModel } from './checkpoint/statedict.js';
export { readSafetensors, writeSafetensors, parseSafetensors, serializeSafetensors } from './io/safetensors.js';
export { runChecks } from './verify/properties.js';
export { auditFixture, loadFixture } from './audit/fixture.js';
export { auditBackends } from './audit/crossbackend.js';
export { Rng } from './util/rng.js';
export * as reference from './reference/index.js';
export * as codingRate from './verify/codingrate.js';
