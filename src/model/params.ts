// The parameter table: every tensor's PyTorch state_dict name, shape, initialization and
// weight-decay group (spec 3.2 for CRATE, 3.3 for the GPT-2 baseline), in state_dict order.
// All parameters live in one flat buffer; a tensor is the view [offset, offset + size).
import type { ModelConfig } from './config.js';
import type { Rng } from '../util/rng.js';

export type Init = { kind: 'normal'; std: number } | { kind: 'uniform'; bound: number } | { kind: 'const'; value: number };

export interface ParamSpec {
  name: string;
  shape: number[];
  size: number;
  offset: number;
  init: Init;
  /** AdamW weight decay applies to tensors of 2 or more dimensions only (spec 5.1). */
  decay: boolean;
}

export function paramTable(cfg: ModelConfig): ParamSpec[] {
  const d = cfg.nEmbd,
    L = cfg.nLayer,
    h = cfg.overcomplete * d;
  const std = 0.02,
    projStd = 0.02 / Math.sqrt(2 * L);
  const rows: [string, number[], Init][] = [
    ['transformer.wte.weight', [cfg.vocabSize, d], { kind: 'normal', std }],
    ['transformer.wpe.weight', [cfg.blockSize, d], { kind: 'normal', std }],
  ];
  const one: Init = { kind: 'const', value: 1 },
    zero: Init = { kind: 'const', value: 0 };
  for (let i = 0; i < L; i++) {
    const p = `transformer.h.${i}.`;
    if (cfg.arch === 'gpt2') {
      // nanoGPT with bias=False and a ReLU MLP (spec 3.3).
      rows.push(
        [p + 'ln_1.weight', [d], one],
        [p + 'attn.c_attn.weight', [3 * d, d], { kind: 'normal', std }],
        [p + 'attn.c_proj.weight', [d, d], { kind: 'normal', std: projStd }],
        [p + 'ln_2.weight', [d], one],
        [p + 'mlp.c_fc.weight', [h, d], { kind: 'normal', std }],
        [p + 'mlp.c_proj.weight', [d, h], { kind: 'normal', std: projStd }],
      );
    } else {
      // ista.weight is a bare nn.Parameter: PyTorch's kaiming_uniform default, bound sqrt(6/d).
      const istaShape = cfg.arch === 'crate' ? [h, d] : [d, d];
      rows.push(
        [p + 'prenorm_1.weight', [d], one],
        [p + 'prenorm_1.bias', [d], zero],
        [p + 'attn.c_attn.weight', [d, d], { kind: 'normal', std }],
        [p + 'attn.c_proj.weight', [d, d], { kind: 'normal', std: projStd }],
        [p + 'attn.c_proj.bias', [d], zero],
        [p + 'prenorm_2.weight', [d], one],
        [p + 'prenorm_2.bias', [d], zero],
        [p + 'ista.weight', istaShape, { kind: 'uniform', bound: Math.sqrt(6 / d) }],
      );
    }
  }
  rows.push(['transformer.ln_f.weight', [d], one]);
  if (cfg.arch !== 'gpt2') rows.push(['transformer.ln_f.bias', [d], zero]);

  let offset = 0;
  return rows.map(([name, shape, init]) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const spec: ParamSpec = { name, shape, size, offset, init, decay: shape.length >= 2 };
    offset += size;
    return spec;
  });
}

export function totalSize(table: ParamSpec[]): number {
  const last = table[table.length - 1];
  return last.offset + last.size;
}

/** Fill a host float64 array with the initialization of spec 3.2, drawing tensors in table order. */
export function initParams(table: ParamSpec[], rng: Rng): Float64Array {
  const out = new Float64Array(totalSize(table));
  for (const p of table) {
    const v = out.subarray(p.offset, p.offset + p.size);
    switch (p.init.kind) {
      case 'const':
        v.fill(p.init.value);
        break;
      case 'normal':
        for (let i = 0; i < v.length; i++) v[i] = p.init.std * rng.normal();
        break;
      case 'uniform':
        for (let i = 0; i < v.length; i++) v[i] = (2 * rng.uniform() - 1) * p.init.bound;
        break;
    }
  }
  return out;
}

/**
 * Parameter count as nanoGPT's get_num_params (spec P22): every parameter except wpe, the tied
 * lm_head counted once (it is wte).
 */
export function numParams(table: ParamSpec[], includeWpe = false): number {
  return table.reduce((s, p) => s + (includeWpe || p.name !== 'transformer.wpe.weight' ? p.size : 0), 0);
}
