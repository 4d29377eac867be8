// The viewer's data: what the browser loads, as plain JSON objects, built from opened collections
// (collection.ts) and, when the checkpoint is at hand, from the model (weights.ts, src/steer).
//
// Units: every score (token-lookup TaR, Random-only, Anthropic; LLM simulation) is a correlation
// × 100, as `crate-ts neurons score` prints it and the paper's tables give it, per neuron as per
// layer; the detection and fuzzing scores (balanced accuracy, accuracy, F1, AUC) are × 100 too
// (chance = 50); density, selectivity and consistency are fractions (0-1).
//
//   index       every collection's model, data, per-layer score means (offline lookup and LLM),
//               density and dead-neuron counts, warnings                       (one small object)
//   table       one layer's neuron table: one row per neuron                    (one per layer)
//   neuron      one neuron's page: records as heatmaps, quantile bins, lookup table, histogram,
//               explanations and LLM scores, related tokens, steering effects  (one per neuron)
//
// The split per layer and per neuron is what keeps a 12 × 3072 collection quick to open: the
// overview needs the index and one table, a neuron page one neuron object.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Backend } from '../backend/types.js';
import { ReferenceBackend } from '../backend/reference.js';
import { loadCheckpoint, modelFromCheckpoint, resolveCheckpointPath } from '../checkpoint/checkpoint.js';
import { loadTokenizer, type Tokenizer } from '../data/tokenizer.js';
import { CheckpointError, CrateError, DataError, UsageError } from '../errors.js';
import type { LanguageModel } from '../model/lm.js';
import { readTokens, type ActivationRecord } from '../neurons/format.js';
import { lookupTable } from '../neurons/lookup.js';
import { SPLIT_NAMES, maxActivation, normalizeActivations, splitFor, type NeuronRecords, type SplitName } from '../neurons/scoring.js';
import type { CollectionScores } from '../neurons/score.js';
import { compareDistributions, fitPrompt, nextToken, steer, PAPER_PROMPT, type Distribution } from '../steer/steer.js';
import { featureClampHooks, saeFeatures, type SaeFeatures } from '../sae/features.js';
import { WEIGHTS_FILE } from '../sae/format.js';
import { tokenText } from '../steer/tokens.js';
import {
  classifierExamples,
  explanationOf,
  layerFiles,
  loadClassifierLayer,
  loadLlmLayer,
  openCollection,
  readNeuron,
  readTopPositions,
  type OpenCollection,
} from './collection.js';
import { featureDirections, inputTokens, isNeuronHook, logitEffects, type TokenValue } from './weights.js';
import { sha256File } from '../util/hash.js';

export const VIEWER_FORMAT_VERSION = 1;
/** The default steering clamp on a neuron page: the neuron's largest activation on the collected tokens, times this. */
export const STEER_FACTOR = 2;
const RELATED_K = 12;
const STEER_TOP = 10;
/** Unsteered next-token distributions kept per collection (least recently used goes first). */
export const STEER_CACHE_PROMPTS = 16;
/** The largest finite float32: the model computes in float32, so a clamp past it is not a number there. */
export const FLOAT32_MAX = 3.4028234663852886e38;

export interface ViewerOptions {
  /** Labels of the collections (default: directory name and architecture). */
  labels?: string[];
  /** A checkpoint per collection (default: the path in each manifest). */
  checkpoints?: (string | undefined)[];
  /** The SAE directory of each SAE collection (default: the path in its manifest; checked by sha256). */
  saes?: (string | undefined)[];
  /** Backend for the related-token products and steering (default: the float64 reference). */
  backend?: Backend<unknown>;
  /** Prompt of the steering effects (default: the paper's "1 2 3 4 5"). */
  steerPrompt?: string;
  /** Compute steering effects (default true when the checkpoint is available). */
  steer?: boolean;
  /** Compute related tokens by weights (default true when the checkpoint is available). */
  weights?: boolean;
  /** The server can steer on request (the neuron page shows a steering box). */
  live?: boolean;
  /**
   * Scores of random-init control collections (neurons view --baseline-init): each collection's
   * layers carry the control of the same architecture and depth as `init`, drawn on the chart.
   */
  baselineInit?: CollectionScores[];
}

/** Per collection: the model, when its checkpoint could be loaded and is the one the collection was made from. */
interface ModelCtx {
  model: LanguageModel<unknown>;
  params: Float64Array;
  ckPath: string;
  related: Map<number, { up: TokenValue[]; down: TokenValue[] }[]>;
  input: Map<number, TokenValue[][]> | null;
  before: Map<string, Distribution>;
  /** An SAE collection's SAE, opened on the model (null: a collection of neurons, or the SAE is not available). */
  sae: SaeFeatures | null;
  /** Why an SAE collection has no SAE (then related tokens and steering say so). */
  saeMissing: string | null;
}

/** SAELens' name of an SAE's feature activations: a collection of SAE features has it on every hook. */
export const SAE_SUFFIX = '.hook_sae_acts_post';

/** True when a collection holds SAE features (neurons collect --sae), not a model's units. */
export function isSaeCollection(c: OpenCollection): boolean {
  return c.manifest.sae !== undefined || (c.manifest.hooks.length > 0 && c.manifest.hooks.every((h) => h.endsWith(SAE_SUFFIX)));
}

/** A correlation as the pages show it (× 100, rounded), null when undefined. */
const x100 = (x: number | null | undefined): number | null => (x === null || x === undefined || !Number.isFinite(x) ? null : r5(100 * x));

/** Round to 5 significant digits (the pages show 3-4; keeps the files small). */
export const r5 = (x: number | null | undefined): number | null => (x === null || x === undefined || !Number.isFinite(x) ? null : Number(x.toPrecision(5)));

function meanOf(xs: (number | null)[]): { mean: number | null; n: number } {
  let s = 0,
    n = 0;
  for (const x of xs)
    if (x !== null && Number.isFinite(x)) {
      s += x;
      n++;
    }
  return { mean: n ? s / n : null, n };
}

/** The last component of a path (either separator), for names shown on a page. */
export function baseName(p: string): string {
  const parts = p.split(/[\\/]+/).filter((x) => x !== '');
  return parts.length ? parts[parts.length - 1] : p;
}

// An absolute path (POSIX, or a Windows drive path) of at least one directory, after a start, blank,
// quote, bracket, '=' or ',': group 1 the lead, group 2 the directories, group 3 the last component.
const ABS_PATH = /(^|[\s'"`([=,])((?:[A-Za-z]:)?[\\/](?:[^\s'"`()[\],:\\/]+[\\/])+)([^\s'"`()[\],:\\/]*)/g;

/**
 * Replace the machine's paths in text bound for a page (an export is shared; a live page may be
 * read by anything the browser runs): each known root (a collection's directory, its checkpoint
 * and data file) by its base name, and any other absolute path by its last component.
 */
export class PathScrubber {
  private roots: [string, string][] = [];
  add(p: string | null | undefined, name = p ? baseName(p) : ''): void {
    if (!p || p === '.' || p === '..') return;
    // the given form only when it names a directory (a bare word would replace ordinary text)
    const forms = new Set([path.resolve(p)]);
    if (/[\\/]/.test(p) && !/^[./\\]+$/.test(p)) forms.add(p);
    try {
      forms.add(fs.realpathSync(p));
    } catch {
      // a path that does not exist here is still replaced as given
    }
    for (const f of forms) if (f.length > 1 && !this.roots.some(([r]) => r === f)) this.roots.push([f, name]);
    this.roots.sort((a, b) => b[0].length - a[0].length);
  }
  scrub(text: string): string {
    let out = text;
    for (const [r, name] of this.roots) out = out.split(r).join(name);
    return out.replace(ABS_PATH, (_m, lead: string, _dirs: string, last: string) => `${lead}${last}`);
  }
}

export class ViewerData {
  private readonly paths = new PathScrubber();
  private readonly models = new Map<number, ModelCtx | null>();
  private readonly modelNotes = new Map<number, string>();
  private readonly tokenizers = new Map<number, Tokenizer>();
  private readonly tokens = new Map<number, Uint32Array>();

  private constructor(
    readonly collections: OpenCollection[],
    private readonly opts: ViewerOptions,
  ) {}

  /** Open the collections (each checked as it opens) and, where possible, their checkpoints. */
  static async open(dirs: readonly string[], opts: ViewerOptions = {}): Promise<ViewerData> {
    if (dirs.length === 0) throw new UsageError('give one or more collection directories (written by crate-ts neurons collect)');
    if (opts.labels && opts.labels.length !== dirs.length) throw new UsageError(`${opts.labels.length} labels for ${dirs.length} collections`);
    if (opts.checkpoints && opts.checkpoints.length > dirs.length)
      throw new UsageError(`${opts.checkpoints.length} checkpoints for ${dirs.length} collections`);
    if (opts.saes && opts.saes.length > dirs.length) throw new UsageError(`${opts.saes.length} SAE directories for ${dirs.length} collections`);
    const cs = dirs.map((d, i) => openCollection(d, i, opts.labels?.[i]));
    const v = new ViewerData(cs, opts);
    for (const c of cs) {
      v.paths.add(c.dir, baseName(path.resolve(c.dir)));
      v.paths.add(c.manifest.checkpoint.path);
      v.paths.add(opts.checkpoints?.[c.index]);
      v.paths.add(c.manifest.data.source);
      v.paths.add(c.manifest.sae?.path);
      v.paths.add(opts.saes?.[c.index]);
      v.tokenizers.set(
        c.index,
        await loadTokenizer(c.manifest.tokenizer).catch((e: Error) => {
          throw new DataError(`${c.dir}: ${e.message}`);
        }),
      );
      v.tokens.set(c.index, readTokens(c.dir, c.manifest));
      v.loadModel(c);
    }
    return v;
  }

  private loadModel(c: OpenCollection): void {
    const wantWeights = this.opts.weights ?? true,
      wantSteer = this.opts.steer ?? true;
    if (!wantWeights && !wantSteer && !this.opts.live) {
      this.models.set(c.index, null);
      this.modelNotes.set(c.index, 'weights and steering were switched off');
      return;
    }
    const explicit = this.opts.checkpoints?.[c.index];
    const file = explicit ?? c.manifest.checkpoint.path;
    const fail = (why: string) => {
      this.models.set(c.index, null);
      this.modelNotes.set(c.index, why);
    };
    if (!file || !fs.existsSync(file)) {
      if (explicit) throw new CheckpointError(`checkpoint '${explicit}' does not exist`);
      return fail(`the checkpoint ${file ? `'${file}' ` : ''}is not available, so related tokens by weights and steering are not shown (pass --checkpoint)`);
    }
    const f = resolveCheckpointPath(file);
    this.paths.add(f);
    const sha = sha256File(f);
    if (c.manifest.checkpoint.sha256 && sha !== c.manifest.checkpoint.sha256) {
      const msg = `checkpoint '${f}' is not the one collection '${c.dir}' was made from (sha256 ${sha.slice(0, 12)}…, the manifest says ${c.manifest.checkpoint.sha256.slice(0, 12)}…)`;
      if (explicit) throw new CheckpointError(msg);
      return fail(`${msg}; related tokens and steering are not shown`);
    }
    const ck = loadCheckpoint(f);
    const model = modelFromCheckpoint(ck, this.opts.backend ?? new ReferenceBackend());
    const ctx: ModelCtx = { model, params: model.getParams(), ckPath: f, related: new Map(), input: null, before: new Map(), sae: null, saeMissing: null };
    this.models.set(c.index, ctx);
    this.modelNotes.set(c.index, `weights from ${baseName(f)} (sha256 ${sha.slice(0, 16)}…)`);
    if (isSaeCollection(c)) this.loadSae(c, ctx);
  }

  /**
   * An SAE collection's SAE: --sae's directory or the manifest's, which must be the one the features
   * were collected with (sha256 of sae_weights.safetensors, hook and width). An explicit directory
   * that does not fit is an error; a manifest path that is gone or changed leaves the page without
   * related tokens and steering, saying why.
   */
  private loadSae(c: OpenCollection, ctx: ModelCtx): void {
    const explicit = this.opts.saes?.[c.index];
    const rec = c.manifest.sae;
    const dir = explicit ?? rec?.path;
    const fail = (why: string) => {
      if (explicit) throw new DataError(why);
      ctx.saeMissing = `${why}; related tokens and steering are not shown (pass --sae)`;
    };
    if (!dir) return fail(`collection '${c.dir}' does not record its SAE directory (collected before crate-ts recorded it)`);
    const wfile = path.join(dir, WEIGHTS_FILE);
    if (!fs.existsSync(wfile)) return fail(`the SAE directory '${dir}' is not available (no ${WEIGHTS_FILE})`);
    if (rec && sha256File(wfile) !== rec.sha256)
      return fail(`SAE '${dir}' is not the one collection '${c.dir}' was made from (its ${WEIGHTS_FILE} differs, sha256 checked)`);
    const f = saeFeatures(dir, ctx.model, ctx.ckPath, this.opts.backend ?? new ReferenceBackend());
    const lf = c.layers[0];
    if (c.layers.length !== 1 || f.name !== lf.hook || f.S !== lf.neurons) {
      f.free();
      return fail(`SAE '${dir}' reads ${f.name} with ${f.S} features, but collection '${c.dir}' holds ${lf.hook} with ${lf.neurons}`);
    }
    ctx.sae = f;
    this.modelNotes.set(c.index, `${this.modelNotes.get(c.index)}; SAE ${baseName(dir)} on ${f.hook} (${f.D} → ${f.S} features)`);
  }

  /** Release the models' backend memory. */
  free(): void {
    for (const m of this.models.values()) {
      m?.sae?.free();
      m?.model.free();
    }
    this.models.clear();
  }

  /** Text bound for a page (warnings, notes, error messages) with the machine's paths replaced by names. */
  publicText(text: string): string {
    return this.paths.scrub(text);
  }

  collection(ci: number): OpenCollection {
    const c = this.collections[ci];
    if (!c) throw new UsageError(`collection ${ci} does not exist (${this.collections.length} loaded)`);
    return c;
  }

  hasModel(ci: number): boolean {
    return Boolean(this.models.get(ci));
  }

  /** How many unsteered distributions collection ci keeps for the steering box (at most STEER_CACHE_PROMPTS). */
  steerCacheSize(ci: number): number {
    return this.models.get(ci)?.before.size ?? 0;
  }

  // ---- index --------------------------------------------------------------------------------------

  index(): Record<string, unknown> {
    return {
      format: 'crate-ts-viewer',
      format_version: VIEWER_FORMAT_VERSION,
      generated: new Date().toISOString(),
      live: Boolean(this.opts.live),
      steer: {
        prompt: this.opts.steerPrompt ?? PAPER_PROMPT,
        factor: STEER_FACTOR,
        rule: `clamp value = the neuron's max activation on the collected tokens × ${STEER_FACTOR}`,
      },
      collections: this.collections.map((c) => this.collectionSummary(c)),
    };
  }

  private collectionSummary(c: OpenCollection): Record<string, unknown> {
    const m = c.manifest,
      cfg = m.checkpoint.config as Record<string, unknown>;
    const control = (this.opts.baselineInit ?? []).filter(
      (x) => x.manifest.checkpoint.arch === m.checkpoint.arch && x.manifest.checkpoint.config.nLayer === cfg.nLayer,
    );
    const layers = c.layers.map((lf) => {
      const sc = c.scores.get(lf.layer) ?? [];
      const split = (s: SplitName) => x100(meanOf(sc.map((n) => n[s])).mean);
      // the random-init level of this layer (seeds averaged), ×100 like the other means
      const initRows = control.map((x) => x.layers.find((l) => l.layer === lf.layer)).filter((l) => l !== undefined);
      const initOf = (sp: SplitName) => r5(meanOf(initRows.map((l) => l[sp])).mean);
      const init = initRows.length ? { init: { tar: initOf('tar'), randomOnly: initOf('randomOnly'), anthropic: initOf('anthropic') } } : {};
      const llm: Record<string, Record<string, number | null>> = {};
      for (const set of c.llm) {
        loadLlmLayer(set, lf.layer, c.warnings);
        const row: Record<string, number | null> = {};
        for (const s of SPLIT_NAMES) {
          const map = set.splits[s]?.get(lf.layer);
          if (map && map.size) row[s] = x100(meanOf([...map.values()].map((r) => r.score)).mean);
        }
        if (Object.keys(row).length) llm[set.name] = row;
      }
      // detection / fuzzing: means over the neurons with a defined value (as summary.json's), × 100
      const classifiers: Record<string, Record<string, number | null>> = {};
      for (const set of c.classifiers) {
        const rs = [...loadClassifierLayer(set, lf.layer, lf.neurons, c.warnings).values()];
        if (rs.length === 0) continue;
        const ba = meanOf(rs.map((r) => r.balancedAccuracy));
        classifiers[set.name] = {
          balancedAccuracy: x100(ba.mean),
          f1: x100(meanOf(rs.map((r) => r.f1)).mean),
          auc: x100(meanOf(rs.map((r) => r.auc)).mean),
          scored: ba.n,
          judged: rs.length,
        };
      }
      return {
        layer: lf.layer,
        hook: lf.hook,
        neurons: lf.neurons,
        tar: split('tar'),
        randomOnly: split('randomOnly'),
        anthropic: split('anthropic'),
        selectivity: r5(meanOf(sc.map((n) => n.selectivity)).mean),
        consistency: r5(meanOf(sc.map((n) => n.consistency)).mean),
        density: r5(lf.stats.reduce((a, s) => a + s.density, 0) / lf.neurons),
        dead: lf.stats.filter((s) => !((s.max ?? 0) > 0)).length,
        llm,
        classifiers,
        ...init,
      };
    });
    return {
      id: c.index,
      label: c.label,
      name: baseName(path.resolve(c.dir)),
      arch: m.checkpoint.arch,
      checkpoint: { file: baseName(m.checkpoint.path), sha256: m.checkpoint.sha256, step: m.checkpoint.step },
      config: { nLayer: cfg.nLayer, nEmbd: cfg.nEmbd, nHead: cfg.nHead, vocabSize: cfg.vocabSize, blockSize: cfg.blockSize },
      data: { description: this.publicText(m.data.description), source: this.publicText(m.data.source), sha256: m.data.sha256, split: m.data.split },
      tokens_sha256: m.tokens_sha256,
      tokenizer: m.tokenizer,
      n_tokens: m.n_tokens,
      window: m.window,
      variant: m.variant,
      seed: m.seed,
      created: m.created,
      crate_ts_version: m.crate_ts_version,
      layers,
      sae: isSaeCollection(c)
        ? {
            name: c.manifest.sae ? baseName(c.manifest.sae.path) : null,
            sha256: c.manifest.sae?.sha256 ?? null,
            hook: c.manifest.sae?.hook ?? c.layers[0]?.hook.slice(0, -SAE_SUFFIX.length) ?? null,
            d_in: c.manifest.sae?.d_in ?? null,
            d_sae: c.manifest.sae?.d_sae ?? c.layers[0]?.neurons ?? null,
            available: Boolean(this.models.get(c.index)?.sae),
          }
        : null,
      scoresSource: c.scoresSource,
      llmSets: c.llm.map((s) => s.name),
      classifierSets: c.classifiers.map((s) => ({ name: s.name, scorer: s.scorer, judge: s.judge })),
      warnings: c.warnings.map((w) => this.publicText(w)),
      model: {
        available: this.hasModel(c.index),
        note: this.publicText([this.modelNotes.get(c.index), this.models.get(c.index)?.saeMissing].filter(Boolean).join('; ')),
      },
    };
  }

  // ---- one layer's table --------------------------------------------------------------------------

  table(ci: number, layer: number): Record<string, unknown> {
    const c = this.collection(ci),
      lf = layerFiles(c, layer),
      sc = c.scores.get(layer) ?? [];
    const tok = this.tokenizers.get(ci) as Tokenizer,
      tokens = this.tokens.get(ci) as Uint32Array;
    const tops = readTopPositions(c, layer);
    const llmScore = (i: number): number | null => {
      for (const set of c.llm) {
        const r = set.splits.tar?.get(layer)?.get(i);
        if (r) return r.score;
      }
      return null;
    };
    const cls = c.classifiers.map((set) => loadClassifierLayer(set, layer, lf.neurons, c.warnings));
    const rows = lf.stats.map((s, i) => {
      const counts = new Map<number, number>();
      let best = -1,
        bestN = 0;
      for (const q of tops[i]) {
        const id = tokens[q],
          k = (counts.get(id) ?? 0) + 1;
        counts.set(id, k);
        if (k > bestN) {
          bestN = k;
          best = id;
        }
      }
      const o = sc[i];
      return [
        i,
        x100(o?.tar),
        x100(o?.randomOnly),
        x100(o?.anthropic),
        x100(llmScore(i)),
        r5(s.density),
        r5(s.max),
        r5(o?.consistency),
        r5(o?.selectivity),
        best >= 0 && (s.max ?? 0) > 0 ? tokenText(tok, best) : null,
        explanationOf(c, layer, i),
        ...cls.map((m) => x100(m.get(i)?.balancedAccuracy)),
      ];
    });
    return {
      c: ci,
      layer,
      hook: lf.hook,
      columns: [
        'neuron',
        'tar',
        'randomOnly',
        'anthropic',
        'llm',
        'density',
        'max',
        'consistency',
        'selectivity',
        'topToken',
        'explanation',
        ...c.classifiers.map((set) => `${set.name}:balancedAccuracy`),
      ],
      rows,
    };
  }

  // ---- one neuron's page --------------------------------------------------------------------------

  neuron(ci: number, layer: number, neuron: number): Record<string, unknown> {
    const c = this.collection(ci),
      lf = layerFiles(c, layer);
    const { record, offsets } = readNeuron(c, layer, neuron);
    const stats = lf.stats[neuron],
      sc = c.scores.get(layer)?.[neuron] ?? null;
    const rec = (r: ActivationRecord, s: number) => ({ t: r.tokens, a: r.activations.map((x) => (Number.isFinite(x) ? x : null)), s });
    const nr: NeuronRecords = {
      top: record.most_positive_activation_records,
      random: record.random_sample,
      quantile: record.random_sample_by_quantile,
      topOffsets: offsets.top,
      randomOffsets: offsets.random,
      quantileOffsets: offsets.quantile,
    };
    // one colour scale for the page: the largest |activation| shown
    let scale = 0;
    const all = [...nr.top, ...nr.random, ...(nr.quantile ?? []).flat()];
    for (const r of all) for (const a of r.activations) if (Number.isFinite(a) && Math.abs(a) > scale) scale = Math.abs(a);
    const qb = record.quantile_boundaries;
    const llm: Record<string, unknown>[] = [];
    for (const set of c.llm) {
      loadLlmLayer(set, layer, c.warnings);
      for (const s of SPLIT_NAMES) {
        const r = set.splits[s]?.get(layer)?.get(neuron);
        if (r)
          llm.push({
            set: set.name,
            split: s,
            explanation: r.explanation,
            score: x100(r.score),
            sequences: r.sequences.map((q) => ({ t: q.tokens, a: q.real, sim: q.simulated })),
          });
      }
    }
    const classifiers: Record<string, unknown>[] = [];
    for (const set of c.classifiers) {
      const r = loadClassifierLayer(set, layer, lf.neurons, c.warnings).get(neuron);
      if (!r) continue;
      const ex = classifierExamples(set, layer, r);
      classifiers.push({
        set: set.name,
        scorer: set.scorer,
        judge: set.judge,
        balancedAccuracy: x100(r.balancedAccuracy),
        accuracy: x100(r.accuracy),
        f1: x100(r.f1),
        auc: x100(r.auc),
        n: r.n,
        parseFailures: r.parseFailures,
        explanation: ex.explanation,
        examples: ex.examples.map((e) => ({
          t: e.str_tokens,
          a: e.activations,
          distance: e.distance,
          activating: e.activating,
          prediction: e.prediction,
          probability: r5(e.probability),
          correct: e.correct,
        })),
      });
    }
    const others = this.collections
      .filter((o) => o.index !== ci && o.layers.some((l) => l.layer === layer && neuron < l.neurons))
      .map((o) => ({ c: o.index, label: o.label }));
    return {
      c: ci,
      layer,
      neuron,
      hook: lf.hook,
      label: c.label,
      neurons: lf.neurons,
      stats: {
        mean: r5(stats.mean),
        variance: r5(stats.variance),
        skewness: r5(stats.skewness),
        kurtosis: r5(stats.kurtosis),
        density: r5(stats.density),
        max: stats.max,
        min: stats.min,
        count: stats.count,
      },
      scores: sc && {
        tar: x100(sc.tar),
        randomOnly: x100(sc.randomOnly),
        anthropic: x100(sc.anthropic),
        selectivity: r5(sc.selectivity),
        consistency: r5(sc.consistency),
      },
      explanation: explanationOf(c, layer, neuron),
      llm,
      classifiers,
      scale,
      top: nr.top.map((r, j) => rec(r, nr.topOffsets[j])),
      random: nr.random.map((r, j) => rec(r, nr.randomOffsets[j])),
      quantile:
        nr.quantile === null
          ? null
          : nr.quantile.map((bin, b) => ({
              lo: qb?.[b] ?? null,
              hi: qb?.[b + 1] ?? null,
              records: bin.map((r, j) => rec(r, (nr.quantileOffsets as number[][])[b][j])),
            })),
      lookup: this.lookupRows(nr),
      histogram: histogram(nr.random),
      related: this.related(ci, layer, neuron),
      steer: this.defaultSteer(ci, layer, neuron),
      target: this.steerTarget(c, layer, neuron),
      others,
    };
  }

  /** The token-lookup "explanation" (spec 7.8.1) over the TaR explanation records, largest first. */
  private lookupRows(nr: NeuronRecords): { token: string; value: number; count: number }[] {
    const split = splitFor('tar', nr);
    if (!split) return [];
    const table = lookupTable(split.explanation);
    const m = maxActivation(split.explanation);
    const count = new Map<string, number>();
    for (const r of split.explanation) normalizeActivations(r.activations, m).forEach((_, j) => count.set(r.tokens[j], (count.get(r.tokens[j]) ?? 0) + 1));
    return [...table]
      .filter(([, v]) => v > 0)
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .slice(0, 20)
      .map(([token, value]) => ({ token, value: r5(value) as number, count: count.get(token) ?? 0 }));
  }

  private related(ci: number, layer: number, neuron: number): Record<string, unknown> | null {
    const ctx = this.models.get(ci);
    const c = this.collection(ci),
      lf = layerFiles(c, layer);
    if (!ctx || this.opts.weights === false) return null;
    if (ctx.saeMissing !== null) return { up: null, down: null, input: null, note: this.publicText(ctx.saeMissing) };
    const sae = ctx.sae;
    const tok = this.tokenizers.get(ci) as Tokenizer;
    const show = (xs: TokenValue[]) => xs.map((x) => ({ id: x.id, token: tokenText(tok, x.id), value: r5(x.value) }));
    if (!ctx.input)
      ctx.input = inputTokens(
        ctx.model,
        c.layers.map((l) => ({ layer: l.layer, hook: l.hook, ...(sae ? { sae } : {}) })),
        RELATED_K,
        tok.vocabSize,
      );
    const input = show((ctx.input.get(layer)?.[neuron] ?? []).filter((x) => x.value > 0));
    const reads = sae ? sae.hook : lf.hook;
    if (!isNeuronHook(ctx.model, layer, reads))
      return {
        up: null,
        down: null,
        input,
        note: sae
          ? `the SAE reads ${sae.hook}, not the layer's neuron tensor, so its features have no output direction here`
          : `${lf.hook} is not the layer's neuron tensor, so it has no output direction`,
      };
    let effects = ctx.related.get(layer);
    if (!effects) {
      effects = logitEffects(ctx.model, ctx.params, layer, RELATED_K, tok.vocabSize, sae ? featureDirections(ctx.model, ctx.params, layer, sae) : undefined);
      ctx.related.set(layer, effects);
    }
    return {
      up: show(effects[neuron].up),
      down: show(effects[neuron].down),
      input,
      ...(sae ? { note: `feature direction: W_dec row ${neuron} through the neurons' output directions` } : {}),
    };
  }

  /** What the steering box clamps, in words. */
  private steerTarget(c: OpenCollection, layer: number, neuron: number): string {
    if (!isSaeCollection(c)) return `blocks.${layer}.hook_neurons[${neuron}]`;
    const hook = c.manifest.sae?.hook ?? layerFiles(c, layer).hook.slice(0, -SAE_SUFFIX.length);
    return `feature ${neuron} of the SAE on ${hook} (decoded with the SAE, keeping its error term x − x̂: x' = x + (v − h) · W_dec[${neuron}])`;
  }

  /** Steering effects of the default clamp (max activation × STEER_FACTOR), or why there are none. */
  private defaultSteer(ci: number, layer: number, neuron: number): Record<string, unknown> | null {
    const ctx = this.models.get(ci);
    if (!ctx || this.opts.steer === false) return null;
    const c = this.collection(ci),
      lf = layerFiles(c, layer),
      max = lf.stats[neuron].max;
    if (ctx.saeMissing !== null) return { skipped: this.publicText(ctx.saeMissing) };
    if (!ctx.sae && !isNeuronHook(ctx.model, layer, lf.hook))
      return { skipped: `${lf.hook} is not the layer's neuron tensor (blocks.${layer}.hook_neurons), so it is not clamped` };
    if (!(max !== null && max > 0))
      return { skipped: `the ${ctx.sae ? 'feature' : 'neuron'} never fires on the collected tokens (dead): no default clamp value` };
    return this.steer(ci, layer, neuron, STEER_FACTOR * max, this.opts.steerPrompt ?? PAPER_PROMPT);
  }

  /** Steer neuron (layer, neuron) of collection ci to `value` after `prompt` (the live steering box too). */
  steer(ci: number, layer: number, neuron: number, value: number, prompt: string): Record<string, unknown> {
    const ctx = this.models.get(ci);
    if (!ctx) throw new DataError(this.modelNotes.get(ci) ?? 'no model');
    const c = this.collection(ci),
      lf = layerFiles(c, layer);
    if (ctx.saeMissing !== null) throw new DataError(ctx.saeMissing);
    if (!ctx.sae && !isNeuronHook(ctx.model, layer, lf.hook)) throw new UsageError(`${lf.hook} is not the layer's neuron tensor, so it is not clamped`);
    if (!Number.isInteger(neuron) || neuron < 0 || neuron >= lf.neurons)
      throw new UsageError(`neuron ${neuron} is out of range: layer ${layer} has ${lf.neurons} neurons (0..${lf.neurons - 1})`);
    if (!Number.isFinite(value)) throw new UsageError(`the clamp value must be a finite number, got ${value}`);
    if (Math.abs(value) > FLOAT32_MAX)
      throw new UsageError(`the clamp value ${value} is outside float32's range (±${FLOAT32_MAX.toPrecision(8)}), which the model computes in`);
    const tok = this.tokenizers.get(ci) as Tokenizer;
    const ids = tok.encode(prompt);
    if (ids.length === 0) throw new UsageError('the steering prompt is empty');
    // a small LRU: a page (or a flood of requests) with many distinct prompts cannot grow it
    let before = ctx.before.get(prompt);
    if (before) ctx.before.delete(prompt);
    else before = nextToken(ctx.model, ids);
    ctx.before.set(prompt, before);
    while (ctx.before.size > STEER_CACHE_PROMPTS) ctx.before.delete(ctx.before.keys().next().value as string);
    // a neuron: the paper's clamp of the code coordinate; an SAE feature: the feature clamped and
    // decoded with the SAE, its error term kept (src/sae/features.ts)
    const r = ctx.sae
      ? compareDistributions(before, nextToken(ctx.model, fitPrompt(ctx.model, ids), featureClampHooks(ctx.sae, neuron, value)), STEER_TOP, tok.vocabSize)
      : steer(ctx.model, ids, { layer, neuron, value }, { top: STEER_TOP, maxId: tok.vocabSize }, before);
    if (!Number.isFinite(r.kl) || r.topAfter.length === 0 || !r.topAfter.every((x) => Number.isFinite(x.p)))
      throw new UsageError(`clamping to ${value} overflows the model's arithmetic (the steered distribution is not finite); choose a smaller value`);
    const t = (id: number) => tokenText(tok, id);
    return {
      prompt,
      value: r5(value),
      kl: r5(r.kl),
      top: r.top.map((e) => ({ token: t(e.id), id: e.id, pBefore: r5(e.pBefore), pAfter: r5(e.pAfter), delta: r5(e.delta), logitDelta: r5(e.logitDelta) })),
      before: r.topBefore.slice(0, 5).map((x) => ({ token: t(x.id), p: r5(x.p) })),
      after: r.topAfter.slice(0, 5).map((x) => ({ token: t(x.id), p: r5(x.p) })),
    };
  }
}

/**
 * Histogram of the activations of the random records' tokens (excerpts around uniformly drawn
 * positions: a sample of the corpus). Non-negative data: a separate count at exactly ≤ 0 and 24 bins
 * over (0, max]; otherwise 24 bins over [min, max].
 */
export function histogram(records: readonly ActivationRecord[], bins = 24): { edges: number[]; counts: number[]; zeros: number | null; n: number } {
  const xs: number[] = [];
  for (const r of records) for (const a of r.activations) if (Number.isFinite(a)) xs.push(a);
  if (xs.length === 0) return { edges: [], counts: [], zeros: null, n: 0 };
  let lo = Infinity,
    hi = -Infinity;
  for (const x of xs) {
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  const nonneg = lo >= 0;
  const zeros = nonneg ? xs.filter((x) => x <= 0).length : null;
  const from = nonneg ? 0 : lo,
    to = hi;
  const counts = new Array<number>(bins).fill(0);
  const edges = Array.from({ length: bins + 1 }, (_, k) => r5(from + ((to - from) * k) / bins) as number);
  if (to > from)
    for (const x of xs) {
      if (nonneg && x <= 0) continue;
      counts[Math.min(bins - 1, Math.floor(((x - from) / (to - from)) * bins))]++;
    }
  return { edges, counts, zeros, n: xs.length };
}

/** A typed crate-ts error stays as it is; anything else from the data code is an unreadable-file DataError. */
export function asDataError(e: unknown): CrateError {
  return e instanceof CrateError ? e : new DataError((e as Error).message.split('\n')[0], { cause: e });
}
