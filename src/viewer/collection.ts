// A neuron collection opened for the viewer (crate-ts neurons view): the manifest, per layer the
// statistics, the offline scores and (when present) the LLM explanations and scores, and random
// access to one neuron's record line, so a 12-layer × 3072-neuron collection is never parsed whole.
//
// The files are those of src/neurons/format.ts (written by `crate-ts neurons collect`), plus
//   scores-lookup.jsonl                     per-neuron offline scores (`crate-ts neurons score`)
//   llm-<set>/{tar,randomOnly,anthropic}/layer-{l}.jsonl   OpenAI NeuronSimulationResults per neuron
//   llm-<set>/explanations/layer-{l}.jsonl  explanations (also those not scored yet)
//   <any folder>/summary.json + layer-{l}.jsonl   detection / fuzzing scores (`neurons score --scorer
//                                           detection|fuzzing`, by default detection-lookup/ etc.): a
//                                           folder whose summary.json names the scorer
// The optional files degrade gracefully: absent, the viewer computes the offline scores itself and
// shows no LLM column; unreadable, it says why on the overview page (a warning) and goes on.
//
// A collection may come from someone else: every file is read only when its real path lies inside
// the collection directory (a link that leaves it is refused, or for an optional file ignored with
// a warning), and no message quotes what a file holds (a parse error says where, not what).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataError } from '../errors.js';
import { jsonParseProblem } from '../util/json-error.js';
import {
  layerDir,
  parseNeuronRecord,
  parsePositions,
  readManifest,
  selectedOffset,
  type CollectionManifest,
  type NeuronPositions,
  type NeuronRecord,
  type NeuronStats,
} from '../neurons/format.js';
import { scoreCollection } from '../neurons/score.js';
import { SPLIT_NAMES, type SplitName } from '../neurons/scoring.js';
import type { ClassifierExample } from '../neurons/classifier.js';

/** The offline (token-lookup) scores of one neuron; null where undefined (a constant side). */
export interface OfflineScore {
  tar: number | null;
  randomOnly: number | null;
  anthropic: number | null;
  selectivity: number | null;
  consistency: number | null;
}

/** One scored record of an LLM simulation: the true and the simulated activations per token. */
export interface LlmSequence {
  tokens: string[];
  real: number[];
  simulated: number[];
}

/** What an LLM run says about one neuron in one split. */
export interface LlmNeuron {
  explanation: string;
  score: number | null;
  sequences: LlmSequence[];
}

/** One llm-<set> directory: per split and layer, neuron → result; and explanations without scores. */
export interface LlmSet {
  name: string;
  dir: string;
  /** The collection directory's real path (files must resolve inside it). */
  root: string;
  /** split → layer → neuron → result (lazily filled per layer). */
  splits: Partial<Record<SplitName, Map<number, Map<number, LlmNeuron>>>>;
  /** layer → neuron → explanation (the openai group's, else any). */
  explanations: Map<number, Map<number, string>>;
}

/** One neuron's detection or fuzzing result (layer-{l}.jsonl of `neurons score --scorer`); fractions 0-1. */
export interface ClassifierNeuron {
  balancedAccuracy: number | null;
  accuracy: number | null;
  f1: number | null;
  auc: number | null;
  n: number;
  parseFailures: number;
  /** Where the neuron's line is in the layer file (its examples are read when its page is built). */
  start: number;
  end: number;
}

/** One folder of classifier scores: its scorer and judge (from summary.json) and, per layer, neuron → result. */
export interface ClassifierSet {
  name: string;
  dir: string;
  root: string;
  scorer: 'detection' | 'fuzzing';
  judge: string;
  /** layer → neuron → result (lazily filled per layer). */
  layers: Map<number, Map<number, ClassifierNeuron>>;
}

export interface LayerFiles {
  layer: number;
  hook: string;
  neurons: number;
  stats: NeuronStats[];
  recordsFile: string;
  positionsFile: string;
  /** Byte offsets of every line start, plus the file size (neurons + 1 entries). */
  recordOffsets: number[];
  positionOffsets: number[];
}

export interface OpenCollection {
  index: number;
  dir: string;
  label: string;
  manifest: CollectionManifest;
  layers: LayerFiles[];
  /** layer → neuron → offline scores; source says whether they came from scores-lookup.jsonl. */
  scores: Map<number, OfflineScore[]>;
  scoresSource: 'scores-lookup.jsonl' | 'computed by the viewer';
  llm: LlmSet[];
  classifiers: ClassifierSet[];
  warnings: string[];
}

/** The real path of a collection directory (the root its files must stay inside). */
function realRoot(dir: string): string {
  try {
    return fs.realpathSync(dir);
  } catch {
    return path.resolve(dir);
  }
}

/**
 * Why `file` may not be read as part of the collection whose real root is `root`: it (or a directory
 * on the way) is a link that resolves outside the root. null when it is inside or does not exist.
 */
export function leavesCollection(root: string, file: string): string | null {
  let real: string;
  try {
    real = fs.realpathSync(file);
  } catch {
    return null; // missing: the reader says so
  }
  const rel = path.relative(root, real);
  if (rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel))) return null;
  return `'${path.relative(root, path.resolve(file)) || path.basename(file)}' is a link that leaves the collection directory; refusing to follow it`;
}

function confine(dir: string, root: string, file: string): void {
  const why = leavesCollection(root, file);
  if (why) throw new DataError(`${dir}: ${why}`);
}

/** Byte offsets of the starts of the lines of a file (and its size at the end), checked against n. */
export function lineOffsets(file: string, n: number): number[] {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw new DataError(`cannot read '${file}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message} (the collection is incomplete)`);
  }
  const offsets = [0];
  let pos = 0,
    last = -1;
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const got = fs.readSync(fd, buf, 0, buf.length, pos);
      if (got === 0) break;
      for (let i = buf.indexOf(10, 0); i !== -1 && i < got; i = buf.indexOf(10, i + 1)) {
        offsets.push(pos + i + 1);
        last = pos + i;
      }
      pos += got;
    }
  } finally {
    fs.closeSync(fd);
  }
  // A final line without its newline still counts (a file cut short shows up as a bad line count or bad JSON).
  if (pos > last + 1) offsets.push(pos);
  const lines = offsets.length - 1;
  if (lines !== n) throw new DataError(`${file}: ${lines} lines, but the manifest says there are ${n} neurons (the collection is incomplete or was edited)`);
  return offsets;
}

/** Read line i of a file whose line offsets are known. */
export function readLine(file: string, offsets: readonly number[], i: number): string {
  const start = offsets[i],
    end = offsets[i + 1];
  const buf = Buffer.allocUnsafe(end - start);
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, buf, 0, buf.length, start);
  } finally {
    fs.closeSync(fd);
  }
  return buf.toString('utf8').replace(/\n$/, '');
}

function readStats(file: string, n: number): NeuronStats[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new DataError(`cannot read '${file}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message} (the collection is incomplete)`);
  }
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  if (lines.length !== n)
    throw new DataError(`${file}: ${lines.length} lines, but the manifest says there are ${n} neurons (the collection is incomplete or was edited)`);
  return lines.map((line, i) => {
    let s: NeuronStats;
    try {
      s = JSON.parse(line) as NeuronStats;
    } catch (e) {
      throw new DataError(`${file}:${i + 1}: ${jsonParseProblem(e)}`);
    }
    if (typeof s !== 'object' || s === null || s.neuron !== i || typeof s.density !== 'number')
      throw new DataError(`${file}:${i + 1}: expected the statistics of neuron ${i} ({"neuron": ${i}, "density", "max", ...})`);
    return s;
  });
}

const numOrNull = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** scores-lookup.jsonl → layer → per-neuron scores, or a reason it cannot be used. */
function readScoresFile(file: string, m: CollectionManifest): Map<number, OfflineScore[]> | string {
  const out = new Map<number, OfflineScore[]>();
  m.layers.forEach((l, li) => out.set(l, new Array<OfflineScore>(m.neurons[li])));
  const lines = fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '');
  for (let i = 0; i < lines.length; i++) {
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(lines[i]) as Record<string, unknown>;
    } catch (e) {
      return `${file}:${i + 1}: ${jsonParseProblem(e)}`;
    }
    const arr = out.get(o.layer as number);
    if (!arr || !Number.isInteger(o.neuron) || (o.neuron as number) < 0 || (o.neuron as number) >= arr.length)
      return `${file}:${i + 1}: layer ${String(o.layer)} neuron ${String(o.neuron)} is not in this collection`;
    arr[o.neuron as number] = {
      tar: numOrNull(o.tar),
      randomOnly: numOrNull(o.randomOnly),
      anthropic: numOrNull(o.anthropic),
      selectivity: numOrNull(o.selectivity),
      consistency: numOrNull(o.consistency),
    };
  }
  for (const [l, arr] of out)
    for (let i = 0; i < arr.length; i++) if (!arr[i]) return `${file}: no scores for layer ${l} neuron ${i} (written for another collection?)`;
  return out;
}

function computeScores(dir: string): Map<number, OfflineScore[]> {
  const s = scoreCollection(dir);
  const out = new Map<number, OfflineScore[]>();
  for (const n of s.neurons) {
    const arr = out.get(n.layer) ?? [];
    arr[n.neuron] = {
      tar: numOrNull(n.tar),
      randomOnly: numOrNull(n.randomOnly),
      anthropic: numOrNull(n.anthropic),
      selectivity: numOrNull(n.selectivity),
      consistency: numOrNull(n.consistency),
    };
    out.set(n.layer, arr);
  }
  return out;
}

// ---- LLM result files ---------------------------------------------------------------------------

function parseSimulationResults(line: string, where: string): { neuron: number; result: LlmNeuron } {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${where}: ${jsonParseProblem(e)}`);
  }
  if (typeof o !== 'object' || o === null) throw new Error(`${where}: not a JSON object`);
  if (o.dataclass_name !== 'NeuronSimulationResults') throw new Error(`${where}: dataclass_name is not 'NeuronSimulationResults'`);
  const id = o.neuron_id as { neuron_index?: unknown } | undefined;
  if (!id || !Number.isInteger(id.neuron_index)) throw new Error(`${where}: no neuron_id.neuron_index`);
  const se = (o.scored_explanations as Record<string, unknown>[] | undefined)?.[0];
  if (!se || typeof se.explanation !== 'string') throw new Error(`${where}: no scored explanation`);
  const sim = (se.scored_simulation ?? {}) as Record<string, unknown>;
  const seqs = (Array.isArray(sim.scored_sequence_simulations) ? sim.scored_sequence_simulations : []) as Record<string, unknown>[];
  return {
    neuron: id.neuron_index as number,
    result: {
      explanation: se.explanation,
      score: numOrNull(sim.ev_correlation_score),
      sequences: seqs.map((s) => {
        const ss = (s.simulation ?? {}) as Record<string, unknown>;
        const tokens = Array.isArray(ss.tokens) ? (ss.tokens as unknown[]).map(String) : [];
        const num = (a: unknown) => (Array.isArray(a) ? a.map((x) => (typeof x === 'number' ? x : 0)) : []);
        return { tokens, real: num(s.true_activations), simulated: num(ss.expected_activations) };
      }),
    },
  };
}

/** Find the llm-* result directories of a collection (nothing is parsed yet). */
function findLlmSets(dir: string): LlmSet[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries
    .filter((e) => e.isDirectory() && /^llm(-|$)/.test(e.name))
    .map((e) => ({ name: e.name, dir: path.join(dir, e.name), root: realRoot(dir), splits: {}, explanations: new Map() }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** Load one layer of an LLM set (idempotent); problems become warnings. */
export function loadLlmLayer(set: LlmSet, layer: number, warnings: string[]): void {
  for (const split of SPLIT_NAMES) {
    const byLayer = (set.splits[split] ??= new Map());
    if (byLayer.has(layer)) continue;
    const map = new Map<number, LlmNeuron>();
    byLayer.set(layer, map);
    const file = path.join(set.dir, split, `layer-${layer}.jsonl`);
    if (!fs.existsSync(file)) continue;
    const out = leavesCollection(set.root, file);
    if (out) {
      warnings.push(`LLM results ${file} were not read: ${out}`);
      continue;
    }
    try {
      fs.readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (line.trim() === '') return;
          const r = parseSimulationResults(line, `${file}:${i + 1}`);
          map.set(r.neuron, r.result);
        });
    } catch (e) {
      warnings.push(`LLM results ${file} could not be read: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  if (!set.explanations.has(layer)) {
    const map = new Map<number, string>();
    set.explanations.set(layer, map);
    const file = path.join(set.dir, 'explanations', `layer-${layer}.jsonl`);
    const out = fs.existsSync(file) ? leavesCollection(set.root, file) : null;
    if (out) warnings.push(`LLM explanations ${file} were not read: ${out}`);
    else if (fs.existsSync(file)) {
      try {
        fs.readFileSync(file, 'utf8')
          .split('\n')
          .forEach((line, i) => {
            if (line.trim() === '') return;
            let o: { neuron?: unknown; explanation?: unknown; group?: unknown };
            try {
              o = JSON.parse(line) as typeof o;
            } catch (e) {
              throw new Error(`${file}:${i + 1}: ${jsonParseProblem(e)}`);
            }
            if (typeof o !== 'object' || o === null) return;
            if (!Number.isInteger(o.neuron) || typeof o.explanation !== 'string') return;
            if (!map.has(o.neuron as number) || o.group === 'openai') map.set(o.neuron as number, o.explanation);
          });
      } catch (e) {
        warnings.push(`LLM explanations ${file} could not be read: ${(e as Error).message.split('\n')[0]}`);
      }
    }
  }
}

/** The explanation of a neuron from the first LLM set that has one (scored TaR first). */
export function explanationOf(c: OpenCollection, layer: number, neuron: number): string | null {
  for (const set of c.llm) {
    loadLlmLayer(set, layer, c.warnings);
    for (const split of SPLIT_NAMES) {
      const r = set.splits[split]?.get(layer)?.get(neuron);
      if (r) return r.explanation;
    }
    const e = set.explanations.get(layer)?.get(neuron);
    if (e) return e;
  }
  return null;
}

// ---- detection and fuzzing scores ---------------------------------------------------------------

/** The folders of a collection that hold classifier scores (summary.json with scorer detection|fuzzing); problems become warnings. */
function findClassifierSets(dir: string, warnings: string[]): ClassifierSet[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const root = realRoot(dir);
  const out: ClassifierSet[] = [];
  for (const e of entries.filter((x) => x.isDirectory() && !/^(layer-\d+|llm(-.*)?)$/.test(x.name)).sort((a, b) => a.name.localeCompare(b.name))) {
    const file = path.join(dir, e.name, 'summary.json');
    if (!fs.existsSync(file)) continue;
    const why = leavesCollection(root, file);
    if (why) {
      warnings.push(`classifier scores ${file} were not read: ${why}`);
      continue;
    }
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      warnings.push(`classifier scores ${file} could not be read: ${jsonParseProblem(err)}`);
      continue;
    }
    if (typeof o !== 'object' || o === null || (o.scorer !== 'detection' && o.scorer !== 'fuzzing')) continue; // another tool's summary
    out.push({ name: e.name, dir: path.join(dir, e.name), root, scorer: o.scorer, judge: typeof o.judge === 'string' ? o.judge : '?', layers: new Map() });
  }
  return out;
}

/** Load one layer of a classifier set (idempotent): the metrics of every neuron; problems become warnings. */
export function loadClassifierLayer(set: ClassifierSet, layer: number, neurons: number, warnings: string[]): Map<number, ClassifierNeuron> {
  const have = set.layers.get(layer);
  if (have) return have;
  const map = new Map<number, ClassifierNeuron>();
  set.layers.set(layer, map);
  const file = path.join(set.dir, `layer-${layer}.jsonl`);
  if (!fs.existsSync(file)) return map;
  const why = leavesCollection(set.root, file);
  if (why) {
    warnings.push(`classifier scores ${file} were not read: ${why}`);
    return map;
  }
  const raw = fs.readFileSync(file);
  let start = 0,
    line = 0;
  try {
    while (start < raw.length) {
      const nl = raw.indexOf(10, start),
        end = nl === -1 ? raw.length : nl;
      line++;
      const text = raw.toString('utf8', start, end);
      if (text.trim() !== '') {
        let o: Record<string, unknown>;
        try {
          o = JSON.parse(text) as Record<string, unknown>;
        } catch (e) {
          throw new Error(`${file}:${line}: ${jsonParseProblem(e)}`);
        }
        if (typeof o !== 'object' || o === null) throw new Error(`${file}:${line}: not a JSON object`);
        const n = o.neuron;
        if (o.layer !== layer || !Number.isInteger(n) || (n as number) < 0 || (n as number) >= neurons)
          throw new Error(`${file}:${line}: layer ${String(o.layer)} neuron ${String(n)} is not in this collection`);
        map.set(n as number, {
          balancedAccuracy: numOrNull(o.balanced_accuracy),
          accuracy: numOrNull(o.accuracy),
          f1: numOrNull(o.f1),
          auc: numOrNull(o.auc),
          n: Number.isInteger(o.n) ? (o.n as number) : 0,
          parseFailures: Number.isInteger(o.parse_failures) ? (o.parse_failures as number) : 0,
          start,
          end,
        });
      }
      start = end + 1;
    }
  } catch (e) {
    map.clear();
    warnings.push(`classifier scores ${file} could not be read: ${(e as Error).message.split('\n')[0]}`);
  }
  return map;
}

/** One neuron's judged contexts (delphi's per-example fields) and the explanation the judge read. */
export function classifierExamples(
  set: ClassifierSet,
  layer: number,
  r: ClassifierNeuron,
): {
  explanation: string | null;
  examples: ClassifierExample[];
} {
  const file = path.join(set.dir, `layer-${layer}.jsonl`);
  const buf = Buffer.allocUnsafe(r.end - r.start);
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, buf, 0, buf.length, r.start);
  } finally {
    fs.closeSync(fd);
  }
  const o = JSON.parse(buf.toString('utf8')) as { explanation?: unknown; examples?: unknown };
  const bool = (x: unknown) => (typeof x === 'boolean' ? x : null);
  const examples = (Array.isArray(o.examples) ? o.examples : []).map((x: Record<string, unknown>) => ({
    str_tokens: Array.isArray(x.str_tokens) ? x.str_tokens.map(String) : [],
    activations: Array.isArray(x.activations) ? x.activations.map((a) => (typeof a === 'number' && Number.isFinite(a) ? a : 0)) : [],
    distance: typeof x.distance === 'number' ? x.distance : 0,
    activating: x.activating === true,
    prediction: bool(x.prediction),
    probability: numOrNull(x.probability),
    correct: bool(x.correct),
  }));
  return { explanation: typeof o.explanation === 'string' ? o.explanation : null, examples };
}

// ---- opening --------------------------------------------------------------------------------------

/**
 * Open a collection directory: the manifest (its format version checked), and for every collected
 * layer the statistics and the line offsets of records.jsonl and positions.jsonl, whose line counts
 * must match the manifest. An incomplete or foreign directory is a one-line DataError.
 */
export function openCollection(dir: string, index = 0, label?: string): OpenCollection {
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory())
    throw new DataError(`'${dir}' is not a directory (give a collection directory written by crate-ts neurons collect)`);
  const root = realRoot(dir);
  confine(dir, root, path.join(dir, 'manifest.json'));
  const manifest = readManifest(dir);
  confine(dir, root, path.join(dir, typeof manifest.tokens_file === 'string' ? manifest.tokens_file : 'tokens.u32'));
  const layers: LayerFiles[] = manifest.layers.map((layer, li) => {
    const ld = layerDir(dir, layer),
      n = manifest.neurons[li];
    if (!Number.isInteger(n) || n < 1) throw new DataError(`${path.join(dir, 'manifest.json')}: "neurons" of layer ${layer} must be a positive integer`);
    if (!fs.existsSync(ld)) throw new DataError(`'${dir}' is incomplete: layer ${layer} is in the manifest but '${ld}' is missing`);
    const recordsFile = path.join(ld, 'records.jsonl'),
      positionsFile = path.join(ld, 'positions.jsonl');
    for (const f of [ld, recordsFile, positionsFile, path.join(ld, 'stats.jsonl')]) confine(dir, root, f);
    return {
      layer,
      hook: manifest.hooks[li],
      neurons: n,
      stats: readStats(path.join(ld, 'stats.jsonl'), n),
      recordsFile,
      positionsFile,
      recordOffsets: lineOffsets(recordsFile, n),
      positionOffsets: lineOffsets(positionsFile, n),
    };
  });
  const warnings: string[] = [];
  let scores: Map<number, OfflineScore[]> | null = null;
  let scoresSource: OpenCollection['scoresSource'] = 'computed by the viewer';
  const scoresFile = path.join(dir, 'scores-lookup.jsonl');
  const scoresOut = leavesCollection(root, scoresFile);
  if (scoresOut) warnings.push(`${scoresFile} was not read: ${scoresOut}; the offline scores were recomputed`);
  else if (fs.existsSync(scoresFile)) {
    const r = readScoresFile(scoresFile, manifest);
    if (typeof r === 'string') warnings.push(`${r}; the offline scores were recomputed`);
    else {
      scores = r;
      scoresSource = 'scores-lookup.jsonl';
    }
  }
  scores ??= computeScores(dir);
  const llm = findLlmSets(dir);
  const classifiers = findClassifierSets(dir, warnings);
  const c: OpenCollection = { index, dir, label: label ?? defaultLabel(dir, manifest), manifest, layers, scores, scoresSource, llm, classifiers, warnings };
  for (const set of llm) for (const l of manifest.layers) loadLlmLayer(set, l, warnings);
  for (const set of classifiers) for (const lf of layers) loadClassifierLayer(set, lf.layer, lf.neurons, warnings);
  return c;
}

function defaultLabel(dir: string, m: CollectionManifest): string {
  return `${path.basename(path.resolve(dir))} (${m.checkpoint.arch})`;
}

export function layerFiles(c: OpenCollection, layer: number): LayerFiles {
  const lf = c.layers.find((l) => l.layer === layer);
  if (!lf) throw new DataError(`layer ${layer} was not collected in '${c.dir}' (collected layers: ${c.manifest.layers.join(', ')})`);
  return lf;
}

/** One neuron's record and positions, parsed and checked (neuron id, counts). */
export function readNeuron(
  c: OpenCollection,
  layer: number,
  neuron: number,
): { record: NeuronRecord; positions: NeuronPositions; offsets: { top: number[]; random: number[]; quantile: number[][] | null } } {
  const lf = layerFiles(c, layer);
  if (!Number.isInteger(neuron) || neuron < 0 || neuron >= lf.neurons)
    throw new DataError(`neuron ${neuron} is out of range: layer ${layer} has ${lf.neurons} neurons (0..${lf.neurons - 1})`);
  const record = parseNeuronRecord(readLine(lf.recordsFile, lf.recordOffsets, neuron), `${lf.recordsFile}:${neuron + 1}`);
  if (record.neuron_id.layer_index !== layer || record.neuron_id.neuron_index !== neuron)
    throw new DataError(
      `${lf.recordsFile}:${neuron + 1}: neuron_id is (${record.neuron_id.layer_index}, ${record.neuron_id.neuron_index}), expected (${layer}, ${neuron})`,
    );
  const positions = parsePositions(readLine(lf.positionsFile, lf.positionOffsets, neuron), `${lf.positionsFile}:${neuron + 1}`);
  if (
    positions.neuron !== neuron ||
    positions.top.length !== record.most_positive_activation_records.length ||
    positions.random.length !== record.random_sample.length
  ) {
    throw new DataError(`${lf.positionsFile}:${neuron + 1}: the positions do not match the records of neuron ${neuron}`);
  }
  const g = c.manifest.excerpt;
  return {
    record,
    positions,
    offsets: {
      top: positions.top.map((q) => selectedOffset(q, g.top)),
      random: positions.random.map((q) => selectedOffset(q, g.random)),
      quantile: positions.quantile === null ? null : positions.quantile.map((b) => b.map((q) => selectedOffset(q, g.quantile))),
    },
  };
}

/** Every top position's token id (from positions.jsonl and tokens.u32), for the "top token" column. */
export function readTopPositions(c: OpenCollection, layer: number): number[][] {
  const lf = layerFiles(c, layer);
  const text = fs.readFileSync(lf.positionsFile, 'utf8').split('\n');
  const out: number[][] = [];
  for (let i = 0; i < lf.neurons; i++) out.push(parsePositions(text[i], `${lf.positionsFile}:${i + 1}`).top);
  return out;
}
