// PyTorch state_dict <-> LanguageModel, with the import rules of spec 3.2:
// the tied lm_head.weight is accepted (it must equal wte when both are present), the causal-mask
// buffers `...attn.bias` of shape (1,1,T,T) are ignored, a `_orig_mod.` prefix (torch.compile) is
// stripped, and any missing, unexpected or mis-shaped tensor is named in the error.
import type { LanguageModel } from '../model/lm.js';
import { type ModelConfig, type Arch, validateConfig, DEFAULTS } from '../model/config.js';
import { type TensorEntry, type TensorInput, toFloat64 } from '../io/safetensors.js';

const MASK_BUFFER = /^transformer\.h\.\d+\.attn\.bias$/;

/** Normalise names: strip `_orig_mod.`; drop causal-mask buffers (not parameters). */
export function normalizeStateDict(tensors: Map<string, TensorEntry>): Map<string, TensorEntry> {
  const out = new Map<string, TensorEntry>();
  for (const [raw, t] of tensors) {
    const name = raw.startsWith('_orig_mod.') ? raw.slice('_orig_mod.'.length) : raw;
    if (MASK_BUFFER.test(name) && t.shape.length === 4) continue;
    out.set(name, t);
  }
  return out;
}

/**
 * Load parameters (float64 values of any float dtype) into a model. Tensors whose names do not
 * belong to the model's state_dict are listed in the error unless `allowExtra` (fixtures carry
 * idx/targets/logits/grad.* beside the parameters: pass a filter).
 */
export function loadStateDict(model: LanguageModel<unknown>, tensors: Map<string, TensorEntry>, opts: { allowExtra?: (name: string) => boolean; source?: string } = {}): void {
  const src = opts.source ?? 'state_dict';
  const sd = normalizeStateDict(tensors);
  const flat = new Float64Array(model.numParameters);
  const problems: string[] = [];
  for (const p of model.table) {
    const t = sd.get(p.name);
    if (!t) { problems.push(`missing tensor ${p.name} (shape [${p.shape}])`); continue; }
    if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i])) {
      problems.push(`tensor ${p.name} has shape [${t.shape}], the model expects [${p.shape}]`);
      continue;
    }
    if (t.dtype !== 'F64' && t.dtype !== 'F32' && t.dtype !== 'F16' && t.dtype !== 'BF16') {
      problems.push(`tensor ${p.name} has dtype ${t.dtype}, expected a float dtype`);
      continue;
    }
    flat.set(toFloat64(t, p.name), p.offset);
  }
  const head = sd.get('lm_head.weight');
  const wte = model.table.find((p) => p.name === 'transformer.wte.weight')!;
  if (head) {
    if (head.shape.length !== 2 || head.shape[0] !== wte.shape[0] || head.shape[1] !== wte.shape[1]) {
      problems.push(`tensor lm_head.weight has shape [${head.shape}], expected the tied [${wte.shape}]`);
    } else if (sd.has('transformer.wte.weight')) {
      const h = toFloat64(head, 'lm_head.weight');
      for (let i = 0; i < h.length; i++) {
        if (h[i] !== flat[wte.offset + i]) { problems.push('lm_head.weight differs from transformer.wte.weight, but CRATE-LM ties them'); break; }
      }
    } else {
      flat.set(toFloat64(head, 'lm_head.weight'), wte.offset); // only the head was stored
      problems.splice(problems.findIndex((s) => s.startsWith('missing tensor transformer.wte.weight')), 1);
    }
  }
  const known = new Set(model.table.map((p) => p.name).concat('lm_head.weight'));
  const extra = [...sd.keys()].filter((n) => !known.has(n) && !(opts.allowExtra?.(n) ?? false));
  if (extra.length) problems.push(`unexpected tensor${extra.length > 1 ? 's' : ''} ${extra.slice(0, 5).join(', ')}${extra.length > 5 ? `, … (${extra.length} in all)` : ''} (not part of a ${model.config.arch} model)`);
  if (problems.length) throw new Error(`${src}: cannot load into a ${model.config.arch} model (L=${model.config.nLayer}, d=${model.config.nEmbd}, V=${model.config.vocabSize}): ${problems.join('; ')}`);
  model.setParams(flat);
}

/** The model's parameters as safetensors tensors under their state_dict names (lm_head not stored). */
export function stateDictFromModel(model: LanguageModel<unknown>, dtype: 'F64' | 'F32' = 'F32', prefix = ''): Record<string, TensorInput> {
  const flat = model.getParams();
  const out: Record<string, TensorInput> = {};
  for (const p of model.table) {
    const v = flat.subarray(p.offset, p.offset + p.size);
    out[prefix + p.name] = { dtype, shape: p.shape, data: dtype === 'F64' ? Float64Array.from(v) : Float32Array.from(v) };
  }
  return out;
}

/** The PyTorch-style config JSON of fixtures (DESIGN.md "Fixtures") <-> ModelConfig. */
export function configFromMetadata(meta: Record<string, string>, source = 'file'): ModelConfig {
  if (meta.config === undefined) throw new Error(`${source}: metadata has no 'config' entry`);
  let j: Record<string, unknown>;
  try { j = JSON.parse(meta.config); } catch (e) { throw new Error(`${source}: metadata 'config' is not valid JSON (${(e as Error).message})`); }
  const num = (k: string, def?: number): number => {
    const v = j[k] ?? def;
    if (typeof v !== 'number') throw new Error(`${source}: config.${k} is missing or not a number`);
    return v;
  };
  const arch = (meta.arch ?? j.arch ?? 'crate') as Arch;
  const cfg: ModelConfig = {
    arch,
    vocabSize: num('vocab_size'), blockSize: num('block_size'), nLayer: num('n_layer'), nHead: num('n_head'), nEmbd: num('n_embd'),
    overcomplete: num('overcomplete', DEFAULTS.overcomplete), eta: num('eta', DEFAULTS.eta), lam: num('lam', DEFAULTS.lam),
    istaSteps: num('ista_steps', DEFAULTS.istaSteps), lnEps: num('ln_eps', DEFAULTS.lnEps),
  };
  try { validateConfig(cfg); } catch (e) { throw new Error(`${source}: ${(e as Error).message}`); }
  return cfg;
}

export function configToMetadata(c: ModelConfig): Record<string, string> {
  return {
    arch: c.arch,
    config: JSON.stringify({
      vocab_size: c.vocabSize, block_size: c.blockSize, n_layer: c.nLayer, n_head: c.nHead, n_embd: c.nEmbd,
      overcomplete: c.overcomplete, eta: c.eta, lam: c.lam, ln_eps: c.lnEps, ista_steps: c.istaSteps, arch: c.arch,
    }),
  };
}
