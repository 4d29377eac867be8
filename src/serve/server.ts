// `crate-ts serve`: an OpenAI-compatible HTTP server for a crate-ts model (node:http).
//
//   GET  /v1/models             the one served model
//   POST /v1/completions        prompt (string | [string] | [id] | [[id]]), max_tokens (0 allowed),
//                               echo, logprobs ≤ 20 (vLLM's shape), temperature, top_p, top_k, seed,
//                               stop, n, stream (server-sent events)
//   POST /v1/chat/completions   messages through the plain template of src/serve/chat.ts
//   GET  /health                200 "ok"
//
// Requests are computed one at a time, in arrival order (the model is not re-entrant); at most
// `maxQueue` wait, beyond that the answer is 503. A request that is invalid in any way gets a 4xx
// with the OpenAI error body {error: {message, type, param, code}}, and the server goes on.
import * as http from 'node:http';
import { randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Rng } from '../util/rng.js';
import { Engine, type GeneratedToken, type TopEntry } from './engine.js';
import { ApiError, DEFAULT_LIMITS, parseChat, parseCompletion, type SamplingParams, type ServeLimits } from './validate.js';
import { renderChat, CHAT_STOP } from './chat.js';
import { TextStream, codePoints } from './tokens.js';
import { UsageError } from '../errors.js';

export interface ServeOptions {
  host?: string;
  port?: number;
  /** Require `Authorization: Bearer <apiKey>` on every request. */
  apiKey?: string | null;
  /** The model id clients must send (default "crate"). */
  modelName?: string;
  limits?: Partial<ServeLimits>;
  /** Largest accepted request body in bytes (default 8 MiB). */
  maxBodyBytes?: number;
  /** Requests allowed to wait for the model (default 256). */
  maxQueue?: number;
  /** Called once per answered request (method, path, status, milliseconds). */
  onRequest?: (r: { method: string; path: string; status: number; ms: number; promptTokens: number; completionTokens: number }) => void;
}

export interface RunningServer {
  url: string;
  port: number;
  host: string;
  server: http.Server;
  stats: { requests: number; byPath: Record<string, number>; errors: number };
  close(): Promise<void>;
}

/** A FIFO lock with a bounded number of waiters. */
class Queue {
  private busy = false;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly maxWaiting: number) {}
  get depth(): number {
    return this.waiting.length + (this.busy ? 1 : 0);
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.busy) {
      if (this.waiting.length >= this.maxWaiting)
        throw new ApiError(503, `the server is busy: ${this.waiting.length} requests are already waiting; retry later`, null, 'overloaded', 'server_error');
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    this.busy = true;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.busy = false;
    }
  }
}

/**
 * Read a request body of at most `limit` bytes. A larger one is answered with 413 once its upload
 * has been read and discarded (answering while the client still writes would reset the connection
 * under it); past 64 MiB more the connection is dropped.
 */
function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    const tooLarge = (n: number | null) =>
      new ApiError(
        413,
        n === null
          ? `the request body is larger than this server accepts (${limit} bytes)`
          : `the request body is ${n} bytes, more than this server accepts (${limit})`,
        null,
        'request_too_large',
      );
    const chunks: Buffer[] = [];
    let size = 0,
      over = Number.isFinite(declared) && declared > limit;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) over = true;
      if (over) {
        chunks.length = 0;
        if (size > limit + 64 * 1024 * 1024) req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => (over ? reject(tooLarge(Number.isFinite(declared) ? declared : null)) : resolve(Buffer.concat(chunks))));
    req.on('error', (e) => reject(new ApiError(400, `could not read the request body: ${e.message}`)));
  });
}

function parseJson(buf: Buffer): unknown {
  if (buf.length === 0) throw new ApiError(400, 'the request body is empty; send a JSON object', null, 'invalid_json');
  const text = buf.toString('utf8');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ApiError(400, `the request body is not valid JSON: ${(e as Error).message.slice(0, 200)}`, null, 'invalid_json');
  }
}

function sameSecret(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest(),
    hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

const newId = (prefix: string) => `${prefix}-${randomBytes(12).toString('hex')}`;

/** vLLM-style top_logprobs dict: the k alternatives, plus the actual token when it is not among them. */
function topDict(stream: TextStream, top: TopEntry[], actual: { id: number; text: string; logprob: number } | null): Record<string, number> {
  const d: Record<string, number> = {};
  for (const e of top) {
    const s = stream.alternative(e.id);
    if (!(s in d)) d[s] = e.logprob;
  }
  if (actual && !top.some((e) => e.id === actual.id) && !(actual.text in d)) d[actual.text] = actual.logprob;
  return d;
}

interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

export async function startServer(engine: Engine, opts: ServeOptions = {}): Promise<RunningServer> {
  const host = opts.host ?? '127.0.0.1';
  const modelName = opts.modelName ?? 'crate';
  const limits: ServeLimits = { ...DEFAULT_LIMITS, ...(opts.limits ?? {}) };
  const maxBody = opts.maxBodyBytes ?? 8 * 1024 * 1024;
  const queue = new Queue(opts.maxQueue ?? 256);
  const created = Math.floor(Date.now() / 1000);
  const stats = { requests: 0, byPath: {} as Record<string, number>, errors: 0 };
  const vocab = engine.vocabSize;

  const tokenize = (p: string | number[], i: number): number[] => {
    const ids = typeof p === 'string' ? engine.encode(p) : p;
    if (ids.length === 0) throw new ApiError(400, `prompt ${i} encodes to no tokens`, 'prompt');
    if (ids.length > limits.maxPromptTokens) {
      throw new ApiError(
        400,
        `prompt ${i} has ${ids.length} tokens, more than this server accepts (--max-prompt-tokens ${limits.maxPromptTokens})`,
        'prompt',
        'context_length_exceeded',
      );
    }
    return ids;
  };

  const rngFor = (s: SamplingParams) => new Rng(s.seed ?? randomBytes(4).readUInt32LE(0));

  /** Prompt part of a completion's logprobs (echo). */
  async function echoLogprobs(ids: number[], k: number): Promise<{ text: string; lp: CompletionLogprobs; end: TextStream }> {
    const { tokenLogprobs, top } = await engine.promptLogprobs(ids, k);
    const stream = new TextStream(engine.tokenBytes);
    const lp: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
    for (let i = 0; i < ids.length; i++) {
      const alt = top[i];
      const dict = alt === null ? null : topDict(stream, alt, null);
      const off = stream.offset;
      const s = stream.push(ids[i]);
      if (dict && !alt!.some((e) => e.id === ids[i]) && !(s in dict)) dict[s] = tokenLogprobs[i] as number;
      lp.tokens.push(s);
      lp.token_logprobs.push(tokenLogprobs[i]);
      lp.top_logprobs.push(dict);
      lp.text_offset.push(off);
    }
    const tail = stream.flush();
    if (tail && lp.tokens.length) lp.tokens[lp.tokens.length - 1] += tail;
    return { text: stream.text, lp, end: stream };
  }

  function promptText(ids: number[]): string {
    const s = new TextStream(engine.tokenBytes);
    for (const id of ids) s.push(id);
    s.flush();
    return s.text;
  }

  function generatedLogprobs(tokens: GeneratedToken[], k: number, startOffset: number): CompletionLogprobs {
    const stream = new TextStream(engine.tokenBytes);
    const lp: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
    let off = startOffset;
    for (const t of tokens) {
      const dict = topDict(stream, t.top.slice(0, k), { id: t.id, text: t.text, logprob: t.logprob });
      stream.push(t.id);
      lp.tokens.push(t.text);
      lp.token_logprobs.push(t.logprob);
      lp.top_logprobs.push(dict);
      lp.text_offset.push(off);
      off += codePoints(t.text);
    }
    return lp;
  }

  const sse = (res: http.ServerResponse, obj: unknown) => res.write(`data: ${JSON.stringify(obj)}\n\n`);

  async function completions(body: unknown, res: http.ServerResponse, acct: { p: number; c: number }, gone: () => boolean): Promise<void> {
    const r = parseCompletion(body, modelName, vocab, limits);
    const promptIds = r.prompts.map((p, i) => tokenize(p, i));
    acct.p = promptIds.reduce((a, ids) => a + ids.length * r.n, 0);
    const id = newId('cmpl'),
      createdAt = Math.floor(Date.now() / 1000);
    await queue.run(async () => {
      if (gone()) return;
      const rng = rngFor(r);
      const gen = { maxTokens: r.maxTokens, temperature: r.temperature, topP: r.topP, topK: r.topK, rng, stop: r.stop, logprobs: r.logprobs };
      if (r.stream) {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
        for (let pi = 0; pi < promptIds.length; pi++) {
          for (let j = 0; j < r.n; j++) {
            const index = pi * r.n + j;
            const chunk = (text: string, logprobs: CompletionLogprobs | null, finish: string | null) =>
              sse(res, { id, object: 'text_completion', created: createdAt, model: modelName, choices: [{ index, text, logprobs, finish_reason: finish }] });
            let offset = 0;
            if (r.echo) {
              if (r.logprobs !== null) {
                const e = await echoLogprobs(promptIds[pi], r.logprobs);
                chunk(e.text, e.lp, null);
                offset = e.end.offset;
              } else {
                const t = promptText(promptIds[pi]);
                chunk(t, null, null);
                offset = codePoints(t);
              }
            }
            const out = await engine.generate(promptIds[pi], gen, (text, tok) => {
              if (gone()) return false;
              if (text === '' && (tok === null || r.logprobs === null)) return true;
              const lp = tok && r.logprobs !== null ? generatedLogprobs([tok], r.logprobs, offset) : null;
              offset += codePoints(text);
              chunk(text, lp, null);
              return true;
            });
            acct.c += out.tokens.length;
            chunk('', null, out.finishReason);
          }
        }
        if (r.includeUsage)
          sse(res, {
            id,
            object: 'text_completion',
            created: createdAt,
            model: modelName,
            choices: [],
            usage: { prompt_tokens: acct.p, completion_tokens: acct.c, total_tokens: acct.p + acct.c },
          });
        res.end('data: [DONE]\n\n');
        return;
      }
      const choices = [];
      for (let pi = 0; pi < promptIds.length; pi++) {
        let echo: { text: string; lp: CompletionLogprobs | null; offset: number } | null = null;
        if (r.echo) {
          if (r.logprobs !== null) {
            const e = await echoLogprobs(promptIds[pi], r.logprobs);
            echo = { text: e.text, lp: e.lp, offset: e.end.offset };
          } else {
            const t = promptText(promptIds[pi]);
            echo = { text: t, lp: null, offset: codePoints(t) };
          }
        }
        for (let j = 0; j < r.n; j++) {
          if (gone()) return;
          const out = await engine.generate(promptIds[pi], gen);
          acct.c += out.tokens.length;
          let logprobs: CompletionLogprobs | null = null;
          if (r.logprobs !== null) {
            const g = generatedLogprobs(out.tokens, r.logprobs, echo?.offset ?? 0);
            logprobs = echo?.lp
              ? {
                  tokens: [...echo.lp.tokens, ...g.tokens],
                  token_logprobs: [...echo.lp.token_logprobs, ...g.token_logprobs],
                  top_logprobs: [...echo.lp.top_logprobs, ...g.top_logprobs],
                  text_offset: [...echo.lp.text_offset, ...g.text_offset],
                }
              : g;
          }
          choices.push({ index: pi * r.n + j, text: (echo?.text ?? '') + out.text, logprobs, finish_reason: out.finishReason });
        }
      }
      sendJson(res, 200, {
        id,
        object: 'text_completion',
        created: createdAt,
        model: modelName,
        choices,
        usage: { prompt_tokens: acct.p, completion_tokens: acct.c, total_tokens: acct.p + acct.c },
      });
    });
  }

  function chatLogprobs(
    tokens: GeneratedToken[],
    k: number,
  ): { content: { token: string; logprob: number; bytes: number[]; top_logprobs: { token: string; logprob: number; bytes: number[] }[] }[] } {
    const stream = new TextStream(engine.tokenBytes);
    const enc = new TextEncoder();
    const content = tokens.map((t) => {
      const tops = t.top.slice(0, k).map((e) => {
        const s = stream.alternative(e.id);
        return { token: s, logprob: e.logprob, bytes: Array.from(engine.tokenBytes.bytes(e.id)) };
      });
      stream.push(t.id);
      return { token: t.text, logprob: t.logprob, bytes: Array.from(t.text ? enc.encode(t.text) : engine.tokenBytes.bytes(t.id)), top_logprobs: tops };
    });
    return { content };
  }

  async function chat(body: unknown, res: http.ServerResponse, acct: { p: number; c: number }, gone: () => boolean): Promise<void> {
    const r = parseChat(body, modelName, limits);
    const prompt = tokenize(renderChat(r.messages), 0);
    acct.p = prompt.length * r.n;
    const id = newId('chatcmpl'),
      createdAt = Math.floor(Date.now() / 1000);
    const stop = r.stop.includes(CHAT_STOP) ? r.stop : [...r.stop, CHAT_STOP].slice(-4);
    await queue.run(async () => {
      if (gone()) return;
      const rng = rngFor(r);
      const gen = { maxTokens: r.maxTokens, temperature: r.temperature, topP: r.topP, topK: r.topK, rng, stop, logprobs: r.logprobs ? r.topLogprobs : null };
      if (r.stream) {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
        for (let j = 0; j < r.n; j++) {
          const chunk = (delta: Record<string, string>, logprobs: unknown, finish: string | null) =>
            sse(res, {
              id,
              object: 'chat.completion.chunk',
              created: createdAt,
              model: modelName,
              choices: [{ index: j, delta, logprobs, finish_reason: finish }],
            });
          chunk({ role: 'assistant', content: '' }, null, null);
          let first = true;
          const out = await engine.generate(prompt, gen, (text, tok) => {
            if (gone()) return false;
            if (text === '' && (tok === null || !r.logprobs)) return true;
            // the completion continues "Assistant:"; its leading space belongs to the template
            if (first && text.length) {
              text = text.replace(/^ /, '');
              first = false;
            }
            chunk({ content: text }, tok && r.logprobs ? chatLogprobs([tok], r.topLogprobs) : null, null);
            return true;
          });
          acct.c += out.tokens.length;
          chunk({}, null, out.finishReason);
        }
        if (r.includeUsage)
          sse(res, {
            id,
            object: 'chat.completion.chunk',
            created: createdAt,
            model: modelName,
            choices: [],
            usage: { prompt_tokens: acct.p, completion_tokens: acct.c, total_tokens: acct.p + acct.c },
          });
        res.end('data: [DONE]\n\n');
        return;
      }
      const choices = [];
      for (let j = 0; j < r.n; j++) {
        if (gone()) return;
        const out = await engine.generate(prompt, gen);
        acct.c += out.tokens.length;
        choices.push({
          index: j,
          message: { role: 'assistant', content: out.text.replace(/^ /, '') },
          logprobs: r.logprobs ? chatLogprobs(out.tokens, r.topLogprobs) : null,
          finish_reason: out.finishReason,
        });
      }
      sendJson(res, 200, {
        id,
        object: 'chat.completion',
        created: createdAt,
        model: modelName,
        choices,
        usage: { prompt_tokens: acct.p, completion_tokens: acct.c, total_tokens: acct.p + acct.c },
      });
    });
  }

  const routes: Record<
    string,
    {
      method: string;
      handler?: (body: unknown, res: http.ServerResponse, acct: { p: number; c: number }, gone: () => boolean) => Promise<void>;
      get?: (res: http.ServerResponse) => void;
    }
  > = {
    '/v1/models': {
      method: 'GET',
      get: (res) =>
        sendJson(res, 200, { object: 'list', data: [{ id: modelName, object: 'model', created, owned_by: 'crate-ts', max_model_len: engine.blockSize }] }),
    },
    '/health': {
      method: 'GET',
      get: (res) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('ok');
      },
    },
    '/v1/completions': { method: 'POST', handler: completions },
    '/v1/chat/completions': { method: 'POST', handler: chat },
  };

  const server = http.createServer(async (req, res) => {
    const t0 = performance.now();
    const path = (req.url ?? '/').split('?')[0].replace(/\/+$/, '') || '/';
    const acct = { p: 0, c: 0 };
    let closed = false;
    res.on('close', () => {
      closed = true;
    });
    const gone = () => closed || res.destroyed;
    stats.requests++;
    stats.byPath[path] = (stats.byPath[path] ?? 0) + 1;
    try {
      if (opts.apiKey) {
        const auth = req.headers.authorization ?? '';
        const m = /^Bearer\s+(.+)$/i.exec(auth);
        if (!m) throw new ApiError(401, 'missing API key: send the header "Authorization: Bearer <key>"', null, 'invalid_api_key');
        if (!sameSecret(m[1].trim(), opts.apiKey)) throw new ApiError(401, 'incorrect API key', null, 'invalid_api_key');
      }
      const route = routes[path];
      if (!route)
        throw new ApiError(
          404,
          `no route ${req.method} ${path.slice(0, 200)}; this server answers GET /v1/models, POST /v1/completions, POST /v1/chat/completions`,
          null,
          'not_found',
        );
      if (req.method !== route.method) {
        res.setHeader('allow', route.method);
        throw new ApiError(405, `${req.method} is not allowed on ${path}; use ${route.method}`, null, 'method_not_allowed');
      }
      if (route.get) {
        route.get(res);
        req.resume();
      } else {
        const body = parseJson(await readBody(req, maxBody));
        await route.handler!(body, res, acct, gone);
      }
    } catch (e) {
      const err = e instanceof ApiError ? e : new ApiError(500, `internal error: ${(e as Error)?.message ?? String(e)}`, null, 'internal_error');
      stats.errors++;
      if (!res.headersSent) {
        if (err.status === 503) res.setHeader('retry-after', '1');
        sendJson(res, err.status, err.body());
      } else if (!res.writableEnded) {
        // a streaming response that failed mid-way: report in the stream, then end it
        try {
          res.end(`data: ${JSON.stringify(err.body())}\n\n`);
        } catch {
          /* the client is gone */
        }
      }
      if (req.readable) req.resume();
    } finally {
      opts.onRequest?.({ method: req.method ?? '?', path, status: res.statusCode, ms: performance.now() - t0, promptTokens: acct.p, completionTokens: acct.c });
    }
  });
  // Idle keep-alive connections outlive the clients' own idle timeouts (undici: 4 s), so a client
  // never sends on a connection the server is closing.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 70_000;
  server.requestTimeout = 120_000;
  server.on('clientError', (_err, socket) => {
    if (socket.writable)
      socket.end(
        'HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{"error":{"message":"malformed HTTP request","type":"invalid_request_error","param":null,"code":"bad_request"}}',
      );
  });

  await new Promise<void>((resolve, reject) => {
    const fail = (e: NodeJS.ErrnoException) =>
      reject(
        e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'EADDRNOTAVAIL'
          ? new UsageError(
              `cannot listen on ${host}:${opts.port ?? 8000}: ${e.code === 'EADDRINUSE' ? 'the port is in use' : e.code === 'EACCES' ? 'permission denied' : 'no such address on this machine'} (${e.code})`,
            )
          : e,
      );
    server.once('error', fail);
    server.listen(opts.port ?? 8000, host, () => {
      server.off('error', fail);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${shownHost}:${addr.port}/v1`,
    port: addr.port,
    host: addr.address,
    server,
    stats,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

function sendJson(res: http.ServerResponse, status: number, obj: unknown): void {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
