// Model configuration: one object, commented defaults, presets for the paper's sizes (spec 5.2)
// and small ones that train on a CPU.

export type Arch = 'crate' | 'crate-complete' | 'gpt2';

export interface ModelConfig {
  /** crate: paper A's CRATE-LM (overcomplete ISTA, E19); crate-complete: paper B's complete ISTA (E14); gpt2: the baseline (spec 3.3). */
  arch: Arch;
  /** V: vocabulary size (50304 = GPT-2's 50257 padded to a multiple of 64). */
  vocabSize: number;
  /** Maximum sequence length T (rows of wpe). */
  blockSize: number;
  /** L: number of blocks. */
  nLayer: number;
  /** K: heads = subspaces; head width p = nEmbd / nHead. */
  nHead: number;
  /** d: residual width. */
  nEmbd: number;
  /** ISTA width factor: h = overcomplete · d (4 in paper A; also the GPT-2 MLP width factor). */
  overcomplete: number;
  /** η: ISTA step size (0.1, hard-coded in the paper's code). */
  eta: number;
  /** λ: sparsity weight; the threshold is η·λ (0.1 in the paper's code). */
  lam: number;
  /** ISTA iterations from zero (2 in paper A: "t = 2"). Complete ISTA always takes one warm-started step. */
  istaSteps: number;
  /** LayerNorm epsilon (inside the sqrt, biased variance). */
  lnEps: number;
}

export const DEFAULTS: ModelConfig = {
  arch: 'crate',
  vocabSize: 50304,
  blockSize: 1024,
  nLayer: 1,
  nHead: 4,
  nEmbd: 128,
  overcomplete: 4,
  eta: 0.1,
  lam: 0.1,
  istaSteps: 2,
  lnEps: 1e-5,
};

/** Presets: the paper's sizes (1L/2L/3L/S/B) and small ones that train on a 2-core CPU. */
export const PRESETS: Record<string, Partial<ModelConfig> & { description: string }> = {
  '1L': { nLayer: 1, nHead: 4, nEmbd: 128, description: 'paper 1L: d 128, 4 heads, V 50304, T 1024 (6.54M params)' },
  '2L': { nLayer: 2, nHead: 4, nEmbd: 128, description: 'paper 2L: d 128, 4 heads (6.64M)' },
  '3L': { nLayer: 3, nHead: 4, nEmbd: 128, description: 'paper 3L: d 128, 4 heads (6.74M)' },
  S: { nLayer: 6, nHead: 12, nEmbd: 768, description: 'paper Small: 6 layers, d 768, 12 heads (59.9M)' },
  B: { nLayer: 12, nHead: 12, nEmbd: 768, description: 'paper Base: 12 layers, d 768, 12 heads (81.1M)' },
  char: { vocabSize: 256, blockSize: 128, nLayer: 2, nHead: 4, nEmbd: 128, description: 'byte-level, 2 layers, d 128, T 128 (CPU; the C-char benchmark config)' },
  'char-tiny': { vocabSize: 256, blockSize: 64, nLayer: 2, nHead: 4, nEmbd: 64, description: 'byte-level, 2 layers, d 64, T 64 (CPU, seconds per step on the reference)' },
  small: { vocabSize: 50304, blockSize: 128, nLayer: 4, nHead: 4, nEmbd: 256, description: 'GPT-2 BPE, 4 layers, d 256, T 128 (CPU; the C-small benchmark config)' },
  golden: { vocabSize: 11, blockSize: 8, nLayer: 2, nHead: 2, nEmbd: 8, description: 'spec Appendix A golden-vector model: V 11, T 8, 2 layers, 2 heads, d 8' },
};

/** Build a config from a preset name plus overrides, validated. */
export function makeConfig(preset?: string, overrides: Partial<ModelConfig> = {}): ModelConfig {
  let base: Partial<ModelConfig> = {};
  if (preset !== undefined) {
    const p = PRESETS[preset];
    if (!p) throw new Error(`unknown preset '${preset}'; known presets: ${Object.keys(PRESETS).join(', ')}`);
    const { description: _d, ...rest } = p;
    base = rest;
  }
  const cfg = { ...DEFAULTS, ...base, ...overrides };
  validateConfig(cfg);
  return cfg;
}

export function validateConfig(c: ModelConfig): void {
  const ints: (keyof ModelConfig)[] = ['vocabSize', 'blockSize', 'nLayer', 'nHead', 'nEmbd', 'overcomplete', 'istaSteps'];
  for (const k of ints) {
    const v = c[k] as number;
    if (!Number.isInteger(v) || v < 1) throw new Error(`config.${k} must be a positive integer, got ${String(v)}`);
  }
  if (!['crate', 'crate-complete', 'gpt2'].includes(c.arch)) throw new Error(`config.arch must be crate, crate-complete or gpt2, got '${c.arch}'`);
  if (c.nEmbd % c.nHead !== 0) throw new Error(`config.nEmbd (${c.nEmbd}) must be divisible by config.nHead (${c.nHead})`);
  for (const k of ['eta', 'lam', 'lnEps'] as const) {
    if (!Number.isFinite(c[k]) || c[k] < 0) throw new Error(`config.${k} must be a finite non-negative number, got ${c[k]}`);
  }
}
