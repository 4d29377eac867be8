// Detection and fuzzing scores of a whole collection (crate-ts neurons score DIR --scorer ...): draw
// each neuron's contexts (classifier.ts), ask the judge, write one JSON line per neuron per layer and
// a summary.json. Output directory: DIR/<scorer>-<judge> unless given.
//
//   layer-{l}.jsonl  {"layer", "neuron", "scorer", "judge", "explanation", "examples": [delphi's
//                    per-example fields], "accuracy", "balanced_accuracy", "precision", "recall",
//                    "f1", "auc", "n", "parse_failures"}  (non-finite numbers as null)
//   summary.json     per layer and for the model: means over the neurons that could be scored
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readLayer, readManifest, finiteOrNull, type CollectionManifest } from './format.js';
import { neuronRecords, modelLayers } from './score.js';
import { layersForModelMean, meanOfFinite, splitFor } from './scoring.js';
import { lookupTable } from './lookup.js';
import {
  applyVerdicts,
  classifierMetrics,
  describeTable,
  drawContexts,
  judgeMessages,
  LookupJudge,
  parseJudgeReply,
  type ClassifierContext,
  type ClassifierExample,
  type ClassifierKind,
  type ClassifierMetrics,
  type ContentLogprob,
  type Judge,
  type Verdicts,
} from './classifier.js';
import { LlmClient, LlmCallError, type Endpoint } from './llm/client.js';
import { writeFileAtomic } from '../util/atomic.js';
import { DataError, UsageError } from '../errors.js';

/** An OpenAI-compatible chat model as the judge (llama.cpp's server, Ollama, vLLM, crate-ts serve). */
export class LlmJudge implements Judge {
  readonly name: string;
  parseFailures = 0;
  constructor(
    private readonly client: LlmClient,
    private readonly endpoint: Endpoint,
    private readonly o: { logprobs?: boolean; maxTokens?: number } = {},
  ) {
    this.name = `llm:${endpoint.model}`;
  }
  async judge(kind: ClassifierKind, explanation: string, contexts: readonly ClassifierContext[]): Promise<Verdicts> {
    const none: Verdicts = { predictions: contexts.map(() => null), probabilities: contexts.map(() => null) };
    const body: Record<string, unknown> = {
      messages: judgeMessages(kind, explanation, contexts),
      temperature: 0,
      max_tokens: this.o.maxTokens ?? 4 * contexts.length + 16,
    };
    if (this.o.logprobs) {
      body.logprobs = true;
      body.top_logprobs = 5;
    }
    let reply: { text: string; content: ContentLogprob[] | null } | null;
    try {
      reply = await this.client.request(this.endpoint, 'chat/completions', body, (r) => {
        const c = (r as { choices?: { message?: { content?: unknown }; logprobs?: { content?: unknown } | null }[] }).choices?.[0];
        const text = typeof c?.message?.content === 'string' ? c.message.content : '';
        const content = Array.isArray(c?.logprobs?.content) ? (c.logprobs.content as ContentLogprob[]) : null;
        return { text, content };
      });
    } catch (e) {
      if (e instanceof LlmCallError) {
        this.parseFailures += contexts.length;
        return none;
      }
      throw e;
    }
    if (reply === null) return none; // dry run
    const v = parseJudgeReply(reply.text, contexts.length, reply.content);
    if (v === null) {
      this.parseFailures += contexts.length;
      return none;
    }
    return v;
  }
}

export interface ClassifyOptions {
  dir: string;
  kind: ClassifierKind;
  /** 'lookup' (offline, deterministic) or an LLM judge with the explanations it judges. */
  judge: 'lookup' | { judge: LlmJudge; explanationsDir: string };
  out?: string;
  layers?: number[];
  /** At most this many neurons per layer (the first ones). */
  max?: number | null;
  /** Contexts per class per neuron (default 10). */
  perClass?: number;
  /** Contexts per judge request (default 5; the lookup judge takes all at once). */
  perPrompt?: number;
  seed?: number;
  onProgress?: (p: { done: number; total: number }) => void;
}

export interface NeuronClassification extends ClassifierMetrics {
  layer: number;
  neuron: number;
  explanation: string | null;
  examples: ClassifierExample[];
}

export interface ClassifyLayerSummary {
  layer: number;
  neurons: number;
  /** Neurons with a defined balanced accuracy (the rest had no contexts of a class, or no explanation). */
  scored: number;
  accuracy: number | null;
  balanced_accuracy: number | null;
  balanced_accuracy_se: number | null;
  f1: number | null;
  auc: number | null;
  parse_failures: number;
}

export interface ClassifySummary {
  out: string;
  scorer: ClassifierKind;
  judge: string;
  seed: number;
  per_class: number;
  layers: ClassifyLayerSummary[];
  model: { layers: number[]; balanced_accuracy: number | null; f1: number | null; auc: number | null };
}

const opt = (x: number): number | null => (Number.isFinite(x) ? x : null);

/** Seed of one neuron's draw: fixed by the run's seed, the layer and the neuron. */
export function neuronSeed(seed: number, layer: number, neuron: number): number {
  return (Math.imul(seed >>> 0, 1_000_003) + Math.imul(layer, 65_537) + neuron) >>> 0;
}

function readExplanations(dirOfExplanations: string, layer: number): Map<number, string> {
  const file = path.join(dirOfExplanations, `layer-${layer}.jsonl`);
  if (!fs.existsSync(file)) throw new DataError(`no explanations for layer ${layer}: '${file}' does not exist (run \`crate-ts neurons explain\` first)`);
  const out = new Map<number, string>();
  fs.readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (!line.trim()) return;
      let row: { neuron?: unknown; group?: unknown; explanation?: unknown };
      try {
        row = JSON.parse(line) as typeof row;
      } catch {
        throw new DataError(`${file}:${i + 1}: not valid JSON`);
      }
      if (row.group === 'openai' && typeof row.neuron === 'number' && typeof row.explanation === 'string') out.set(row.neuron, row.explanation);
    });
  return out;
}

/** Judge every selected neuron of the collection; writes the files and returns the summary. */
export async function classifyCollection(o: ClassifyOptions): Promise<ClassifySummary> {
  const m: CollectionManifest = readManifest(o.dir);
  const layers = o.layers ?? m.layers;
  for (const l of layers)
    if (!m.layers.includes(l))
      throw new UsageError((n) => `${n('layers')}: layer ${l} was not collected (collected: ${m.layers.join(', ')})`, { option: 'layers' });
  const perClass = o.perClass ?? 10,
    seed = o.seed ?? 0;
  if (!Number.isInteger(perClass) || perClass < 1)
    throw new UsageError((n) => `${n('perClass')} must be a positive integer, got ${perClass}`, { option: 'perClass' });
  const judgeName = o.judge === 'lookup' ? 'lookup' : o.judge.judge.name;
  const out = path.resolve(o.out ?? path.join(o.dir, `${o.kind}-${o.judge === 'lookup' ? 'lookup' : 'llm'}`));
  const count = (l: number) => Math.min(m.neurons[m.layers.indexOf(l)], o.max ?? Infinity);
  const total = layers.reduce((s, l) => s + count(l), 0);
  let done = 0;
  const summaries: ClassifyLayerSummary[] = [];
  const perLayer: { layer: number; rows: NeuronClassification[] }[] = [];
  for (const l of layers) {
    const ld = readLayer(o.dir, m, l);
    const explanations = o.judge === 'lookup' ? null : readExplanations(o.judge.explanationsDir, l);
    const rows: NeuronClassification[] = [];
    for (let n = 0; n < count(l); n++) {
      const nr = neuronRecords(m, ld, n);
      const contexts = drawContexts(o.kind, nr, { perClass, seed: neuronSeed(seed, l, n) });
      let judge: Judge, explanation: string | null;
      if (o.judge === 'lookup') {
        const table = lookupTable(splitFor('tar', nr)!.explanation);
        judge = new LookupJudge(table);
        explanation = describeTable(table);
      } else {
        judge = o.judge.judge;
        explanation = explanations!.get(n) ?? null;
      }
      let examples: ClassifierExample[] = contexts.map((c) => c.example);
      if (explanation !== null && contexts.length > 0) {
        const step = o.judge === 'lookup' ? contexts.length : Math.max(1, o.perPrompt ?? 5);
        examples = [];
        for (let i = 0; i < contexts.length; i += step) {
          const batch = contexts.slice(i, i + step);
          examples.push(...applyVerdicts(batch, await judge.judge(o.kind, explanation, batch)));
        }
      }
      rows.push({ layer: l, neuron: n, explanation, examples, ...classifierMetrics(examples) });
      o.onProgress?.({ done: ++done, total });
    }
    perLayer.push({ layer: l, rows });
    const ba = meanOfFinite(rows.map((r) => r.balancedAccuracy));
    summaries.push({
      layer: l,
      neurons: rows.length,
      scored: ba.n,
      accuracy: opt(meanOfFinite(rows.map((r) => r.accuracy)).mean),
      balanced_accuracy: opt(ba.mean),
      balanced_accuracy_se: opt(ba.se),
      f1: opt(meanOfFinite(rows.map((r) => r.f1)).mean),
      auc: opt(meanOfFinite(rows.map((r) => r.auc)).mean),
      parse_failures: rows.reduce((s, r) => s + r.failed, 0),
    });
  }
  const used = layersForModelMean(
    summaries.map((s) => s.layer),
    modelLayers(m),
  );
  const modelMean = (k: 'balanced_accuracy' | 'f1' | 'auc') => {
    const vals = summaries.filter((s) => used.includes(s.layer)).map((s) => s[k]);
    return vals.length > 0 && vals.every((v) => v !== null) ? (vals as number[]).reduce((a, v) => a + v, 0) / vals.length : null;
  };
  const summary: ClassifySummary = {
    out,
    scorer: o.kind,
    judge: judgeName,
    seed,
    per_class: perClass,
    layers: summaries,
    model: { layers: used, balanced_accuracy: modelMean('balanced_accuracy'), f1: modelMean('f1'), auc: modelMean('auc') },
  };
  fs.mkdirSync(out, { recursive: true });
  for (const { layer, rows } of perLayer) {
    const lines = rows.map((r) =>
      JSON.stringify({
        layer: r.layer,
        neuron: r.neuron,
        scorer: o.kind,
        judge: judgeName,
        explanation: r.explanation,
        examples: r.examples,
        accuracy: finiteOrNull(r.accuracy),
        balanced_accuracy: finiteOrNull(r.balancedAccuracy),
        precision: finiteOrNull(r.precision),
        recall: finiteOrNull(r.recall),
        f1: finiteOrNull(r.f1),
        auc: finiteOrNull(r.auc),
        n: r.n,
        parse_failures: r.failed,
      }),
    );
    writeFileAtomic(path.join(out, `layer-${layer}.jsonl`), lines.join('\n') + (lines.length ? '\n' : ''));
  }
  writeFileAtomic(path.join(out, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  return summary;
}
