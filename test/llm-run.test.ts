// explain → simulate → score over a real collection (crate-ts neurons collect on a tiny GPT-2-BPE
// model) against a fake LLM server with a tokenizer unlike GPT-2's: OpenAI-format results (checked
// field by field and, when python3 and the fetched OpenAI code are here, by its own loader), every
// expected value traced to the right token, scores recomputed, token-by-token = all-at-once,
// logprob-free marked not comparable, a rerun that sends nothing, a dry run that counts exactly
// what a run sends, a run killed mid-way and restarted that sends no answered request again, and
// one-line errors for bad input.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, execFileSync } from 'node:child_process';
import { LanguageModel } from '../src/model/lm.js';
import { makeConfig } from '../src/model/config.js';
import { selectBackend } from '../src/backend/select.js';
import { saveCheckpoint } from '../src/checkpoint/checkpoint.js';
import { collect } from '../src/neurons/collect.js';
import { readManifest, readLayer } from '../src/neurons/format.js';
import { neuronRecords } from '../src/neurons/score.js';
import { tarSplit, pearson } from '../src/neurons/scoring.js';
import { capture as captureCli } from './helpers/capture.js';
import { startFakeLlm, ruleExpected, rule, type FakeLlm } from './serve-helpers/fake-llm.js';

let dir: string, coll: string, fake: FakeLlm;
const root = path.resolve(import.meta.dirname, '..');

const capture = (argv: string[]) => captureCli(argv, { stderr: true });

const received = () => [...fake.received.values()].reduce((a, b) => a + b, 0);
const readJsonl = (f: string) =>
  fs
    .readFileSync(f, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-llm-run-'));
  const model = new LanguageModel(
    (await selectBackend('auto')).backend,
    makeConfig(undefined, { vocabSize: 50304, blockSize: 32, nLayer: 1, nHead: 2, nEmbd: 16 }),
    { seed: 5 },
  );
  const ck = path.join(dir, 'ck.safetensors');
  saveCheckpoint(ck, { model, tokenizer: 'gpt2' });
  model.free();
  const text = path.join(dir, 'text.txt');
  fs.writeFileSync(
    text,
    'Call me Ishmael. Some years ago\u2014never mind how long precisely\u2014having little or no money in my purse, I thought I would sail about a little and see the watery part of the world. It is a way I have of driving off the spleen, and regulating the circulation. 1851.\n'.repeat(
      6,
    ),
  );
  coll = path.join(dir, 'coll');
  await collect({
    checkpoint: ck,
    data: text,
    tokens: 12 * 32,
    variant: 'both',
    seed: 1,
    backend: (await selectBackend('auto')).backend,
    out: coll,
    cacheDir: null,
  });
  fake = await startFakeLlm();
});
afterAll(async () => {
  await fake?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const base = () => ['--api-base', fake.url, '--model', 'fake', '--layers', '0', '--max', '3'];

describe('neurons score with an LLM (all at once)', () => {
  let out: string;
  beforeAll(async () => {
    out = path.join(dir, 'out-a');
    const r = await capture(['neurons', 'score', coll, ...base(), '--out', out, '--cache-dir', path.join(dir, 'cache-a')]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/prompt set crate-ts-default-v1/);
    expect(r.out).toMatch(/alignment: \d+ exact, \d+ split \(\d+ with raw bytes\), 0 newline folded, 0 mismatched, 0 missing/);
  });

  it('writes OpenAI-format NeuronSimulationResults with exactly the dataclass fields', () => {
    for (const split of ['tar', 'randomOnly', 'anthropic']) {
      const rows = readJsonl(path.join(out, split, 'layer-0.jsonl'));
      expect(rows.map((r) => r.neuron_id.neuron_index)).toEqual([0, 1, 2]);
      for (const r of rows) {
        expect(Object.keys(r).sort()).toEqual(['dataclass_name', 'neuron_id', 'scored_explanations']);
        expect(Object.keys(r.neuron_id).sort()).toEqual(['dataclass_name', 'layer_index', 'neuron_index']);
        const se = r.scored_explanations[0];
        expect(Object.keys(se).sort()).toEqual(['dataclass_name', 'explanation', 'scored_simulation']);
        expect(Object.keys(se.scored_simulation).sort()).toEqual([
          'absolute_dev_explained_score',
          'dataclass_name',
          'ev_correlation_score',
          'rsquared_score',
          'scored_sequence_simulations',
        ]);
        const ss = se.scored_simulation.scored_sequence_simulations[0];
        expect(Object.keys(ss).sort()).toEqual([
          'absolute_dev_explained_score',
          'dataclass_name',
          'ev_correlation_score',
          'rsquared_score',
          'simulation',
          'true_activations',
        ]);
        expect(Object.keys(ss.simulation).sort()).toEqual([
          'activation_scale',
          'dataclass_name',
          'distribution_probabilities',
          'distribution_values',
          'expected_activations',
          'tokens',
          'uncalibrated_simulation',
        ]);
        expect(ss.simulation.activation_scale).toBe('simulated_normalized_activations');
      }
      const meta = JSON.parse(fs.readFileSync(path.join(out, split, 'layer-0.meta.json'), 'utf8'));
      expect(meta.prompt_set.name).toBe('crate-ts-default-v1');
      expect(meta.simulator).toMatchObject({ model: 'fake', kind: 'all-at-once', logprobs: 5 });
      expect(meta.comparable).toBe(true);
    }
    const ex = readJsonl(path.join(out, 'explanations', 'layer-0.jsonl'));
    expect(ex.every((e) => e.prompt_set === 'crate-ts-default-v1' && typeof e.explanation === 'string')).toBe(true);
    expect(new Set(ex.map((e) => e.group))).toEqual(new Set(['openai', 'anthropic']));
  });

  it("every expected value is the simulator's distribution for that very token, and the scores recompute", () => {
    const m = readManifest(coll),
      ld = readLayer(coll, m, 0);
    const rows = readJsonl(path.join(out, 'tar', 'layer-0.jsonl'));
    const means: number[] = [];
    for (const r of rows) {
      const split = tarSplit(neuronRecords(m, ld, r.neuron_id.neuron_index));
      const seqs = r.scored_explanations[0].scored_simulation.scored_sequence_simulations;
      expect(seqs.length).toBe(split.scoring.length);
      const t: number[] = [],
        p: number[] = [];
      seqs.forEach((s: any, j: number) => {
        expect(s.simulation.tokens).toEqual(split.scoring[j].tokens);
        expect(s.true_activations).toEqual(split.scoring[j].activations);
        s.simulation.tokens.forEach((tok: string, i: number) => {
          expect(s.simulation.expected_activations[i]).toBeCloseTo(ruleExpected(tok), 12);
          expect(s.simulation.expected_activations[i]).toBeGreaterThanOrEqual(0);
          expect(s.simulation.expected_activations[i]).toBeLessThanOrEqual(10);
        });
        t.push(...s.true_activations);
        p.push(...s.simulation.expected_activations);
      });
      const want = pearson(t, p);
      const got = r.scored_explanations[0].scored_simulation.ev_correlation_score;
      if (Number.isFinite(want)) {
        expect(got).toBeCloseTo(want, 12);
        means.push(want);
      } else expect(got).toBeNull();
    }
    const summary = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8'));
    const l0 = summary.layers[0].splits.tar;
    expect(l0.n + l0.dropped).toBe(3);
    if (means.length) expect(l0.mean100).toBeCloseTo((100 * means.reduce((a, b) => a + b, 0)) / means.length, 9);
  });

  it('a rerun sends no request; a dry run counts exactly what a run sends', async () => {
    const before = received();
    const again = await capture(['neurons', 'score', coll, ...base(), '--out', path.join(dir, 'out-a2'), '--cache-dir', path.join(dir, 'cache-a')]);
    expect(again.code).toBe(0);
    expect(received()).toBe(before);
    expect(again.out).toMatch(/calls: 0 made, [1-9]\d* cached, 0 failed/);
    for (const s of ['tar', 'randomOnly', 'anthropic'])
      expect(fs.readFileSync(path.join(dir, 'out-a2', s, 'layer-0.jsonl'), 'utf8')).toBe(fs.readFileSync(path.join(out, s, 'layer-0.jsonl'), 'utf8'));
    const dry = await capture(['neurons', 'score', coll, ...base(), '--max', '2', '--dry-run', '--cache-dir', path.join(dir, 'cache-d')]);
    const planned = Number(/dry run \(score\): (\d+) calls would be sent/.exec(dry.out)![1]);
    expect(received()).toBe(before);
    const real = await capture(['neurons', 'score', coll, ...base(), '--max', '2', '--out', path.join(dir, 'out-d'), '--cache-dir', path.join(dir, 'cache-d')]);
    expect(received() - before).toBe(planned);
    expect(real.code).toBe(0);
  });

  it("OpenAI's own loader reads the results (python3 with the fetched automated-interpretability code)", (ctx) => {
    // the git directory of a fetched copy of github:openai/automated-interpretability
    const mirror = process.env.CRATE_TS_OAI_REPO;
    if (!mirror) return ctx.skip('CRATE_TS_OAI_REPO is not set (the git directory of a copy of openai/automated-interpretability)');
    if (!fs.existsSync(mirror)) return ctx.skip(`CRATE_TS_OAI_REPO=${mirror} does not exist`);
    try {
      execFileSync('python3', ['-c', 'import orjson'], { stdio: 'ignore' });
    } catch {
      return ctx.skip('python3 with orjson is not available');
    }
    // the package's explanation and activation dataclasses and its loader, with its blob-storage
    // imports (blobfile, boostedblob: not installed here, not used by loads()) stubbed out
    const pkg = path.join(dir, 'py');
    for (const f of [
      '__init__.py',
      'fast_dataclasses/__init__.py',
      'fast_dataclasses/fast_dataclasses.py',
      'activations/__init__.py',
      'activations/activations.py',
      'explanations/explanations.py',
      'azure.py',
    ]) {
      const dst = path.join(pkg, 'neuron_explainer', f);
      fs.mkdirSync(path.dirname(dst), { recursive: true });
      fs.writeFileSync(dst, execFileSync('git', [`--git-dir=${mirror}`, 'show', `HEAD:neuron-explainer/neuron_explainer/${f}`]));
    }
    fs.writeFileSync(path.join(pkg, 'neuron_explainer', 'explanations', '__init__.py'), '');
    fs.writeFileSync(path.join(pkg, 'blobfile.py'), '');
    fs.writeFileSync(path.join(pkg, 'boostedblob.py'), 'def ensure_session(f):\n    return f\n');
    const script = `
import sys
from neuron_explainer.fast_dataclasses import loads
from neuron_explainer.explanations.explanations import NeuronSimulationResults, ScoredSimulation, SequenceSimulation
n = 0
for line in open(sys.argv[1]):
    r = loads(line)
    assert isinstance(r, NeuronSimulationResults), type(r)
    s = r.scored_explanations[0].scored_simulation
    assert isinstance(s, ScoredSimulation)
    assert isinstance(s.scored_sequence_simulations[0].simulation, SequenceSimulation)
    n += 1
print(n)`;
    const got = execFileSync('python3', ['-c', script, path.join(out, 'tar', 'layer-0.jsonl')], { env: { ...process.env, PYTHONPATH: pkg } })
      .toString()
      .trim();
    expect(got).toBe('3');
  });
});

describe('other simulators', () => {
  it('token by token gives the all-at-once expected values; logprob-free is parsed and marked not comparable', async () => {
    const a = path.join(dir, 'out-a');
    const tbt = path.join(dir, 'out-t');
    const r = await capture([
      'neurons',
      'score',
      coll,
      ...base(),
      '--max',
      '1',
      '--splits',
      'tar',
      '--simulator',
      'token-by-token',
      '--out',
      tbt,
      '--cache-dir',
      path.join(dir, 'cache-t'),
    ]);
    expect(r.code).toBe(0);
    const x = readJsonl(path.join(tbt, 'tar', 'layer-0.jsonl'))[0].scored_explanations[0].scored_simulation.scored_sequence_simulations;
    const y = readJsonl(path.join(a, 'tar', 'layer-0.jsonl'))[0].scored_explanations[0].scored_simulation.scored_sequence_simulations;
    expect(x.map((s: any) => s.simulation.expected_activations)).toEqual(y.map((s: any) => s.simulation.expected_activations));
    const lf = path.join(dir, 'out-lf');
    const r2 = await capture([
      'neurons',
      'score',
      coll,
      ...base(),
      '--max',
      '1',
      '--splits',
      'tar',
      '--simulator',
      'logprob-free',
      '--out',
      lf,
      '--cache-dir',
      path.join(dir, 'cache-lf'),
    ]);
    expect(r2.code).toBe(0);
    expect(r2.out).toMatch(/NOT COMPARABLE/);
    const meta = JSON.parse(fs.readFileSync(path.join(lf, 'tar', 'layer-0.meta.json'), 'utf8'));
    expect(meta.comparable).toBe(false);
    expect(JSON.parse(fs.readFileSync(path.join(lf, 'summary.json'), 'utf8')).parse_failures).toBe(0);
    const s = readJsonl(path.join(lf, 'tar', 'layer-0.jsonl'))[0].scored_explanations[0].scored_simulation.scored_sequence_simulations[0];
    const best = (tok: string) =>
      Number(
        Object.entries(rule(tok))
          .filter(([k]) => /^\d+$/.test(k))
          .sort((p, q) => q[1] - p[1])[0][0],
      );
    expect(s.simulation.expected_activations).toEqual(s.simulation.tokens.map(best));
  });
});

describe('a run killed mid-way', () => {
  it('restarts from the cache: no request that was answered before the kill is sent again, and the results equal an uninterrupted run', async () => {
    const cache = path.join(dir, 'cache-k'),
      out = path.join(dir, 'out-k');
    const args = ['neurons', 'score', coll, ...base(), '--splits', 'tar', '--concurrency', '2', '--out', out, '--cache-dir', cache];
    const spawnRun = () =>
      spawn(process.execPath, [path.join(root, 'test', 'serve-helpers', 'run-ts.mjs'), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    fake.answered.clear();
    const receivedBefore = new Map(fake.received);
    fake.stallAfter(7);
    const child = spawnRun();
    // wait until 7 requests are answered and two more are waiting at the server
    const t0 = Date.now();
    while (fake.answered.size < 7 || received() - [...receivedBefore.values()].reduce((a, b) => a + b, 0) < 9) {
      if (Date.now() - t0 > 60_000) throw new Error('the run did not reach the stall point');
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 300)); // let the client write its cache entries
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    const answeredBeforeKill = new Set(fake.answered);
    const countsAtKill = new Map(fake.received);
    fake.release();
    expect(fs.existsSync(path.join(out, 'summary.json'))).toBe(false);
    const second = spawnRun();
    const code = await new Promise<number>((r) => second.on('exit', (c) => r(c ?? 1)));
    expect(code).toBe(0);
    for (const h of answeredBeforeKill) expect(fake.received.get(h), 'an answered request was sent again').toBe(countsAtKill.get(h));
    // same results as the uninterrupted run of the first test (same explanations, same simulations)
    expect(fs.readFileSync(path.join(out, 'tar', 'layer-0.jsonl'), 'utf8')).toBe(fs.readFileSync(path.join(dir, 'out-a', 'tar', 'layer-0.jsonl'), 'utf8'));
  }, 300_000); // two child processes that load the TypeScript sources
});

describe('bad input', () => {
  it('one-line errors with exit codes', async () => {
    const cases: [string[], number, RegExp][] = [
      [['neurons', 'score', path.join(dir, 'nope'), ...base()], 1, /collection directory .*nope' does not exist/],
      [['neurons', 'score', coll, '--api-base', fake.url, '--model', 'x', '--layers', '7'], 2, /--layers: layer 7 was not collected/],
      [['neurons', 'score', coll, '--api-base', fake.url, '--model', 'x', '--neurons', '0-99999'], 2, /--neurons: neuron \d+ is outside layer 0's \d+ neurons/],
      [['neurons', 'explain', coll, '--model', 'x'], 2, /no explainer endpoint: give --api-base/],
      [['neurons', 'explain', coll, '--api-base', fake.url], 2, /no explainer model: give --model/],
      [
        ['neurons', 'score', coll, '--api-base', fake.url, '--model', 'x', '--simulator', 'psychic'],
        2,
        /--simulator must be one of all-at-once, token-by-token, logprob-free/,
      ],
      [
        ['neurons', 'simulate', coll, '--api-base', fake.url, '--model', 'x', '--out', path.join(dir, 'empty')],
        1,
        /no explanations for layer 0: .* does not exist/,
      ],
      [['neurons', 'explain', coll, '--api-base', 'not a url', '--model', 'x'], 2, /is not a URL/],
      [['neurons', 'explain', coll, '--api-base', fake.url, '--model', 'x', '--prompts', path.join(dir, 'nope.json')], 2, /cannot read the prompt set/],
      [['neurons', 'explain', coll, '--api-base', fake.url, '--model', 'x', '--concurrency', '0'], 2, /--concurrency must be an integer >= 1/],
      [['neurons', 'explain', coll, '--api-base', fake.url, '--model', 'x', '--neurons', '5-2'], 2, /runs backwards/],
    ];
    for (const [argv, code, re] of cases) {
      const r = await capture(argv);
      expect(r.code, argv.join(' ')).toBe(code);
      expect(r.err.trim().split('\n').length, argv.join(' ')).toBe(1);
      expect(r.err, argv.join(' ')).toMatch(re);
    }
    // a server that does not echo prompt log-probabilities: stop at once, cache nothing
    fake.noEchoLogprobs = true;
    try {
      const cache = path.join(dir, 'cache-nolp');
      const r = await capture([
        'neurons',
        'score',
        coll,
        ...base(),
        '--max',
        '1',
        '--splits',
        'tar',
        '--out',
        path.join(dir, 'out-nolp'),
        '--cache-dir',
        cache,
      ]);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/returned no prompt log-probabilities .*use --simulator token-by-token or logprob-free/);
      const entries = fs
        .readdirSync(cache, { recursive: true })
        .map(String)
        .filter((f) => f.endsWith('.json.gz'));
      expect(entries.length).toBe(1); // the explanation only
    } finally {
      fake.noEchoLogprobs = false;
    }
  });
});
