// An SAE's features as a hook (`<hook>.hook_sae_acts_post`, SAELens' name): what neurons collect --sae
// streams in place of a hook's units.
import type { Backend } from '../backend/types.js';
import { UsageError } from '../errors.js';
import type { LanguageModel } from '../model/lm.js';
import type { Activation, HookFn } from '../model/hooks.js';
import { sha256File } from '../util/hash.js';
import { checkSaeFits, loadSae } from './format.js';
import { ResidentSae } from './sae.js';

export interface SaeFeatures {
  /** The model hook the SAE reads. */
  hook: string;
  /** The features' hook name. */
  name: string;
  layer: number;
  S: number;
  /** Width of the model hook (the SAE's d_in). */
  D: number;
  /** h for the (B, T, D) activation, (B·T, S) row-major. */
  encode(a: Activation, B: number, T: number): Float64Array;
  /** Row j of W_dec (D): what feature j adds to the reconstruction per unit. */
  decoderRow(j: number): Float64Array;
  free(): void;
}

export function saeFeatures(dir: string, model: LanguageModel<unknown>, ckFile: string, backend: Backend<unknown>, layers?: number[]): SaeFeatures {
  const sae = loadSae(dir);
  const m = /^blocks\.(\d+)\./.exec(sae.hookName);
  if (!m) throw new UsageError(`SAE '${dir}' reads hook '${sae.hookName}', not a per-layer hook blocks.L.NAME`);
  const layer = Number(m[1]);
  if (layers !== undefined && !(layers.length === 1 && layers[0] === layer))
    throw new UsageError((n) => `the SAE reads layer ${layer} (${sae.hookName}); ${n('layers')} ${layers.join(',')} disagrees`, { option: 'layers' });
  if (layer >= model.config.nLayer) throw new UsageError(`SAE '${dir}' reads layer ${layer}, but the model has ${model.config.nLayer} layers`);
  if (!model.hookNames().includes(sae.hookName) && !/^blocks\.\d+\.hook_neurons$/.test(sae.hookName))
    throw new UsageError(`SAE '${dir}' reads hook '${sae.hookName}', which this ${model.config.arch} model does not have`);
  const D = model.hookShape(sae.hookName, 1, 1)[2];
  checkSaeFits(sae, D, sha256File(ckFile), sae.hookName);
  const rs = new ResidentSae(backend, D, sae.weights.S);
  rs.setWeights(sae.weights);
  return {
    hook: sae.hookName,
    name: `${sae.hookName}.hook_sae_acts_post`,
    layer,
    S: sae.weights.S,
    D,
    encode(a, B, T) {
      const x = new Float64Array(B * T * D);
      for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let i = 0; i < D; i++) x[(b * T + t) * D + i] = a.get(b, t, i);
      return rs.encodeDecode(x, B * T, sae.k, sae.applyBDec).h;
    },
    decoderRow: (j) => sae.weights.Wdec.slice(j * D, (j + 1) * D),
    free: () => rs.free(),
  };
}

/** An SAE opened for steering: clamp hooks for any feature and value, from one resident copy. */
export interface SaeClamp {
  /** The model hook the SAE reads (where the hooks act). */
  hook: string;
  layer: number;
  /** Number of features. */
  S: number;
  /** The hooks that clamp `feature` to `value` (one-line UsageError for a feature out of range or a value not finite). */
  hooks(feature: number, value: number): Record<string, HookFn>;
  free(): void;
}

/**
 * Steering a feature: a hook on the SAE's input hook that clamps feature j to `value` at every
 * position and decodes with the SAE, keeping the SAE's error term: x' = x̂' + (x − x̂), which is
 * x + (value − h_j) · W_dec[j] (the only term of x̂' − x̂), computed that way so that a clamp that
 * changes nothing returns x exactly. Usable with runWithHooks and createDecoder; `f` stays the
 * caller's (free it after the last forward).
 */
export function featureClampHooks(f: SaeFeatures, feature: number, value: number): Record<string, HookFn> {
  if (!Number.isInteger(feature) || feature < 0 || feature >= f.S)
    throw new UsageError(`feature ${feature} is out of range: the SAE has ${f.S} features (0..${f.S - 1})`);
  if (!Number.isFinite(value)) throw new UsageError(`the clamp value must be a finite number, got ${value}`);
  const D = f.D,
    S = f.S;
  const row = f.decoderRow(feature);
  return {
    [f.hook]: (act) => {
      const [B, T] = act.shape;
      const h = f.encode(act, B, T);
      for (let b = 0; b < B; b++)
        for (let t = 0; t < T; t++) {
          const d = value - h[(b * T + t) * S + feature];
          if (d === 0) continue;
          for (let i = 0; i < D; i++) act.set(b, t, i, act.get(b, t, i) + d * row[i]);
        }
    },
  };
}

/** An SAE opened once for steering (loaded and checked against the model): clamp hooks for any feature and value. */
export function openSaeClamp(dir: string, model: LanguageModel<unknown>, ckFile: string, backend: Backend<unknown>): SaeClamp {
  const f = saeFeatures(dir, model, ckFile, backend);
  return { hook: f.hook, layer: f.layer, S: f.S, hooks: (feature, value) => featureClampHooks(f, feature, value), free: () => f.free() };
}

/**
 * featureClampHooks for the SAE in `dir` (loaded and checked against the model). Its encoder lives
 * on `backend` until the process ends; code that steers many times opens the SAE once with
 * openSaeClamp (or saeFeatures) and frees it after.
 */
export function saeClampHooks(
  dir: string,
  model: LanguageModel<unknown>,
  ckFile: string,
  backend: Backend<unknown>,
  feature: number,
  value: number,
): Record<string, HookFn> {
  const f = saeFeatures(dir, model, ckFile, backend);
  try {
    return featureClampHooks(f, feature, value);
  } catch (e) {
    f.free();
    throw e;
  }
}
