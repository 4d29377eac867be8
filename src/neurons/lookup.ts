// The token-lookup simulator (spec 7.8.1, a deterministic stand-in for the LLM explainer and
// simulator) and the LLM-free neuron metrics of spec 7.8.2-7.8.4.
//
// "Explanation" = a table: for each token string of the explanation records, the mean of its
// normalised (0-10) activations there, normalised by m = max over the explanation records (as the
// explainer would see them). The simulated activation of a scoring token is its string's table value,
// 0 for strings the explanation records never showed. The score is the Pearson correlation of the
// concatenated raw true activations with the concatenated simulated values.
import type { ActivationRecord } from './format.js';
import { flatten, maxActivation, normalizeActivations, pearson, type Split } from './scoring.js';

/** Mean normalised activation per token string over the explanation records. */
export function lookupTable(explanation: readonly ActivationRecord[]): Map<string, number> {
  const m = maxActivation(explanation);
  const sum = new Map<string, number>(),
    count = new Map<string, number>();
  for (const r of explanation) {
    const norm = normalizeActivations(r.activations, m);
    r.tokens.forEach((t, j) => {
      sum.set(t, (sum.get(t) ?? 0) + norm[j]);
      count.set(t, (count.get(t) ?? 0) + 1);
    });
  }
  const table = new Map<string, number>();
  for (const [t, s] of sum) table.set(t, s / (count.get(t) as number));
  return table;
}

/** Simulated activations of the records' tokens, concatenated: table value, or 0 when unseen. */
export function lookupSimulate(table: ReadonlyMap<string, number>, records: readonly ActivationRecord[]): Float64Array {
  const n = records.reduce((s, r) => s + r.tokens.length, 0);
  const out = new Float64Array(n);
  let o = 0;
  for (const r of records) for (const t of r.tokens) out[o++] = table.get(t) ?? 0;
  return out;
}

/** The lookup score of one split: Pearson(true, simulated) over the scoring records' concatenation (NaN when undefined). */
export function lookupScore(split: Split): number {
  const table = lookupTable(split.explanation);
  return pearson(flatten(split.scoring), lookupSimulate(table, split.scoring));
}

/**
 * Selectivity / false firing (spec 7.8.2, what Random-only rewards): the fraction of the random
 * records' tokens whose normalised activation is ≥ 1, i.e. ≥ a tenth of m, the neuron's maximum over
 * its top records. NaN for a neuron that never fires (m ≤ 0).
 */
export function selectivity(top: readonly ActivationRecord[], random: readonly ActivationRecord[]): number {
  const m = maxActivation(top);
  if (!(m > 0)) return NaN;
  let n = 0,
    fire = 0;
  for (const r of random)
    for (const a of r.activations) {
      n++;
      if (a >= m / 10) fire++;
    }
  return n ? fire / n : NaN;
}

/**
 * Consistency (spec 7.8.3, what TaR/Anthropic reward): the fraction of the top positions whose token
 * string is the most common one among them. tokens: the selected token of each top record.
 */
export function consistency(tokens: readonly string[]): number {
  if (tokens.length === 0) return NaN;
  const c = new Map<string, number>();
  let best = 0;
  for (const t of tokens) {
    const k = (c.get(t) ?? 0) + 1;
    c.set(t, k);
    if (k > best) best = k;
  }
  return best / tokens.length;
}
