// Named hook points (TransformerLens conventions): folds over the blocks' declarations.
//
// Every intermediate of a forward pass has a name such as `blocks.0.ln1.hook_normalized`. A caller
// can read any of them (LanguageModel.runWithCache) or replace any of them (runWithHooks) for the
// duration of one call; nothing stays installed afterwards. Values are float64 `ndarray` views on
// the host, whatever the backend: reading a hooked tensor downloads only that tensor, and a
// replacement is uploaded back before the next operator reads it. Each block declares its own hook
// points (src/model/blocks/block.ts); the embedding's, the final LayerNorm's and the head's are
// declared here.
import type { ModelConfig } from './config.js';
import { UsageError } from '../errors.js';
import { architectures, architecture } from './archs.js';
import type { Architecture, Dim, HookDecl } from './blocks/block.js';

export { ActivationCache, view, toDense, assignDense, applyHook, type Activation, type HookFn } from './activation.js';

/** Where a hook name's tensor comes from and what shape it has, for a batch of B sequences of T tokens. */
export interface HookPoint {
  name: string;
  shape: number[];
  /** What the tensor is (one line, for the README's table and error messages). */
  doc: string;
}

/** The model's own hook points before the first block. */
const HEAD: HookDecl[] = [
  { name: 'hook_embed', shape: ['B', 'T', 'd'], doc: 'token embedding wte[idx]' },
  { name: 'hook_pos_embed', shape: ['B', 'T', 'd'], doc: 'position embedding wpe[t]' },
];
/** ... and after the last one. */
const TAIL: HookDecl[] = [
  { name: 'ln_final.hook_normalized', shape: ['B', 'T', 'd'], doc: 'final LayerNorm output' },
  { name: 'unembed.hook_out', shape: ['B', 'T', 'V'], doc: 'logits (tied head)' },
];

/** The sizes a hook shape is written in, for a (B,T) call of this config. */
export function hookDims(c: ModelConfig, B: number, T: number): Record<Dim, number> {
  return { B, T, d: c.nEmbd, h: c.overcomplete * c.nEmbd, NH: c.nHead, p: c.nEmbd / c.nHead, V: c.vocabSize };
}

/** The architecture's neuron tensor, which `blocks.{l}.hook_neurons` aliases. */
export function neuronHook(config: ModelConfig, layer: number): string {
  return `blocks.${layer}.${architecture(config.arch).block(layer, config).neurons}`;
}

/** The shape of layer l's neuron tensor (what `blocks.{l}.hook_neurons` aliases) for a (B,T) call. */
export function neuronShape(config: ModelConfig, layer: number, B: number, T: number): number[] {
  const block = architecture(config.arch).block(layer, config),
    dims = hookDims(config, B, T);
  return block.hooks.find((h) => h.name === block.neurons)!.shape.map((s) => dims[s]);
}

/** Every hook point of a model, in execution order (aliases excluded). */
export function hookPoints(c: ModelConfig, B: number, T: number): HookPoint[] {
  const dims = hookDims(c, B, T),
    arch = architecture(c.arch);
  const pt = (prefix: string, h: HookDecl): HookPoint => ({ name: prefix + h.name, shape: h.shape.map((s) => dims[s]), doc: h.doc });
  const pts = HEAD.map((h) => pt('', h));
  for (let l = 0; l < c.nLayer; l++) for (const h of arch.block(l, c).hooks) pts.push(pt(`blocks.${l}.`, h));
  for (const h of TAIL) pts.push(pt('', h));
  return pts;
}

/** Resolve `blocks.{l}.hook_neurons` to its tensor's name; other names are returned unchanged. */
export function canonicalHookName(config: ModelConfig, name: string): string {
  const m = /^blocks\.(\d+)\.hook_neurons$/.exec(name);
  return m ? neuronHook(config, Number(m[1])) : name;
}

/** Throw a UsageError naming the valid hooks when a name is unknown. */
export function checkHookNames(config: ModelConfig, names: Iterable<string>): void {
  const valid = new Set(hookPoints(config, 1, 1).map((p) => p.name));
  for (const n of names) {
    if (valid.has(canonicalHookName(config, n))) continue;
    const layerMatch = /^blocks\.(\d+)\./.exec(n);
    const hint = layerMatch && Number(layerMatch[1]) >= config.nLayer ? ` (the model has ${config.nLayer} layers: 0..${config.nLayer - 1})` : '';
    const sample = [...valid].filter((v) => !v.startsWith('blocks.') || v.startsWith('blocks.0.')).join(', ');
    throw new UsageError(
      `unknown hook name '${n}'${hint}; a ${config.arch} model has: ${sample}, blocks.{l}.hook_neurons, and the same blocks.{l}.* for every layer`,
    );
  }
}

/** One row of the README's hook table: a name, the architectures that have it, its shape in symbols, what it is. */
export interface HookTableRow {
  name: string;
  archs: string;
  shape: string;
  doc: string;
}

/**
 * The README's hook table, folded from the declarations of `archs` (default: every registered
 * architecture): one row per distinct (name, shape, doc), in execution order, with the
 * architectures that have it ("all" for every one), and the `hook_neurons` alias row.
 */
export function hookTable(archs: readonly Architecture[] = architectures()): HookTableRow[] {
  const probe = { nLayer: 1, nHead: 1, nEmbd: 1, overcomplete: 1, istaSteps: 2, eta: 0.1, lam: 0.1, lnEps: 1e-5 };
  const shape = (h: HookDecl) => `(${h.shape.join(', ')})`;
  const key = (h: HookDecl) => `${h.name}|${shape(h)}|${h.doc}`;
  const rows: { key: string; h: HookDecl; archs: string[] }[] = [];
  const seqs = archs.map((a) => {
    const block = a.block(0, probe);
    return [
      ...HEAD,
      ...block.hooks.map((h) => ({ ...h, name: 'blocks.{l}.' + h.name })),
      { name: 'blocks.{l}.hook_neurons', shape: block.hooks.find((h) => h.name === block.neurons)!.shape, doc: `alias of ${block.neurons}` },
      ...TAIL,
    ];
  });
  archs.forEach((a, i) => {
    const seq = seqs[i];
    seq.forEach((h, j) => {
      const k = key(h),
        row = rows.find((r) => r.key === k);
      if (row) {
        row.archs.push(a.name);
        return;
      }
      // a row of this architecture alone goes right before the next row it shares with earlier ones
      const next = seq.slice(j + 1).find((n) => rows.some((r) => r.key === key(n)));
      const at = next ? rows.findIndex((r) => r.key === key(next)) : rows.length;
      rows.splice(at, 0, { key: k, h, archs: [a.name] });
    });
  });
  const out: HookTableRow[] = [];
  for (const r of rows) {
    if (r.h.name === 'blocks.{l}.hook_neurons') continue;
    out.push({ name: r.h.name, archs: r.archs.length === archs.length ? 'all' : r.archs.join(', '), shape: shape(r.h), doc: r.h.doc });
  }
  // the alias: one row whatever the architectures' neuron tensors are
  const alias = rows.filter((r) => r.h.name === 'blocks.{l}.hook_neurons');
  const at = out.findIndex((r) => r.name === 'ln_final.hook_normalized');
  const shapes = [...new Set(alias.map((r) => r.h.shape[r.h.shape.length - 1]))];
  out.splice(at, 0, {
    name: 'blocks.{l}.hook_neurons',
    archs: 'all',
    shape: `(B, T, ${shapes.join(' or ')})`,
    doc: 'alias: ' + alias.flatMap((r) => r.archs.map((n) => `${n} → \`${r.h.doc.slice('alias of '.length)}\``)).join(', '),
  });
  return out;
}
