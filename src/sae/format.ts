// SAE directories in SAELens' layout (README "Sparse autoencoders"):
//   cfg.json                     SAELens' config: d_in, d_sae, architecture ("standard" | "topk", with k),
//                                apply_b_dec_to_input, normalize_activations, dtype, metadata (SAELens'
//                                SAEMetadata fields only: SAELens builds SAEMetadata(**metadata), which
//                                rejects other keys) and crate-ts's own block under "crate_ts" (a
//                                top-level key SAELens' loader filters out)
//   sae_weights.safetensors      W_enc (d_in, d_sae), W_dec (d_sae, d_in), b_enc (d_sae), b_dec (d_in), F32
//   sparsity.safetensors         "sparsity": log10 of each feature's firing frequency over training (d_sae)
//   train.jsonl                  one JSON line per logged step
//   optimizer_state.safetensors  what --resume needs (Adam moments, the activation buffer, counters)
// Every file is written under a temporary name and renamed; cfg.json goes last, so a directory with a
// cfg.json has weights that belong to it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CheckpointError, DataError } from '../errors.js';
import { readSafetensors, serializeSafetensors, toFloat64, writeSafetensorsStreamed, type DeferredTensor, type TensorInput } from '../io/safetensors.js';
import { writeFileAtomic } from '../util/atomic.js';

export const CFG_FILE = 'cfg.json';
export const WEIGHTS_FILE = 'sae_weights.safetensors';
export const SPARSITY_FILE = 'sparsity.safetensors';
export const TRAIN_LOG_FILE = 'train.jsonl';
export const STATE_FILE = 'optimizer_state.safetensors';

export type SaeArch = 'relu' | 'topk';

/** crate-ts's block of cfg.json. */
export interface CrateSaeBlock {
  crate_ts_version: string;
  checkpoint_sha256: string;
  checkpoint_path: string;
  layer: number;
  tokens_seen: number;
  steps: number;
  recipe: {
    arch: SaeArch;
    expansion: number;
    l1: number | null;
    k: number | null;
    aux_k: number | null;
    aux_coef: number | null;
    dead_tokens: number | null;
    lr: number;
    warmup_steps: number;
    beta1: number;
    beta2: number;
    batch_tokens: number;
    /** Micro-batches per step over all ranks (absent: 1). */
    grad_accum?: number;
    buffer_tokens: number;
    tokens: number;
    resample_at: number[];
    loss: string;
  };
  seed: number;
  backend: string;
  data: { source: string; sha256: string; split: string };
}

export interface SaeCfg {
  architecture: 'standard' | 'topk';
  d_in: number;
  d_sae: number;
  k?: number;
  dtype: string;
  device: string;
  apply_b_dec_to_input: boolean;
  normalize_activations: string;
  reshape_activations: string;
  metadata: {
    model_name: string;
    hook_name: string;
    hook_layer: number;
    hook_head_index: null;
    model_class_name: string;
    context_size: number;
    dataset_path: string;
    prepend_bos: boolean;
    [k: string]: unknown;
  };
  crate_ts?: CrateSaeBlock;
}

/** An SAE's parameters in float64, in SAELens' layouts. */
export interface SaeWeights {
  D: number;
  S: number;
  Wenc: Float64Array; // (D, S)
  benc: Float64Array; // (S)
  Wdec: Float64Array; // (S, D)
  bdec: Float64Array; // (D)
}

/** A loaded SAE: its config as read (with defaults resolved) and its weights. */
export interface LoadedSae {
  dir: string;
  cfg: SaeCfg;
  weights: SaeWeights;
  /** top-k's k; d_sae for the standard (relu) SAE. */
  k: number;
  applyBDec: boolean;
  hookName: string;
  checkpointSha256: string | null;
}

/** The four parameter tensors, in any float array (views of one flat buffer included). */
export interface SaeTensors {
  D: number;
  S: number;
  Wenc: Float32Array | Float64Array;
  benc: Float32Array | Float64Array;
  Wdec: Float32Array | Float64Array;
  bdec: Float32Array | Float64Array;
}

/**
 * Write sae_weights.safetensors (F32, SAELens' names and shapes), one tensor at a time: a Float32Array
 * (or a view) is written as it is, a Float64Array is rounded to float32 one tensor at a time.
 */
export function writeWeights(dir: string, w: SaeTensors): void {
  const f32 = (shape: number[], data: Float32Array | Float64Array): DeferredTensor => ({
    dtype: 'F32',
    shape,
    data: () => (data instanceof Float32Array ? data : Float32Array.from(data)),
  });
  writeSafetensorsStreamed(
    path.join(dir, WEIGHTS_FILE),
    new Map([
      ['W_enc', f32([w.D, w.S], w.Wenc)],
      ['W_dec', f32([w.S, w.D], w.Wdec)],
      ['b_enc', f32([w.S], w.benc)],
      ['b_dec', f32([w.D], w.bdec)],
    ]),
    { format: 'pt' },
  );
}

/** Write sparsity.safetensors: log10 of each feature's firing frequency (−Inf for a feature never seen firing, as SAELens). */
export function writeSparsity(dir: string, fires: Float64Array, tokens: number): void {
  const log = Float32Array.from(fires, (c) => Math.log10(tokens > 0 ? c / tokens : 0));
  writeFileAtomic(
    path.join(dir, SPARSITY_FILE),
    serializeSafetensors(new Map([['sparsity', { dtype: 'F32', shape: [fires.length], data: log } as TensorInput]])),
  );
}

export function writeCfg(dir: string, cfg: SaeCfg): void {
  writeFileAtomic(path.join(dir, CFG_FILE), JSON.stringify(cfg, null, 2) + '\n');
}

const ARCH_OF: Record<string, SaeArch> = { standard: 'relu', topk: 'topk' };

function must(cond: boolean, msg: string): asserts cond {
  if (!cond) throw new DataError(msg);
}

/**
 * Read an SAE directory in SAELens' layout (made by crate-ts or elsewhere). Errors are one line:
 * no cfg.json, unreadable JSON, another architecture, activation normalisation, truncated or
 * mis-shaped weights.
 */
export function loadSae(dir: string): LoadedSae {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new DataError(`SAE directory '${dir}' does not exist`);
  const cfgPath = path.join(dir, CFG_FILE);
  if (!fs.existsSync(cfgPath)) throw new DataError(`'${dir}' has no ${CFG_FILE}: not an SAE directory in SAELens' layout (cfg.json + ${WEIGHTS_FILE})`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(fs.readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new DataError(`${cfgPath}: not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
  must(raw !== null && typeof raw === 'object' && !Array.isArray(raw), `${cfgPath}: not a JSON object`);
  const arch = String(raw.architecture ?? 'standard');
  must(arch in ARCH_OF, `${cfgPath}: architecture '${arch}' is not supported (crate-ts reads 'standard' (relu) and 'topk' SAEs)`);
  const dIn = raw.d_in,
    dSae = raw.d_sae;
  must(Number.isInteger(dIn) && (dIn as number) >= 1, `${cfgPath}: d_in must be a positive integer, got ${JSON.stringify(dIn)}`);
  must(Number.isInteger(dSae) && (dSae as number) >= 1, `${cfgPath}: d_sae must be a positive integer, got ${JSON.stringify(dSae)}`);
  const D = dIn as number,
    S = dSae as number;
  const norm = raw.normalize_activations ?? 'none';
  must(norm === 'none' || norm === null, `${cfgPath}: normalize_activations '${String(norm)}' is not supported (only 'none')`);
  let k = S;
  if (arch === 'topk') {
    must(
      Number.isInteger(raw.k) && (raw.k as number) >= 1 && (raw.k as number) <= S,
      `${cfgPath}: a topk SAE needs k in 1..d_sae (${S}), got ${JSON.stringify(raw.k)}`,
    );
    k = raw.k as number;
  }
  // SAELens >= 6 keeps hook_name in "metadata" (some 6.x versions "meta"); older versions at the top level
  const meta = (raw.metadata ?? raw.meta ?? {}) as Record<string, unknown>;
  const hookName = String(meta.hook_name ?? raw.hook_name ?? '');
  must(hookName.length > 0, `${cfgPath}: no hook_name (in metadata or at the top level)`);
  const crate = raw.crate_ts as CrateSaeBlock | undefined;

  const wPath = path.join(dir, WEIGHTS_FILE);
  if (!fs.existsSync(wPath)) throw new DataError(`'${dir}' has ${CFG_FILE} but no ${WEIGHTS_FILE}`);
  const st = readSafetensors(wPath);
  const get = (name: string, shape: number[]): Float64Array => {
    const t = st.tensors.get(name);
    if (!t) throw new CheckpointError(`${wPath}: no tensor '${name}' (an SAE needs W_enc, W_dec, b_enc, b_dec)`);
    if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i]))
      throw new CheckpointError(`${wPath}: ${name} has shape [${t.shape.join(', ')}], cfg.json (d_in ${D}, d_sae ${S}) says [${shape.join(', ')}]`);
    const a = toFloat64(t, name);
    for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) throw new CheckpointError(`${wPath}: ${name}[${i}] is ${a[i]} (not finite)`);
    return a;
  };
  const weights: SaeWeights = { D, S, Wenc: get('W_enc', [D, S]), benc: get('b_enc', [S]), Wdec: get('W_dec', [S, D]), bdec: get('b_dec', [D]) };
  const cfg = raw as unknown as SaeCfg;
  return {
    dir,
    cfg,
    weights,
    k,
    applyBDec: raw.apply_b_dec_to_input !== false,
    hookName,
    checkpointSha256: crate && typeof crate.checkpoint_sha256 === 'string' ? crate.checkpoint_sha256 : null,
  };
}

/** Check a loaded SAE against a model's hook: same width, same checkpoint (when the SAE records one). */
export function checkSaeFits(sae: LoadedSae, width: number, ckptSha: string, hookName: string): void {
  if (sae.weights.D !== width) throw new DataError(`SAE '${sae.dir}' has d_in ${sae.weights.D} but hook ${hookName} of this checkpoint has width ${width}`);
  if (sae.checkpointSha256 !== null && sae.checkpointSha256 !== ckptSha)
    throw new DataError(
      `SAE '${sae.dir}' was trained on another checkpoint (sha256 ${sae.checkpointSha256.slice(0, 12)}…, this one is ${ckptSha.slice(0, 12)}…)`,
    );
}
