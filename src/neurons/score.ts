// Offline scores of a whole collection (crate-ts neurons score): per neuron the token-lookup score of
// each split and the metrics of spec 7.8; per layer the means (×100 for the scores, as the paper's
// tables) with standard errors over neurons; per model the mean over layers and the population
// variance of the layer means (spec 6.2, the last layer excluded when L ≥ 6).
import * as path from 'node:path';
import { readLayer, readManifest, selectedOffset, type CollectionManifest, type LayerData, finiteOrNull } from './format.js';
import { layersForModelMean, meanOfFinite, populationVariance, splitFor, type NeuronRecords, type SplitName } from './scoring.js';
import { consistency, lookupScore, selectivity } from './lookup.js';
import { writeFileAtomic } from '../util/atomic.js';

export interface NeuronScore {
  layer: number;
  neuron: number;
  tar: number;
  randomOnly: number;
  anthropic: number;
  selectivity: number;
  consistency: number;
  density: number;
  dead: boolean;
}

export interface LayerScore {
  layer: number;
  /** Mean lookup score × 100 over the neurons with a defined score; null when none (or not collected). */
  tar: number | null;
  randomOnly: number | null;
  anthropic: number | null;
  /** Means over live neurons (those that fire at least once). */
  selectivity: number | null;
  consistency: number | null;
  /** Mean over all neurons of the fraction of tokens > 0. */
  density: number;
  /** Neurons never > 0 on the collected tokens. */
  dead: number;
  neurons: number;
  /** Neurons with a defined score, per split (the rest were NaN and dropped, as in the paper). */
  scored: Record<SplitName, number>;
  /** Standard error over neurons of each score mean (×100). */
  se: Record<SplitName, number | null>;
}

export interface ModelScore {
  /** Layers the means use (the last one dropped when the model has L ≥ 6 layers). */
  layers: number[];
  tar: { mean: number | null; variance: number | null; se: number | null };
  randomOnly: { mean: number | null; variance: number | null; se: number | null };
  anthropic: { mean: number | null; variance: number | null; se: number | null };
  selectivity: number | null;
  consistency: number | null;
  density: number | null;
  dead: number;
  neurons: number;
}

export interface CollectionScores {
  dir: string;
  simulator: 'lookup';
  manifest: CollectionManifest;
  layers: LayerScore[];
  model: ModelScore;
  neurons: NeuronScore[];
}

/** The records of neuron i with the selected token's offset in each, for the splits. */
export function neuronRecords(m: CollectionManifest, ld: LayerData, i: number): NeuronRecords {
  const r = ld.records[i],
    p = ld.positions[i];
  return {
    top: r.most_positive_activation_records,
    random: r.random_sample,
    quantile: r.random_sample_by_quantile,
    topOffsets: p.top.map((q) => selectedOffset(q, m.excerpt.top)),
    randomOffsets: p.random.map((q) => selectedOffset(q, m.excerpt.random)),
    quantileOffsets: p.quantile === null ? null : p.quantile.map((bin) => bin.map((q) => selectedOffset(q, m.excerpt.quantile))),
  };
}

export function scoreNeuron(m: CollectionManifest, ld: LayerData, i: number): NeuronScore {
  const nr = neuronRecords(m, ld, i);
  const s = ld.stats[i];
  const score = (name: SplitName): number => {
    const split = splitFor(name, nr);
    return split === null ? NaN : lookupScore(split);
  };
  const topTokens = nr.top.map((rec, j) => rec.tokens[nr.topOffsets[j]]);
  return {
    layer: ld.layer,
    neuron: i,
    tar: score('tar'),
    randomOnly: score('randomOnly'),
    anthropic: score('anthropic'),
    selectivity: selectivity(nr.top, nr.random),
    consistency: (s.max ?? 0) > 0 ? consistency(topTokens) : NaN,
    density: s.density,
    dead: !((s.max ?? 0) > 0),
  };
}

const x100 = (v: number): number | null => (Number.isFinite(v) ? 100 * v : null);

export function summarizeLayer(layer: number, scores: readonly NeuronScore[], hasQuantiles: boolean): LayerScore {
  const by = (name: SplitName) => meanOfFinite(scores.map((s) => s[name]));
  const live = scores.filter((s) => !s.dead);
  const sum = { tar: by('tar'), randomOnly: by('randomOnly'), anthropic: by('anthropic') };
  const opt = (v: number) => (Number.isFinite(v) ? v : null);
  return {
    layer,
    tar: x100(sum.tar.mean),
    randomOnly: x100(sum.randomOnly.mean),
    anthropic: hasQuantiles ? x100(sum.anthropic.mean) : null,
    selectivity: opt(meanOfFinite(live.map((s) => s.selectivity)).mean),
    consistency: opt(meanOfFinite(live.map((s) => s.consistency)).mean),
    density: scores.reduce((a, s) => a + s.density, 0) / Math.max(1, scores.length),
    dead: scores.length - live.length,
    neurons: scores.length,
    scored: { tar: sum.tar.n, randomOnly: sum.randomOnly.n, anthropic: hasQuantiles ? sum.anthropic.n : 0 },
    se: { tar: x100(sum.tar.se), randomOnly: x100(sum.randomOnly.se), anthropic: hasQuantiles ? x100(sum.anthropic.se) : null },
  };
}

/** Mean over layers, population variance of the layer means, and the standard error of the mean (from the layers' SEs). */
export function summarizeModel(layers: readonly LayerScore[], nLayer: number): ModelScore {
  const used = layersForModelMean(
    layers.map((l) => l.layer),
    nLayer,
  );
  const rows = layers.filter((l) => used.includes(l.layer));
  const agg = (name: SplitName) => {
    const vals = rows.map((l) => l[name]).filter((v): v is number => v !== null);
    if (vals.length === 0 || vals.length !== rows.length) return { mean: null, variance: null, se: null };
    const ses = rows.map((l) => l.se[name]);
    const se = ses.every((s) => s !== null) ? Math.sqrt(ses.reduce((a, s) => a + (s as number) ** 2, 0)) / rows.length : null;
    return { mean: vals.reduce((a, v) => a + v, 0) / vals.length, variance: populationVariance(vals), se };
  };
  const meanOf = (vals: (number | null)[]) => {
    const ok = vals.filter((v): v is number => v !== null);
    return ok.length ? ok.reduce((a, v) => a + v, 0) / ok.length : null;
  };
  return {
    layers: used,
    tar: agg('tar'),
    randomOnly: agg('randomOnly'),
    anthropic: agg('anthropic'),
    selectivity: meanOf(rows.map((l) => l.selectivity)),
    consistency: meanOf(rows.map((l) => l.consistency)),
    density: meanOf(rows.map((l) => l.density)),
    dead: rows.reduce((a, l) => a + l.dead, 0),
    neurons: rows.reduce((a, l) => a + l.neurons, 0),
  };
}

/** Model layer count of a collection (from the checkpoint config in its manifest). */
export function modelLayers(m: CollectionManifest): number {
  const c = m.checkpoint.config as { nLayer?: unknown };
  return typeof c.nLayer === 'number' ? c.nLayer : Math.max(...m.layers) + 1;
}

/** Score every collected layer of a collection with the token-lookup simulator. */
export function scoreCollection(dir: string): CollectionScores {
  const m = readManifest(dir);
  const hasQ = m.variant !== 'openai';
  const layers: LayerScore[] = [];
  const neurons: NeuronScore[] = [];
  for (const l of m.layers) {
    const ld = readLayer(dir, m, l);
    const ns = ld.records.map((_, i) => scoreNeuron(m, ld, i));
    neurons.push(...ns);
    layers.push(summarizeLayer(l, ns, hasQ));
  }
  return { dir, simulator: 'lookup', manifest: m, layers, model: summarizeModel(layers, modelLayers(m)), neurons };
}

/** Write DIR/scores-lookup.jsonl: one line per neuron (non-finite as null). */
export function writeNeuronScores(dir: string, scores: readonly NeuronScore[]): string {
  const file = path.join(dir, 'scores-lookup.jsonl');
  const lines = scores.map((s) =>
    JSON.stringify({
      layer: s.layer,
      neuron: s.neuron,
      tar: finiteOrNull(s.tar),
      randomOnly: finiteOrNull(s.randomOnly),
      anthropic: finiteOrNull(s.anthropic),
      selectivity: finiteOrNull(s.selectivity),
      consistency: finiteOrNull(s.consistency),
      density: s.density,
      dead: s.dead,
    }),
  );
  writeFileAtomic(file, lines.join('\n') + (lines.length ? '\n' : ''));
  return file;
}
