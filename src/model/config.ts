// Model configuration: one object, commented defaults, presets for the paper's sizes (spec 5.2)
// and small ones that train on a CPU.
import { UsageError } from '../errors.js';
import { architecture, archList, BUILTIN_ARCHS, isArch, type Arch } from './archs.js';

export type { Arch };

/** Every built-in architecture, in the order the docs list them (src/model/archs.ts registers them). */
export const ARCHS: readonly Arch[] = BUILTIN_ARCHS;

export interface ModelConfig {
  /** crate: paper A's CRATE-LM (overcomplete ISTA, E19); crate-complete: paper B's complete ISTA (E14); gpt2: the baseline (spec 3.3); or a registered one (src/model/archs.ts). */
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
  char: {
    vocabSize: 256,
    blockSize: 128,
    nLayer: 2,
    nHead: 4,
    nEmbd: 128,
    description: 'byte-level, 2 layers, d 128, T 128 (CPU; the C-char benchmark config)',
  },
  'char-tiny': {
    vocabSize: 256,
    blockSize: 64,
    nLayer: 2,
    nHead: 4,
    nEmbd: 64,
    description: 'byte-level, 2 layers, d 64, T 64 (CPU, seconds per step on the reference)',
  },
  small: {
    vocabSize: 50304,
    blockSize: 128,
    nLayer: 4,
    nHead: 4,
    nEmbd: 256,
    description: 'GPT-2 BPE, 4 layers, d 256, T 128 (CPU; the C-small benchmark config)',
  },
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

/**
 * Documented limits of a configuration. They are far above any model this project trains (paper B:
 * V 50304, T 1024, L 12, d 768) and exist so that a hostile or corrupt config (a checkpoint whose
 * metadata says n_layer 1e12) is refused by name before anything is allocated.
 */
export const CONFIG_LIMITS = Object.freeze({
  vocabSize: 1 << 20,
  blockSize: 1 << 20,
  nLayer: 1024,
  nHead: 1 << 16,
  nEmbd: 1 << 16,
  overcomplete: 64,
  istaSteps: 100,
  /** η ∈ (0, etaMax]: a step size. */
  etaMax: 10,
  /** λ ∈ [0, lamMax]. */
  lamMax: 100,
  /** LayerNorm ε ∈ (0, lnEpsMax]. */
  lnEpsMax: 1,
  /** Parameters in all (wte, wpe and every block): one flat Float64Array must hold them. */
  parameters: 2 ** 31 - 1,
});

/** The integer fields of a config, with their upper limits. */
const INT_FIELDS = ['vocabSize', 'blockSize', 'nLayer', 'nHead', 'nEmbd', 'overcomplete', 'istaSteps'] as const;

/**
 * Number of parameters a config implies, without allocating (exact while < 2^53): wte V·d, wpe T·d,
 * L times the parameters block 0 declares (every block of a model has the same), and ln_f (d, plus
 * its bias when the architecture has biases). It equals the total of src/model/params.ts's table
 * (tested).
 */
export function configParameterCount(c: ModelConfig): number {
  const d = c.nEmbd,
    arch = architecture(c.arch);
  const block = arch.block(0, c).params.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
  return (c.vocabSize + c.blockSize) * d + c.nLayer * block + (arch.bias ? 2 : 1) * d;
}

/** A value as an error message may quote it: short, one line, never a whole array. */
function show(v: unknown): string {
  if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) return String(v);
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
  if (Array.isArray(v)) return `an array of ${v.length} elements`;
  return `a ${typeof v}`;
}

/**
 * Check every field of a config: arch known; integer fields positive integers within CONFIG_LIMITS;
 * nEmbd divisible by nHead; η, λ, LayerNorm ε finite and within their ranges; the implied
 * parameter count within CONFIG_LIMITS.parameters. Throws a UsageError naming the field.
 */
export function validateConfig(c: ModelConfig): void {
  if (typeof c !== 'object' || c === null) throw new UsageError(`config must be an object, got ${show(c)}`);
  if (!isArch(c.arch)) throw new UsageError(`config.arch must be ${archList()}, got ${show(c.arch)}`);
  for (const k of INT_FIELDS) {
    const v: unknown = c[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new UsageError(`config.${k} must be a positive integer, got ${show(v)}`);
    if (v > CONFIG_LIMITS[k]) throw new UsageError(`config.${k} is ${v}, above the limit of ${CONFIG_LIMITS[k]}`);
  }
  if (c.nEmbd % c.nHead !== 0) throw new UsageError(`config.nEmbd (${c.nEmbd}) must be divisible by config.nHead (${c.nHead})`);
  const ranges: [keyof ModelConfig, number, number, boolean][] = [
    // field, low, high, low end open
    ['eta', 0, CONFIG_LIMITS.etaMax, true],
    ['lam', 0, CONFIG_LIMITS.lamMax, false],
    ['lnEps', 0, CONFIG_LIMITS.lnEpsMax, true],
  ];
  for (const [k, lo, hi, open] of ranges) {
    const v: unknown = c[k];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new UsageError(`config.${k} must be a finite number, got ${show(v)}`);
    if (v > hi || v < lo || (open && v === lo)) throw new UsageError(`config.${k} is ${v}, outside ${open ? '(' : '['}${lo}, ${hi}]`);
  }
  const n = configParameterCount(c);
  if (n > CONFIG_LIMITS.parameters) throw new UsageError(`config implies ${n} parameters, above the limit of ${CONFIG_LIMITS.parameters}`);
}
