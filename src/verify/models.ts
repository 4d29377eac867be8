// Random tiny language models for the whole-model properties (P18–P21), on the float64 reference.
import { LanguageModel } from '../model/lm.js';
import { makeConfig, type Arch, type ModelConfig } from '../model/config.js';
import { ReferenceBackend } from '../backend/reference.js';
import type { Rng } from '../util/rng.js';

/**
 * A random small config: V 5..20, T 8, 1–3 layers, 1–3 heads of width 2 or 4 with d ≥ 4 (a LayerNorm
 * over 2 features outputs ±1 whatever its input, and passes almost no gradient), ISTA width 1–4×, 1–3 steps.
 */
export function randomTinyConfig(rng: Rng, arch: Arch = 'crate'): ModelConfig {
  const nHead = 1 + rng.int(3);
  let p = [2, 4][rng.int(2)];
  if (nHead * p < 4) p = 4;
  return makeConfig(undefined, {
    arch,
    vocabSize: 5 + rng.int(16),
    blockSize: 8,
    nLayer: 1 + rng.int(3),
    nHead,
    nEmbd: nHead * p,
    overcomplete: 1 + rng.int(4),
    istaSteps: 1 + rng.int(3),
  });
}

/**
 * A model on the reference backend with parameters far from the (tiny) default init, so attention is
 * peaked and the ISTA codes are neither all zero nor all active: LayerNorm weights 1 + 0.2n,
 * biases 0.1n, wte/wpe 0.5n, matrices n·1.5/sqrt(fan_in), n ~ N(0,1).
 */
export function randomTinyModel(rng: Rng, cfg: ModelConfig): LanguageModel<Float64Array> {
  const model = new LanguageModel(new ReferenceBackend(), cfg, { seed: rng.nextU32() });
  const vals = new Float64Array(model.numParameters);
  for (const p of model.table) {
    const isLnWeight = /(prenorm_[12]|ln_[12f]|ln_f)\.weight$/.test(p.name);
    const fanIn = p.shape.length >= 2 ? p.shape[p.shape.length - 1] : 1;
    for (let i = 0; i < p.size; i++) {
      const n = rng.normal();
      let v: number;
      if (isLnWeight) v = 1 + 0.2 * n;
      else if (p.name.endsWith('.bias')) v = 0.1 * n;
      else if (/wte|wpe/.test(p.name)) v = 0.5 * n;
      else v = (1.5 * n) / Math.sqrt(fanIn);
      vals[p.offset + i] = v;
    }
  }
  model.setParams(vals);
  return model;
}

export function randomTokens(rng: Rng, n: number, V: number): number[] {
  return Array.from({ length: n }, () => rng.int(V));
}
