// End to end on a real server: train a tiny GPT-2-BPE crate-ts model with the library trainer,
// start `crate-ts serve --port 0` as its own process (the chosen port is read from its stdout),
// talk to it with the official openai client, then run `crate-ts neurons score` (explain →
// simulate → score) against it for a few neurons of a collection made by `neurons collect`:
// every response parses, the alignment finds every token, expected values lie in [0, 10], and a
// rerun sends zero requests (counted in the server's access log).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import OpenAI from 'openai';
import { train } from '../src/train/trainer.js';
import { selectBackend } from '../src/backend/select.js';
import { collect } from '../src/neurons/collect.js';
import { readManifest, readLayer } from '../src/neurons/format.js';
import { neuronRecords } from '../src/neurons/score.js';
import { tarSplit } from '../src/neurons/scoring.js';
import { capture as captureCli } from './helpers/capture.js';

const root = path.resolve(import.meta.dirname, '..');
let dir: string, ckpt: string, coll: string, server: ChildProcess, baseURL: string;
let accessLog = '';

const capture = (argv: string[]) => captureCli(argv, { stderr: true });

const served = (p: string) => accessLog.split('\n').filter((l) => l.includes(` POST ${p} `)).length;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-serve-e2e-'));
  const { backend } = await selectBackend('auto');
  // tiny GPT-2-BPE CRATE on the embedded corpus: V 50304 (gpt2 forces it), so d and L stay small
  const r = await train({
    preset: '1L',
    nEmbd: 16,
    nHead: 2,
    nLayer: 1,
    seq: 64,
    batch: 4,
    steps: 150,
    lr: 1e-2,
    evalWindows: 4,
    evalEvery: 0,
    saveEvery: 0,
    backend,
    out: path.join(dir, 'run'),
    quiet: true,
    sampleTokens: 0,
    cacheDir: null,
  });
  ckpt = r.checkpoint;
  coll = path.join(dir, 'coll');
  await collect({ checkpoint: ckpt, tokens: 8 * 64, seed: 2, backend, out: coll, cacheDir: null });
  server = spawn(process.execPath, [path.join(root, 'test', 'serve-helpers', 'run-ts.mjs'), 'serve', '--checkpoint', ckpt, '--port', '0'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stderr!.on('data', (d) => {
    accessLog += String(d);
  });
  baseURL = await new Promise<string>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`crate-ts serve did not start: ${accessLog}`)), 60_000);
    server.stdout!.on('data', (d) => {
      out += String(d);
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+) \(OpenAI base URL (\S+)\)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(m[2]);
      }
    });
    server.on('exit', (c) => reject(new Error(`crate-ts serve exited with ${c}: ${accessLog}`)));
  });
}, 400_000); // training, collection and a server start, on a machine other test files share
afterAll(async () => {
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    await new Promise((r) => server.on('exit', r));
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('crate-ts serve as a separate process', () => {
  it('binds to loopback on the port it reports, and answers the official openai client', async () => {
    expect(baseURL).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
    const client = new OpenAI({ baseURL, apiKey: 'none', maxRetries: 0 });
    expect((await client.models.list()).data[0].id).toBe('crate');
    const c = await client.completions.create({ model: 'crate', prompt: 'Call me Ishmael.', max_tokens: 0, echo: true, logprobs: 5 });
    expect(c.choices[0].logprobs!.tokens!.join('')).toBe('Call me Ishmael.');
    expect(c.choices[0].logprobs!.token_logprobs!.slice(1).every((x) => x !== null && x <= 0)).toBe(true);
    const g = await client.completions.create({ model: 'crate', prompt: 'The whale', max_tokens: 8, temperature: 0.8, seed: 1 });
    expect(g.usage!.completion_tokens).toBeGreaterThan(0);
    const chat = await client.chat.completions.create({ model: 'crate', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 6, stream: true });
    let n = 0;
    for await (const ch of chat) if (ch.choices[0]?.delta?.content !== undefined) n++;
    expect(n).toBeGreaterThan(0);
    const bad = await fetch(`${baseURL}/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"model": "crate", "prompt": [99999999]}',
    });
    expect(bad.status).toBe(400);
    expect((await client.models.list()).data.length).toBe(1);
  });

  it('neurons score against it: every token aligned, expected values in [0, 10], OpenAI-format results; a rerun sends nothing', async () => {
    // a short prompt set (one few-shot neuron) keeps each simulator prompt under 500 tokens: the
    // tiny model computes all 50304 log-probabilities at every position on two shared cores
    const full = JSON.parse(fs.readFileSync(path.join(root, 'src', 'neurons', 'llm', 'prompts', 'default.json'), 'utf8'));
    const small = { ...full, name: 'e2e-short', few_shot: [{ ...full.few_shot[2], records: [full.few_shot[2].records[1]], first_revealed: [0] }] };
    fs.writeFileSync(path.join(dir, 'short.json'), JSON.stringify(small));
    const args = [
      'neurons',
      'score',
      coll,
      '--api-base',
      baseURL,
      '--model',
      'crate',
      '--layers',
      '0',
      '--max',
      '2',
      '--splits',
      'tar',
      '--prompts',
      path.join(dir, 'short.json'),
      '--json',
    ];
    const before = { c: served('/v1/completions'), ch: served('/v1/chat/completions') };
    const r = await capture(args);
    expect(r.code, r.err).toBe(0);
    const s = JSON.parse(r.out);
    expect(s.alignment.missing + s.alignment.mismatch + s.alignment.newlineFolded).toBe(0);
    const m = readManifest(coll),
      ld = readLayer(coll, m, 0);
    const tokens = [0, 1].reduce((t, n) => t + tarSplit(neuronRecords(m, ld, n)).scoring.reduce((u, r) => u + r.tokens.length, 0), 0);
    expect(s.alignment.exact + s.alignment.split).toBe(tokens);
    expect(s.calls.failed).toBe(0);
    // the access log arrives through a pipe: give the last lines a moment
    for (let i = 0; i < 40 && served('/v1/completions') - before.c < s.calls.made - 2; i++) await new Promise((r) => setTimeout(r, 50));
    expect(served('/v1/chat/completions') - before.ch).toBe(2);
    expect(served('/v1/completions') - before.c).toBe(s.calls.made - 2);
    const rows = fs
      .readFileSync(path.join(coll, 'llm-e2e-short', 'tar', 'layer-0.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(rows.length).toBe(2);
    for (const row of rows) {
      expect(row.dataclass_name).toBe('NeuronSimulationResults');
      for (const seq of row.scored_explanations[0].scored_simulation.scored_sequence_simulations) {
        expect(seq.simulation.expected_activations.length).toBe(seq.true_activations.length);
        expect(seq.simulation.expected_activations.every((x: number) => x >= 0 && x <= 10)).toBe(true);
      }
    }
    const logLines = accessLog.split('\n').length;
    const again = await capture(args);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.out).calls.made).toBe(0);
    await new Promise((r) => setTimeout(r, 500));
    expect(accessLog.split('\n').length).toBe(logLines);
  }, 600_000); // 2 explanations + 20 simulations, each computing 50304 log-probabilities at ~490 positions
});
