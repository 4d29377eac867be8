// crate-ts serve in-process against the attacks that need no separate process: the loopback
// guards (Host, Origin, Sec-Fetch-Site, content type), the headers every answer carries, the work
// bound of one request, the queue's memory budget, clients that stop reading or go away, the
// connection limits, and unauthenticated uploads. Each refusal keeps the OpenAI error shape.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as net from 'node:net';
import { LanguageModel } from '../src/model/lm.js';
import { makeConfig } from '../src/model/config.js';
import { selectBackend } from '../src/backend/select.js';
import { loadTokenizer } from '../src/data/tokenizer.js';
import { Engine } from '../src/serve/engine.js';
import { TokenBytes } from '../src/serve/tokens.js';
import { startServer, type RunningServer, type ServeOptions } from '../src/serve/server.js';
import { request, postJson } from './serve-helpers/child.js';

let engine: Engine;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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

function expectError(r: { status: number; text: string }, status: number, code: string): any {
  expect(r.status, r.text.slice(0, 300)).toBe(status);
  const j = JSON.parse(r.text);
  expect(Object.keys(j)).toEqual(['error']);
  expect(Object.keys(j.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(j.error.type).toBe(status >= 500 ? 'server_error' : 'invalid_request_error');
  expect(j.error.code).toBe(code);
  expect(j.error.message.length).toBeGreaterThan(10);
  return j.error;
}

const good = { model: 'crate', prompt: 'Hello', max_tokens: 2, temperature: 0 };

describe('crate-ts serve: a web page in a browser on this machine cannot use it', () => {
  it('bound to the loopback: a foreign Host (DNS rebinding) is refused; 127.0.0.1 and localhost are answered', async () => {
    await withServer({}, async (_s, base) => {
      const port = new URL(base).port;
      expectError(await postJson(base, '/v1/completions', good, { headers: { host: `evil.example:${port}` } }), 403, 'forbidden_host');
      expectError(await request(base + '/v1/models', { headers: { host: 'evil.example' } }), 403, 'forbidden_host');
      expectError(await request(base + '/health', { headers: { host: `127.0.0.1:${Number(port) + 1}` } }), 403, 'forbidden_host');
      expect((await postJson(base, '/v1/completions', good, { headers: { host: `localhost:${port}` } })).status).toBe(200);
      expect((await postJson(base, '/v1/completions', good, { headers: { host: `127.0.0.1:${port}` } })).status).toBe(200);
    });
  });

  it('a foreign Origin, Origin null, and Sec-Fetch-Site cross-site/same-site are refused; the own origin is answered', async () => {
    await withServer({}, async (_s, base) => {
      expectError(await postJson(base, '/v1/completions', good, { headers: { origin: 'http://evil.example' } }), 403, 'forbidden_origin');
      expectError(await postJson(base, '/v1/completions', good, { headers: { origin: 'null' } }), 403, 'forbidden_origin');
      expectError(await postJson(base, '/v1/completions', good, { headers: { origin: 'http://localhost:1' } }), 403, 'forbidden_origin');
      expectError(await request(base + '/v1/models', { headers: { 'sec-fetch-site': 'cross-site' } }), 403, 'forbidden_origin');
      expectError(await postJson(base, '/v1/completions', good, { headers: { 'sec-fetch-site': 'same-site' } }), 403, 'forbidden_origin');
      expect((await postJson(base, '/v1/completions', good, { headers: { origin: base } })).status).toBe(200);
      expect((await postJson(base, '/v1/completions', good, { headers: { 'sec-fetch-site': 'none' } })).status).toBe(200);
    });
  });

  it('a POST body must be sent as application/json (a no-cors text/plain form post is refused before it runs)', async () => {
    await withServer({}, async (srv, base) => {
      const before = srv.stats.requests;
      const plain = await request(base + '/v1/completions', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: JSON.stringify(good) });
      expectError(plain, 415, 'unsupported_media_type');
      expectError(await request(base + '/v1/completions', { method: 'POST', body: JSON.stringify(good) }), 415, 'unsupported_media_type');
      const form = await request(base + '/v1/chat/completions', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: JSON.stringify({ model: 'crate', messages: [{ role: 'user', content: 'x' }] }),
      });
      expectError(form, 415, 'unsupported_media_type');
      expect(srv.stats.requests - before).toBe(3);
      expect((await postJson(base, '/v1/completions', good, { headers: { 'content-type': 'application/json; charset=utf-8' } })).status).toBe(200);
    });
  });

  it('every answer carries X-Content-Type-Options: nosniff and Cross-Origin-Resource-Policy: same-origin', async () => {
    await withServer({}, async (_s, base) => {
      const answers = [
        await request(base + '/health'),
        await request(base + '/v1/models'),
        await postJson(base, '/v1/completions', good),
        await postJson(base, '/v1/completions', { ...good, stream: true }),
        await postJson(base, '/v1/completions', { ...good, max_tokens: -1 }),
        await request(base + '/nope'),
        await request(base + '/v1/models', { headers: { host: 'evil.example' } }),
      ];
      for (const a of answers) {
        expect(a.headers['x-content-type-options']).toBe('nosniff');
        expect(a.headers['cross-origin-resource-policy']).toBe('same-origin');
      }
    });
  });
});

describe('crate-ts serve: the work of one request is bounded', () => {
  it('echoed positions × logprobs and tokens × n over the bounds are refused before any work; requests within them are served', async () => {
    await withServer({ limits: { maxLogprobEntries: 1000, maxRequestTokens: 500 } }, async (_s, base) => {
      const ids = Array.from({ length: 100 }, (_, i) => 100 + i);
      // 100 echoed positions × (9 + 1) = 1000 entries: allowed; one more alternative is not
      const ok = await postJson(base, '/v1/completions', { model: 'crate', prompt: ids, max_tokens: 0, echo: true, logprobs: 9 });
      expect(ok.status).toBe(200);
      expect(JSON.parse(ok.text).choices[0].logprobs.tokens.length).toBe(100);
      const e1 = expectError(
        await postJson(base, '/v1/completions', { model: 'crate', prompt: ids, max_tokens: 0, echo: true, logprobs: 10 }),
        400,
        'request_too_large',
      );
      expect(e1.param).toBe('logprobs');
      expect(e1.message).toMatch(/1100 log-probabilities .*--max-request-logprobs 1000/);
      // generated positions count for every choice
      expectError(await postJson(base, '/v1/completions', { model: 'crate', prompt: 'x', max_tokens: 60, n: 4, logprobs: 5 }), 400, 'request_too_large');
      // (1 prompt token + 100) × n 5 = 505 tokens of work > 500
      const e2 = expectError(await postJson(base, '/v1/completions', { model: 'crate', prompt: [5], max_tokens: 100, n: 5 }), 400, 'request_too_large');
      expect(e2.message).toMatch(/505 tokens of work .*--max-request-tokens 500/);
      expectError(
        await postJson(base, '/v1/chat/completions', { model: 'crate', messages: [{ role: 'user', content: 'hi' }], max_tokens: 200, n: 3 }),
        400,
        'request_too_large',
      );
      expect((await postJson(base, '/v1/completions', { model: 'crate', prompt: [5], max_tokens: 99, n: 5 })).status).toBe(200);
    });
  });

  it('the queue has a memory budget: bodies past it get 503 while earlier requests wait, and the budget is given back', async () => {
    // one request computes at a time (no batching), so the later ones wait holding their bodies
    await withServer({ maxQueueBytes: 100_000, maxBatch: 1 }, async (_s, base) => {
      const slow = postJson(base, '/v1/completions', { model: 'crate', prompt: 'x', max_tokens: 400, n: 4, temperature: 1, seed: 3 });
      await sleep(200);
      const pad = (k: number) => JSON.stringify({ model: 'crate', prompt: Array(k).fill(11), max_tokens: 0 });
      const body = pad(15_000); // ~45 KB
      const a = postJson(base, '/v1/completions', body);
      await sleep(100);
      const b = postJson(base, '/v1/completions', body);
      await sleep(100);
      const c = await postJson(base, '/v1/completions', body);
      expectError(c, 503, 'overloaded');
      expect(c.headers['retry-after']).toBe('1');
      expect(JSON.parse(c.text).error.message).toMatch(/request bodies in the queue already hold \d+ of 100000 bytes/);
      expect((await a).status).toBe(200);
      expect((await b).status).toBe(200);
      expect((await slow).status).toBe(200);
      expect((await postJson(base, '/v1/completions', body)).status).toBe(200);
    });
  });
});

/** A raw HTTP/1.1 request on a socket that the test controls (it can stop reading). */
function rawSocket(port: number, localAddress?: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress }, () => resolve(s));
    s.on('error', reject);
  });
}

describe('crate-ts serve: slow, gone and many clients', () => {
  it('a streaming client that reads nothing is dropped after the write timeout, and its generation stops', async () => {
    const log: { path: string; completionTokens: number; status: number }[] = [];
    await withServer({ writeTimeoutMs: 1500, onRequest: (r) => log.push(r) }, async (srv, base) => {
      const s = await rawSocket(srv.port);
      // 8 prompts of 16,000 copies of the longest token (128 bytes): each echo event is 2 MB, more
      // than the sockets buffer, so the server must wait for a reader that never comes
      let long = 0;
      for (let id = 0; id < 50256; id++) if (engine.tokenBytes.bytes(id).length > engine.tokenBytes.bytes(long).length) long = id;
      const body = JSON.stringify({ model: 'crate', prompt: Array(8).fill(Array(16_000).fill(long)), max_tokens: 1, echo: true, stream: true });
      s.pause(); // never read: the server's writes back up
      const closed = new Promise<void>((r) => s.once('close', () => r()));
      s.on('error', () => {});
      s.write(
        `POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      const t0 = performance.now();
      while (log.length === 0 && performance.now() - t0 < 300_000) await sleep(100);
      // before the fix every event was kept in memory and all 8 choices were computed
      expect(log[0].status).toBe(200);
      expect(log[0].completionTokens).toBeLessThan(8);
      s.resume();
      await closed;
      // the model is free again
      expect((await postJson(base, '/v1/completions', good)).status).toBe(200);
    });
  }, 320_000);

  it('a client that goes away stops the computation for it (streaming and not)', async () => {
    const log: { path: string; completionTokens: number }[] = [];
    await withServer({ onRequest: (r) => log.push(r) }, async (_s, base) => {
      // streaming: 4 prompts × n 8, dropped after the first event
      const ac = new AbortController();
      const r = await fetch(base + '/v1/completions', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'crate', prompt: ['a', 'b', 'c', 'd'], n: 8, max_tokens: 300, echo: true, logprobs: 2, stream: true }),
        signal: ac.signal,
      });
      const reader = r.body!.getReader();
      await reader.read();
      ac.abort();
      while (log.length < 1) await sleep(50);
      // before the fix each of the 32 choices still ran its prompt and one token
      expect(log[0].completionTokens).toBeLessThan(32);
      // not streaming: n 16 × 300 tokens, the client leaves after 300 ms
      const ac2 = new AbortController();
      const p = fetch(base + '/v1/completions', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'crate', prompt: 'a', n: 16, max_tokens: 300, temperature: 1, seed: 2 }),
        signal: ac2.signal,
      }).catch(() => null);
      await sleep(300);
      ac2.abort();
      await p;
      while (log.length < 2) await sleep(50);
      expect(log[1].completionTokens).toBeLessThan(16 * 300);
    });
  }, 120_000);

  it('connections are capped per client address: one address holding its share leaves the others served', async () => {
    await withServer({ maxConnectionsPerClient: 5, maxConnections: 50 }, async (srv, base) => {
      const socks = await Promise.all(Array.from({ length: 12 }, () => rawSocket(srv.port, '127.0.0.2')));
      const ended = socks.map(
        (s) =>
          new Promise<string>((r) => {
            let got = '';
            s.on('data', (d) => (got += String(d)));
            s.on('close', () => r(got));
            s.on('error', () => {});
          }),
      );
      await sleep(500);
      const open = socks.filter((s) => !s.destroyed && s.readyState === 'open');
      // before the fix all 12 stayed open (and 21,000 of them starved everyone)
      expect(socks.length - open.length).toBe(7);
      const answers = await Promise.all(ended.filter((_e, i) => socks[i].destroyed || socks[i].readyState !== 'open'));
      for (const a of answers) expect(a).toMatch(/^HTTP\/1\.1 503 .*"code":"overloaded"/s);
      // another address (and this one, once it lets go) is answered
      expect((await request(base + '/health', { localAddress: '127.0.0.1' })).status).toBe(200);
      for (const s of socks) s.destroy();
      await sleep(200);
      expect((await request(base + '/health', { localAddress: '127.0.0.2' })).status).toBe(200);
    });
  });

  it('an upload without the API key is refused without reading its body', async () => {
    await withServer({ apiKey: 'sekret' }, async (srv) => {
      const s = await rawSocket(srv.port);
      let got = '';
      s.on('data', (d) => (got += String(d)));
      const closed = new Promise<void>((r) => s.once('close', () => r()));
      s.on('error', () => {});
      // a 50 MB upload announced; none of it is sent
      s.write(`POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nContent-Type: application/json\r\nContent-Length: 50000000\r\n\r\n`);
      await closed; // before the fix the server kept the connection, waiting to read 50 MB
      expect(got).toMatch(/^HTTP\/1\.1 401 /);
      expect(got).toMatch(/connection: close/i);
      expect(got).toMatch(/"code":"invalid_api_key"/);
      // with Expect: 100-continue the client is refused before it sends anything
      const s2 = await rawSocket(srv.port);
      let got2 = '';
      s2.on('data', (d) => (got2 += String(d)));
      const closed2 = new Promise<void>((r) => s2.once('close', () => r()));
      s2.write(
        `POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 50000000\r\n\r\n`,
      );
      await closed2;
      expect(got2).toMatch(/^HTTP\/1\.1 401 /);
      expect(got2).not.toMatch(/100 Continue/);
    });
  });
});
