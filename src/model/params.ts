// The parameter table: every tensor's PyTorch state_dict name, shape, initialization and
// weight-decay group (spec 3.2 for CRATE, 3.3 for the GPT-2 baseline), in state_dict order.
// All parameters live in one flat buffer; a tensor is the view [offset, offset + size).
import type { ModelConfig } from './config.js';
import type { Rng } from '../util/rng.js';
import { architecture } from './archs.js';
import type { Init } from './blocks/block.js';

export type { Init };

export interface ParamSpec {
  name: string;
  shape: number[];
  size: number;
  offset: number;
  init: Init;
  /** AdamW weight decay applies to tensors of 2 or more dimensions only (spec 5.1). */
  decay: boolean;
}

/** The table: wte, wpe, every block's declared parameters under `transformer.h.{l}.`, then ln_f. */
export function paramTable(cfg: ModelConfig): ParamSpec[] {
  const d = cfg.nEmbd,
    arch = architecture(cfg.arch),
    std = 0.02;
  const rows: [string, number[], Init][] = [
    ['transformer.wte.weight', [cfg.vocabSize, d], { kind: 'normal', std }],
    ['transformer.wpe.weight', [cfg.blockSize, d], { kind: 'normal', std }],
  ];
  for (let l = 0; l < cfg.nLayer; l++) {
    for (const p of arch.block(l, cfg).params) rows.push([`transformer.h.${l}.${p.name}`, p.shape, p.init]);
  }
  rows.push(['transformer.ln_f.weight', [d], { kind: 'const', value: 1 }]);
  if (arch.bias) rows.push(['transformer.ln_f.bias', [d], { kind: 'const', value: 0 }]);

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
