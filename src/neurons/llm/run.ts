// Explain, simulate and score the neurons of a collection with LLMs (spec 7.3-7.7).
//
// Per neuron: the records of neuron_records → the splits of src/neurons/scoring.ts (TaR and
// Random-only share one explanation, from top records #0,2,4,6,8; Anthropic has its own) → one
// explainer call per explanation → one simulator call per scoring record ("all at once"; one per
// token for token-by-token) → the OpenAI scores over the concatenation of the scoring records.
//
// Output directory (default DIR/llm-<prompt set name>):
//   explanations/layer-{l}.jsonl   {"layer", "neuron", "group", "explanation", "prompt_set", ...} per
//                                  explanation (crate-ts's format: OpenAI has none for an unscored one)
//   {tar,randomOnly,anthropic}/layer-{l}.jsonl        NeuronSimulationResults per neuron (OpenAI format)
//   {tar,randomOnly,anthropic}/layer-{l}.meta.json    what produced it (prompt set, models, simulator)
//   summary.json                   per-layer mean score × 100 per split, NaN dropped and counted, the
//                                  alignment counts, calls made/cached/failed, tokens sent
// Files are written when a layer is complete; responses are cached as they arrive (cache.ts), so a
// killed run restarts without repeating a call.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataError, UsageError } from '../../errors.js';
import { readManifest, readLayer, type ActivationRecord, type CollectionManifest, type LayerData } from '../format.js';
import { neuronRecords, modelLayers } from '../score.js';
import { splitFor, meanOfFinite, layersForModelMean, populationVariance, type SplitName, SPLIT_NAMES } from '../scoring.js';
import { LlmClient, LlmCallError, type Endpoint } from './client.js';
import { explanationMessages, simulationPrompt, tokenPrompt, logprobFreeMessages, parseLogprobFree, type PromptSet } from './prompts.js';
import { parseAllAtOnce, parseTokenResponse, compactEcho, emptyCounts, addCounts, type AlignmentCounts, type CompactEcho } from './parse.js';
import {
  sequenceSimulation,
  scoredSequence,
  scoredSimulation,
  neuronSimulationResults,
  writeJsonl,
  type NeuronSimulationResultsJson,
  type SequenceSimulationJson,
} from './results.js';
import { writeFileAtomic } from '../../util/atomic.js';

export type SimulatorKind = 'all-at-once' | 'token-by-token' | 'logprob-free';
export const SIMULATOR_KINDS: readonly SimulatorKind[] = ['all-at-once', 'token-by-token', 'logprob-free'];

export interface LlmRunOptions {
  /** The collection directory (manifest.json, layer-{l}/records.jsonl, ...). */
  dir: string;
  /** Output directory (default DIR/llm-<prompt set name>). */
  out?: string;
  layers?: number[];
  /** Neuron indices to use in every layer (default all). */
  neurons?: number[] | null;
  /** At most this many neurons per layer (after `neurons`). */
  max?: number | null;
  /** Scoring sets (default TaR and Random-only, plus Anthropic when the collection has quantile records). */
  splits?: SplitName[];
  prompts: PromptSet;
  explainer: Endpoint;
  simulator: Endpoint;
  client: LlmClient;
  simulatorKind?: SimulatorKind;
  /** Alternatives per position requested from the simulator (default 5, as the paper's fork). */
  logprobs?: number;
  noSystemRole?: boolean;
  /** Explainer context budget in tokens (default 4096) and completion length (default 60). */
  explainerContext?: number;
  explainMaxTokens?: number;
  temperature?: number;
  topP?: number;
  countTokens?: (text: string) => number;
  onProgress?: (p: { done: number; total: number; layer: number }) => void;
}

export interface ExplanationRow {
  layer: number;
  neuron: number;
  /** "openai" (explains TaR and Random-only) or "anthropic". */
  group: 'openai' | 'anthropic';
  explanation: string | null;
  error?: string;
  prompt_set: string;
  prompt_set_sha256: string;
  explainer_model: string;
}

export interface SplitSummary {
  mean100: number | null;
  n: number;
  dropped: number;
  rsquared100: number | null;
  absdev100: number | null;
}

export interface LayerSummary {
  layer: number;
  neurons: number;
  failed: number;
  splits: Partial<Record<SplitName, SplitSummary>>;
}

export interface RunSummary {
  out: string;
  prompt_set: { name: string; sha256: string; source: string };
  explainer: { base_url: string; model: string; no_system_role: boolean };
  simulator: { base_url: string; model: string; kind: SimulatorKind; logprobs: number };
  /** False for the logprob-free simulator: its scores are not comparable with logprob-based ones. */
  comparable: boolean;
  note: string;
  layers: LayerSummary[];
  model: Partial<Record<SplitName, { mean100: number | null; variance100: number | null; layers: number[] }>>;
  alignment: AlignmentCounts;
  parse_failures: number;
  calls: {
    made: number;
    cached: number;
    failed: number;
    retries: number;
    prompt_tokens: number;
    completion_tokens: number;
    planned: number;
    planned_prompt_tokens: number;
  };
  dry_run: boolean;
}

const GROUP_OF: Record<SplitName, 'openai' | 'anthropic'> = { tar: 'openai', randomOnly: 'openai', anthropic: 'anthropic' };

/** Explanation placeholder for dry runs (its length is typical of a 60-token explanation). */
const DRY_EXPLANATION = 'x'.repeat(110);

function neuronList(m: CollectionManifest, li: number, o: LlmRunOptions): number[] {
  const H = m.neurons[li];
  let list = o.neurons ?? Array.from({ length: H }, (_, i) => i);
  const bad = list.find((i) => !Number.isInteger(i) || i < 0 || i >= H);
  if (bad !== undefined) throw new UsageError((n) => `${n('neurons')}: neuron ${bad} is outside layer ${m.layers[li]}'s ${H} neurons`, { option: 'neurons' });
  if (o.max !== null && o.max !== undefined) list = list.slice(0, o.max);
  return list;
}

export function outputDir(o: Pick<LlmRunOptions, 'dir' | 'out' | 'prompts'>): string {
  return path.resolve(o.out ?? path.join(o.dir, `llm-${o.prompts.name}`));
}

/** Run up to `width` async jobs at a time over items, in order of start. */
async function pool<T>(items: readonly T[], width: number, job: (x: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.max(1, Math.min(width, items.length)) }, async () => {
    while (next < items.length) {
      const i = next++;
      await job(items[i], i);
    }
  });
  await Promise.all(workers);
}

export class LlmRun {
  readonly o: LlmRunOptions;
  readonly out: string;
  readonly kind: SimulatorKind;
  readonly logprobs: number;
  readonly m: CollectionManifest;
  alignment = emptyCounts();
  parseFailures = 0;

  constructor(o: LlmRunOptions) {
    this.o = o;
    this.m = readManifest(o.dir);
    this.out = outputDir(o);
    this.kind = o.simulatorKind ?? 'all-at-once';
    if (!SIMULATOR_KINDS.includes(this.kind))
      throw new UsageError((n) => `${n('simulatorKind')} must be one of ${SIMULATOR_KINDS.join(', ')}, got '${this.kind}'`, { option: 'simulatorKind' });
    this.logprobs = o.logprobs ?? 5;
    if (!Number.isInteger(this.logprobs) || this.logprobs < 1 || this.logprobs > 20)
      throw new UsageError((n) => `${n('logprobs')} must be an integer in [1, 20], got ${this.logprobs}`, { option: 'logprobs' });
    for (const l of o.layers ?? [])
      if (!this.m.layers.includes(l))
        throw new UsageError((n) => `${n('layers')}: layer ${l} was not collected in '${o.dir}' (collected: ${this.m.layers.join(', ')})`, {
          option: 'layers',
        });
    for (const s of o.splits ?? [])
      if (!SPLIT_NAMES.includes(s))
        throw new UsageError((n) => `${n('splits')}: unknown scoring set '${s}' (known: ${SPLIT_NAMES.join(', ')})`, { option: 'splits' });
  }

  get layers(): number[] {
    return this.o.layers ?? this.m.layers;
  }

  private splitsFor(ld: LayerData): SplitName[] {
    const hasQ = ld.records.some((r) => r.random_sample_by_quantile !== null);
    return this.o.splits ?? (hasQ ? ['tar', 'randomOnly', 'anthropic'] : ['tar', 'randomOnly']);
  }

  // ---- one explanation ------------------------------------------------------------------------

  private async explain(records: ActivationRecord[]): Promise<string | null> {
    const o = this.o;
    const messages = explanationMessages(o.prompts, records, {
      noSystemRole: o.noSystemRole,
      contextTokens: o.explainerContext ?? 4096,
      maxTokens: o.explainMaxTokens ?? 60,
      countTokens: o.countTokens,
    });
    const body = { messages, temperature: o.temperature ?? 1, top_p: o.topP ?? 1, max_tokens: o.explainMaxTokens ?? 60, n: 1 };
    return o.client.request(o.explainer, 'chat/completions', body, (r) => {
      const c = (r as { choices?: { message?: { content?: unknown } }[] }).choices?.[0]?.message?.content;
      if (typeof c !== 'string') throw new LlmCallError('the explainer answered without choices[0].message.content', null, false);
      return c;
    });
  }

  // ---- one simulated record -------------------------------------------------------------------

  private async simulate(explanation: string, tokens: string[]): Promise<SequenceSimulationJson | null> {
    const o = this.o,
      set = o.prompts,
      c = o.client,
      ep = o.simulator;
    if (this.kind === 'all-at-once') {
      const body = { prompt: simulationPrompt(set, explanation, tokens), max_tokens: 0, echo: true, logprobs: this.logprobs, temperature: 0 };
      // a response without prompt log-probabilities is refused before it reaches the cache
      const resp = await c.request<CompactEcho>(ep, 'completions', body, (r) => {
        const kept = compactEcho(r);
        if (kept.logprobs.tokens.length === 0)
          throw new LlmCallError(
            `the simulator at ${ep.baseURL} returned no prompt log-probabilities for echo: true, max_tokens: 0 (llama.cpp's server and Ollama do not)`,
            null,
            false,
          );
        return kept;
      });
      if (resp === null) return null;
      const p = parseAllAtOnce(resp.text, resp.logprobs, tokens, set.simulator.unknown);
      this.alignment = addCounts(this.alignment, p.counts);
      return sequenceSimulation(tokens, p.expected, p.distributionValues, p.distributionProbabilities);
    }
    if (this.kind === 'token-by-token') {
      const ds = await Promise.all(
        tokens.map((_, t) =>
          c.request(
            ep,
            'completions',
            { prompt: tokenPrompt(set, explanation, tokens, t), max_tokens: 1, echo: false, logprobs: this.logprobs, temperature: 0 },
            (r) => parseTokenResponse((r as { choices: { logprobs?: { top_logprobs?: (Record<string, number> | null)[] } | null }[] }).choices[0]),
          ),
        ),
      );
      if (ds.some((d) => d === null)) return null;
      const counts = emptyCounts();
      for (const d of ds)
        if (d!.values.length === 0) counts.noDigits++;
        else counts.exact++;
      this.alignment = addCounts(this.alignment, counts);
      return sequenceSimulation(
        tokens,
        ds.map((d) => d!.expected),
        ds.map((d) => d!.values),
        ds.map((d) => d!.probabilities),
      );
    }
    const body = { messages: logprobFreeMessages(set, explanation, tokens), temperature: 0, max_tokens: Math.min(4096, 16 * tokens.length + 64) };
    const text = await c.request(ep, 'chat/completions', body, (r) => {
      const content = (r as { choices?: { message?: { content?: unknown } }[] }).choices?.[0]?.message?.content;
      return typeof content === 'string' ? content : '';
    });
    if (text === null) return null;
    const parsed = parseLogprobFree(set, text, tokens);
    if (!parsed.ok) this.parseFailures++;
    return sequenceSimulation(tokens, parsed.values, [], []);
  }

  // ---- explain ---------------------------------------------------------------------------------

  private explanationsFile(layer: number): string {
    return path.join(this.out, 'explanations', `layer-${layer}.jsonl`);
  }

  /** Explanations of one layer: newly requested (or cached), or read from explanations/ when `reuse`. */
  private async layerExplanations(
    ld: LayerData,
    neurons: number[],
    groups: Set<'openai' | 'anthropic'>,
    reuse: boolean,
    onDone: () => void,
  ): Promise<ExplanationRow[]> {
    const o = this.o;
    if (reuse) {
      const file = this.explanationsFile(ld.layer);
      if (!fs.existsSync(file))
        throw new DataError(`no explanations for layer ${ld.layer}: '${file}' does not exist (run \`crate-ts neurons explain\` first, or \`neurons score\`)`);
      const rows = fs
        .readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l.trim())
        .map((l, i) => {
          try {
            return JSON.parse(l) as ExplanationRow;
          } catch (e) {
            throw new DataError(`${file}:${i + 1}: not valid JSON (${(e as Error).message})`);
          }
        });
      for (const n of neurons)
        for (const g of groups) {
          if (!rows.some((r) => r.neuron === n && r.group === g))
            throw new DataError(`${file}: no ${g} explanation of neuron ${n}; run \`crate-ts neurons explain\` for it`);
        }
      neurons.forEach(() => onDone());
      return rows;
    }
    const rows: ExplanationRow[] = [];
    const base = { prompt_set: o.prompts.name, prompt_set_sha256: o.prompts.sha256, explainer_model: o.explainer.model };
    await pool(neurons, 2 * o.client.concurrency, async (n) => {
      const nr = neuronRecords(this.m, ld, n);
      for (const g of groups) {
        const split = splitFor(g === 'openai' ? 'tar' : 'anthropic', nr);
        if (!split) continue;
        try {
          const e = await this.explain(split.explanation);
          rows.push({ layer: ld.layer, neuron: n, group: g, explanation: e, ...base });
        } catch (err) {
          if (!(err instanceof LlmCallError)) throw err;
          rows.push({ layer: ld.layer, neuron: n, group: g, explanation: null, error: err.message, ...base });
        }
      }
      onDone();
    });
    rows.sort((a, b) => a.neuron - b.neuron || a.group.localeCompare(b.group));
    return rows;
  }

  /** Explain the selected neurons (the `explain` subcommand); returns the summary. */
  async explainAll(): Promise<RunSummary> {
    return this.runAll({ explain: true, simulate: false });
  }

  /** Simulate and score from stored explanations (`simulate`), or explain then simulate (`score`). */
  async simulateAll(explainFirst: boolean): Promise<RunSummary> {
    return this.runAll({ explain: explainFirst, simulate: true });
  }

  private async runAll(what: { explain: boolean; simulate: boolean }): Promise<RunSummary> {
    const o = this.o,
      m = this.m;
    const dry = o.client.dryRun;
    const layers: LayerSummary[] = [];
    const plan = this.layers.map((l) => ({ l, neurons: neuronList(m, m.layers.indexOf(l), o) }));
    const total = plan.reduce((s, p) => s + p.neurons.length * ((what.explain ? 1 : 0) + (what.simulate ? 1 : 0)), 0);
    let done = 0;
    const tick = (layer: number) => {
      done++;
      o.onProgress?.({ done, total, layer });
    };
    for (const { l, neurons } of plan) {
      const ld = readLayer(o.dir, m, l);
      const splits = this.splitsFor(ld);
      const groups = new Set(splits.map((s) => GROUP_OF[s]));
      const rows = await this.layerExplanations(ld, neurons, groups, !what.explain, () => tick(l));
      if (what.explain && !dry) writeJsonl(this.explanationsFile(l), rows);
      if (!what.simulate) {
        layers.push({ layer: l, neurons: neurons.length, failed: rows.filter((r) => r.explanation === null).length, splits: {} });
        continue;
      }
      const results: Partial<Record<SplitName, (NeuronSimulationResultsJson | null)[]>> = {};
      for (const s of splits) results[s] = new Array(neurons.length).fill(null);
      const failed = new Set<number>();
      await pool(neurons, 2 * o.client.concurrency, async (n, k) => {
        const nr = neuronRecords(m, ld, n);
        for (const s of splits) {
          const split = splitFor(s, nr);
          if (!split) continue;
          const row = rows.find((r) => r.neuron === n && r.group === GROUP_OF[s]);
          // dry run: a stand-in explanation, distinct per neuron as real ones are (so no false sharing)
          const explanation = row?.explanation ?? (dry ? `${DRY_EXPLANATION} ${l}:${n}:${GROUP_OF[s]}` : null);
          if (explanation === null) {
            failed.add(n);
            continue;
          }
          try {
            const sims = await Promise.all(split.scoring.map((rec) => this.simulate(explanation, rec.tokens)));
            if (sims.some((x) => x === null)) continue;
            const seqs = sims.map((sim, j) => scoredSequence(sim!, split.scoring[j].activations));
            results[s]![k] = neuronSimulationResults(l, n, explanation, scoredSimulation(seqs));
          } catch (err) {
            if (!(err instanceof LlmCallError)) throw err;
            if (err.status === null && !err.retryable && /no prompt log-probabilities/.test(err.message))
              throw new DataError((n) => `${err.message}; use ${n('simulatorKind')} token-by-token or logprob-free`, { option: 'simulatorKind' });
            failed.add(n);
          }
        }
        tick(l);
      });
      const summary: LayerSummary = { layer: l, neurons: neurons.length, failed: failed.size, splits: {} };
      for (const s of splits) {
        const list = results[s]!.filter((r): r is NeuronSimulationResultsJson => r !== null);
        const ev = meanOfFinite(list.map((r) => r.scored_explanations[0].scored_simulation.ev_correlation_score ?? NaN));
        const rsq = meanOfFinite(list.map((r) => r.scored_explanations[0].scored_simulation.rsquared_score ?? NaN));
        const ad = meanOfFinite(list.map((r) => r.scored_explanations[0].scored_simulation.absolute_dev_explained_score ?? NaN));
        summary.splits[s] = {
          mean100: ev.n ? 100 * ev.mean : null,
          n: ev.n,
          dropped: ev.dropped,
          rsquared100: rsq.n ? 100 * rsq.mean : null,
          absdev100: ad.n ? 100 * ad.mean : null,
        };
        if (!dry) {
          writeJsonl(path.join(this.out, s, `layer-${l}.jsonl`), list);
          writeFileAtomic(
            path.join(this.out, s, `layer-${l}.meta.json`),
            JSON.stringify(
              this.meta(
                s,
                l,
                list.length,
                [...failed].sort((a, b) => a - b),
                summary.splits[s]!,
              ),
              null,
              2,
            ) + '\n',
          );
        }
      }
      layers.push(summary);
    }
    const result = this.summary(layers, dry);
    if (!dry)
      writeFileAtomic(path.join(this.out, what.simulate ? 'summary.json' : 'explain-summary.json'), JSON.stringify(result, null, 2) + '\n', { mkdir: true });
    return result;
  }

  private provenance() {
    const o = this.o;
    return {
      prompt_set: { name: o.prompts.name, sha256: o.prompts.sha256, source: o.prompts.source },
      explainer: { base_url: o.explainer.baseURL, model: o.explainer.model, no_system_role: o.noSystemRole === true },
      simulator: { base_url: o.simulator.baseURL, model: o.simulator.model, kind: this.kind, logprobs: this.logprobs },
      comparable: this.kind !== 'logprob-free',
      note:
        this.kind === 'logprob-free'
          ? "NOT COMPARABLE: the logprob-free simulator samples integer activations instead of taking expected values from log-probabilities; its scores are not comparable with the paper's or with all-at-once scores."
          : `expected values from the top-${this.logprobs} log-probabilities of "0".."10" (${this.kind}); prompt set ${o.prompts.name}`,
    };
  }

  private meta(split: SplitName, layer: number, written: number, failed: number[], s: SplitSummary) {
    return {
      format: 'crate-ts-llm-scores-meta',
      format_version: 1,
      file: `layer-${layer}.jsonl`,
      layer,
      split,
      ...this.provenance(),
      collection: path.resolve(this.o.dir),
      neurons_written: written,
      neurons_failed: failed,
      mean_correlation_x100: s.mean100,
      nan_dropped: s.dropped,
      created: new Date().toISOString(),
    };
  }

  private summary(layers: LayerSummary[], dry: boolean): RunSummary {
    const st = this.o.client.stats;
    const model: RunSummary['model'] = {};
    const use = layersForModelMean(
      layers.map((l) => l.layer),
      modelLayers(this.m),
    );
    for (const s of SPLIT_NAMES) {
      const means = layers
        .filter((l) => use.includes(l.layer))
        .map((l) => l.splits[s]?.mean100)
        .filter((x): x is number => typeof x === 'number');
      if (means.length) model[s] = { mean100: means.reduce((a, b) => a + b, 0) / means.length, variance100: populationVariance(means), layers: use };
    }
    return {
      out: this.out,
      ...this.provenance(),
      layers,
      model,
      alignment: this.alignment,
      parse_failures: this.parseFailures,
      calls: {
        made: st.calls,
        cached: st.cached,
        failed: st.failed,
        retries: st.retries,
        prompt_tokens: st.promptTokens,
        completion_tokens: st.completionTokens,
        planned: st.planned,
        planned_prompt_tokens: st.plannedPromptTokens,
      },
      dry_run: dry,
    };
  }
}
