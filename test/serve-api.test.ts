// crate-ts serve in-process: response shapes, the numbers behind them (echo log-probabilities
// against the model's own forward, sliding windows past the block size, greedy generation), the
// official openai client, and bad requests answered with OpenAI-shaped 4xx errors.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import OpenAI from 'openai';
import { LanguageModel } from '../src/model/lm.js';
import { makeConfig } from '../src/model/config.js';
import { selectBackend } from '../src/backend/select.js';
import { loadTokenizer } from '../src/data/tokenizer.js';
import { Engine, sampleId } from '../src/serve/engine.js';
import { Rng } from '../src/util/rng.js';
import { TokenBytes, TextStream, codePoints } from '../src/serve/tokens.js';
import { logSoftmax } from './helpers/logsoftmax.js';
import { startServer, type RunningServer } from '../src/serve/server.js';

let engine: Engine, srv: RunningServer, base: string;
const T = 32;

beforeAll(async () => {
  const { backend } = await selectBackend('auto');
  const tok = await loadTokenizer('gpt2');
  const model = new LanguageModel(backend, makeConfig(undefined, { vocabSize: 50304, blockSize: T, nLayer: 1, nHead: 2, nEmbd: 16 }), { seed: 7 });
  engine = new Engine(model, tok, await TokenBytes.forTokenizer(tok), { echoStride: 12 });
  srv = await startServer(engine, { port: 0, modelName: 'crate', maxQueue: 64 });
  base = `http://127.0.0.1:${srv.port}`;
});
afterAll(async () => {
  await srv?.close();
  engine?.model.free();
});

async function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any; text: string }> {
  const r = await fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* SSE or plain */
  }
  return { status: r.status, json, text };
}

describe('crate-ts serve: /v1/completions', () => {
  it('echo + max_tokens 0 + logprobs: vLLM shape, values equal the forward log-softmax, tokens concatenate to the text', async () => {
    const prompt = 'Call me Ishmael. It is a \u2019curly\u2019 quote and an emoji \u{1F600} here.';
    const r = await post('/v1/completions', { model: 'crate', prompt, max_tokens: 0, echo: true, logprobs: 5 });
    expect(r.status).toBe(200);
    const c = r.json.choices[0];
    expect(r.json.object).toBe('text_completion');
    expect(c.text).toBe(prompt);
    expect(c.finish_reason).toBe('length');
    const lp = c.logprobs;
    const ids = engine.encode(prompt);
    expect(ids.length).toBeLessThanOrEqual(T);
    expect(lp.tokens.length).toBe(ids.length);
    expect(lp.tokens.join('')).toBe(prompt);
    expect(lp.token_logprobs[0]).toBeNull();
    expect(lp.top_logprobs[0]).toBeNull();
    // text_offset counts code points (the emoji is one), as Python-side clients expect
    let off = 0;
    lp.tokens.forEach((t: string, i: number) => {
      expect(lp.text_offset[i]).toBe(off);
      off += codePoints(t);
    });
    expect(r.json.usage).toEqual({ prompt_tokens: ids.length, completion_tokens: 0, total_tokens: ids.length });
    const { logits } = engine.model.forward(ids, 1, ids.length);
    const V = engine.vocabSize;
    // The server applies the head to 8 rows at a time (the cpu addon's streaming GEMV), the forward
    // to all rows at once (the packed SGEMM): the same products summed in another order, so the
    // values agree to float32 rounding (about 1e-8 here), not bitwise.
    for (let i = 1; i < ids.length; i++) {
      const ls = logSoftmax(logits!, (i - 1) * V, V);
      expect(lp.token_logprobs[i]).toBeCloseTo(ls[ids[i]], 6);
      const dict = lp.top_logprobs[i] as Record<string, number>;
      // the 5 best (+ the actual token when it is not among them), and the best is the argmax
      const n = Object.keys(dict).length;
      expect(n === 5 || n === 6).toBe(true);
      let best = 0;
      for (let j = 1; j < 50257; j++) if (ls[j] > ls[best]) best = j;
      expect(Math.max(...Object.values(dict))).toBeCloseTo(ls[best], 6);
    }
  });

  it('prompts longer than the block size: every token scored once, from the sliding window the README describes', async () => {
    const ids = engine.encode(
      'It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, it was the season of Darkness, it was the spring of hope, it was the winter of despair.',
    );
    const N = ids.length,
      S = engine.echoStride;
    expect(N).toBeGreaterThan(2 * T);
    const r = await post('/v1/completions', { model: 'crate', prompt: ids, max_tokens: 0, echo: true, logprobs: 1 });
    expect(r.status).toBe(200);
    const lp = r.json.choices[0].logprobs;
    expect(lp.token_logprobs.length).toBe(N);
    // independent restatement: window starts 0, S, 2S, ... capped at N-T; token t is scored by the
    // first window that contains it, from that window's start
    const starts: number[] = [0];
    while (starts[starts.length - 1] + T < N) starts.push(Math.min(starts[starts.length - 1] + S, N - T));
    const V = engine.vocabSize;
    for (let t = 1; t < N; t++) {
      const a = starts.find((s) => t < s + T)!;
      expect(t - a).toBeGreaterThanOrEqual(t < T ? t : T - S);
      const win = ids.slice(a, a + T);
      const { logits } = engine.model.forward(win, 1, win.length);
      const ls = logSoftmax(logits!, (t - a - 1) * V, V);
      expect(lp.token_logprobs[t]).toBeCloseTo(ls[ids[t]], 5);
    }
  });

  it('greedy generation equals argmax decoding with full forwards, also past the block size', async () => {
    const prompt = engine.encode('The whale and the sea');
    const r = await post('/v1/completions', { model: 'crate', prompt, max_tokens: T + 6, temperature: 0, logprobs: 2 });
    expect(r.status).toBe(200);
    const c = r.json.choices[0];
    const ctx = [...prompt],
      gen: number[] = [];
    const V = engine.vocabSize;
    for (let i = 0; i < T + 6; i++) {
      const win = ctx.slice(-T);
      const { logits } = engine.model.forward(win, 1, win.length);
      let best = 0;
      const off = (win.length - 1) * V;
      for (let j = 1; j < 50257; j++) if (logits![off + j] > logits![off + best]) best = j;
      if (best === 50256) break;
      gen.push(best);
      ctx.push(best);
    }
    const s = new TextStream(engine.tokenBytes);
    for (const id of gen) s.push(id);
    s.flush();
    expect(c.text).toBe(s.text);
    expect(r.json.usage.completion_tokens).toBe(gen.length);
    expect(c.logprobs.tokens.length).toBe(gen.length);
    expect(c.logprobs.token_logprobs.every((x: number) => x <= 0)).toBe(true);
  });

  it('seeded sampling is reproducible; n, stop, top_k/top_p, and streaming give the same text as the plain response', async () => {
    const body = { model: 'crate', prompt: 'Once upon a time', max_tokens: 12, temperature: 0.9, top_k: 50, top_p: 0.95, seed: 11, n: 2 };
    const a = await post('/v1/completions', body),
      b = await post('/v1/completions', body);
    expect(a.status).toBe(200);
    expect(a.json.choices.map((c: any) => c.text)).toEqual(b.json.choices.map((c: any) => c.text));
    expect(a.json.choices.map((c: any) => c.index)).toEqual([0, 1]);
    const s = await post('/v1/completions', { ...body, stream: true, stream_options: { include_usage: true } });
    expect(s.status).toBe(200);
    const events = s.text.split('\n\n').filter((e) => e.startsWith('data: '));
    expect(events[events.length - 1]).toBe('data: [DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)));
    const texts = ['', ''];
    for (const ch of chunks) for (const c of ch.choices) texts[c.index] += c.text;
    expect(texts).toEqual(a.json.choices.map((c: any) => c.text));
    expect(chunks[chunks.length - 1].usage.completion_tokens).toBe(a.json.usage.completion_tokens);
    // a stop string cuts the text before it
    const full = a.json.choices[0].text as string;
    if (full.length > 4) {
      const stop = full.slice(2, 4);
      const cut = await post('/v1/completions', { ...body, n: 1, stop: [stop] });
      expect(cut.json.choices[0].text).toBe(full.slice(0, full.indexOf(stop)));
      expect(cut.json.choices[0].finish_reason).toBe('stop');
    }
  });

  it('a batch of prompts (strings or token arrays) gives one choice per prompt, in order', async () => {
    const r = await post('/v1/completions', {
      model: 'crate',
      prompt: [
        [464, 1110],
        [40, 716, 257],
      ],
      max_tokens: 0,
      echo: true,
    });
    expect(r.status).toBe(200);
    expect(r.json.choices.map((c: any) => c.text)).toEqual([engine.tokenizer.decode([464, 1110]), engine.tokenizer.decode([40, 716, 257])]);
  });
});

describe('sampleId', () => {
  it('over the whole vocabulary: the inverse-CDF draw of softmax(logits / temperature) in id order, ids < n only', () => {
    const rng = new Rng(3),
      V = 5000,
      n = 4990;
    const logits = Float64Array.from({ length: V }, () => 4 * rng.normal());
    for (const temperature of [0.5, 0.8, 1.7]) {
      for (let seed = 0; seed < 40; seed++) {
        // the textbook draw, written out
        let max = -Infinity;
        for (let j = 0; j < n; j++) max = Math.max(max, logits[j]);
        const w = Array.from({ length: n }, (_, j) => Math.exp((logits[j] - max) / temperature));
        let r = new Rng(seed).uniform() * w.reduce((a, b) => a + b, 0),
          want = n - 1;
        for (let j = 0; j < n; j++) {
          r -= w[j];
          if (r < 0) {
            want = j;
            break;
          }
        }
        expect(sampleId(logits, n, { temperature, topK: 0, topP: 1, rng: new Rng(seed) })).toBe(want);
      }
    }
    // greedy, top-k 1 and a tiny top-p all give the argmax
    let best = 0;
    for (let j = 1; j < n; j++) if (logits[j] > logits[best]) best = j;
    expect(sampleId(logits, n, { temperature: 0, topK: 0, topP: 1, rng: new Rng(1) })).toBe(best);
    expect(sampleId(logits, n, { temperature: 1, topK: 1, topP: 1, rng: new Rng(1) })).toBe(best);
    expect(sampleId(logits, n, { temperature: 1, topK: 0, topP: 1e-9, rng: new Rng(1) })).toBe(best);
  });
});

describe('crate-ts serve: chat, models, and the official openai client', () => {
  it('GET /v1/models lists the served model', async () => {
    const r = await fetch(base + '/v1/models');
    const j: any = await r.json();
    expect(j.object).toBe('list');
    expect(j.data[0].id).toBe('crate');
  });

  it('the openai SDK: completions with echo+logprobs, chat, and streaming chat', async () => {
    const client = new OpenAI({ baseURL: base + '/v1', apiKey: 'unused', maxRetries: 0 });
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['crate']);
    const c = await client.completions.create({ model: 'crate', prompt: 'Hello world, hello', max_tokens: 0, echo: true, logprobs: 3 });
    expect(c.choices[0].text).toBe('Hello world, hello');
    expect(c.choices[0].logprobs!.tokens!.join('')).toBe('Hello world, hello');
    expect(c.choices[0].logprobs!.token_logprobs![0]).toBeNull();
    const chat = await client.chat.completions.create({
      model: 'crate',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Say hi' },
      ],
      max_tokens: 8,
      temperature: 0,
      logprobs: true,
      top_logprobs: 2,
    });
    expect(chat.choices[0].message.role).toBe('assistant');
    expect(typeof chat.choices[0].message.content).toBe('string');
    expect(chat.choices[0].logprobs!.content!.length).toBe(chat.usage!.completion_tokens);
    const stream = await client.chat.completions.create({
      model: 'crate',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Say hi' },
      ],
      max_tokens: 8,
      temperature: 0,
      stream: true,
    });
    let text = '';
    for await (const ch of stream) text += ch.choices[0]?.delta?.content ?? '';
    expect(text).toBe(chat.choices[0].message.content);
    const cs = await client.completions.create({ model: 'crate', prompt: 'abc', max_tokens: 5, temperature: 0, stream: true });
    let t2 = '';
    for await (const ch of cs) t2 += ch.choices[0]?.text ?? '';
    const plain = await client.completions.create({ model: 'crate', prompt: 'abc', max_tokens: 5, temperature: 0 });
    expect(t2).toBe(plain.choices[0].text);
  });
});

describe('crate-ts serve: bad requests', () => {
  const good = { model: 'crate', prompt: 'hi', max_tokens: 1 };
  const cases: [string, string, unknown, number][] = [
    ['invalid JSON', '/v1/completions', '{"model": "crate", "prompt": ', 400],
    ['empty body', '/v1/completions', '', 400],
    ['body is an array', '/v1/completions', [1, 2], 400],
    ['body is a string', '/v1/completions', '"hello"', 400],
    ['missing model', '/v1/completions', { prompt: 'hi' }, 400],
    ['unknown model', '/v1/completions', { model: 'gpt-4', prompt: 'hi' }, 404],
    ['model not a string', '/v1/completions', { model: 5, prompt: 'hi' }, 400],
    ['missing prompt', '/v1/completions', { model: 'crate' }, 400],
    ['prompt is a number', '/v1/completions', { model: 'crate', prompt: 5 }, 400],
    ['prompt is an object', '/v1/completions', { model: 'crate', prompt: { a: 1 } }, 400],
    ['prompt empty string', '/v1/completions', { model: 'crate', prompt: '' }, 400],
    ['prompt empty array', '/v1/completions', { model: 'crate', prompt: [] }, 400],
    ['prompt mixed array', '/v1/completions', { model: 'crate', prompt: ['a', 1] }, 400],
    ['token id out of range', '/v1/completions', { model: 'crate', prompt: [1, 60000] }, 400],
    ['negative token id', '/v1/completions', { model: 'crate', prompt: [-1] }, 400],
    ['fractional token id', '/v1/completions', { model: 'crate', prompt: [1.5] }, 400],
    ['empty token sub-array', '/v1/completions', { model: 'crate', prompt: [[1], []] }, 400],
    ['prompt over --max-prompt-tokens', '/v1/completions', { model: 'crate', prompt: 'word '.repeat(300) }, 400],
    ['max_tokens negative', '/v1/completions', { ...good, max_tokens: -1 }, 400],
    ['max_tokens string', '/v1/completions', { ...good, max_tokens: '5' }, 400],
    ['max_tokens fractional', '/v1/completions', { ...good, max_tokens: 2.5 }, 400],
    ['max_tokens over the limit', '/v1/completions', { ...good, max_tokens: 1_000_000 }, 400],
    ['temperature negative', '/v1/completions', { ...good, temperature: -0.5 }, 400],
    ['temperature too high', '/v1/completions', { ...good, temperature: 7 }, 400],
    ['temperature string', '/v1/completions', { ...good, temperature: 'hot' }, 400],
    ['top_p zero', '/v1/completions', { ...good, top_p: 0 }, 400],
    ['top_p above one', '/v1/completions', { ...good, top_p: 1.5 }, 400],
    ['top_k below -1', '/v1/completions', { ...good, top_k: -3 }, 400],
    ['logprobs above 20', '/v1/completions', { ...good, logprobs: 21 }, 400],
    ['logprobs boolean', '/v1/completions', { ...good, logprobs: true }, 400],
    ['n zero', '/v1/completions', { ...good, n: 0 }, 400],
    ['n too large', '/v1/completions', { ...good, n: 1000 }, 400],
    ['seed fractional', '/v1/completions', { ...good, seed: 0.5 }, 400],
    ['stop a number', '/v1/completions', { ...good, stop: 3 }, 400],
    ['stop too many', '/v1/completions', { ...good, stop: ['a', 'b', 'c', 'd', 'e'] }, 400],
    ['stop empty string', '/v1/completions', { ...good, stop: [''] }, 400],
    ['stream not boolean', '/v1/completions', { ...good, stream: 'yes' }, 400],
    ['echo not boolean', '/v1/completions', { ...good, echo: 1 }, 400],
    ['logit_bias unsupported', '/v1/completions', { ...good, logit_bias: { '1': 5 } }, 400],
    ['presence_penalty unsupported', '/v1/completions', { ...good, presence_penalty: 1 }, 400],
    ['stream_options not an object', '/v1/completions', { ...good, stream_options: 3 }, 400],
    ['too many prompts', '/v1/completions', { model: 'crate', prompt: Array(100).fill('a') }, 400],
    ['chat: missing messages', '/v1/chat/completions', { model: 'crate' }, 400],
    ['chat: messages not an array', '/v1/chat/completions', { model: 'crate', messages: 'hi' }, 400],
    ['chat: empty messages', '/v1/chat/completions', { model: 'crate', messages: [] }, 400],
    ['chat: message not an object', '/v1/chat/completions', { model: 'crate', messages: ['hi'] }, 400],
    ['chat: bad role', '/v1/chat/completions', { model: 'crate', messages: [{ role: 'wizard', content: 'x' }] }, 400],
    ['chat: content a number', '/v1/chat/completions', { model: 'crate', messages: [{ role: 'user', content: 5 }] }, 400],
    [
      'chat: image content part',
      '/v1/chat/completions',
      { model: 'crate', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] },
      400,
    ],
    ['chat: logprobs not boolean', '/v1/chat/completions', { model: 'crate', messages: [{ role: 'user', content: 'x' }], logprobs: 3 }, 400],
    ['chat: top_logprobs without logprobs', '/v1/chat/completions', { model: 'crate', messages: [{ role: 'user', content: 'x' }], top_logprobs: 3 }, 400],
    [
      'chat: top_logprobs above 20',
      '/v1/chat/completions',
      { model: 'crate', messages: [{ role: 'user', content: 'x' }], logprobs: true, top_logprobs: 50 },
      400,
    ],
    ['chat: tools unsupported', '/v1/chat/completions', { model: 'crate', messages: [{ role: 'user', content: 'x' }], tools: [] }, 400],
    ['unknown path', '/v1/embeddings', { model: 'crate', input: 'x' }, 404],
  ];

  it(`${cases.length} kinds of bad request get a 4xx with the OpenAI error body, and the server keeps serving`, async () => {
    expect(cases.length).toBeGreaterThanOrEqual(30);
    const small = await startServer(engine, { port: 0, limits: { maxPromptTokens: 200, maxTokens: 1000, maxN: 16, maxPrompts: 64, maxLogprobs: 20 } });
    try {
      const sb = `http://127.0.0.1:${small.port}`;
      for (const [name, path, body, status] of cases) {
        const r = await fetch(sb + path, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: typeof body === 'string' ? body : JSON.stringify(body),
        });
        const j: any = await r.json();
        expect(r.status, name).toBe(status);
        expect(typeof j.error.message, name).toBe('string');
        expect(j.error.message.length, name).toBeGreaterThan(5);
        expect(j.error.type, name).toBe('invalid_request_error');
        expect('param' in j.error && 'code' in j.error, name).toBe(true);
      }
      // wrong method, and the server still answers a good request
      const g = await fetch(sb + '/v1/completions');
      expect(g.status).toBe(405);
      const ok = await fetch(sb + '/v1/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(good) });
      expect(ok.status).toBe(200);
    } finally {
      await small.close();
    }
  });

  it('a port in use and a bad echo stride are one-line usage errors', async () => {
    await expect(startServer(engine, { port: srv.port })).rejects.toThrow(/^cannot listen on 127\.0\.0\.1:\d+: the port is in use \(EADDRINUSE\)$/);
    // the library names its option (the command line names the flag: test/serve-cli.test.ts)
    const bad = () => new Engine(engine.model, engine.tokenizer, engine.tokenBytes, { echoStride: 0 });
    expect(bad).toThrow(/^echoStride must be an integer in \[1, 32\] \(the block size\), got 0$/);
    expect(bad).toThrow(expect.objectContaining({ option: 'echoStride' }));
  });

  it('API key, body size limit and a full queue', async () => {
    const locked = await startServer(engine, { port: 0, apiKey: 'sekret', maxBodyBytes: 2048, maxQueue: 0 });
    try {
      const lb = `http://127.0.0.1:${locked.port}`;
      const send = (body: string, key?: string) =>
        fetch(lb + '/v1/completions', {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
          body,
        });
      const none = await send(JSON.stringify({ model: 'crate', prompt: 'x', max_tokens: 0 }));
      expect(none.status).toBe(401);
      expect(((await none.json()) as any).error.code).toBe('invalid_api_key');
      expect((await send(JSON.stringify({ model: 'crate', prompt: 'x', max_tokens: 0 }), 'wrong')).status).toBe(401);
      expect((await send(JSON.stringify({ model: 'crate', prompt: 'x', max_tokens: 0 }), 'sekret')).status).toBe(200);
      const big = await send(JSON.stringify({ model: 'crate', prompt: 'x'.repeat(5000) }), 'sekret');
      expect(big.status).toBe(413);
      expect(((await big.json()) as any).error.type).toBe('invalid_request_error');
      // maxQueue 0: while one request computes, a second is turned away with 503 and retry-after
      const body = JSON.stringify({ model: 'crate', prompt: 'x', max_tokens: 40, temperature: 0 });
      const [a, b] = await Promise.all([send(body, 'sekret'), new Promise((r) => setTimeout(r, 5)).then(() => send(body, 'sekret'))]);
      expect([a.status, b.status].sort()).toEqual([200, 503]);
      expect((await send(body, 'sekret')).status).toBe(200);
    } finally {
      await locked.close();
    }
  });
});
