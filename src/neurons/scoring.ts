// Scores of paper A's interpretability protocol (spec 7.3-7.5, 7.8) that need no language model:
// the record splits of the three metrics, the 0-10 normalisation shown to an explainer, the three
// OpenAI scores of a simulation against the true activations, and aggregation over neurons and
// layers. The LLM explainer/simulator (src/neurons/llm) reuses these; the token-lookup simulator of
// spec 7.8.1 lives in lookup.ts.
import type { ActivationRecord } from './format.js';

// ---- scores of one simulation (OpenAI automated-interpretability, spec 7.5, DESIGN "Scores") ---

/**
 * Pearson correlation of two equally long sequences: Σ(x−x̄)(y−ȳ) / √(Σ(x−x̄)² Σ(y−ȳ)²).
 * The paper's score, computed once over the concatenation of all scoring records (flatten first).
 * NaN when either side is constant (a dead neuron, a constant simulation): the caller drops it.
 */
export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = x.length;
  if (y.length !== n) throw new RangeError(`pearson: the sequences have different lengths (${n} and ${y.length})`);
  if (n < 2) return NaN;
  let mx = 0,
    my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  let sxy = 0,
    sxx = 0,
    syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = x[i] - mx,
      dy = y[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (!(sxx > 0) || !(syy > 0)) return NaN;
  const r = sxy / Math.sqrt(sxx * syy);
  return Math.max(-1, Math.min(1, r));
}

/** R² about zero (OpenAI's definition, not about the mean): 1 − mean((real − pred)²) / mean(real²). */
export function rSquaredAboutZero(real: ArrayLike<number>, pred: ArrayLike<number>): number {
  const n = real.length;
  if (pred.length !== n) throw new RangeError(`rSquaredAboutZero: the sequences have different lengths (${n} and ${pred.length})`);
  let se = 0,
    s2 = 0;
  for (let i = 0; i < n; i++) {
    const d = real[i] - pred[i];
    se += d * d;
    s2 += real[i] * real[i];
  }
  return 1 - se / n / (s2 / n);
}

/** Absolute deviation explained: 1 − mean(|real − pred|) / mean(|real|). */
export function absoluteDevExplained(real: ArrayLike<number>, pred: ArrayLike<number>): number {
  const n = real.length;
  if (pred.length !== n) throw new RangeError(`absoluteDevExplained: the sequences have different lengths (${n} and ${pred.length})`);
  let ad = 0,
    a = 0;
  for (let i = 0; i < n; i++) {
    ad += Math.abs(real[i] - pred[i]);
    a += Math.abs(real[i]);
  }
  return 1 - ad / n / (a / n);
}

/** Concatenate the activations (or any per-token numbers) of several records into one array. */
export function flatten(records: readonly { activations: readonly number[] }[]): Float64Array {
  const n = records.reduce((s, r) => s + r.activations.length, 0);
  const out = new Float64Array(n);
  let o = 0;
  for (const r of records) {
    out.set(r.activations, o);
    o += r.activations.length;
  }
  return out;
}

// ---- normalisation shown to an explainer (spec 7.4) --------------------------------------------

/** m = max over the records of max(a, 0): the scale of the 0-10 normalisation. */
export function maxActivation(records: readonly { activations: readonly number[] }[]): number {
  let m = 0;
  for (const r of records) for (const a of r.activations) if (a > m) m = a;
  return m;
}

/** min(10, floor(10·max(a, 0)/m)); all zeros when m ≤ 0 (spec 7.4; OpenAI's normalize_activations). */
export function normalizeActivations(activations: readonly number[], m: number): number[] {
  if (!(m > 0)) return activations.map(() => 0);
  return activations.map((a) => Math.min(10, Math.floor((10 * Math.max(a, 0)) / m)));
}

// ---- record splits (spec 7.3) ------------------------------------------------------------------

/** The records of one neuron, with where the selected token sits in each excerpt. */
export interface NeuronRecords {
  top: ActivationRecord[];
  random: ActivationRecord[];
  /** 11 bins from the lowest twelfth up; null when the collection has no quantile samples. */
  quantile: ActivationRecord[][] | null;
  /** Offset of the selected token inside each record (same shapes as top / random / quantile). */
  topOffsets: number[];
  randomOffsets: number[];
  quantileOffsets: number[][] | null;
}

export type SplitName = 'tar' | 'randomOnly' | 'anthropic';
export const SPLIT_NAMES: readonly SplitName[] = ['tar', 'randomOnly', 'anthropic'];
export const SPLIT_LABELS: Record<SplitName, string> = { tar: 'TaR', randomOnly: 'Random-only', anthropic: 'Anthropic' };

export interface Split {
  /** Records an explainer sees (and the normalisation's maximum is taken over). */
  explanation: ActivationRecord[];
  /** Records the score is computed on (concatenated). */
  scoring: ActivationRecord[];
}

const pick = <T>(xs: readonly T[], idx: readonly number[]): T[] => idx.filter((i) => i < xs.length).map((i) => xs[i]);
const range = (a: number, b: number): number[] => Array.from({ length: Math.max(0, b - a) }, (_, i) => a + i);
const EVEN10 = [0, 2, 4, 6, 8],
  ODD10 = [1, 3, 5, 7, 9];

/** Top-and-Random [A-code activations.py]: explain on top #0,2,4,6,8; score on random #0,2,4,6,8 + top #1,3,5,7,9. */
export function tarSplit(r: NeuronRecords): Split {
  return { explanation: pick(r.top, EVEN10), scoring: [...pick(r.random, EVEN10), ...pick(r.top, ODD10)] };
}

/** Random-only: explain on top #0,2,4,6,8; score on random #0-9 (the stored code lacks this slice; spec 7.3). */
export function randomOnlySplit(r: NeuronRecords): Split {
  return { explanation: pick(r.top, EVEN10), scoring: pick(r.random, range(0, 10)) };
}

/** Anthropic excerpt: [q−4, q+4) around the selected token (spec 7.3). */
export const ANTHROPIC_BEFORE = 4,
  ANTHROPIC_AFTER = 4;

/** Cut a record to [offset − before, offset + after), clipped to the record. */
export function cutRecord(rec: ActivationRecord, offset: number, before: number, after: number): ActivationRecord {
  const a = Math.max(0, offset - before),
    b = Math.min(rec.tokens.length, offset + after);
  return { tokens: rec.tokens.slice(a, b), activations: rec.activations.slice(a, b) };
}

/**
 * Anthropic (code path anthropic_ooc, spec 7.3), on 8-token excerpts [q−4, q+4) (longer records are
 * cut around their selected token): explanation = top #0-14 + quantile bins #0-1 + random #0-4;
 * scoring = top #15-24 + bins #2-3 + random #5-9 + top #25-34 cut to the selected token with one
 * neighbour each side (the out-of-context records, [3:6) of an 8-token excerpt). Null without quantiles.
 */
export function anthropicSplit(r: NeuronRecords): Split | null {
  if (r.quantile === null || r.quantileOffsets === null) return null;
  const q8 = r.quantile.map((bin, b) => bin.map((rec, j) => cutRecord(rec, r.quantileOffsets![b][j], ANTHROPIC_BEFORE, ANTHROPIC_AFTER)));
  const top8 = r.top.map((rec, j) => cutRecord(rec, r.topOffsets[j], ANTHROPIC_BEFORE, ANTHROPIC_AFTER));
  const rnd8 = r.random.map((rec, j) => cutRecord(rec, r.randomOffsets[j], ANTHROPIC_BEFORE, ANTHROPIC_AFTER));
  const ooc = range(25, 35)
    .filter((j) => j < r.top.length)
    .map((j) => cutRecord(r.top[j], r.topOffsets[j], 1, 2));
  return {
    explanation: [...pick(top8, range(0, 15)), ...q8.flatMap((bin) => pick(bin, [0, 1])), ...pick(rnd8, range(0, 5))],
    scoring: [...pick(top8, range(15, 25)), ...q8.flatMap((bin) => pick(bin, [2, 3])), ...pick(rnd8, range(5, 10)), ...ooc],
  };
}

export function splitFor(name: SplitName, r: NeuronRecords): Split | null {
  return name === 'tar' ? tarSplit(r) : name === 'randomOnly' ? randomOnlySplit(r) : anthropicSplit(r);
}

// ---- aggregation (spec 7.5, 6.2) ---------------------------------------------------------------

export interface MeanSummary {
  /** Mean over the finite values (NaN scores dropped); NaN when none. */
  mean: number;
  /** Standard error of that mean: sample standard deviation / √n (NaN when n < 2). */
  se: number;
  /** How many values were finite (used). */
  n: number;
  /** How many were NaN/±Inf (dropped, as the paper drops NaN scores). */
  dropped: number;
}

export function meanOfFinite(values: readonly number[]): MeanSummary {
  const ok = values.filter((v) => Number.isFinite(v));
  const n = ok.length;
  if (n === 0) return { mean: NaN, se: NaN, n: 0, dropped: values.length };
  const mean = ok.reduce((s, v) => s + v, 0) / n;
  const ss = ok.reduce((s, v) => s + (v - mean) * (v - mean), 0);
  return { mean, se: n > 1 ? Math.sqrt(ss / (n - 1) / n) : NaN, n, dropped: values.length - n };
}

/** Population variance (divide by n), the paper's "variance across layers" (spec 6.2). */
export function populationVariance(values: readonly number[]): number {
  const n = values.length;
  if (n === 0) return NaN;
  const m = values.reduce((s, v) => s + v, 0) / n;
  return values.reduce((s, v) => s + (v - m) * (v - m), 0) / n;
}

/**
 * The layers a model-level mean uses: every layer, except the model's last one when the model has
 * L ≥ 6 layers (the paper's table drops it for 6L and 12L, spec 6.2).
 */
export function layersForModelMean(layers: readonly number[], nLayer: number): number[] {
  return nLayer >= 6 ? layers.filter((l) => l !== nLayer - 1) : [...layers];
}
