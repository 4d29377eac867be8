// What keeps `crate-ts serve`'s event loop free while clients send many large bodies (the soak's
// flood): large bodies are parsed by a worker thread (src/serve/json-pool.ts) and come back the
// same as JSON.parse makes them (a completion's prompt of ids as an Int32Array), and a client that
// already has requests in flight gets 429 for a body past its share before the body is read.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as net from 'node:net';
import { LanguageModel } from '../src/model/lm.js';
import { makeConfig } from '../src/model/config.js';
import { selectBackend } from '../src/backend/select.js';
import { loadTokenizer } from '../src/data/tokenizer.js';
import { Engine } from '../src/serve/engine.js';
import { TokenBytes } from '../src/serve/tokens.js';
import { JsonPool } from '../src/serve/json-pool.js';
import { parseJson } from '../src/serve/http.js';
import { ApiError, DEFAULT_LIMITS, parseCompletion } from '../src/serve/validate.js';
import { plainIds } from '../src/serve/context.js';
import { startServer, type RunningServer, type ServeOptions } from '../src/serve/server.js';
import { postJson, request } from './serve-helpers/child.js';
import { Rng } from '../src/util/rng.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('JsonPool: large bodies parsed by a worker thread', () => {
  const pools: JsonPool[] = [];
  const pool = (threads: number, minBytes?: number) => {
    const p = new JsonPool(threads, minBytes);
    pools.push(p);
    return p;
  };
  afterAll(async () => {
    for (const p of pools) await p.close();
  });

  it('gives the value JSON.parse gives; a completion prompt of ids comes as Int32Arrays holding the same ids', async () => {
    const rng = new Rng(5);
    const ids = (n: number) => Array.from({ length: n }, () => Math.floor(rng.uniform() * 50304));
    const body = {
      model: 'crate',
      prompt: [ids(100), ids(3), ids(70).concat([1.5]), ids(64).concat([123456789]), ids(80).concat([2 ** 31]), ['x'], ids(65)],
      other: [ids(200)],
      max_tokens: 0,
    };
    // JSON.stringify writes -0 as 0: the text gets its -0 by hand
    const buf = Buffer.from(JSON.stringify(body).replace('123456789', '-0'));
    const p = pool(1, 1);
    const plain = (await p.parse(buf)) as any;
    expect(plain).toStrictEqual(JSON.parse(buf.toString()));
    const typed = (await p.parse(buf, true)) as any;
    expect(p.stats.offloaded).toBe(2);
    // integer prompts of 64 and more become Int32Arrays; short ones, non-integers, -0, values past int32 stay arrays
    expect(typed.prompt.map((x: unknown) => (x instanceof Int32Array ? 'i32' : Array.isArray(x) ? 'array' : typeof x))).toEqual([
      'i32',
      'array',
      'array',
      'array',
      'array',
      'array',
      'i32',
    ]);
    expect(Object.is(typed.prompt[3][64], -0)).toBe(true);
    expect(Array.isArray(typed.other[0])).toBe(true);
    expect({ ...typed, prompt: typed.prompt.map((x: any) => (x instanceof Int32Array ? plainIds(x) : x)) }).toStrictEqual(JSON.parse(buf.toString()));
    // a flat prompt of ids, validated as the plain array is
    const flat = Buffer.from(JSON.stringify({ model: 'crate', prompt: ids(300), max_tokens: 0 }));
    const v = (await p.parse(flat, true)) as any;
    expect(v.prompt).toBeInstanceOf(Int32Array);
    const a = parseCompletion(v, 'crate', 50304, DEFAULT_LIMITS),
      b = parseCompletion(JSON.parse(flat.toString()), 'crate', 50304, DEFAULT_LIMITS);
    expect(plainIds(a.prompts[0] as Int32Array)).toStrictEqual(b.prompts[0]);
    // an id outside the vocabulary is refused with the same message either way
    const out = { model: 'crate', prompt: [ids(100), ids(99).concat([50304])], max_tokens: 0 };
    const msg = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return (e as ApiError).body();
      }
      return null;
    };
    const typedOut = await p.parse(Buffer.from(JSON.stringify(out)), true);
    expect((typedOut as any).prompt[1]).toBeInstanceOf(Int32Array);
    expect(msg(() => parseCompletion(typedOut, 'crate', 50304, DEFAULT_LIMITS))).toStrictEqual(
      msg(() => parseCompletion(JSON.parse(JSON.stringify(out)), 'crate', 50304, DEFAULT_LIMITS)),
    );
    expect(msg(() => parseCompletion(typedOut, 'crate', 50304, DEFAULT_LIMITS))!.error.message).toBe(
      "'prompt[1]' token 99 = 50304 is outside the vocabulary [0, 50304)",
    );
  });

  it('invalid JSON gets the 400 the event loop gives; small bodies are parsed on the event loop', async () => {
    const p = pool(1, 16);
    const bad = Buffer.from('{"model": "crate", "prompt": [1, 2, 3,, 4]}');
    const inline = (() => {
      try {
        parseJson(bad);
      } catch (e) {
        return e as ApiError;
      }
    })()!;
    const e = (await p.parse(bad).catch((x: unknown) => x)) as ApiError;
    expect(e).toBeInstanceOf(ApiError);
    expect(e.status).toBe(400);
    expect(e.body()).toStrictEqual(inline.body());
    expect(p.stats.offloaded).toBe(1);
    expect(await p.parse(Buffer.from('[1]'))).toStrictEqual([1]);
    expect(p.stats.offloaded).toBe(1);
  });

  it('the event loop runs while a large body is parsed (on the event loop it cannot)', async () => {
    const big = Buffer.from(
      JSON.stringify({ model: 'crate', prompt: Array.from({ length: 64 }, (_, i) => Array.from({ length: 16_000 }, (_, j) => (i * j) % 50000)) }),
    );
    const ticksDuring = async (p: JsonPool) => {
      let ticks = 0;
      const t = setInterval(() => ticks++, 1);
      await sleep(5);
      const start = ticks;
      await p.parse(big, true);
      const n = ticks - start;
      clearInterval(t);
      return n;
    };
    // parsed by the event loop: no timer fires until it is done
    expect(await ticksDuring(pool(0))).toBe(0);
    expect(await ticksDuring(pool(1))).toBeGreaterThan(0);
  });

  it('a worker that dies leaves its bodies to the event loop, and a new worker takes the next', async () => {
    const p = pool(1, 1);
    const body = Buffer.from(JSON.stringify({ model: 'crate', prompt: Array.from({ length: 4000 }, (_, i) => i) }));
    await p.parse(body, true);
    const worker = (p as any).slots[0].worker;
    const pending = p.parse(body, true);
    await worker.terminate();
    const v = (await pending) as any;
    expect(v.prompt).toStrictEqual(Array.from({ length: 4000 }, (_, i) => i));
    expect(p.stats.fallbacks).toBe(1);
    expect(await p.parse(body, true)).toMatchObject({ model: 'crate' });
    expect((p as any).slots[0].worker).not.toBe(worker);
  });
});

describe('crate-ts serve: large bodies and per-client bytes', () => {
  let engine: Engine;
  beforeAll(async () => {
    const { backend } = await selectBackend('auto');
    const tok = await loadTokenizer('gpt2');
    const model = new LanguageModel(backend, makeConfig(undefined, { vocabSize: 50304, blockSize: 32, nLayer: 1, nHead: 2, nEmbd: 16 }), { seed: 7 });
    engine = new Engine(model, tok, await TokenBytes.forTokenizer(tok));
  });
  afterAll(() => engine?.model.free());

  async function withServer(opts: ServeOptions, fn: (srv: RunningServer, base: string) => Promise<void>): Promise<void> {
    const srv = await startServer(engine, { port: 0, ...opts });
    try {
      await fn(srv, `http://127.0.0.1:${srv.port}`);
    } finally {
      await srv.close();
    }
  }

  it('a large completion parsed by the worker answers as the same request parsed on the event loop', async () => {
    const prompt = Array.from({ length: 8 }, (_, i) => Array.from({ length: 40 }, (_, j) => (i * 977 + j * 131) % 50257));
    // padded past 64 KiB so the body goes to the worker; echo and generation read the ids
    const body = { model: 'crate', prompt, max_tokens: 3, echo: true, logprobs: 2, temperature: 0, user: 'x'.repeat(70_000) };
    const answers: unknown[] = [];
    for (const parseThreads of [0, 1])
      await withServer({ parseThreads }, async (srv, base) => {
        const r = await postJson(base, '/v1/completions', body);
        expect(r.status, r.text.slice(0, 300)).toBe(200);
        expect(srv.json.stats.offloaded).toBe(parseThreads);
        const j = JSON.parse(r.text);
        answers.push({ choices: j.choices, usage: j.usage });
      });
    expect(answers[1]).toStrictEqual(answers[0]);
  });

  it('a small echo request is answered between the steps of a large one, not after it', async () => {
    await withServer({}, async (_srv, base) => {
      const rng = new Rng(11);
      const big = Array.from({ length: 8 }, () => Array.from({ length: 1000 }, () => Math.floor(rng.uniform() * 50257)));
      const small = Array.from({ length: 40 }, () => Math.floor(rng.uniform() * 50257));
      const steps = () => engine.batchStats.echoSteps;
      const s0 = steps();
      let bigDone = -1;
      const bigReq = postJson(base, '/v1/completions', { model: 'crate', prompt: big, max_tokens: 0, echo: true, logprobs: 0 }).then((r) => {
        bigDone = steps();
        return r;
      });
      // once the large request's head products have begun
      while (steps() === s0) await sleep(5);
      const sent = steps();
      const r = await postJson(base, '/v1/completions', { model: 'crate', prompt: small, max_tokens: 0, echo: true, logprobs: 0 });
      const smallDone = steps();
      expect(r.status, r.text.slice(0, 200)).toBe(200);
      expect((await bigReq).status).toBe(200);
      // the large request needs 8 × 999 / 64 = 125 head products; the small one waits for about one
      // turn of the 9 echo jobs, not for all of them
      expect(bigDone - s0).toBeGreaterThanOrEqual(125);
      expect(smallDone - sent).toBeLessThan(30);
      expect(bigDone - smallDone).toBeGreaterThan(50);
      // and its answer is the one it gets alone
      const alone = await postJson(base, '/v1/completions', { model: 'crate', prompt: small, max_tokens: 0, echo: true, logprobs: 0 });
      expect(JSON.parse(alone.text).choices).toStrictEqual(JSON.parse(r.text).choices);
    });
  }, 300_000);

  it('a client with a request in flight gets 429 (retry-after) for a body past its share, before the body is sent; another client does not', async () => {
    await withServer({ maxClientBytes: 64 * 1024 }, async (srv, base) => {
      const body = JSON.stringify({ model: 'crate', prompt: 'hello', max_tokens: 1, user: 'y'.repeat(40_000) });
      // client 127.0.0.1 holds a request in flight: its headers and half its body sent
      const held = net.connect({ port: srv.port, host: '127.0.0.1', localAddress: '127.0.0.1' });
      held.on('error', () => {});
      await new Promise<void>((r) => held.once('connect', () => r()));
      held.write(`POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
      held.write(body.slice(0, 20_000));
      await sleep(300);
      // a second request from the same address declares a body that takes it past 64 KiB: only its headers are sent
      const answer = await new Promise<string>((resolve) => {
        const s = net.connect({ port: srv.port, host: '127.0.0.1', localAddress: '127.0.0.1' });
        let got = '';
        s.on('data', (d) => {
          got += String(d);
          // the whole error body: the answer does not wait for the unsent body
          if (got.endsWith('}}')) {
            resolve(got);
            s.destroy();
          }
        });
        s.on('close', () => resolve(got));
        s.on('error', () => resolve(got));
        s.write(`POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
        setTimeout(() => s.destroy(), 20_000);
      });
      expect(answer).toMatch(/^HTTP\/1\.1 429 /);
      expect(answer.toLowerCase()).toContain('\r\nretry-after: 1\r\n');
      const j = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4));
      expect(j).toStrictEqual({
        error: {
          message: `too many requests from this client: its requests in flight already hold ${body.length} bytes of request bodies (at most 65536 with more than one request); retry later`,
          type: 'requests',
          param: null,
          code: 'rate_limit_exceeded',
        },
      });
      // another address is served meanwhile, and so is a small request of the busy one
      const other = await request(base + '/v1/completions', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        localAddress: '127.0.0.2',
      });
      expect(other.status, other.text.slice(0, 200)).toBe(200);
      const small = await postJson(base, '/v1/completions', { model: 'crate', prompt: 'hi', max_tokens: 1 });
      expect(small.status, small.text.slice(0, 200)).toBe(200);
      // the held request completes, and its bytes are given back: the same body is then accepted
      held.write(body.slice(20_000));
      const first = await new Promise<string>((resolve) => {
        let got = '';
        held.on('data', (d) => {
          got += String(d);
          if (got.includes('"usage"')) resolve(got);
        });
      });
      expect(first).toMatch(/^HTTP\/1\.1 200 /);
      held.destroy();
      const again = await postJson(base, '/v1/completions', JSON.parse(body));
      expect(again.status, again.text.slice(0, 200)).toBe(200);
    });
  });
});
