// Spec Appendix A: the deterministic "golden" model and its expected outputs (property P23).
import { LanguageModel } from '../model/lm.js';
import { makeConfig } from '../model/config.js';
import type { Backend } from '../backend/types.js';
import type { ParamSpec } from '../model/params.js';

/**
 * The Appendix A fill: tensor ordinal t in table order (lm_head is tied, no ordinal), element k:
 * g = sin(1.7·k + 0.3·t + 0.1); LayerNorm weights 1 + 0.1g, biases 0.1g, wte/wpe 0.5g, matrices 0.35g.
 */
export function goldenParamsFor(table: ParamSpec[], total: number): Float64Array {
  const out = new Float64Array(total);
  table.forEach((p, t) => {
    for (let k = 0; k < p.size; k++) {
      const g = Math.sin(1.7 * k + 0.3 * t + 0.1);
      let v: number;
      if (/(prenorm_[12]|ln_f)\.weight$/.test(p.name)) v = 1 + 0.1 * g;
      else if (p.name.endsWith('.bias')) v = 0.1 * g;
      else if (/wte|wpe/.test(p.name)) v = 0.5 * g;
      else v = 0.35 * g;
      out[p.offset + k] = v;
    }
  });
  return out;
}

export function goldenModel<Buf>(backend: Backend<Buf>): LanguageModel<Buf> {
  const m = new LanguageModel(backend, makeConfig('golden'));
  m.setParams(goldenParamsFor(m.table, m.numParameters));
  return m;
}

export const GOLDEN = {
  idx: [1, 5, 2, 7, 3],
  targets: [5, 2, 7, 3, 0],
  logitsLast: [-2.167185, -2.40414, -0.293231, 2.104045, 2.446528, 0.399751, -2.037419, -2.484862, -0.505608, 1.967418, 2.51908],
  logitsFirst: [1.896765, 2.69744, 0.863817, -1.813403, -2.719668, -0.969927, 1.727037, 2.73739, 1.07443, -1.63781, -2.750578],
  loss: 4.137583910916936,
  code0Nonzeros: [14, 15, 16, 17, 17],
  code0Sums: [2.353829, 1.544161, 3.27499, 2.911137, 2.629464],
  code0ZeroFraction: 0.50625,
} as const;
