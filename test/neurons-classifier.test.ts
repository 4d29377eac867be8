// Detection and fuzzing scorers (src/neurons/classifier.ts, classify-run.ts): the contexts drawn, the
// metrics against hand-computed values, the judge's reply parser, the offline judge, an LLM judge
// over HTTP (a stub OpenAI-compatible chat server), and `neurons score --scorer` end to end on a
// collection of a tiny model, with the summary recomputed from the per-example files.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  applyVerdicts,
  classifierMetrics,
  contextText,
  drawContexts,
  LookupJudge,
  parseJudgeReply,
  rocAuc,
  type ClassifierExample,
} from '../src/neurons/classifier.js';
import { LlmJudge, classifyCollection, neuronSeed } from '../src/neurons/classify-run.js';
import { neuronRecords } from '../src/neurons/score.js';
import { readLayer, readManifest } from '../src/neurons/format.js';
import { LlmClient } from '../src/neurons/llm/client.js';
import type { NeuronRecords } from '../src/neurons/scoring.js';
import type { ActivationRecord } from '../src/neurons/format.js';
import { lookupTable } from '../src/neurons/lookup.js';
import { Rng } from '../src/util/rng.js';
import { LanguageModel } from '../src/model/lm.js';
import { makeConfig } from '../src/model/config.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { saveCheckpoint } from '../src/checkpoint/checkpoint.js';
import { collect } from '../src/neurons/collect.js';
import { capture } from './helpers/capture.js';

/** A synthetic neuron that fires (value 2 + i) exactly on the token "q". */
function qNeuron(rng: Rng): NeuronRecords {
  const alphabet = ['a', 'b', 'c', 'q', ' ', 'u'];
  const rec = (withQ: boolean): ActivationRecord => {
    const tokens = Array.from({ length: 12 }, () => alphabet[rng.int(alphabet.length)]).map((t) => (t === 'q' && !withQ ? 'a' : t));
    if (withQ) tokens[rng.int(12)] = 'q';
    return { tokens, activations: tokens.map((t, i) => (t === 'q' ? 2 + (i % 3) : 0)) };
  };
  const top = Array.from({ length: 20 }, () => rec(true));
  const random = Array.from({ length: 20 }, (_, i) => rec(i % 4 === 0));
  const quantile = Array.from({ length: 11 }, () => Array.from({ length: 5 }, () => rec(true)));
  return { top, random, quantile, topOffsets: top.map(() => 0), randomOffsets: random.map(() => 0), quantileOffsets: quantile.map((b) => b.map(() => 0)) };
}

describe('contexts', () => {
  it('contextText marks runs of tokens with one pair of << >>', () => {
    expect(contextText(['a', 'b', 'c', 'd'], [1, 2])).toBe('a<<bc>>d');
    expect(contextText(['a', 'b', 'c'], [0, 2])).toBe('<<a>>b<<c>>');
    expect(contextText(['x', 'y'])).toBe('xy');
  });

  it('detection: balanced classes; activating ones come from the quantile bins and fire, the others are silent random records', () => {
    const nr = qNeuron(new Rng(1));
    const ctx = drawContexts('detection', nr, { perClass: 7, seed: 3 });
    expect(ctx).toHaveLength(14);
    const pos = ctx.filter((c) => c.example.activating),
      neg = ctx.filter((c) => !c.example.activating);
    expect(pos).toHaveLength(7);
    for (const c of pos) {
      expect(c.example.activations.some((a) => a > 0)).toBe(true);
      expect(c.example.distance).toBeGreaterThanOrEqual(1);
      expect(c.example.distance).toBeLessThanOrEqual(11);
    }
    for (const c of neg) {
      expect(c.example.activations.every((a) => a <= 0)).toBe(true);
      expect(c.example.distance).toBe(-1);
      expect(nr.random).toContainEqual({ tokens: c.example.str_tokens, activations: c.example.activations });
    }
    // the same seed draws the same contexts in the same order; another seed does not
    expect(drawContexts('detection', nr, { perClass: 7, seed: 3 })).toEqual(ctx);
    expect(drawContexts('detection', nr, { perClass: 7, seed: 4 }).map((c) => c.text)).not.toEqual(ctx.map((c) => c.text));
  });

  it('fuzzing: true contexts mark exactly the firing tokens, false ones mark only silent tokens', () => {
    const ctx = drawContexts('fuzzing', qNeuron(new Rng(2)), { perClass: 6, seed: 5 });
    expect(ctx.filter((c) => c.example.activating)).toHaveLength(6);
    expect(ctx.filter((c) => !c.example.activating)).toHaveLength(6);
    for (const c of ctx) {
      expect(c.marked.length).toBeGreaterThan(0);
      const firing = c.example.activations.flatMap((a, j) => (a > 0 ? [j] : []));
      if (c.example.activating) expect(c.marked).toEqual(firing);
      else for (const j of c.marked) expect(c.example.activations[j]).toBe(0);
      expect(c.text).toBe(contextText(c.example.str_tokens, c.marked));
    }
  });

  it('"fires" is a tenth of the top maximum: weak activations everywhere do not make every record activating', () => {
    const nr = qNeuron(new Rng(7));
    const weak = (r: ActivationRecord): ActivationRecord => ({ ...r, activations: r.activations.map((a) => (a > 0 ? a : 0.2)) }); // 0.2 < 4 / 10
    const dense: NeuronRecords = { ...nr, top: nr.top.map(weak), random: nr.random.map(weak), quantile: nr.quantile!.map((b) => b.map(weak)) };
    const det = drawContexts('detection', dense, { perClass: 5, seed: 1 });
    expect(det.filter((c) => !c.example.activating)).toHaveLength(5);
    for (const c of det.filter((c) => !c.example.activating)) expect(Math.max(...c.example.activations)).toBe(0.2);
    for (const c of drawContexts('fuzzing', dense, { perClass: 5, seed: 1 }))
      if (c.example.activating) expect(c.marked).toEqual(c.example.str_tokens.flatMap((t, j) => (t === 'q' ? [j] : [])));
  });

  it('fuzzing with few activating records: false contexts reuse true ones rather than reading past the pool', () => {
    const nr = qNeuron(new Rng(8));
    for (const k of [1, 2, 3, 4, 5]) {
      const few: NeuronRecords = { ...nr, quantile: null, top: nr.top.slice(0, k) };
      const ctx = drawContexts('fuzzing', few, { perClass: 10, seed: k });
      expect(ctx.filter((c) => c.example.activating)).toHaveLength(Math.ceil(k / 2));
      expect(ctx.filter((c) => !c.example.activating)).toHaveLength(Math.ceil(k / 2));
    }
  });

  it('a neuron that never fires, or (detection) has no silent random record, gets no contexts', () => {
    const nr = qNeuron(new Rng(3));
    const dead: NeuronRecords = { ...nr, top: nr.top.map((r) => ({ ...r, activations: r.activations.map(() => 0) })), quantile: null };
    expect(drawContexts('detection', dead)).toEqual([]);
    expect(drawContexts('fuzzing', dead)).toEqual([]);
    const everywhere: NeuronRecords = { ...nr, random: nr.random.map((r) => ({ ...r, activations: r.activations.map(() => 1) })) };
    expect(drawContexts('detection', everywhere)).toEqual([]);
  });
});

describe('metrics', () => {
  const ex = (activating: boolean, prediction: boolean | null, probability: number | null = null): ClassifierExample => ({
    str_tokens: [],
    activations: [],
    distance: 0,
    activating,
    prediction,
    probability,
    correct: prediction === null ? null : prediction === activating,
  });

  it('accuracy, balanced accuracy, precision, recall, F1 of a written-out confusion matrix; unreadable replies counted apart', () => {
    // 3 TP, 1 FN, 2 TN, 2 FP, 1 failed
    const m = classifierMetrics([
      ex(true, true),
      ex(true, true),
      ex(true, true),
      ex(true, false),
      ex(false, false),
      ex(false, false),
      ex(false, true),
      ex(false, true),
      ex(true, null),
    ]);
    expect(m.n).toBe(8);
    expect(m.failed).toBe(1);
    expect(m.accuracy).toBeCloseTo(5 / 8, 15);
    expect(m.balancedAccuracy).toBeCloseTo((3 / 4 + 2 / 4) / 2, 15);
    expect(m.precision).toBeCloseTo(3 / 5, 15);
    expect(m.recall).toBeCloseTo(3 / 4, 15);
    expect(m.f1).toBeCloseTo((2 * (3 / 5) * (3 / 4)) / (3 / 5 + 3 / 4), 15);
    expect(Number.isNaN(m.auc)).toBe(true);
  });

  it('AUC equals the fraction of (positive, negative) pairs ranked right, ties half', () => {
    const rng = new Rng(9);
    for (let trial = 0; trial < 20; trial++) {
      const pos = Array.from({ length: 1 + rng.int(8) }, () => rng.int(5) / 4),
        neg = Array.from({ length: 1 + rng.int(8) }, () => rng.int(5) / 4);
      let want = 0;
      for (const p of pos) for (const q of neg) want += p > q ? 1 : p === q ? 0.5 : 0;
      expect(rocAuc(pos, neg)).toBeCloseTo(want / (pos.length * neg.length), 15);
    }
    expect(rocAuc([0.9, 0.8], [0.1, 0.85])).toBeCloseTo(3 / 4, 15);
    const m = classifierMetrics([ex(true, true, 0.9), ex(true, true, 0.8), ex(false, false, 0.1), ex(false, true, 0.85)]);
    expect(m.auc).toBeCloseTo(3 / 4, 15);
  });
});

describe('the judge reply', () => {
  it('reads the first list of n values 0/1; anything else is a parse failure', () => {
    expect(parseJudgeReply('Answer: [1, 0, 1]', 3)?.predictions).toEqual([true, false, true]);
    expect(parseJudgeReply('[true,false]', 2)?.predictions).toEqual([true, false]);
    expect(parseJudgeReply('[1, 0]', 3)).toBeNull();
    expect(parseJudgeReply('[1, 2, 0]', 3)).toBeNull();
    expect(parseJudgeReply('yes, no, yes', 3)).toBeNull();
  });

  it('with top_logprobs, each answer gets P(1) / (P(0) + P(1)) at its digit', () => {
    const lp = (t: string, p1: number, p0: number) => ({
      token: t,
      top_logprobs: [
        { token: '1', logprob: Math.log(p1) },
        { token: '0', logprob: Math.log(p0) },
        { token: 'x', logprob: Math.log(0.05) },
      ],
    });
    const content = [
      { token: '[', top_logprobs: [] },
      lp('1', 0.6, 0.2),
      { token: ',', top_logprobs: [] },
      lp(' 0', 0.1, 0.7),
      { token: ']', top_logprobs: [] },
    ];
    const v = parseJudgeReply('[1, 0]', 2, content)!;
    expect(v.predictions).toEqual([true, false]);
    expect(v.probabilities[0]).toBeCloseTo(0.6 / 0.8, 12);
    expect(v.probabilities[1]).toBeCloseTo(0.1 / 0.8, 12);
  });
});

describe('judges', () => {
  it('the lookup judge scores a single-token neuron perfectly on detection and fuzzing', async () => {
    const nr = qNeuron(new Rng(4));
    const table = lookupTable(nr.top.filter((_, i) => i % 2 === 0));
    for (const kind of ['detection', 'fuzzing'] as const) {
      const ctx = drawContexts(kind, nr, { perClass: 8, seed: 1 });
      const examples = applyVerdicts(ctx, await new LookupJudge(table).judge(kind, '', ctx));
      const m = classifierMetrics(examples);
      expect(m.balancedAccuracy, kind).toBe(1);
      expect(m.auc, kind).toBe(1);
      expect(examples.every((e) => e.correct === true)).toBe(true);
    }
  });

  describe('an LLM judge over HTTP', () => {
    let server: http.Server, base: string;
    const seen: { messages: { role: string; content: string }[]; top_logprobs?: number; logprobs?: boolean }[] = [];
    beforeAll(async () => {
      server = http.createServer((req, res) => {
        let body = '';
        req.on('data', (c) => (body += c));
        req.on('end', () => {
          const j = JSON.parse(body) as (typeof seen)[number];
          seen.push(j);
          const user = j.messages[1].content;
          // answers 1 exactly for excerpts containing "q"; replies garbage when the explanation says so
          const excerpts = user.split('\n').filter((l) => l.startsWith('Excerpt '));
          const content = user.includes('GARBAGE') ? 'I cannot tell.' : `[${excerpts.map((l) => (l.includes('q') ? 1 : 0)).join(', ')}]`;
          res.setHeader('content-type', 'application/json');
          res.end(
            JSON.stringify({
              id: 'x',
              object: 'chat.completion',
              created: 0,
              model: 'stub',
              choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content } }],
            }),
          );
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    it('asks one request per batch with the explanation and numbered excerpts; an unreadable reply is counted, not fatal', async () => {
      const judge = new LlmJudge(new LlmClient({ concurrency: 1, maxRetries: 0 }), { baseURL: base, apiKey: 'k', model: 'stub' }, { logprobs: true });
      const ctx = drawContexts('detection', qNeuron(new Rng(6)), { perClass: 5, seed: 2 });
      const v = await judge.judge('detection', 'the letter q', ctx.slice(0, 5));
      expect(seen.at(-1)!.messages[1].content).toContain('Explanation: the letter q');
      expect(seen.at(-1)!.top_logprobs).toBe(5);
      expect(v.predictions).toEqual(ctx.slice(0, 5).map((c) => c.example.str_tokens.includes('q')));
      const bad = await judge.judge('detection', 'GARBAGE', ctx.slice(5));
      expect(bad.predictions.every((p) => p === null)).toBe(true);
      expect(judge.parseFailures).toBe(5);
    });
  });
});

describe('an LLM judge against crate-ts serve (a real OpenAI-compatible chat endpoint)', () => {
  it('the request, with logprobs and top_logprobs, is answered; a reply that is no 0/1 list is a counted parse failure', async () => {
    const { selectBackend } = await import('../src/backend/select.js');
    const { loadTokenizer } = await import('../src/data/tokenizer.js');
    const { Engine } = await import('../src/serve/engine.js');
    const { TokenBytes } = await import('../src/serve/tokens.js');
    const { startServer } = await import('../src/serve/server.js');
    const { backend } = await selectBackend('auto');
    const tok = await loadTokenizer('gpt2');
    const model = new LanguageModel(backend, makeConfig(undefined, { vocabSize: 50304, blockSize: 256, nLayer: 1, nHead: 2, nEmbd: 16 }), { seed: 5 });
    const engine = new Engine(model, tok, await TokenBytes.forTokenizer(tok), {});
    const srv = await startServer(engine, { port: 0, modelName: 'crate' });
    try {
      const client = new LlmClient({ concurrency: 1, maxRetries: 0 });
      const judge = new LlmJudge(client, { baseURL: `http://127.0.0.1:${srv.port}/v1`, apiKey: 'none', model: 'crate' }, { logprobs: true, maxTokens: 8 });
      const ctx = drawContexts('detection', qNeuron(new Rng(12)), { perClass: 1, seed: 1 }).map((c) => ({ ...c, text: c.text.slice(0, 40) }));
      const v = await judge.judge('detection', 'the letter q', ctx);
      expect(client.stats.calls).toBe(1);
      expect(client.stats.failed).toBe(0);
      // an untrained model does not answer with a list: every context is a parse failure, nothing throws
      expect(v.predictions.every((p) => p === null) || v.predictions.every((p) => typeof p === 'boolean')).toBe(true);
      if (v.predictions[0] === null) expect(judge.parseFailures).toBe(ctx.length);
    } finally {
      await srv.close();
      model.free();
    }
  });
});

describe('neurons score --scorer on a collection', () => {
  let dir: string, coll: string;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-classify-'));
    const model = new LanguageModel(new ReferenceBackend(), makeConfig('char-tiny', { arch: 'crate', nEmbd: 16, nHead: 2, nLayer: 2, blockSize: 16 }), {
      seed: 3,
    });
    const ck = path.join(dir, 'm.safetensors');
    saveCheckpoint(ck, { model: model as LanguageModel<unknown>, tokenizer: 'byte' });
    model.free();
    coll = path.join(dir, 'coll');
    await collect({ checkpoint: ck, tokens: 400 * 16, variant: 'both', seed: 7, backend: new ReferenceBackend(), batch: 8, out: coll, cacheDir: null });
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes delphi-shaped examples per neuron and a summary recomputable from them', async () => {
    const r = await capture(['neurons', 'score', coll, '--scorer', 'detection', '--max', '12', '--per-class', '4', '--json']);
    expect(r.code, r.err).toBe(0);
    const s = JSON.parse(r.out) as { layers: { layer: number; neurons: number; scored: number; balanced_accuracy: number | null }[]; judge: string };
    expect(s.judge).toBe('lookup');
    for (const l of s.layers) {
      const rows = fs
        .readFileSync(path.join(coll, 'detection-lookup', `layer-${l.layer}.jsonl`), 'utf8')
        .trim()
        .split('\n')
        .map((x) => JSON.parse(x) as { neuron: number; examples: Record<string, unknown>[]; balanced_accuracy: number | null });
      expect(rows).toHaveLength(12);
      const bas: number[] = [];
      for (const row of rows) {
        for (const e of row.examples)
          expect(Object.keys(e).sort()).toEqual(['activating', 'activations', 'correct', 'distance', 'prediction', 'probability', 'str_tokens']);
        // balanced accuracy recomputed from the examples
        const pos = row.examples.filter((e) => e.activating === true),
          neg = row.examples.filter((e) => e.activating === false);
        const tpr = pos.filter((e) => e.prediction === true).length / pos.length,
          tnr = neg.filter((e) => e.prediction === false).length / neg.length;
        const ba = (tpr + tnr) / 2;
        if (Number.isFinite(ba)) {
          expect(row.balanced_accuracy).toBeCloseTo(ba, 12);
          bas.push(ba);
        } else expect(row.balanced_accuracy).toBeNull();
      }
      expect(l.scored).toBe(bas.length);
      if (bas.length) expect(l.balanced_accuracy).toBeCloseTo(bas.reduce((a, b) => a + b, 0) / bas.length, 12);
    }
    expect(JSON.parse(fs.readFileSync(path.join(coll, 'detection-lookup', 'summary.json'), 'utf8'))).toEqual(s);
  });

  it('bad input: unknown scorer, lookup with --api-base, missing explanations for an LLM judge', async () => {
    let r = await capture(['neurons', 'score', coll, '--scorer', 'intruder']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--scorer must be detection or fuzzing, got 'intruder'/);
    r = await capture(['neurons', 'score', coll, '--scorer', 'fuzzing', '--judge', 'lookup', '--api-base', 'http://127.0.0.1:9/v1']);
    expect(r.code).toBe(2);
    r = await capture(['neurons', 'score', coll, '--scorer', 'fuzzing', '--api-base', 'http://127.0.0.1:9/v1', '--model', 'm', '--max', '1']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/no explanations for layer 0: .* does not exist \(run `crate-ts neurons explain` first\)/);
    r = await capture(['neurons', 'score', coll, '--scorer', 'detection', '--per-class', '0']);
    expect(r.code).toBe(2);
  });

  it('the library call with an LLM judge asks about exactly the neurons that have an explanation and contexts', async () => {
    const ex = path.join(dir, 'expl');
    fs.mkdirSync(ex, { recursive: true });
    for (const l of [0, 1])
      fs.writeFileSync(path.join(ex, `layer-${l}.jsonl`), JSON.stringify({ layer: l, neuron: 0, group: 'openai', explanation: 'GARBAGE' }) + '\n');
    const client = new LlmClient({ concurrency: 1, maxRetries: 0, dryRun: true });
    const judge = new LlmJudge(client, { baseURL: 'http://127.0.0.1:9/v1', apiKey: 'k', model: 'm' });
    const s = await classifyCollection({
      dir: coll,
      kind: 'fuzzing',
      judge: { judge, explanationsDir: ex },
      max: 2,
      perClass: 3,
      perPrompt: 4,
      seed: 5,
      out: path.join(dir, 'dry'),
    });
    // neuron 0 of each layer has an explanation: one request per 4 of its contexts; neuron 1 has none
    const m = readManifest(coll);
    let want = 0;
    for (const l of [0, 1]) {
      const n = drawContexts('fuzzing', neuronRecords(m, readLayer(coll, m, l), 0), { perClass: 3, seed: neuronSeed(5, l, 0) }).length;
      want += Math.ceil(n / 4);
    }
    expect(want).toBeGreaterThan(0);
    expect(client.stats.planned).toBe(want);
    expect(s.layers.every((l) => l.scored === 0)).toBe(true); // a dry run answers nothing
  });
});
