/* eslint-disable @typescript-eslint/no-unused-vars -- browser scripts share one global scope: the other files use these names */
// The shapes of the data files the viewer loads (built by src/viewer/data.ts). Browser script: no
// imports; these names are global to the front end.

interface LayerSummary {
  layer: number;
  hook: string;
  neurons: number;
  tar: number | null;
  randomOnly: number | null;
  anthropic: number | null;
  selectivity: number | null;
  consistency: number | null;
  density: number | null;
  dead: number;
  /** LLM set name → split → mean correlation × 100. */
  llm: Record<string, Record<string, number | null>>;
  /** Classifier set name → mean balanced accuracy, F1, AUC × 100 over the neurons with a value; scored / judged counts. */
  classifiers: Record<string, { balancedAccuracy: number | null; f1: number | null; auc: number | null; scored: number; judged: number }>;
  /** The random-init control's lookup means × 100 (neurons view --baseline-init), when given. */
  init?: { tar: number | null; randomOnly: number | null; anthropic: number | null };
}

interface CollectionSummary {
  id: number;
  label: string;
  /** The collection directory's name (no path: pages are shared). */
  name: string;
  arch: string;
  checkpoint: { file: string; sha256: string; step: number | null };
  config: { nLayer: number; nEmbd: number; nHead: number; vocabSize: number; blockSize: number };
  data: { description: string; source: string; sha256: string; split: string };
  tokens_sha256: string;
  tokenizer: string;
  n_tokens: number;
  window: number;
  variant: string;
  seed: number;
  created: string;
  crate_ts_version: string;
  layers: LayerSummary[];
  scoresSource: string;
  llmSets: string[];
  /** Detection / fuzzing score folders (neurons score --scorer), in the table's column order. */
  classifierSets: { name: string; scorer: string; judge: string }[];
  /** A collection of SAE features: the SAE (no path), whether it could be opened. */
  sae: { name: string | null; sha256: string | null; hook: string | null; d_in: number | null; d_sae: number | null; available: boolean } | null;
  warnings: string[];
  model: { available: boolean; note: string };
}

interface IndexData {
  format: string;
  format_version: number;
  generated: string;
  live: boolean;
  steer: { prompt: string; factor: number; rule: string };
  collections: CollectionSummary[];
}

/**
 * A table row: [neuron, tar, randomOnly, anthropic, llm, density, max, consistency, selectivity,
 * topToken, explanation, then one balanced accuracy × 100 per classifier set].
 */
type TableRow = [
  number,
  number | null,
  number | null,
  number | null,
  number | null,
  number | null,
  number | null,
  number | null,
  number | null,
  string | null,
  string | null,
  ...(number | null)[],
];

interface TableData {
  c: number;
  layer: number;
  hook: string;
  columns: string[];
  rows: TableRow[];
}

/** A record: tokens, activations (null = not finite), the selected token's offset. */
interface Rec {
  t: string[];
  a: (number | null)[];
  s: number;
}

interface TokenValueView {
  id: number;
  token: string;
  value: number | null;
}

interface SteerView {
  prompt: string;
  value: number;
  kl: number;
  top: { token: string; id: number; pBefore: number; pAfter: number; delta: number; logitDelta: number }[];
  before: { token: string; p: number }[];
  after: { token: string; p: number }[];
  skipped?: undefined;
}

interface NeuronData {
  c: number;
  layer: number;
  neuron: number;
  hook: string;
  label: string;
  neurons: number;
  stats: {
    mean: number | null;
    variance: number | null;
    skewness: number | null;
    kurtosis: number | null;
    density: number | null;
    max: number | null;
    min: number | null;
    count: number;
  };
  scores: { tar: number | null; randomOnly: number | null; anthropic: number | null; selectivity: number | null; consistency: number | null } | null;
  explanation: string | null;
  llm: { set: string; split: string; explanation: string; score: number | null; sequences: { t: string[]; a: number[]; sim: number[] }[] }[];
  /** Detection / fuzzing results of this neuron (scores × 100) with the judged contexts. */
  classifiers: {
    set: string;
    scorer: string;
    judge: string;
    balancedAccuracy: number | null;
    accuracy: number | null;
    f1: number | null;
    auc: number | null;
    n: number;
    parseFailures: number;
    explanation: string | null;
    examples: {
      t: string[];
      a: number[];
      distance: number;
      activating: boolean;
      prediction: boolean | null;
      probability: number | null;
      correct: boolean | null;
    }[];
  }[];
  scale: number;
  top: Rec[];
  random: Rec[];
  quantile: { lo: number | null; hi: number | null; records: Rec[] }[] | null;
  lookup: { token: string; value: number; count: number }[];
  histogram: { edges: number[]; counts: number[]; zeros: number | null; n: number };
  related: { up: TokenValueView[] | null; down: TokenValueView[] | null; input: TokenValueView[] | null; note?: string } | null;
  steer: SteerView | { skipped: string } | null;
  /** What steering clamps, in words (a neuron's code coordinate, or an SAE feature). */
  target: string;
  others: { c: number; label: string }[];
}

interface Window {
  crateViewerData: (key: string, data: unknown) => void;
  crateViewerError: (key: string, message: string) => void;
  /** performance.now() when the first page finished rendering (read by the tests and the benchmark). */
  crateViewerPainted?: number;
}
