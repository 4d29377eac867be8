// Batched serving: requests sent at the same time share the model's steps (src/serve/batch.ts),
// and their answers are exactly those they get alone — echo log-probabilities, sampled tokens
// (each request draws from its own seed), greedy tokens, top_logprobs — on the native cpu backend
// (the few-row GEMV head of a GPT-2-vocabulary model, the packed SGEMM of a byte model) and on
// the reference backend. A batch past the memory budget is refused with 503 and retry-after before
// anything is allocated; the queue takes clients in turn.
import { describe, it, expect, afterAll } from 'vitest';
import { LanguageModel } from '../src/model/lm.js';
import { makeConfig } from '../src/model/config.js';
import { selectBackend } from '../src/backend/select.js';
import { loadTokenizer } from '../src/data/tokenizer.js';
import { Engine } from '../src/serve/engine.js';
import { TokenBytes } from '../src/serve/tokens.js';
import { Queue } from '../src/serve/context.js';
import { Rng } from '../src/util/rng.js';
import { startServer, type RunningServer } from '../src/serve/server.js';

const T = 32;
const open: { srv: RunningServer; engine: Engine }[] = [];
afterAll(async () => {
  for (const o of open) {
    await o.srv.close();
    o.engine.model.free();
  }
});

async function serve(backendName: 'cpu' | 'reference', tokenizer: 'gpt2' | 'byte', opts: Parameters<typeof startServer>[1] = {}) {
  const { backend } = await selectBackend(backendName);
  const tok = await loadTokenizer(tokenizer);
  const V = tokenizer === 'gpt2' ? 50304 : 256;
  const model = new LanguageModel(backend, makeConfig(undefined, { vocabSize: V, blockSize: T, nLayer: 1, nHead: 2, nEmbd: 16 }), { seed: 5 });
  const engine = new Engine(model, tok, await TokenBytes.forTokenizer(tok), { echoStride: 12, batchWaitMs: 20 });
  const srv = await startServer(engine, { port: 0, ...opts });
  open.push({ srv, engine });
  return { engine, srv, base: `http://127.0.0.1:${srv.port}` };
}

async function post(base: string, path: string, body: unknown): Promise<{ status: number; json: any; headers: Headers }> {
  const r = await fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, json: await r.json(), headers: r.headers };
}

/** The parts of an answer that must not depend on batching (not its id or time). */
function answer(j: any): unknown {
  return { choices: j.choices, usage: j.usage };
}

/** A mix of requests: echo scoring of prompts of several lengths (one past the block size), sampled and greedy generation, chat. */
function requests(ids: (n: number, s: number) => number[]): [string, unknown][] {
  return [
    // prompts of one length: batched, they share one decoder
    ['/v1/completions', { model: 'crate', prompt: ids(10, 12), max_tokens: 20, temperature: 0.9, seed: 16, logprobs: 1 }],
    ['/v1/completions', { model: 'crate', prompt: ids(10, 13), max_tokens: 14, temperature: 1.1, seed: 17 }],
    ['/v1/completions', { model: 'crate', prompt: ids(10, 14), max_tokens: 26, temperature: 0, stop: ['e'] }],
    ['/v1/completions', { model: 'crate', prompt: ids(20, 1), max_tokens: 0, echo: true, logprobs: 5 }],
    ['/v1/completions', { model: 'crate', prompt: ids(7, 2), max_tokens: 1, echo: true, logprobs: 1, temperature: 0 }],
    ['/v1/completions', { model: 'crate', prompt: ids(50, 3), max_tokens: 0, echo: true, logprobs: 3 }],
    ['/v1/completions', { model: 'crate', prompt: [ids(5, 4), ids(9, 5), ids(3, 6)], max_tokens: 2, echo: true, logprobs: 2, temperature: 0 }],
    ['/v1/completions', { model: 'crate', prompt: ids(4, 7), max_tokens: 24, temperature: 0.9, seed: 11, logprobs: 3 }],
    ['/v1/completions', { model: 'crate', prompt: ids(12, 8), max_tokens: 30, temperature: 1.2, top_k: 40, seed: 12 }],
    ['/v1/completions', { model: 'crate', prompt: ids(3, 9), max_tokens: 20, temperature: 0.8, top_p: 0.9, seed: 13, n: 2 }],
    ['/v1/completions', { model: 'crate', prompt: ids(28, 10), max_tokens: 16, temperature: 1, seed: 14 }],
    [
      '/v1/chat/completions',
      { model: 'crate', messages: [{ role: 'user', content: 'hello there' }], max_tokens: 12, temperature: 0.7, seed: 15, logprobs: true, top_logprobs: 2 },
    ],
    ['/v1/completions', { model: 'crate', prompt: ids(6, 11), max_tokens: 25, temperature: 0, logprobs: 2 }],
  ];
}

function idsFor(V: number) {
  return (n: number, s: number) => Array.from({ length: n }, (_, i) => (s * 7919 + i * 104729) % V);
}

describe('crate-ts serve: batched requests get the answers they get alone', () => {
  for (const [backendName, tokenizer] of [
    ['cpu', 'gpt2'],
    ['cpu', 'byte'],
    ['reference', 'gpt2'],
  ] as const) {
    it(`${backendName} backend, ${tokenizer} vocabulary: the same requests one at a time and all at once give identical JSON`, async () => {
      const { engine, base } = await serve(backendName, tokenizer);
      const reqs = requests(idsFor(tokenizer === 'gpt2' ? 50257 : 256));
      const alone: unknown[] = [];
      for (const [path, body] of reqs) {
        const r = await post(base, path, body);
        expect(r.status, JSON.stringify(r.json)).toBe(200);
        alone.push(answer(r.json));
      }
      // alone, no two rows draw in one step (the greedy request's three prompts, of lengths 5, 9 and 3,
      // decode together but finish their prompts, and so draw, at different steps)
      expect(engine.batchStats.genMaxRows).toBe(1);
      const before = { ...engine.batchStats };
      const together = await Promise.all(reqs.map(([path, body]) => post(base, path, body)));
      for (const r of together) expect(r.status, JSON.stringify(r.json)).toBe(200);
      // the requests were batched: decoding steps advanced several of them, echo products mixed them
      expect(engine.batchStats.genMaxRows).toBeGreaterThanOrEqual(4);
      expect(engine.batchStats.echoMaxRequests).toBeGreaterThanOrEqual(3);
      expect(engine.batchStats.genRows - before.genRows).toBeGreaterThan(engine.batchStats.genSteps - before.genSteps);
      together.forEach((r, i) => expect(answer(r.json), `request ${i}`).toEqual(alone[i]));
    }, 240_000);
  }
});

describe('crate-ts serve: sequences decode in one decoder, each row at its own position', () => {
  for (const backendName of ['cpu', 'reference'] as const)
    it(`${backendName} backend: sequences started at once and at different times decode in one decoder and draw what they draw alone`, async () => {
      const { engine } = await serve(backendName, 'gpt2');
      const ids = idsFor(50257);
      const opts = (i: number) => ({
        maxTokens: 12 + 3 * i,
        temperature: i === 2 ? 0 : 0.7 + 0.2 * i,
        topP: i === 1 ? 0.9 : 1,
        topK: i === 3 ? 30 : 0,
        rng: new Rng(100 + i),
        stop: i === 0 ? ['e'] : [],
        logprobs: 3,
      });
      const alone: Awaited<ReturnType<Engine['generate']>>[] = [];
      for (let i = 0; i < 5; i++) alone.push(await engine.generate(ids(9, 30 + i), opts(i)));
      expect(engine.batchStats.poolMax).toBe(1);
      const together = await Promise.all([...Array.from({ length: 5 }, (_, i) => engine.generate(ids(9, 30 + i), opts(i)))]);
      expect(engine.batchStats.poolMax).toBe(5);
      together.forEach((r, i) => expect(r, `sequence ${i}`).toEqual(alone[i]));
      // prompts of different lengths, the later ones arriving while the first decode: one decoder,
      // rows at different positions (and prompts still being fed beside rows drawing)
      const lens = [9, 3, 14, 6, 11];
      const alone2: Awaited<ReturnType<Engine['generate']>>[] = [];
      for (let i = 0; i < 5; i++) alone2.push(await engine.generate(ids(lens[i], 50 + i), opts(i)));
      const steps0 = engine.batchStats.genSteps;
      const staggered = lens.map(
        (len, i) =>
          new Promise<Awaited<ReturnType<Engine['generate']>>>((resolve, reject) =>
            setTimeout(() => engine.generate(ids(len, 50 + i), opts(i)).then(resolve, reject), 15 * i),
          ),
      );
      const got2 = await Promise.all(staggered);
      got2.forEach((r, i) => expect(r, `staggered sequence ${i}`).toEqual(alone2[i]));
      // they shared steps: fewer decoder steps than tokens fed
      const fed = lens.reduce((a, l, i) => a + l + alone2[i].tokens.length, 0);
      expect(engine.batchStats.genSteps - steps0).toBeLessThan(fed / 2);
      // and a sequence past the block size (a forward per token) beside one reaching the block size
      const long = { ...opts(1), maxTokens: 30, rng: new Rng(7) };
      const a = await engine.generate(ids(T + 3, 40), long);
      const b = await engine.generate(ids(20, 41), { ...long, rng: new Rng(8) });
      const [a2, b2] = await Promise.all([
        engine.generate(ids(T + 3, 40), { ...long, rng: new Rng(7) }),
        engine.generate(ids(20, 41), { ...long, rng: new Rng(8) }),
      ]);
      expect(a2).toEqual(a);
      expect(b2).toEqual(b);
    }, 240_000);
});

describe('crate-ts serve: the pool of decoder rows', () => {
  it('a new sequence waits, without spinning, for a row held by sequences waiting for their clients, then draws what it draws alone', async () => {
    const { backend } = await selectBackend('cpu');
    const tok = await loadTokenizer('gpt2');
    const model = new LanguageModel(backend, makeConfig(undefined, { vocabSize: 50304, blockSize: T, nLayer: 1, nHead: 2, nEmbd: 16 }), { seed: 5 });
    const engine = new Engine(model, tok, await TokenBytes.forTokenizer(tok), { maxBatch: 2, batchWaitMs: 0 });
    try {
      const ids = idsFor(50257);
      const opts = (seed: number) => ({ maxTokens: 6, temperature: 0.8, topP: 1, topK: 0, rng: new Rng(seed), stop: [], logprobs: null });
      const alone = await engine.generate(ids(5, 70), opts(3));
      // two sequences whose clients stall after their first token, and then go away, hold both rows
      let open!: () => void;
      const gate = new Promise<void>((r) => (open = r));
      const slow = [1, 2].map((i) => engine.generate(ids(4, 80 + i), opts(i), () => gate.then(() => false)));
      const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
      await sleep(100);
      const third = engine.generate(ids(5, 70), opts(3));
      await sleep(100);
      const loops = engine.batchStats.loops;
      await sleep(200);
      expect(engine.batchStats.loops, 'the scheduler stopped while no row was free').toBe(loops);
      open();
      expect(await third).toEqual(alone);
      for (const r of await Promise.all(slow)) expect(r.tokens).toHaveLength(1);
    } finally {
      model.free();
    }
  }, 60_000);
});

describe('crate-ts serve: echo rows of requests asking for different numbers of alternatives', () => {
  it('share head products, and each position lists exactly its own k, as alone', async () => {
    const { engine } = await serve('cpu', 'gpt2');
    const ids = idsFor(50257);
    const ks = [0, 1, 3, 5, 2];
    const alone: Awaited<ReturnType<Engine['promptLogprobs']>>[] = [];
    for (let i = 0; i < ks.length; i++) alone.push(await engine.promptLogprobs(ids(6 + 5 * i, 60 + i), ks[i]));
    const before = engine.batchStats.echoMaxRequests;
    const together = await Promise.all(ks.map((k, i) => engine.promptLogprobs(ids(6 + 5 * i, 60 + i), k)));
    expect(engine.batchStats.echoMaxRequests).toBeGreaterThan(Math.max(1, before));
    together.forEach((r, i) => {
      expect(r, `request ${i}`).toEqual(alone[i]);
      for (const top of r.top.slice(1)) expect(top).toHaveLength(ks[i]);
    });
  }, 120_000);
});

describe('crate-ts serve: batch memory and the order of waiting requests', () => {
  it('a request whose batch would exceed the memory budget gets 503 and retry-after, before anything is allocated', async () => {
    const probe = await serve('reference', 'gpt2');
    const bytes = (w: { shared: number; own: number }) => w.shared + w.own;
    const small = bytes(probe.engine.workBytes([8], false, 4, null)),
      big = bytes(probe.engine.workBytes([T], true, 0, 5));
    expect(big).toBeGreaterThan(2 * small);
    const budget = Math.floor((small + big) / 2);
    const { engine, base } = await serve('reference', 'gpt2', { maxBatchBytes: budget });
    const steps = engine.batchStats.echoSteps;
    const r = await post(base, '/v1/completions', { model: 'crate', prompt: Array(T).fill(11), max_tokens: 0, echo: true, logprobs: 5 });
    expect(r.status).toBe(503);
    expect(r.headers.get('retry-after')).toBe('1');
    expect(r.json.error.code).toBe('overloaded');
    expect(r.json.error.message).toMatch(/would need about [\d.]+ MiB of model memory, more than this server allows a batch/);
    expect(engine.batchStats.echoSteps).toBe(steps); // nothing was computed for it
    // a request within the budget is served, and the budget is given back after it
    for (let i = 0; i < 2; i++) expect((await post(base, '/v1/completions', { model: 'crate', prompt: Array(8).fill(11), max_tokens: 4 })).status).toBe(200);
  }, 120_000);

  it('waiting requests are taken round-robin over clients: one client flooding does not starve another', async () => {
    const q = new Queue(1, 100);
    const order: string[] = [];
    let release!: () => void;
    const first = q.run('a', () => new Promise<void>((r) => (release = r)).then(() => void order.push('a0')));
    const done: Promise<void>[] = [first];
    for (let i = 1; i <= 20; i++) done.push(q.run('a', async () => void order.push(`a${i}`)));
    done.push(q.run('b', async () => void order.push('b0')));
    expect(q.depth).toBe(22);
    release();
    await Promise.all(done);
    expect(order.length).toBe(22);
    // a0 was computing when b arrived; b is served right after a's next turn at the latest
    expect(order.indexOf('b0')).toBeLessThanOrEqual(2);
    // a client's own requests keep their order
    expect(order.filter((x) => x.startsWith('a'))).toEqual(Array.from({ length: 21 }, (_, i) => `a${i}`));
  });

  it('the queue admits 1 + maxWaiting requests and refuses the next with 503', async () => {
    const q = new Queue(2, 1);
    let release!: () => void;
    const hold = new Promise<void>((r) => (release = r));
    const a = q.run('x', () => hold),
      b = q.run('y', () => hold);
    await expect(q.run('z', async () => 0)).rejects.toMatchObject({ status: 503 });
    release();
    await Promise.all([a, b]);
    expect(await q.run('z', async () => 7)).toBe(7);
  });
});
