// Neuron clamps (spec 8): coordinate i of layer L's neuron tensor (`blocks.{L}.hook_neurons`: the
// CRATE ISTA code a2, the GPT-2 post-ReLU MLP hidden, the complete-ISTA code) is overwritten with a
// constant v at every position. This is the paper's intervention: a clamp to a constant, not a
// multiplication. For CRATE the clamped code is then decoded exactly (D·a2 on the host, see
// src/model/blocks/crate.ts), so the intervention has no reconstruction error.
//
// The authors' GPT-2 code passes the clamp tuple to every block, so the same index is clamped in the
// MLP hidden of every layer (spec 8: "likely a bug"). `allLayers` reproduces that quirk; it is never
// the default.
import type { ModelConfig } from '../model/config.js';
import { neuronShape, type Activation, type HookFn } from '../model/hooks.js';
import { UsageError } from '../errors.js';

export interface Clamp {
  layer: number;
  neuron: number;
  value: number;
}

/** Width of the neuron tensor, as the block declares it: h = overcomplete·d for CRATE and GPT-2, d for complete ISTA. */
export function neuronWidth(config: ModelConfig): number {
  return neuronShape(config, 0, 1, 1)[2];
}

/** Check a clamp against a model: layer and neuron in range, value finite (one-line UsageError otherwise). */
export function checkClamp(config: ModelConfig, c: Clamp): void {
  if (!Number.isInteger(c.layer) || c.layer < 0 || c.layer >= config.nLayer) {
    throw new UsageError(`layer ${c.layer} is out of range: the model has ${config.nLayer} layer${config.nLayer === 1 ? '' : 's'} (0..${config.nLayer - 1})`);
  }
  const h = neuronWidth(config);
  if (!Number.isInteger(c.neuron) || c.neuron < 0 || c.neuron >= h) {
    throw new UsageError(`neuron ${c.neuron} is out of range: layer ${c.layer} has ${h} neurons (0..${h - 1})`);
  }
  if (!Number.isFinite(c.value)) throw new UsageError(`the clamp value must be a finite number, got ${c.value}`);
}

/** Parse "L:I=V" (layer L, neuron I, value V), e.g. "0:12=5" or "1:40=-2.5". */
export function parseClamp(spec: string): Clamp {
  const m = /^\s*(\d+)\s*:\s*(\d+)\s*=\s*(\S+)\s*$/.exec(spec);
  if (!m) throw new UsageError(`a clamp is written L:I=V (layer L, neuron I, value V, e.g. 0:12=5), got '${spec}'`);
  const value = Number(m[3]);
  if (!Number.isFinite(value)) throw new UsageError(`clamp '${spec}': the value '${m[3]}' is not a finite number`);
  return { layer: Number(m[1]), neuron: Number(m[2]), value };
}

/** Set coordinate i of a (B, T, h) activation to v at every (b, t). */
export function clampInPlace(act: Activation, neuron: number, value: number): void {
  const [B, T] = act.shape;
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) act.set(b, t, neuron, value);
}

export interface ClampHookOptions {
  /** Clamp the same neuron index in every layer (the authors' GPT-2 behaviour; not the default). */
  allLayers?: boolean;
}

/**
 * Hooks that hold the clamps: one hook per clamped layer, which applies every clamp of that layer.
 * Usable with runWithHooks and with createDecoder / generate, where they act at every step.
 */
export function clampHooks(config: ModelConfig, clamps: readonly Clamp[], opts: ClampHookOptions = {}): Record<string, HookFn> {
  const byLayer = new Map<number, Clamp[]>();
  for (const c of clamps) {
    checkClamp(config, c);
    const layers = opts.allLayers ? Array.from({ length: config.nLayer }, (_, l) => l) : [c.layer];
    for (const l of layers) byLayer.set(l, [...(byLayer.get(l) ?? []), c]);
  }
  const hooks: Record<string, HookFn> = {};
  for (const [l, cs] of byLayer)
    hooks[`blocks.${l}.hook_neurons`] = (act) => {
      for (const c of cs) clampInPlace(act, c.neuron, c.value);
    };
  return hooks;
}
