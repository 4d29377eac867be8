// A synthetic neuron collection in the documented format (src/neurons/format.ts), of any size and
// without a model, for measuring the viewer on the paper's largest shape (12 layers × 3072 neurons)
// without collecting one. Activations are seeded noise with a few hot tokens per neuron; records are
// short (the overview never reads them; a neuron page reads one line).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { COLLECTION_FORMAT, COLLECTION_FORMAT_VERSION, neuronRecordJson, type CollectionManifest } from '../neurons/format.js';
import { Rng } from '../util/rng.js';

export interface SyntheticOptions {
  layers: number;
  neurons: number;
  /** Collected tokens (default 65536). */
  tokens?: number;
  /** Top and random records per neuron (default 10 each) and their length (default 16 tokens). */
  records?: number;
  recordLength?: number;
  seed?: number;
}

/** Write a synthetic collection (with scores-lookup.jsonl) to `dir`, which must not exist. */
export function writeSyntheticCollection(dir: string, o: SyntheticOptions): CollectionManifest {
  const N = o.tokens ?? 65536,
    K = o.records ?? 10,
    len = o.recordLength ?? 16,
    half = Math.floor(len / 2);
  const rng = new Rng(o.seed ?? 0);
  const vocab = Array.from({ length: 256 }, (_, i) => ` w${i}`);
  const tokens = new Uint32Array(N);
  for (let i = 0; i < N; i++) tokens[i] = Math.floor(rng.uniform() * vocab.length);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'tokens.u32'), Buffer.from(tokens.buffer));
  const excerpt = (q: number, act: (t: number) => number) => {
    const a = Math.max(0, q - half),
      b = Math.min(N, q + (len - half));
    const idx = Array.from({ length: b - a }, (_, j) => a + j);
    return { tokens: idx.map((t) => vocab[tokens[t]]), activations: idx.map(act) };
  };
  const scores: string[] = [];
  for (let l = 0; l < o.layers; l++) {
    const ld = path.join(dir, `layer-${l}`);
    fs.mkdirSync(ld);
    const rec: string[] = [],
      pos: string[] = [],
      st: string[] = [];
    for (let i = 0; i < o.neurons; i++) {
      const hot = new Set([Math.floor(rng.uniform() * vocab.length), Math.floor(rng.uniform() * vocab.length)]);
      const act = (t: number) => (hot.has(tokens[t]) ? 2 + ((t * 7919 + i) % 100) / 100 : ((t * 104729 + i * 31) % 1000) / 4000);
      const top = Array.from({ length: K }, () => Math.floor(rng.uniform() * N)).sort((x, y) => act(y) - act(x) || x - y);
      const random = Array.from({ length: K }, () => Math.floor(rng.uniform() * N));
      const max = act(top[0]);
      rec.push(
        neuronRecordJson({
          neuron_id: { layer_index: l, neuron_index: i },
          random_sample: random.map((q) => excerpt(q, act)),
          random_sample_by_quantile: null,
          quantile_boundaries: null,
          mean: 0.2,
          variance: 0.05,
          skewness: 0.01,
          kurtosis: 0.003,
          most_positive_activation_records: top.map((q) => excerpt(q, act)),
        }),
      );
      pos.push(JSON.stringify({ neuron: i, top, random, quantile: null }));
      st.push(JSON.stringify({ neuron: i, count: N, mean: 0.2, variance: 0.05, m3: 0.01, m4: 0.003, skewness: 0.9, kurtosis: 4, density: 0.9, max, min: 0 }));
      const s = ((i * 37 + l * 11) % 100) / 100;
      scores.push(
        JSON.stringify({ layer: l, neuron: i, tar: s, randomOnly: s * 0.8, anthropic: null, selectivity: 0.1, consistency: 0.3, density: 0.9, dead: false }),
      );
    }
    fs.writeFileSync(path.join(ld, 'records.jsonl'), rec.join('\n') + '\n');
    fs.writeFileSync(path.join(ld, 'positions.jsonl'), pos.join('\n') + '\n');
    fs.writeFileSync(path.join(ld, 'stats.jsonl'), st.join('\n') + '\n');
  }
  fs.writeFileSync(path.join(dir, 'scores-lookup.jsonl'), scores.join('\n') + '\n');
  // fields newer collectors write too (spread: not an excess property for older manifest types)
  const newer = { cpu_s: 0 };
  const m: CollectionManifest = {
    ...newer,
    format: COLLECTION_FORMAT,
    format_version: COLLECTION_FORMAT_VERSION,
    crate_ts_version: 'synthetic',
    created: new Date().toISOString(),
    checkpoint: {
      path: '',
      sha256: '',
      arch: 'crate',
      config: { arch: 'crate', nLayer: o.layers, nEmbd: o.neurons / 4, nHead: 12, vocabSize: vocab.length, blockSize: 1024 },
      step: null,
    },
    data: {
      source: 'synthetic',
      description: `synthetic: ${o.layers} layers × ${o.neurons} neurons of seeded noise`,
      sha256: '',
      split: 'all tokens in order',
      tokens_available: N,
    },
    tokenizer: 'byte',
    n_tokens: N,
    tokens_file: 'tokens.u32',
    tokens_sha256: '',
    window: 1024,
    layers: Array.from({ length: o.layers }, (_, l) => l),
    hooks: Array.from({ length: o.layers }, (_, l) => `blocks.${l}.hook_neurons`),
    neurons: Array.from({ length: o.layers }, () => o.neurons),
    seed: o.seed ?? 0,
    variant: 'openai',
    counts: { top: K, random: K, quantile_bins: 0, quantile_per_bin: 0, quantile_sample: 0 },
    excerpt: { top: { before: half, after: len - half }, random: { before: half, after: len - half }, quantile: { before: half, after: len - half } },
    moments: 'synthetic',
    quantiles: 'none',
    backend: 'none',
    batch: 1,
    elapsed_s: 0,
    tokens_per_s: 0,
    peak_rss_bytes: 0,
  };
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(m, null, 2) + '\n');
  return m;
}
