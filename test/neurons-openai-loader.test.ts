// records.jsonl read by OpenAI automated-interpretability's own Python code, unchanged: its
// fast_dataclasses.loads (which picks the class by dataclass_name and calls it with the other keys,
// so an extra or missing key fails) and its NeuronRecord / ActivationRecord / NeuronId dataclasses,
// including the record-split methods of NeuronRecord. The code is taken from a local mirror of
// github:openai/automated-interpretability (nothing is vendored): set CRATE_TS_OAI_REPO to its git
// directory; without it, or without python3, the test is skipped with the reason. activations.py
// imports blobfile and boostedblob (cloud storage, used only by its download helpers), which are
// absent here: the script puts empty stand-ins for those two modules in sys.modules; orjson (used
// only by dumps) gets one too when it is not installed.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { LanguageModel } from '../src/model/lm.js';
import { makeConfig } from '../src/model/config.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import type { Backend } from '../src/backend/types.js';
import { saveCheckpoint } from '../src/checkpoint/checkpoint.js';
import { collect } from '../src/neurons/collect.js';
import { readLayer, readManifest } from '../src/neurons/format.js';

const MIRROR = process.env.CRATE_TS_OAI_REPO;

function unavailable(): string | null {
  if (!MIRROR) return 'CRATE_TS_OAI_REPO is not set (the git directory of a copy of openai/automated-interpretability)';
  const py = spawnSync('python3', ['-c', 'import sys; print(sys.version_info[0])'], { encoding: 'utf8' });
  if (py.status !== 0) return 'python3 is not available';
  const git = spawnSync('git', ['--git-dir', MIRROR, 'cat-file', '-e', 'HEAD:neuron-explainer/neuron_explainer/activations/activations.py'], {
    encoding: 'utf8',
  });
  if (git.status !== 0) return `no copy of openai/automated-interpretability at ${MIRROR} (fetch it, or set CRATE_TS_OAI_REPO to its git directory)`;
  return null;
}

const SCRIPT = String.raw`
import json, sys, types
for name in ("blobfile", "boostedblob"):
    m = types.ModuleType(name)
    m.ensure_session = lambda f: f
    sys.modules[name] = m
try:
    import orjson  # noqa: F401
except ImportError:
    sys.modules["orjson"] = types.ModuleType("orjson")
sys.path.insert(0, sys.argv[1])
from neuron_explainer.fast_dataclasses import loads
from neuron_explainer.activations.activations import ActivationRecord, ActivationRecordSliceParams, NeuronId, NeuronRecord

out = []
with open(sys.argv[2]) as f:
    for line in f:
        r = loads(line, backwards_compatible=False)
        assert isinstance(r, NeuronRecord), type(r)
        assert isinstance(r.neuron_id, NeuronId)
        recs = r.most_positive_activation_records + r.random_sample + [x for b in (r.random_sample_by_quantile or []) for x in b]
        assert all(isinstance(x, ActivationRecord) for x in recs)
        assert all(isinstance(t, str) for x in recs for t in x.tokens)
        assert all(isinstance(a, float) for x in recs for a in x.activations)
        params = ActivationRecordSliceParams(n_examples_per_split=5)
        out.append({
            "layer": r.neuron_id.layer_index, "neuron": r.neuron_id.neuron_index,
            "top": len(r.most_positive_activation_records), "random": len(r.random_sample),
            "quantile": None if r.random_sample_by_quantile is None else [len(b) for b in r.random_sample_by_quantile],
            "boundaries": r.quantile_boundaries, "mean": r.mean, "variance": r.variance, "skewness": r.skewness, "kurtosis": r.kurtosis,
            "max_activation": r.max_activation,
            "train": [x.tokens for x in r.train_activation_records(params)],
            "valid": [x.activations for x in r.valid_activation_records(params)],
            "dataclass_name": r.dataclass_name,
        })
print(json.dumps(out))
`;

const reason = unavailable();
let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-oai-'));
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(reason !== null)(`OpenAI's Python NeuronRecord code reads records.jsonl unchanged${reason ? ` (skipped: ${reason})` : ''}`, () => {
  it('every line loads as its NeuronRecord with the same fields and values; its split methods work on it', async () => {
    const model = new LanguageModel(new ReferenceBackend(), makeConfig('char-tiny', { nEmbd: 8, nHead: 2, nLayer: 1, blockSize: 16 }), { seed: 1 });
    const ckpt = path.join(dir, 'c.safetensors');
    saveCheckpoint(ckpt, { model: model as LanguageModel<unknown>, tokenizer: 'byte' });
    model.free();
    const out = path.join(dir, 'n');
    await collect({ checkpoint: ckpt, tokens: 320, variant: 'both', backend: new ReferenceBackend() as Backend<unknown>, out, cacheDir: null });
    const pkg = path.join(dir, 'oai');
    fs.mkdirSync(pkg);
    execFileSync('bash', ['-c', `git --git-dir "${MIRROR}" archive HEAD neuron-explainer/neuron_explainer | tar -x -C "${pkg}"`]);
    const file = path.join(out, 'layer-0', 'records.jsonl');
    const r = spawnSync('python3', ['-c', SCRIPT, path.join(pkg, 'neuron-explainer'), file], { encoding: 'utf8', maxBuffer: 1 << 28 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const py = JSON.parse(r.stdout) as {
      layer: number;
      neuron: number;
      top: number;
      random: number;
      quantile: number[] | null;
      boundaries: number[];
      mean: number;
      variance: number;
      skewness: number | null;
      kurtosis: number | null;
      max_activation: number;
      train: string[][];
      valid: number[][];
      dataclass_name: string;
    }[];
    const m = readManifest(out);
    const ld = readLayer(out, m, 0);
    expect(py).toHaveLength(32);
    py.forEach((p, i) => {
      const rec = ld.records[i];
      expect(p.dataclass_name).toBe('NeuronRecord');
      expect([p.layer, p.neuron]).toEqual([0, i]);
      expect(p.top).toBe(50);
      expect(p.random).toBe(50);
      expect(p.quantile).toEqual(Array(11).fill(20));
      expect(p.boundaries).toEqual(rec.quantile_boundaries);
      expect(p.mean).toBe(rec.mean);
      expect(p.variance).toBe(rec.variance);
      expect(p.skewness).toBe(rec.skewness);
      expect(p.kurtosis).toBe(rec.kurtosis);
      expect(p.max_activation).toBe(Math.max(...rec.most_positive_activation_records.flatMap((x) => x.activations)));
      // OpenAI's train split: every 4th top record from #0
      expect(p.train).toEqual([0, 4, 8, 12, 16].map((k) => rec.most_positive_activation_records[k].tokens));
      expect(p.valid.length).toBe(10);
    });
  });
});
