// Shared by the viewer tests: two small collections made by the real collector from tiny byte-level
// models (CRATE with quantile bins, offline scores and an LLM result file in OpenAI's format; GPT-2
// without any score file), and the front end compiled fresh from src/viewer/web with the TypeScript
// compiler (so the tests never run a stale dist/).
import * as fs from 'node:fs';
import * as path from 'node:path';
import ts from 'typescript';
import { LanguageModel } from '../src/model/lm.js';
import { makeConfig, type Arch } from '../src/model/config.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { saveCheckpoint } from '../src/checkpoint/checkpoint.js';
import { collect } from '../src/neurons/collect.js';
import { scoreCollection, writeNeuronScores } from '../src/neurons/score.js';
import { readLayer, readManifest } from '../src/neurons/format.js';

export const T = 16;
export const D = 16;
export const H = 4 * D;

const TEXT =
  'Call me Ishmael. Some years ago - never mind how long precisely - having little or no money in my purse, and nothing particular to interest me on shore, I thought I would sail about a little and see the watery part of the world. ';

/** A tiny byte-level model with its embeddings scaled up, so its codes spread (the init is 0.02). */
export function makeCheckpoint(dir: string, arch: Arch, seed: number): string {
  const cfg = makeConfig('char-tiny', { arch, nEmbd: D, nHead: 2, nLayer: 2, blockSize: T });
  const m = new LanguageModel(new ReferenceBackend(), cfg, { seed });
  const p = m.getParams(),
    wte = m.spec('transformer.wte.weight');
  for (let i = wte.offset; i < wte.offset + wte.size; i++) p[i] *= 20;
  m.setParams(p);
  const file = path.join(dir, `${arch}.safetensors`);
  saveCheckpoint(file, { model: m as LanguageModel<unknown>, tokenizer: 'byte' });
  m.free();
  return file;
}

/** One NeuronSimulationResults line (OpenAI automated-interpretability, every object with dataclass_name). */
export function simulationResultsLine(
  layer: number,
  neuron: number,
  explanation: string,
  seqs: { tokens: string[]; real: number[]; sim: number[] }[],
  score: number,
): string {
  return JSON.stringify({
    dataclass_name: 'NeuronSimulationResults',
    neuron_id: { dataclass_name: 'NeuronId', layer_index: layer, neuron_index: neuron },
    scored_explanations: [
      {
        dataclass_name: 'ScoredExplanation',
        explanation,
        scored_simulation: {
          dataclass_name: 'ScoredSimulation',
          ev_correlation_score: score,
          rsquared_score: null,
          absolute_dev_explained_score: null,
          scored_sequence_simulations: seqs.map((q) => ({
            dataclass_name: 'ScoredSequenceSimulation',
            true_activations: q.real,
            ev_correlation_score: null,
            rsquared_score: null,
            absolute_dev_explained_score: null,
            simulation: {
              dataclass_name: 'SequenceSimulation',
              tokens: q.tokens,
              expected_activations: q.sim,
              activation_scale: 'simulated_normalized_activations',
              distribution_values: [],
              distribution_probabilities: [],
              uncalibrated_simulation: null,
            },
          })),
        },
      },
    ],
  });
}

export interface Fixture {
  crate: string;
  gpt2: string;
  crateCkpt: string;
  gptCkpt: string;
  llmScores: Map<number, number>;
}

/** Make both collections under `dir`. */
export async function makeCollections(dir: string): Promise<Fixture> {
  const data = path.join(dir, 'text.txt');
  fs.writeFileSync(data, TEXT.repeat(8));
  const crateCkpt = makeCheckpoint(dir, 'crate', 11),
    gptCkpt = makeCheckpoint(dir, 'gpt2', 12);
  const crate = path.join(dir, 'coll-crate'),
    gpt2 = path.join(dir, 'coll-gpt2');
  await collect({
    checkpoint: crateCkpt,
    out: crate,
    data,
    tokens: 64 * T,
    variant: 'both',
    seed: 1,
    backend: new ReferenceBackend(),
    batch: 8,
    cacheDir: null,
  });
  await collect({
    checkpoint: gptCkpt,
    out: gpt2,
    data,
    tokens: 32 * T,
    variant: 'openai',
    seed: 2,
    backend: new ReferenceBackend(),
    batch: 8,
    cacheDir: null,
  });
  writeNeuronScores(crate, scoreCollection(crate).neurons);
  // an LLM result file for layer 0, neurons 0-3 (TaR): the first two top records, simulated = 10 − 2·true/max
  const m = readManifest(crate),
    ld = readLayer(crate, m, 0);
  const llmScores = new Map<number, number>();
  const lines = [0, 1, 2, 3].map((i) => {
    const recs = ld.records[i].most_positive_activation_records.slice(0, 2);
    const max = Math.max(1e-9, ...recs.flatMap((r) => r.activations));
    llmScores.set(i, 0.1 * (i + 1));
    return simulationResultsLine(
      0,
      i,
      `explanation of neuron ${i}: letters <b>near</b> "the"`,
      recs.map((r) => ({ tokens: r.tokens, real: r.activations, sim: r.activations.map((a) => 10 - (2 * a) / max) })),
      0.1 * (i + 1),
    );
  });
  fs.mkdirSync(path.join(crate, 'llm-test', 'tar'), { recursive: true });
  fs.writeFileSync(path.join(crate, 'llm-test', 'tar', 'layer-0.jsonl'), lines.join('\n') + '\n');
  return { crate, gpt2, crateCkpt, gptCkpt, llmScores };
}

/**
 * The front end compiled from src/viewer/web in memory: each script transpiled with the options of
 * its tsconfig and concatenated in the tsconfig's order (what outFile does; type errors are the
 * typecheck's job: npm run typecheck compiles it with the DOM library).
 */
export function buildAppJs(): string {
  const cfgFile = path.resolve('src/viewer/web/tsconfig.json');
  const cfg = ts.getParsedCommandLineOfConfigFile(
    cfgFile,
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(String(d.messageText));
      },
    },
  );
  if (!cfg || cfg.fileNames.length === 0) throw new Error('cannot read src/viewer/web/tsconfig.json');
  const { outFile: _o, ...options } = cfg.options;
  return cfg.fileNames
    .map((f) => ts.transpileModule(fs.readFileSync(f, 'utf8'), { compilerOptions: { ...options, isolatedModules: false }, fileName: f }).outputText)
    .join('\n');
}
