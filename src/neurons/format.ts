// The files of a neuron collection directory (written by collect.ts, read by every neurons tool):
//
//   manifest.json            what was collected, from what, how (CollectionManifest); written last
//   tokens.u32               the N collected token ids, uint32 little-endian
//   layer-{l}/records.jsonl  one OpenAI automated-interpretability NeuronRecord per line, neuron order
//   layer-{l}/positions.jsonl  {"neuron", "top", "random", "quantile"}: the flat positions behind each record
//   layer-{l}/stats.jsonl    {"neuron", "count", "mean", "variance", "m3", "m4", "skewness", "kurtosis",
//                            "density", "max", "min"}: the full-pass statistics, raw central moments included
//
// The records speak OpenAI's format exactly (openai/automated-interpretability's dataclasses): its Python loader picks
// the class by `dataclass_name` and calls it with the other keys, so every object carries
// `dataclass_name` and no extra key. Non-finite numbers are written as null (JSON has no NaN).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataError } from '../errors.js';
import { jsonParseProblem } from '../util/json-error.js';

export const COLLECTION_FORMAT = 'crate-ts-neurons';
export const COLLECTION_FORMAT_VERSION = 1;

/** OpenAI `ActivationRecord`: one excerpt, each token decoded on its own, raw activations. */
export interface ActivationRecord {
  tokens: string[];
  activations: number[];
}

/** OpenAI `NeuronRecord`, as this project reads it (camel-free: the JSON field names). */
export interface NeuronRecord {
  neuron_id: { layer_index: number; neuron_index: number };
  random_sample: ActivationRecord[];
  random_sample_by_quantile: ActivationRecord[][] | null;
  quantile_boundaries: number[] | null;
  mean: number | null;
  variance: number | null;
  skewness: number | null;
  kurtosis: number | null;
  /** Descending by the selected token's activation. */
  most_positive_activation_records: ActivationRecord[];
}

export interface NeuronPositions {
  neuron: number;
  top: number[];
  random: number[];
  quantile: number[][] | null;
}

export interface NeuronStats {
  neuron: number;
  count: number;
  mean: number | null;
  /** Population variance Σ(x−μ)²/N. */
  variance: number | null;
  /** Raw central moments Σ(x−μ)³/N and Σ(x−μ)⁴/N: what the paper's script stored as "skewness"/"kurtosis". */
  m3: number | null;
  m4: number | null;
  /** Standardised: m3/σ³ and m4/σ⁴ (a normal distribution has kurtosis 3; not the excess). */
  skewness: number | null;
  kurtosis: number | null;
  /** Fraction of tokens with activation > 0. */
  density: number;
  max: number | null;
  min: number | null;
}

export type Variant = 'openai' | 'anthropic' | 'both';
export const VARIANTS: readonly Variant[] = ['openai', 'anthropic', 'both'];

/** An excerpt around a selected flat position q: [max(0, q − before), min(q + after, N)). */
export interface ExcerptGeometry {
  before: number;
  after: number;
}

export interface CollectionManifest {
  format: typeof COLLECTION_FORMAT;
  format_version: number;
  crate_ts_version: string;
  created: string;
  checkpoint: { path: string; sha256: string; arch: string; config: Record<string, unknown>; step: number | null };
  data: { source: string; description: string; sha256: string; split: string; tokens_available: number };
  tokenizer: string;
  /** Tokens collected (a whole number of windows). */
  n_tokens: number;
  tokens_file: string;
  tokens_sha256: string;
  /** Window length (the model's block size): the data is cut into N / window contiguous windows. */
  window: number;
  layers: number[];
  /** Hook name of each collected layer (same order as layers). */
  hooks: string[];
  /** Neurons per layer (same order as layers). */
  neurons: number[];
  seed: number;
  variant: Variant;
  /** Selection counts: top-k, random, quantile bins and per-bin samples, quantile candidate sample size. */
  counts: { top: number; random: number; quantile_bins: number; quantile_per_bin: number; quantile_sample: number };
  /** Excerpt geometry of each kind of record. */
  excerpt: { top: ExcerptGeometry; random: ExcerptGeometry; quantile: ExcerptGeometry };
  /** How the moments are defined, in words. */
  moments: string;
  /** How the quantile bins are made, in words. */
  quantiles: string;
  backend: string;
  /** The cpu backend's SGEMM kernel (avx512, avx2, scalar), null on other backends; absent before 0.2. */
  cpu_kernel?: string | null;
  batch: number;
  elapsed_s: number;
  tokens_per_s: number;
  /** CPU seconds (user + system) of the forward + streaming phase. */
  cpu_s: number;
  peak_rss_bytes: number;
  /**
   * A collection of SAE features (neurons collect --sae): the SAE directory, the sha256 of its
   * sae_weights.safetensors, the model hook it reads and its sizes. Absent for neurons (and before 0.2).
   */
  sae?: { path: string; sha256: string; hook: string; d_in: number; d_sae: number };
}

// ---- JSON of the OpenAI dataclasses ------------------------------------------------------------

/** A finite number, or null (JSON.stringify would also write NaN as null; this keeps types honest). */
export const finiteOrNull = (x: number): number | null => (Number.isFinite(x) ? x : null);

/**
 * A float as JSON the way Python's json module writes one: integral values keep a ".0" (so the
 * Python side reads a float, as the dataclasses annotate, not an int), non-finite values are null.
 */
export function floatJson(x: number | null): string {
  if (x === null || !Number.isFinite(x)) return 'null';
  return Number.isInteger(x) ? x.toFixed(1) : String(x);
}

const floatList = (xs: readonly number[]): string => `[${xs.map(floatJson).join(',')}]`;

function activationRecordJson(r: ActivationRecord): string {
  return `{"dataclass_name":"ActivationRecord","tokens":${JSON.stringify(r.tokens)},"activations":${floatList(r.activations)}}`;
}

/** One line of records.jsonl: exactly the fields of OpenAI's NeuronRecord, dataclass_name on every object. */
export function neuronRecordJson(r: NeuronRecord): string {
  const list = (rs: readonly ActivationRecord[]) => `[${rs.map(activationRecordJson).join(',')}]`;
  return (
    '{"dataclass_name":"NeuronRecord"' +
    `,"neuron_id":{"dataclass_name":"NeuronId","layer_index":${r.neuron_id.layer_index},"neuron_index":${r.neuron_id.neuron_index}}` +
    `,"random_sample":${list(r.random_sample)}` +
    `,"random_sample_by_quantile":${r.random_sample_by_quantile === null ? 'null' : `[${r.random_sample_by_quantile.map(list).join(',')}]`}` +
    `,"quantile_boundaries":${r.quantile_boundaries === null ? 'null' : floatList(r.quantile_boundaries)}` +
    `,"mean":${floatJson(r.mean)},"variance":${floatJson(r.variance)},"skewness":${floatJson(r.skewness)},"kurtosis":${floatJson(r.kurtosis)}` +
    `,"most_positive_activation_records":${list(r.most_positive_activation_records)}}`
  );
}

// ---- parsing, with errors that name the file, line and field ------------------------------------

function fail(where: string, msg: string): never {
  throw new DataError(`${where}: ${msg}`);
}

function parseActivationRecord(v: unknown, where: string): ActivationRecord {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(where, 'expected an ActivationRecord object');
  const o = v as Record<string, unknown>;
  if (o.dataclass_name !== undefined && o.dataclass_name !== 'ActivationRecord')
    fail(where, `dataclass_name is '${String(o.dataclass_name)}', expected 'ActivationRecord'`);
  if (!Array.isArray(o.tokens) || !o.tokens.every((t) => typeof t === 'string')) fail(where, '"tokens" must be a list of strings');
  if (!Array.isArray(o.activations) || !o.activations.every((a) => a === null || typeof a === 'number')) fail(where, '"activations" must be a list of numbers');
  if (o.tokens.length !== o.activations.length) fail(where, `${o.tokens.length} tokens but ${o.activations.length} activations`);
  return { tokens: o.tokens as string[], activations: (o.activations as (number | null)[]).map((a) => (a === null ? NaN : a)) };
}

function recordList(v: unknown, where: string): ActivationRecord[] {
  if (!Array.isArray(v)) fail(where, 'expected a list of ActivationRecords');
  return v.map((r, i) => parseActivationRecord(r, `${where}[${i}]`));
}

const numOrNull = (v: unknown, where: string): number | null => {
  if (v === null || v === undefined) return null;
  if (typeof v !== 'number') fail(where, 'expected a number or null');
  return v;
};

/** Parse one line of records.jsonl. */
export function parseNeuronRecord(line: string, where: string): NeuronRecord {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (e) {
    fail(where, jsonParseProblem(e));
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(where, 'expected a NeuronRecord object');
  const o = v as Record<string, unknown>;
  if (o.dataclass_name !== 'NeuronRecord') fail(where, `dataclass_name is '${String(o.dataclass_name)}', expected 'NeuronRecord'`);
  const id = o.neuron_id as Record<string, unknown> | null;
  if (typeof id !== 'object' || id === null || !Number.isInteger(id.layer_index) || !Number.isInteger(id.neuron_index))
    fail(where, '"neuron_id" must be a NeuronId {layer_index, neuron_index}');
  const q = o.random_sample_by_quantile;
  if (q !== null && q !== undefined && !Array.isArray(q)) fail(where, '"random_sample_by_quantile" must be a list of lists or null');
  const qb = o.quantile_boundaries;
  if (qb !== null && qb !== undefined && (!Array.isArray(qb) || !qb.every((x) => x === null || typeof x === 'number')))
    fail(where, '"quantile_boundaries" must be a list of numbers or null');
  return {
    neuron_id: { layer_index: id.layer_index as number, neuron_index: id.neuron_index as number },
    random_sample: recordList(o.random_sample ?? [], `${where} random_sample`),
    random_sample_by_quantile: Array.isArray(q) ? q.map((bin, b) => recordList(bin, `${where} random_sample_by_quantile[${b}]`)) : null,
    quantile_boundaries: Array.isArray(qb) ? (qb as (number | null)[]).map((x) => (x === null ? NaN : x)) : null,
    mean: numOrNull(o.mean, `${where} mean`),
    variance: numOrNull(o.variance, `${where} variance`),
    skewness: numOrNull(o.skewness, `${where} skewness`),
    kurtosis: numOrNull(o.kurtosis, `${where} kurtosis`),
    most_positive_activation_records: recordList(o.most_positive_activation_records ?? [], `${where} most_positive_activation_records`),
  };
}

const intList = (v: unknown, where: string): number[] => {
  if (!Array.isArray(v) || !v.every((x) => Number.isInteger(x) && x >= 0)) fail(where, 'expected a list of non-negative integer positions');
  return v as number[];
};

export function parsePositions(line: string, where: string): NeuronPositions {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (e) {
    fail(where, jsonParseProblem(e));
  }
  const o = v as Record<string, unknown>;
  if (typeof o !== 'object' || o === null || !Number.isInteger(o.neuron)) fail(where, 'expected {"neuron", "top", "random", "quantile"}');
  const q = o.quantile;
  if (q !== null && !Array.isArray(q)) fail(where, '"quantile" must be a list of lists or null');
  return {
    neuron: o.neuron as number,
    top: intList(o.top, `${where} top`),
    random: intList(o.random, `${where} random`),
    quantile: Array.isArray(q) ? q.map((b, i) => intList(b, `${where} quantile[${i}]`)) : null,
  };
}

// ---- reading a collection -----------------------------------------------------------------------

/** Read and check manifest.json; a directory without one is not a (complete) collection. */
/** Why `dir` (which has no manifest.json) is not a collection, and what to do instead: one line. */
export function notACollection(dir: string): string {
  if (!fs.statSync(dir).isDirectory()) return `'${dir}' is a file, not a neuron collection directory (made by crate-ts neurons collect --out DIR)`;
  const entries = fs.readdirSync(dir);
  const collect = `crate-ts neurons collect --checkpoint ${dir} --out ${dir.replace(/\/+$/, '')}-neurons`;
  if (entries.some((e) => /^(model|ckpt)\.safetensors$/.test(e)))
    return `'${dir}' is a training run, not a neuron collection: collect its neurons first, e.g. ${collect}`;
  if (entries.some((e) => /^(tokens\.u32|layer-\d+)$/.test(e)))
    return `'${dir}' is not a complete neuron collection: it has no manifest.json (written last, so an interrupted collect leaves none); run the collect again`;
  return `'${dir}' holds no neuron collection (no manifest.json); make one with crate-ts neurons collect --checkpoint RUN --out ${dir}`;
}

export function readManifest(dir: string): CollectionManifest {
  const file = path.join(dir, 'manifest.json');
  if (!fs.existsSync(dir)) throw new DataError(`collection directory '${dir}' does not exist`);
  if (!fs.existsSync(file)) throw new DataError(notACollection(dir));
  let m: CollectionManifest;
  try {
    m = JSON.parse(fs.readFileSync(file, 'utf8')) as CollectionManifest;
  } catch (e) {
    throw new DataError(`${file}: ${jsonParseProblem(e)}`);
  }
  if (typeof m !== 'object' || m === null || m.format !== COLLECTION_FORMAT)
    throw new DataError(`${file}: not a crate-ts neuron collection manifest (format is not '${COLLECTION_FORMAT}')`);
  if (m.format_version !== COLLECTION_FORMAT_VERSION)
    throw new DataError(`${file}: format_version ${String(m.format_version)} is not supported (this crate-ts reads version ${COLLECTION_FORMAT_VERSION})`);
  const arrays = ['layers', 'hooks', 'neurons'] as const;
  for (const k of arrays)
    if (!Array.isArray(m[k]) || m[k].length !== m.layers?.length) throw new DataError(`${file}: "${k}" must be a list with one entry per collected layer`);
  if (!Number.isInteger(m.n_tokens) || m.n_tokens < 1) throw new DataError(`${file}: "n_tokens" must be a positive integer`);
  if (!VARIANTS.includes(m.variant)) throw new DataError(`${file}: "variant" must be one of ${VARIANTS.join(', ')}`);
  return m;
}

/** The lines of a JSONL file (without the trailing empty line), with a clear error when missing. */
export function readJsonlLines(file: string): string[] {
  let raw: Buffer;
  try {
    raw = fs.readFileSync(file);
  } catch (e) {
    throw new DataError(`cannot read '${file}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  // line by line from the bytes: a layer of 16x SAE features holds more than the ~512 MiB a single
  // JavaScript string can (4096 features with quantile records: 590 MB)
  const lines: string[] = [];
  let start = 0;
  for (let i = raw.indexOf(10); i !== -1; i = raw.indexOf(10, start)) {
    lines.push(raw.toString('utf8', start, i));
    start = i + 1;
  }
  if (start < raw.length) lines.push(raw.toString('utf8', start));
  return lines;
}

export function layerDir(dir: string, layer: number): string {
  return path.join(dir, `layer-${layer}`);
}

/** Everything stored for one collected layer, checked against the manifest (neuron count and order). */
export interface LayerData {
  layer: number;
  hook: string;
  records: NeuronRecord[];
  positions: NeuronPositions[];
  stats: NeuronStats[];
}

export function readLayer(dir: string, m: CollectionManifest, layer: number): LayerData {
  const li = m.layers.indexOf(layer);
  if (li < 0) throw new DataError(`layer ${layer} was not collected in '${dir}' (collected layers: ${m.layers.join(', ')})`);
  const H = m.neurons[li];
  const ld = layerDir(dir, layer);
  const read = <T>(name: string, parse: (line: string, where: string) => T): T[] => {
    const file = path.join(ld, name);
    const lines = readJsonlLines(file);
    if (lines.length !== H) throw new DataError(`${file}: ${lines.length} lines, but the manifest says layer ${layer} has ${H} neurons (truncated or edited?)`);
    return lines.map((line, i) => parse(line, `${file}:${i + 1}`));
  };
  const records = read('records.jsonl', parseNeuronRecord);
  records.forEach((r, i) => {
    if (r.neuron_id.neuron_index !== i || r.neuron_id.layer_index !== layer)
      throw new DataError(
        `${path.join(ld, 'records.jsonl')}:${i + 1}: neuron_id is (${r.neuron_id.layer_index}, ${r.neuron_id.neuron_index}), expected (${layer}, ${i})`,
      );
  });
  const positions = read('positions.jsonl', parsePositions);
  positions.forEach((p, i) => {
    const r = records[i];
    const file = path.join(ld, 'positions.jsonl');
    if (p.neuron !== i) throw new DataError(`${file}:${i + 1}: neuron is ${p.neuron}, expected ${i}`);
    if (p.top.length !== r.most_positive_activation_records.length || p.random.length !== r.random_sample.length)
      throw new DataError(`${file}:${i + 1}: the position lists do not match the records' counts`);
    if (
      (p.quantile === null) !== (r.random_sample_by_quantile === null) ||
      (p.quantile && p.quantile.some((b, j) => b.length !== r.random_sample_by_quantile![j]?.length))
    )
      throw new DataError(`${file}:${i + 1}: the quantile positions do not match the records`);
    if ([...p.top, ...p.random, ...(p.quantile ?? []).flat()].some((q) => q >= m.n_tokens))
      throw new DataError(`${file}:${i + 1}: a position is outside the ${m.n_tokens} collected tokens`);
  });
  const stats = read('stats.jsonl', (line, where) => {
    let s: NeuronStats;
    try {
      s = JSON.parse(line) as NeuronStats;
    } catch (e) {
      throw new DataError(`${where}: ${jsonParseProblem(e)}`);
    }
    if (typeof s !== 'object' || s === null || typeof s.density !== 'number') throw new DataError(`${where}: expected a statistics object with "density"`);
    return s;
  });
  return { layer, hook: m.hooks[li], records, positions, stats };
}

/** Read tokens.u32 (uint32 little-endian) and check it holds the manifest's N tokens. */
export function readTokens(dir: string, m: CollectionManifest): Uint32Array {
  const file = path.join(dir, m.tokens_file ?? 'tokens.u32');
  let raw: Buffer;
  try {
    raw = fs.readFileSync(file);
  } catch (e) {
    throw new DataError(`cannot read '${file}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (raw.length !== 4 * m.n_tokens) throw new DataError(`${file}: ${raw.length} bytes, expected 4 × ${m.n_tokens} tokens`);
  const out = new Uint32Array(m.n_tokens);
  for (let i = 0; i < out.length; i++) out[i] = raw.readUInt32LE(4 * i);
  return out;
}

/** Where the selected token sits in an excerpt of position q: q − max(0, q − before). */
export function selectedOffset(q: number, g: ExcerptGeometry): number {
  return q - Math.max(0, q - g.before);
}
