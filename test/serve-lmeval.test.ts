// crate-ts serve as lm-evaluation-harness's `local-completions` model sees it: the remote-tokenizer
// routes (/tokenizer_info, /tokenize, /detokenize at the root and under /v1/), "<|endoftext|>" in
// text read as the end-of-text token, and the loglikelihood requests lm-eval sends (token-id prompts
// alone and batched, string prompts, rolling windows with one token of context): the sum it takes,
// token_logprobs[ctxlen:-1], equals a float64 recompute from the model's forward, and its greedy
// check against top_logprobs equals an argmax of that forward.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { LanguageModel } from '../src/model/lm.js';
import { makeConfig } from '../src/model/config.js';
import { selectBackend } from '../src/backend/select.js';
import { loadTokenizer, GPT2_EOT } from '../src/data/tokenizer.js';
import { Engine } from '../src/serve/engine.js';
import { TokenBytes } from '../src/serve/tokens.js';
import { logSoftmax } from './helpers/logsoftmax.js';
import { startServer, type RunningServer } from '../src/serve/server.js';

let engine: Engine, srv: RunningServer, base: string;
let byteEngine: Engine, byteSrv: RunningServer, byteBase: string;
const T = 32;

beforeAll(async () => {
  const { backend } = await selectBackend('auto');
  const tok = await loadTokenizer('gpt2');
  const model = new LanguageModel(backend, makeConfig(undefined, { vocabSize: 50304, blockSize: T, nLayer: 1, nHead: 2, nEmbd: 16 }), { seed: 11 });
  engine = new Engine(model, tok, await TokenBytes.forTokenizer(tok), { echoStride: 12 });
  srv = await startServer(engine, { port: 0, modelName: 'crate' });
  base = `http://127.0.0.1:${srv.port}`;
  const btok = await loadTokenizer('byte');
  const bmodel = new LanguageModel(backend, makeConfig('char-tiny', { blockSize: T, nLayer: 1 }), { seed: 3 });
  byteEngine = new Engine(bmodel, btok, await TokenBytes.forTokenizer(btok), {});
  byteSrv = await startServer(byteEngine, { port: 0, modelName: 'crate-byte' });
  byteBase = `http://127.0.0.1:${byteSrv.port}`;
});
afterAll(async () => {
  await srv?.close();
  await byteSrv?.close();
  engine?.model.free();
  byteEngine?.model.free();
});

async function call(url: string, body?: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(url, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, json: await r.json() };
}

/** What lm-eval computes from the forward: sum of log p(continuation) and whether it is the greedy one. */
function recompute(e: Engine, ctx: number[], cont: number[]): { sum: number; greedy: boolean } {
  const ids = [...ctx, ...cont];
  const { logits } = e.model.forward(ids, 1, ids.length);
  const V = e.vocabSize,
    textV = e.tokenizer.vocabSize;
  let sum = 0,
    greedy = true;
  for (let i = ctx.length; i < ids.length; i++) {
    const ls = logSoftmax(logits!, (i - 1) * V, V);
    sum += ls[ids[i]];
    let best = 0;
    for (let j = 1; j < textV; j++) if (ls[j] > ls[best]) best = j;
    if (best !== ids[i]) greedy = false;
  }
  return { sum, greedy };
}

/** lm-eval's reading of one choice: sum token_logprobs[ctxlen:-1], greedy if each token is its top_logprobs' best. */
function lmEvalParse(choice: any, ctxlen: number): { sum: number; greedy: boolean } {
  const lp = choice.logprobs;
  const toks: number[] = lp.token_logprobs.slice(ctxlen, -1);
  const tops: Record<string, number>[] = lp.top_logprobs.slice(ctxlen, -1);
  const strs: string[] = lp.tokens.slice(ctxlen, -1);
  let greedy = true;
  tops.forEach((top, i) => {
    const best = Object.entries(top).reduce((a, b) => (b[1] > a[1] ? b : a));
    if (best[0] !== strs[i]) greedy = false;
  });
  return { sum: toks.reduce((a, b) => a + b, 0), greedy };
}

const loglikelihoodBody = (prompt: unknown) => ({ model: 'crate', prompt, temperature: 0, max_tokens: 1, logprobs: 1, seed: 1234, echo: true });

describe('the remote tokenizer routes', () => {
  it('/tokenizer_info names the end-of-text token, at the root and under /v1/', async () => {
    for (const p of ['/tokenizer_info', '/v1/tokenizer_info']) {
      const r = await call(base + p);
      expect(r.status, p).toBe(200);
      expect(r.json).toMatchObject({
        eos_token: '<|endoftext|>',
        eos_token_id: GPT2_EOT,
        bos_token: '<|endoftext|>',
        bos_token_id: GPT2_EOT,
        model_max_length: T,
      });
    }
    // a byte-level model has no end-of-text token: the newline stands in for it, and says so
    const b = await call(byteBase + '/tokenizer_info');
    expect(b.json).toMatchObject({ tokenizer: 'byte', eos_token: '\n', eos_token_id: 10, special_tokens: {} });
  });

  it('/tokenize reads "<|endoftext|>" as the special token; /detokenize inverts it', async () => {
    for (const p of ['/tokenize', '/v1/tokenize']) {
      const r = await call(base + p, { prompt: '<|endoftext|>Call me Ishmael.<|endoftext|>', add_special_tokens: false });
      expect(r.status, p).toBe(200);
      const body = engine.tokenizer.encode('Call me Ishmael.');
      expect(r.json.tokens).toEqual([GPT2_EOT, ...body, GPT2_EOT]);
      const d = await call(base + p.replace('tokenize', 'detokenize'), { tokens: r.json.tokens });
      expect(d.json.prompt).toBe('<|endoftext|>Call me Ishmael.<|endoftext|>');
    }
    // the byte model reads the same string as its 13 bytes
    const b = await call(byteBase + '/tokenize', { prompt: '<|endoftext|>' });
    expect(b.json.tokens).toEqual([...Buffer.from('<|endoftext|>')]);
  });

  it('bad requests are OpenAI-shaped 400s, and the server keeps serving', async () => {
    for (const [p, body, param] of [
      ['/tokenize', { prompt: 42 }, 'prompt'],
      ['/tokenize', { prompt: ['a'] }, 'prompt'],
      ['/tokenize', { prompt: 'a', add_special_tokens: 'yes' }, 'add_special_tokens'],
      ['/detokenize', { tokens: [1, 50257] }, 'tokens'],
      ['/detokenize', { tokens: [1.5] }, 'tokens'],
      ['/detokenize', { tokens: 'abc' }, 'tokens'],
    ] as const) {
      const r = await call(base + p, body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.json.error).toMatchObject({ type: 'invalid_request_error', param });
    }
    expect((await call(base + '/tokenizer_info')).status).toBe(200);
  });
});

describe('lm-eval loglikelihood requests', () => {
  const text = 'Call me Ishmael. Some years ago, never mind how long precisely, I thought I would sail about.';
  let ids: number[];
  beforeAll(() => {
    ids = engine.tokenizer.encode(text).slice(0, T - 1);
  });

  it('token-id prompts, alone and batched: prompt entries plus the one generated token; the sum and greedy flag equal the forward', async () => {
    const reqs = [
      { ctx: ids.slice(0, 5), cont: ids.slice(5, 9) },
      { ctx: ids.slice(0, 12), cont: ids.slice(12, 13) },
      { ctx: ids.slice(3, 20), cont: ids.slice(20, 28) },
    ];
    const alone = await Promise.all(reqs.map((q) => call(base + '/v1/completions', loglikelihoodBody([...q.ctx, ...q.cont]))));
    const batched = await call(base + '/v1/completions', loglikelihoodBody(reqs.map((q) => [...q.ctx, ...q.cont])));
    expect(batched.status).toBe(200);
    expect(batched.json.choices).toHaveLength(3);
    reqs.forEach((q, i) => {
      const want = recompute(engine, q.ctx, q.cont);
      for (const choice of [alone[i].json.choices[0], batched.json.choices.find((c: any) => c.index === i)]) {
        expect(choice.logprobs.token_logprobs).toHaveLength(q.ctx.length + q.cont.length + 1);
        const got = lmEvalParse(choice, q.ctx.length);
        expect(Math.abs(got.sum - want.sum)).toBeLessThan(1e-4 * Math.max(1, Math.abs(want.sum)));
        expect(got.greedy).toBe(want.greedy);
      }
    });
  });

  it('string prompts (tokenized_requests=False): the same numbers, and a leading "<|endoftext|>" is one token, not seven', async () => {
    const ctxText = '<|endoftext|>Call me Ishmael.',
      contText = ' Some years ago';
    const ctx = [GPT2_EOT, ...engine.tokenizer.encode('Call me Ishmael.')],
      cont = engine.tokenizer.encode(contText);
    const r = await call(base + '/v1/completions', loglikelihoodBody(ctxText + contText));
    expect(r.status).toBe(200);
    const choice = r.json.choices[0];
    expect(choice.logprobs.tokens[0]).toBe('<|endoftext|>');
    expect(choice.logprobs.token_logprobs).toHaveLength(ctx.length + cont.length + 1);
    const got = lmEvalParse(choice, ctx.length),
      want = recompute(engine, ctx, cont);
    expect(Math.abs(got.sum - want.sum)).toBeLessThan(1e-4 * Math.max(1, Math.abs(want.sum)));
  });

  it('rolling windows of max_length − 1 with one token of context (loglikelihood_rolling) sum to the whole text', async () => {
    // lm-eval scores a document as windows: the first predicts tokens 0.. from the end-of-text token,
    // each later one keeps one token of context before its max_length − 1 new tokens
    const doc = engine.tokenizer.encode(text + ' ' + text);
    const maxLen = T,
      step = maxLen - 1;
    const windows: { ctx: number[]; cont: number[] }[] = [];
    for (let s = 0; s < doc.length; s += step) {
      const cont = doc.slice(s, s + step);
      windows.push({ ctx: s === 0 ? [GPT2_EOT] : [doc[s - 1]], cont });
    }
    expect(windows.length).toBeGreaterThan(1);
    const r = await call(base + '/v1/completions', loglikelihoodBody(windows.map((w) => [...w.ctx, ...w.cont])));
    expect(r.status).toBe(200);
    let total = 0,
      want = 0;
    windows.forEach((w, i) => {
      total += lmEvalParse(
        r.json.choices.find((c: any) => c.index === i),
        w.ctx.length,
      ).sum;
      want += recompute(engine, w.ctx, w.cont).sum;
    });
    expect(Math.abs(total - want)).toBeLessThan(1e-4 * Math.abs(want));
  });
});
