// Result files in the OpenAI automated-interpretability formats (DESIGN "OpenAI ... formats"):
// NeuronSimulationResults → ScoredExplanation → ScoredSimulation → ScoredSequenceSimulation →
// SequenceSimulation, with `dataclass_name` on every object and no other key (its loader calls the
// class with the remaining keys, so an extra key would fail), one JSON line per neuron, one file per
// layer. Scores that are undefined (a constant side) are null, as orjson writes NaN.
//
// What produced a file (prompt set, models, simulator kind, whether the scores are comparable with
// the paper's) cannot go inside those objects, so it sits beside each file: layer-{l}.jsonl has
// layer-{l}.meta.json, and the directory's name carries the prompt set's name.
import { pearson, rSquaredAboutZero, absoluteDevExplained } from '../scoring.js';
import { writeFileAtomic } from '../../util/atomic.js';

const num = (x: number): number | null => (Number.isFinite(x) ? x : null);

export interface SequenceSimulationJson {
  dataclass_name: 'SequenceSimulation';
  tokens: string[];
  expected_activations: number[];
  activation_scale: 'neuron_activations' | 'simulated_normalized_activations';
  distribution_values: number[][];
  distribution_probabilities: number[][];
  uncalibrated_simulation: null;
}

export interface ScoredSequenceSimulationJson {
  dataclass_name: 'ScoredSequenceSimulation';
  simulation: SequenceSimulationJson;
  true_activations: number[];
  ev_correlation_score: number | null;
  rsquared_score: number | null;
  absolute_dev_explained_score: number | null;
}

export interface ScoredSimulationJson {
  dataclass_name: 'ScoredSimulation';
  scored_sequence_simulations: ScoredSequenceSimulationJson[];
  ev_correlation_score: number | null;
  rsquared_score: number | null;
  absolute_dev_explained_score: number | null;
}

export interface NeuronSimulationResultsJson {
  dataclass_name: 'NeuronSimulationResults';
  neuron_id: { dataclass_name: 'NeuronId'; layer_index: number; neuron_index: number };
  scored_explanations: { dataclass_name: 'ScoredExplanation'; explanation: string; scored_simulation: ScoredSimulationJson }[];
}

export function sequenceSimulation(tokens: string[], expected: number[], values: number[][], probabilities: number[][]): SequenceSimulationJson {
  return {
    dataclass_name: 'SequenceSimulation',
    tokens,
    expected_activations: expected.map((x) => num(x) ?? 0),
    activation_scale: 'simulated_normalized_activations',
    distribution_values: values,
    distribution_probabilities: probabilities,
    uncalibrated_simulation: null,
  };
}

/** One record: the simulation scored against its true activations (per-record scores, as OpenAI). */
export function scoredSequence(sim: SequenceSimulationJson, trueActivations: number[]): ScoredSequenceSimulationJson {
  const t = trueActivations,
    p = sim.expected_activations;
  return {
    dataclass_name: 'ScoredSequenceSimulation',
    simulation: sim,
    true_activations: t.map((x) => num(x) ?? 0),
    ev_correlation_score: num(pearson(t, p)),
    rsquared_score: num(rSquaredAboutZero(t, p)),
    absolute_dev_explained_score: num(absoluteDevExplained(t, p)),
  };
}

/** All records of a scoring set: scores over the concatenation of every record's tokens (spec 7.5). */
export function scoredSimulation(seqs: ScoredSequenceSimulationJson[]): ScoredSimulationJson {
  const t = seqs.flatMap((s) => s.true_activations),
    p = seqs.flatMap((s) => s.simulation.expected_activations);
  return {
    dataclass_name: 'ScoredSimulation',
    scored_sequence_simulations: seqs,
    ev_correlation_score: t.length ? num(pearson(t, p)) : null,
    rsquared_score: t.length ? num(rSquaredAboutZero(t, p)) : null,
    absolute_dev_explained_score: t.length ? num(absoluteDevExplained(t, p)) : null,
  };
}

export function neuronSimulationResults(layer: number, neuron: number, explanation: string, scored: ScoredSimulationJson): NeuronSimulationResultsJson {
  return {
    dataclass_name: 'NeuronSimulationResults',
    neuron_id: { dataclass_name: 'NeuronId', layer_index: layer, neuron_index: neuron },
    scored_explanations: [{ dataclass_name: 'ScoredExplanation', explanation, scored_simulation: scored }],
  };
}

export function writeJsonl(file: string, rows: readonly unknown[]): void {
  writeFileAtomic(file, rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : ''), { mkdir: true });
}
