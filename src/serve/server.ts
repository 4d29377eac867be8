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
// `maxQueue` wait, and the request bodies held by waiting and running requests stay under
// `maxQueueBytes`; beyond either the answer is 503. A request that is invalid in any way gets a 4xx
// with the OpenAI error body {error: {message, type, param, code}}, and the server goes on.
//
// What one client can make the server do is bounded (README "Serving" lists the limits):
// - text is tokenized inside the queue, in time slices, and refused as soon as it is known to be
//   longer than --max-prompt-tokens (src/serve/encode.ts); the work of one request (tokens run
//   through the model, log-probabilities returned) is checked before any of it starts;
// - responses are written as they are made, a piece at a time, honouring the socket's
//   backpressure; a client that does not read for `writeTimeoutMs` is dropped, and a client that
//   has gone stops the computation for it;
// - connections are capped in total and per client address; a request refused before its body
//   is read (authentication, Host, Origin, content type) does not have its body read;
// - bound to the loopback, only requests naming the loopback in Host are answered (DNS
//   rebinding), requests from a web page of another origin are refused, and POST bodies must be
//   application/json, so a page in a browser on this machine cannot use the server.
import * as http from 'node:http';
import type { Socket } from 'node:net';
import { randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Rng } from '../util/rng.js';
import { Engine, yieldNow, type GeneratedToken, type TopEntry } from './engine.js';
import { ApiError, DEFAULT_LIMITS, parseChat, parseCompletion, type SamplingParams, type ServeLimits } from './validate.js';
import { renderChat, CHAT_STOP } from './chat.js';
import { TextStream, codePoints } from './tokens.js';
import { BoundedEncoder, TooManyTokens } from './encode.js';

/** The end-of-text token's text (GPT-2's special token). */
const EOT_TEXT = '<|endoftext|>';
import { UsageError } from '../errors.js';
import { hostAllowed, isLoopback, loopbackHosts } from '../util/loopback.js';

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
  /** Bytes of request bodies that waiting and running requests may hold together (default 64 MiB). */
  maxQueueBytes?: number;
  /** A response write that has not drained after this long drops the client (default 30 s). */
  writeTimeoutMs?: number;
  /** Open connections in total (default 512) and from one client address (default 64). */
  maxConnections?: number;
  maxConnectionsPerClient?: number;
  /** Called once per answered request (method, path, status, milliseconds). */
  onRequest?: (r: { method: string; path: string; status: number; ms: number; promptTokens: number; completionTokens: number }) => void;
  /** Called when a completion's prompt is longer than the model's context (the CLI prints it once). */
  onWarning?: (message: string) => void;
}

/** The response header that carries a warning about a request (a prompt longer than the context). */
export const WARNING_HEADER = 'x-crate-ts-warning';

/** The warning for a prompt of n tokens on a model of context T, or null when it fits. */
export function contextWarning(n: number, T: number, scoring: boolean, generating: boolean, stride: number): string | null {
  if (n <= T) return null;
  const what = [
    scoring ? `its log-probabilities are scored in sliding windows (stride ${stride}), each token with at most ${T - 1} tokens of context` : '',
    generating ? `generation sees only its last ${T} tokens` : '',
  ].filter(Boolean);
  return `a prompt of ${n} tokens is longer than this model's context (block size ${T}): ${what.join('; ') || 'only its last tokens are used'}`;
}

export const DEFAULT_SERVE = {
  maxBodyBytes: 8 * 1024 * 1024,
  maxQueue: 256,
  maxQueueBytes: 64 * 1024 * 1024,
  writeTimeoutMs: 30_000,
  maxConnections: 512,
  maxConnectionsPerClient: 64,
} as const;

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

/** Bytes of request bodies held by the requests in flight. */
class Budget {
  used = 0;
  constructor(readonly limit: number) {}
  take(n: number): boolean {
    if (this.used + n > this.limit) return false;
    this.used += n;
    return true;
  }
  give(n: number): void {
    this.used -= n;
  }
}

const busy = (what: string) => new ApiError(503, `the server is busy: ${what}; retry later`, null, 'overloaded', 'server_error');

/**
 * Read a request body of at most `limit` bytes, reserving its bytes in `budget` as they arrive
 * (`held.n` counts what this request holds; the caller gives it back). A larger body is answered
 * with 413 once its upload has been read and discarded (answering while the client still writes
 * would reset the connection under it); past 64 MiB more the connection is dropped. A body that
 * does not fit the budget is answered 503 and the connection closed.
 */
function readBody(req: http.IncomingMessage, limit: number, budget: Budget, held: { n: number }): Promise<Buffer> {
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
      over = Number.isFinite(declared) && declared > limit,
      settled = false;
    if (!over && Number.isFinite(declared) && declared > 0) {
      if (!budget.take(declared)) {
        settled = true;
        reject(busy(`request bodies in the queue already hold ${budget.used} of ${budget.limit} bytes`));
        return;
      }
      held.n = declared;
    }
    req.on('data', (c: Buffer) => {
      if (settled) return;
      size += c.length;
      if (size > limit) over = true;
      if (over) {
        chunks.length = 0;
        if (size > limit + 64 * 1024 * 1024) req.destroy();
        return;
      }
      if (size > held.n) {
        if (!budget.take(size - held.n)) {
          settled = true;
          chunks.length = 0;
          reject(busy(`request bodies in the queue already hold ${budget.used} of ${budget.limit} bytes`));
          return;
        }
        held.n = size;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (settled) return;
      settled = true;
      if (over) reject(tooLarge(Number.isFinite(declared) ? declared : null));
      else resolve(Buffer.concat(chunks));
    });
    req.on('error', (e) => {
      if (settled) return;
      settled = true;
      reject(new ApiError(400, `could not read the request body: ${e.message}`));
    });
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

/** The client went away, or did not read for the write timeout: stop computing for it. */
class ClientGone extends Error {
  constructor(why: string) {
    super(why);
    this.name = 'ClientGone';
  }
}

/** Bytes gathered before a write to the socket. */
const PIECE = 64 * 1024;
/**
 * Output a response may leave unsent in memory (beyond the socket's buffers) before its
 * computation waits for the client, and the total over all responses. Within these a slow reader
 * does not hold the model: its request finishes and the rest drains after it.
 */
const RESPONSE_BUFFER = 4 * 1024 * 1024;
const ALL_BUFFERS = 64 * 1024 * 1024;

/** The responses with output still to send. */
class Outbox {
  private readonly open = new Set<http.ServerResponse>();
  add(res: http.ServerResponse): void {
    if (this.open.has(res)) return;
    this.open.add(res);
    res.once('close', () => this.open.delete(res));
  }
  get buffered(): number {
    let n = 0;
    for (const r of this.open) n += r.writableLength;
    return n;
  }
}

/**
 * A response written a piece at a time: push() gathers text, flush() writes it and, when the
 * socket's buffer is full, waits for it to drain (yielding the event loop); a drain that does not
 * come within the write timeout destroys the connection.
 */
class Writer {
  private parts: string[] = [];
  private size = 0;
  constructor(
    private readonly res: http.ServerResponse,
    private readonly timeoutMs: number,
    private readonly gone: () => boolean,
    private readonly outbox: Outbox,
  ) {
    outbox.add(res);
  }
  get full(): boolean {
    return this.size >= PIECE;
  }
  push(s: string): void {
    this.parts.push(s);
    this.size += s.length;
  }
  async flush(): Promise<void> {
    if (this.gone()) throw new ClientGone('the client closed the connection');
    if (this.size === 0) return;
    const s = this.parts.length === 1 ? this.parts[0] : this.parts.join('');
    this.parts = [];
    this.size = 0;
    if (!this.res.write(s) && (this.res.writableLength > RESPONSE_BUFFER || this.outbox.buffered > ALL_BUFFERS)) await this.drain();
    else if (s.length >= PIECE) await yieldNow();
  }
  async end(s = ''): Promise<void> {
    if (s) this.push(s);
    await this.flush();
    this.res.end();
    // what is still buffered drains after the request; a client that reads none of it for the
    // write timeout is dropped (the socket's inactivity timer: any progress restarts it)
    if (!this.res.writableFinished) {
      const sock = this.res.socket;
      sock?.setTimeout(this.timeoutMs, () => sock.destroy());
    }
  }
  private drain(): Promise<void> {
    const res = this.res;
    return new Promise((resolve, reject) => {
      const done = (err: Error | null) => {
        clearTimeout(timer);
        res.off('drain', onDrain);
        res.off('close', onClose);
        if (err) reject(err);
        else resolve();
      };
      const onDrain = () => done(null);
      const onClose = () => done(new ClientGone('the client closed the connection'));
      const timer = setTimeout(() => {
        res.destroy();
        done(new ClientGone(`the client read nothing for ${this.timeoutMs} ms; dropped`));
      }, this.timeoutMs);
      res.on('drain', onDrain);
      res.on('close', onClose);
    });
  }
}

/** Write `items` as a JSON array, flushing as pieces fill. */
async function writeArray<T>(w: Writer, items: readonly T[], more: readonly T[] = []): Promise<void> {
  w.push('[');
  let first = true;
  for (const list of [items, more])
    for (const x of list) {
      w.push(first ? JSON.stringify(x) : ',' + JSON.stringify(x));
      first = false;
      if (w.full) await w.flush();
    }
  w.push(']');
}

/** A completion's logprobs object (the echoed part, then the generated part) written in pieces. */
async function writeLogprobs(w: Writer, a: CompletionLogprobs | null, b: CompletionLogprobs | null): Promise<void> {
  if (!a && !b) {
    w.push('null');
    return;
  }
  const x = a ?? b!,
    y = a && b ? b : null;
  w.push('{"tokens":');
  await writeArray(w, x.tokens, y?.tokens);
  w.push(',"token_logprobs":');
  await writeArray(w, x.token_logprobs, y?.token_logprobs);
  w.push(',"top_logprobs":');
  await writeArray(w, x.top_logprobs, y?.top_logprobs);
  w.push(',"text_offset":');
  await writeArray(w, x.text_offset, y?.text_offset);
  w.push('}');
}

const SECURITY_HEADERS = { 'x-content-type-options': 'nosniff', 'cross-origin-resource-policy': 'same-origin' } as const;

/** Echoed prompt positions per server-sent event (a long echo is sent as several chunks). */
const ECHO_CHUNK = 512;

/** The address a connection comes from, as the per-client bound counts it. */
const clientKey = (s: Socket) => (s.remoteAddress ?? '?').replace(/^::ffff:/, '');

export async function startServer(engine: Engine, opts: ServeOptions = {}): Promise<RunningServer> {
  const host = opts.host ?? '127.0.0.1';
  const modelName = opts.modelName ?? 'crate';
  const limits: ServeLimits = { ...DEFAULT_LIMITS, ...(opts.limits ?? {}) };
  const maxBody = opts.maxBodyBytes ?? DEFAULT_SERVE.maxBodyBytes;
  const queue = new Queue(opts.maxQueue ?? DEFAULT_SERVE.maxQueue);
  const budget = new Budget(opts.maxQueueBytes ?? DEFAULT_SERVE.maxQueueBytes);
  const writeTimeout = opts.writeTimeoutMs ?? DEFAULT_SERVE.writeTimeoutMs;
  const perClientMax = opts.maxConnectionsPerClient ?? DEFAULT_SERVE.maxConnectionsPerClient;
  const created = Math.floor(Date.now() / 1000);
  const stats = { requests: 0, byPath: {} as Record<string, number>, errors: 0 };
  const vocab = engine.vocabSize;
  const encoder = await BoundedEncoder.create(engine.tokenizer);
  const outbox = new Outbox();
  /** Host header values answered (bound to the loopback), or null (any). Set once listening. */
  let allowedHosts: Set<string> | null = null;

  const tooLong = (i: number, n: string) =>
    new ApiError(
      400,
      `prompt ${i} has ${n} tokens, more than this server accepts (--max-prompt-tokens ${limits.maxPromptTokens})`,
      'prompt',
      'context_length_exceeded',
    );

  /** Refusals that need no tokenization (before the request waits in the queue). */
  const precheck = (p: string | number[], i: number) => {
    if (typeof p === 'string' && p.length > encoder.maxChars(limits.maxPromptTokens))
      throw tooLong(i, `at least ${Math.ceil(p.length / encoder.maxTokenBytes)}`);
    if (typeof p !== 'string' && p.length > limits.maxPromptTokens) throw tooLong(i, String(p.length));
  };

  /**
   * Text to ids. The literal end-of-text string "<|endoftext|>" is the end-of-text token (50256 for
   * GPT-2 BPE), as OpenAI-compatible servers built on Hugging Face tokenizers read it; the text
   * between is encoded as usual. Byte-level and char models have no such token: the string is text.
   */
  const encodeText = async (p: string, maxTokens: number): Promise<number[]> => {
    const eot = engine.tokenizer.eot;
    if (eot === null || !p.includes(EOT_TEXT)) return encoder.encode(p, maxTokens);
    const out: number[] = [];
    const parts = p.split(EOT_TEXT);
    for (let j = 0; j < parts.length; j++) {
      if (j > 0) out.push(eot);
      if (out.length > maxTokens) throw new TooManyTokens(out.length, maxTokens);
      if (parts[j]) for (const id of await encoder.encode(parts[j], maxTokens - out.length)) out.push(id);
    }
    return out;
  };

  const tokenize = async (p: string | number[], i: number): Promise<number[]> => {
    let ids: number[];
    if (typeof p === 'string') {
      try {
        ids = await encodeText(p, limits.maxPromptTokens);
      } catch (e) {
        if (e instanceof TooManyTokens) throw tooLong(i, `at least ${e.atLeast}`);
        throw e;
      }
    } else ids = p;
    if (ids.length === 0) throw new ApiError(400, `prompt ${i} encodes to no tokens`, 'prompt');
    if (ids.length > limits.maxPromptTokens) throw tooLong(i, String(ids.length));
    return ids;
  };

  /** The work bounds of one request, checked before any of it starts. */
  const checkWork = (lens: number[], n: number, maxTokens: number, echo: boolean, k: number | null) => {
    let tokens = 0,
      entries = 0;
    for (const len of lens) {
      tokens += n * (len + maxTokens);
      if (k !== null) entries += n * ((echo ? len : 0) + maxTokens) * (k + 1);
    }
    if (tokens > limits.maxRequestTokens)
      throw new ApiError(
        400,
        `this request asks for ${tokens} tokens of work (prompt tokens + max_tokens, summed over ${lens.length} prompt(s) × n = ${n}), more than this server does per request (--max-request-tokens ${limits.maxRequestTokens})`,
        null,
        'request_too_large',
      );
    if (entries > limits.maxLogprobEntries)
      throw new ApiError(
        400,
        `this request asks for ${entries} log-probabilities (positions × (alternatives + 1), summed over every choice), more than this server returns per request (--max-request-logprobs ${limits.maxLogprobEntries}); ask for fewer alternatives, tokens or choices`,
        'logprobs',
        'request_too_large',
      );
    return tokens;
  };

  const rngFor = (s: SamplingParams) => new Rng(s.seed ?? randomBytes(4).readUInt32LE(0));

  /** Prompt part of a completion's logprobs (echo). */
  async function echoLogprobs(ids: number[], k: number, gone: () => boolean): Promise<{ text: string; lp: CompletionLogprobs; end: TextStream }> {
    const { tokenLogprobs, top } = await engine.promptLogprobs(ids, k, gone);
    if (gone()) throw new ClientGone('the client closed the connection');
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
      if ((i & 1023) === 1023) await yieldNow();
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

  const SSE_HEAD = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' };

  /** One server-sent event, written before the computation goes on. */
  const sse = async (w: Writer, obj: unknown) => {
    w.push(`data: ${JSON.stringify(obj)}\n\n`);
    await w.flush();
  };

  /** Generate with a callback; tokens generated before an abort still count in `acct`. */
  async function generateCounted(
    ids: number[],
    gen: Parameters<Engine['generate']>[1],
    acct: Acct,
    onText: (text: string, tok: GeneratedToken | null) => boolean | Promise<boolean>,
  ): Promise<Awaited<ReturnType<Engine['generate']>>> {
    let seen = 0;
    try {
      const out = await engine.generate(ids, gen, (text, tok) => {
        if (tok) seen++;
        return onText(text, tok);
      });
      acct.c += out.tokens.length;
      return out;
    } catch (e) {
      acct.c += seen;
      throw e;
    }
  }

  async function completions(body: unknown, res: http.ServerResponse, ctx: Ctx): Promise<void> {
    const r = parseCompletion(body, modelName, vocab, limits);
    r.prompts.forEach(precheck);
    const { acct, gone } = ctx;
    const id = newId('cmpl'),
      createdAt = Math.floor(Date.now() / 1000);
    await queue.run(async () => {
      if (gone()) return;
      const promptIds: number[][] = [];
      for (let i = 0; i < r.prompts.length; i++) promptIds.push(await tokenize(r.prompts[i], i));
      checkWork(
        promptIds.map((p) => p.length),
        r.n,
        r.maxTokens,
        r.echo,
        r.logprobs,
      );
      acct.p = promptIds.reduce((a, ids) => a + ids.length * r.n, 0);
      const warning = contextWarning(
        Math.max(...promptIds.map((ids) => ids.length)),
        engine.blockSize,
        r.echo && r.logprobs !== null,
        r.maxTokens > 0,
        engine.echoStride,
      );
      if (warning !== null) {
        res.setHeader(WARNING_HEADER, warning);
        opts.onWarning?.(warning);
      }
      const rng = rngFor(r);
      const gen = { maxTokens: r.maxTokens, temperature: r.temperature, topP: r.topP, topK: r.topK, rng, stop: r.stop, logprobs: r.logprobs };
      const w = new Writer(res, writeTimeout, gone, outbox);
      if (r.stream) {
        ctx.sse = true;
        res.writeHead(200, SSE_HEAD);
        for (let pi = 0; pi < promptIds.length; pi++) {
          for (let j = 0; j < r.n; j++) {
            if (gone()) throw new ClientGone('the client closed the connection');
            const index = pi * r.n + j;
            const chunk = (text: string, logprobs: CompletionLogprobs | null, finish: string | null) =>
              sse(w, { id, object: 'text_completion', created: createdAt, model: modelName, choices: [{ index, text, logprobs, finish_reason: finish }] });
            let offset = 0;
            if (r.echo) {
              if (r.logprobs !== null) {
                const e = await echoLogprobs(promptIds[pi], r.logprobs, gone);
                // a long echo goes out as several events (their texts and arrays concatenate)
                for (let a = 0; a < e.lp.tokens.length; a += ECHO_CHUNK) {
                  const part: CompletionLogprobs = {
                    tokens: e.lp.tokens.slice(a, a + ECHO_CHUNK),
                    token_logprobs: e.lp.token_logprobs.slice(a, a + ECHO_CHUNK),
                    top_logprobs: e.lp.top_logprobs.slice(a, a + ECHO_CHUNK),
                    text_offset: e.lp.text_offset.slice(a, a + ECHO_CHUNK),
                  };
                  await chunk(part.tokens.join(''), part, null);
                }
                offset = e.end.offset;
              } else {
                const t = promptText(promptIds[pi]);
                await chunk(t, null, null);
                offset = codePoints(t);
              }
            }
            const out = await generateCounted(promptIds[pi], gen, acct, async (text, tok) => {
              if (gone()) return false;
              if (text === '' && (tok === null || r.logprobs === null)) return true;
              const lp = tok && r.logprobs !== null ? generatedLogprobs([tok], r.logprobs, offset) : null;
              offset += codePoints(text);
              await chunk(text, lp, null);
              return true;
            });
            await chunk('', null, out.finishReason);
          }
        }
        if (r.includeUsage)
          await sse(w, {
            id,
            object: 'text_completion',
            created: createdAt,
            model: modelName,
            choices: [],
            usage: { prompt_tokens: acct.p, completion_tokens: acct.c, total_tokens: acct.p + acct.c },
          });
        await w.end('data: [DONE]\n\n');
        return;
      }
      // One choice at a time: computed, then written in pieces (the response is never whole in memory).
      let started = false;
      const start = () => {
        if (started) return;
        started = true;
        res.writeHead(200, { 'content-type': 'application/json' });
        w.push(`{"id":${JSON.stringify(id)},"object":"text_completion","created":${createdAt},"model":${JSON.stringify(modelName)},"choices":[`);
      };
      for (let pi = 0; pi < promptIds.length; pi++) {
        let echo: { text: string; lp: CompletionLogprobs | null; offset: number } | null = null;
        if (r.echo) {
          if (r.logprobs !== null) {
            const e = await echoLogprobs(promptIds[pi], r.logprobs, gone);
            echo = { text: e.text, lp: e.lp, offset: e.end.offset };
          } else {
            const t = promptText(promptIds[pi]);
            echo = { text: t, lp: null, offset: codePoints(t) };
          }
        }
        for (let j = 0; j < r.n; j++) {
          if (gone()) throw new ClientGone('the client closed the connection');
          const out = await generateCounted(promptIds[pi], gen, acct, () => !gone());
          const g = r.logprobs !== null ? generatedLogprobs(out.tokens, r.logprobs, echo?.offset ?? 0) : null;
          const index = pi * r.n + j;
          start();
          w.push(`${index === 0 ? '' : ','}{"index":${index},"text":${JSON.stringify((echo?.text ?? '') + out.text)},"logprobs":`);
          await writeLogprobs(w, g ? (echo?.lp ?? null) : null, g);
          w.push(`,"finish_reason":${JSON.stringify(out.finishReason)}}`);
          await w.flush();
        }
      }
      start();
      await w.end(`],"usage":${JSON.stringify({ prompt_tokens: acct.p, completion_tokens: acct.c, total_tokens: acct.p + acct.c })}}`);
    });
  }

  type ChatLogprob = { token: string; logprob: number; bytes: number[]; top_logprobs: { token: string; logprob: number; bytes: number[] }[] };

  function chatLogprobs(tokens: GeneratedToken[], k: number): { content: ChatLogprob[] } {
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

  async function chat(body: unknown, res: http.ServerResponse, ctx: Ctx): Promise<void> {
    const r = parseChat(body, modelName, limits);
    const text = renderChat(r.messages);
    precheck(text, 0);
    const { acct, gone } = ctx;
    const id = newId('chatcmpl'),
      createdAt = Math.floor(Date.now() / 1000);
    const stop = r.stop.includes(CHAT_STOP) ? r.stop : [...r.stop, CHAT_STOP].slice(-4);
    await queue.run(async () => {
      if (gone()) return;
      const prompt = await tokenize(text, 0);
      checkWork([prompt.length], r.n, r.maxTokens, false, r.logprobs ? r.topLogprobs : null);
      acct.p = prompt.length * r.n;
      const warning = contextWarning(prompt.length, engine.blockSize, false, true, engine.echoStride);
      if (warning !== null) {
        res.setHeader(WARNING_HEADER, warning);
        opts.onWarning?.(warning);
      }
      const rng = rngFor(r);
      const gen = { maxTokens: r.maxTokens, temperature: r.temperature, topP: r.topP, topK: r.topK, rng, stop, logprobs: r.logprobs ? r.topLogprobs : null };
      const w = new Writer(res, writeTimeout, gone, outbox);
      if (r.stream) {
        ctx.sse = true;
        res.writeHead(200, SSE_HEAD);
        for (let j = 0; j < r.n; j++) {
          if (gone()) throw new ClientGone('the client closed the connection');
          const chunk = (delta: Record<string, string>, logprobs: unknown, finish: string | null) =>
            sse(w, {
              id,
              object: 'chat.completion.chunk',
              created: createdAt,
              model: modelName,
              choices: [{ index: j, delta, logprobs, finish_reason: finish }],
            });
          await chunk({ role: 'assistant', content: '' }, null, null);
          let first = true;
          const out = await generateCounted(prompt, gen, acct, async (text, tok) => {
            if (gone()) return false;
            if (text === '' && (tok === null || !r.logprobs)) return true;
            // the completion continues "Assistant:"; its leading space belongs to the template
            if (first && text.length) {
              text = text.replace(/^ /, '');
              first = false;
            }
            await chunk({ content: text }, tok && r.logprobs ? chatLogprobs([tok], r.topLogprobs) : null, null);
            return true;
          });
          await chunk({}, null, out.finishReason);
        }
        if (r.includeUsage)
          await sse(w, {
            id,
            object: 'chat.completion.chunk',
            created: createdAt,
            model: modelName,
            choices: [],
            usage: { prompt_tokens: acct.p, completion_tokens: acct.c, total_tokens: acct.p + acct.c },
          });
        await w.end('data: [DONE]\n\n');
        return;
      }
      let started = false;
      const start = () => {
        if (started) return;
        started = true;
        res.writeHead(200, { 'content-type': 'application/json' });
        w.push(`{"id":${JSON.stringify(id)},"object":"chat.completion","created":${createdAt},"model":${JSON.stringify(modelName)},"choices":[`);
      };
      for (let j = 0; j < r.n; j++) {
        if (gone()) throw new ClientGone('the client closed the connection');
        const out = await generateCounted(prompt, gen, acct, () => !gone());
        start();
        w.push(`${j === 0 ? '' : ','}{"index":${j},"message":${JSON.stringify({ role: 'assistant', content: out.text.replace(/^ /, '') })},"logprobs":`);
        if (r.logprobs) {
          w.push('{"content":');
          await writeArray(w, chatLogprobs(out.tokens, r.topLogprobs).content);
          w.push('}');
        } else w.push('null');
        w.push(`,"finish_reason":${JSON.stringify(out.finishReason)}}`);
        await w.flush();
      }
      start();
      await w.end(`],"usage":${JSON.stringify({ prompt_tokens: acct.p, completion_tokens: acct.c, total_tokens: acct.p + acct.c })}}`);
    });
  }

  const routes: Record<
    string,
    {
      method: string;
      handler?: (body: unknown, res: http.ServerResponse, ctx: Ctx) => Promise<void>;
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
  // The tokenizer, as lm-evaluation-harness's remote tokenizer and vLLM's routes ask for it: at the
  // root and under /v1/.
  for (const base of ['', '/v1']) {
    routes[`${base}/tokenizer_info`] = { method: 'GET', get: (res) => sendJson(res, 200, tokenizerInfo()) };
    routes[`${base}/tokenize`] = { method: 'POST', handler: tokenizeRoute };
    routes[`${base}/detokenize`] = { method: 'POST', handler: detokenizeRoute };
  }

  /** End-of-text and beginning-of-text tokens (GPT-2 uses one token for both, as its Hugging Face tokenizer says). */
  function tokenizerInfo(): Record<string, unknown> {
    const t = engine.tokenizer;
    // A byte-level or char model has no end-of-text token; its documents are separated by a blank
    // line, so the newline stands in for it (rolling windows start after one).
    const eosId = t.eot ?? (t.name === 'byte' ? 10 : null);
    const eos = t.eot !== null ? EOT_TEXT : eosId === 10 ? '\n' : null;
    return {
      tokenizer: t.name,
      eos_token: eos,
      eos_token_id: eosId,
      bos_token: eos,
      bos_token_id: eosId,
      pad_token: null,
      vocab_size: t.vocabSize,
      model_max_length: engine.blockSize,
      special_tokens: t.eot !== null ? { [EOT_TEXT]: t.eot } : {},
    };
  }

  async function tokenizeRoute(body: unknown, res: http.ServerResponse): Promise<void> {
    const b = body as { prompt?: unknown; add_special_tokens?: unknown };
    if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new ApiError(400, 'the body must be a JSON object {"prompt": "..."}', null);
    if (typeof b.prompt !== 'string')
      throw new ApiError(
        400,
        `'prompt' must be a string, got ${b.prompt === null ? 'null' : Array.isArray(b.prompt) ? 'an array' : typeof b.prompt}`,
        'prompt',
      );
    if (b.add_special_tokens !== undefined && typeof b.add_special_tokens !== 'boolean')
      throw new ApiError(400, "'add_special_tokens' must be a boolean", 'add_special_tokens');
    precheck(b.prompt, 0);
    let tokens: number[];
    try {
      tokens = await encodeText(b.prompt, limits.maxPromptTokens);
    } catch (e) {
      if (e instanceof TooManyTokens) throw tooLong(0, `at least ${e.atLeast}`);
      throw e;
    }
    // no beginning-of-text token is added (GPT-2 adds none), whatever add_special_tokens says
    sendJson(res, 200, { tokens, count: tokens.length, max_model_len: engine.blockSize });
  }

  async function detokenizeRoute(body: unknown, res: http.ServerResponse): Promise<void> {
    const b = body as { tokens?: unknown };
    if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new ApiError(400, 'the body must be a JSON object {"tokens": [ids]}', null);
    if (!Array.isArray(b.tokens)) throw new ApiError(400, "'tokens' must be an array of token ids", 'tokens');
    if (b.tokens.length > limits.maxPromptTokens)
      throw new ApiError(400, `'tokens' has ${b.tokens.length} ids, more than this server accepts (--max-prompt-tokens ${limits.maxPromptTokens})`, 'tokens');
    const V = engine.tokenizer.vocabSize;
    b.tokens.forEach((t, i) => {
      if (!Number.isInteger(t) || (t as number) < 0 || (t as number) >= V)
        throw new ApiError(400, `tokens[${i}] = ${JSON.stringify(t)} is not a token id in [0, ${V})`, 'tokens');
    });
    sendJson(res, 200, { prompt: engine.tokenizer.decode(b.tokens as number[]) });
  }

  /** Refusals that depend on where a request comes from (before its body is read). */
  function guard(req: http.IncomingMessage): void {
    if (allowedHosts && !hostAllowed(req.headers.host, allowedHosts))
      throw new ApiError(
        403,
        `this server is bound to the loopback and only answers requests to ${[...allowedHosts].join(', ')}; the Host header ${JSON.stringify((req.headers.host ?? '').slice(0, 100))} is refused`,
        null,
        'forbidden_host',
      );
    const site = req.headers['sec-fetch-site'];
    if (site === 'cross-site' || site === 'same-site')
      throw new ApiError(403, `requests made by a web page of another site are refused (Sec-Fetch-Site: ${site})`, null, 'forbidden_origin');
    const origin = req.headers.origin;
    if (origin !== undefined) {
      const h = (req.headers.host ?? '').toLowerCase();
      const o = origin.toLowerCase();
      if (!h || (o !== `http://${h}` && o !== `https://${h}`))
        throw new ApiError(403, `requests made by a web page of another origin (${origin.slice(0, 100)}) are refused`, null, 'forbidden_origin');
    }
  }

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const t0 = performance.now();
    const path = (req.url ?? '/').split('?')[0].replace(/\/+$/, '') || '/';
    let closed = false;
    res.on('close', () => {
      closed = true;
    });
    const ctx: Ctx = { acct: { p: 0, c: 0 }, gone: () => closed || res.destroyed, sse: false };
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
    const held = { n: 0 };
    stats.requests++;
    stats.byPath[path] = (stats.byPath[path] ?? 0) + 1;
    try {
      guard(req);
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
          `no route ${req.method} ${path.slice(0, 200)}; this server answers GET /v1/models, POST /v1/completions, POST /v1/chat/completions, GET /tokenizer_info, POST /tokenize, POST /detokenize`,
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
        const ct = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
        if (ct !== 'application/json')
          throw new ApiError(
            415,
            `send the request body as JSON with the header "Content-Type: application/json"${ct ? ` (got ${JSON.stringify(ct.slice(0, 100))})` : ' (it is missing)'}`,
            null,
            'unsupported_media_type',
          );
        if ((req.headers.expect ?? '').toLowerCase() === '100-continue') res.writeContinue();
        const body = parseJson(await readBody(req, maxBody, budget, held));
        await route.handler!(body, res, ctx);
      }
    } catch (e) {
      if (e instanceof ClientGone) {
        res.destroy();
      } else {
        const err = e instanceof ApiError ? e : new ApiError(500, `internal error: ${(e as Error)?.message ?? String(e)}`, null, 'internal_error');
        stats.errors++;
        if (!res.headersSent) {
          if (err.status === 503) res.setHeader('retry-after', '1');
          // A body that was not read is not read now either: a small one is drained so the
          // connection can be reused, a large or unknown one ends the connection unread.
          const unread = !req.complete;
          const declared = Number(req.headers['content-length']);
          const drain = unread && (req.headers['content-length'] === undefined ? req.headers['transfer-encoding'] === undefined : declared <= 64 * 1024);
          if (unread && !drain) {
            res.setHeader('connection', 'close');
            req.pause();
          }
          sendJson(res, err.status, err.body());
          if (drain) req.resume();
        } else if (!res.writableEnded) {
          // a response that failed mid-way: a stream reports it in the stream; a JSON body cannot
          try {
            if (ctx.sse) res.end(`data: ${JSON.stringify(err.body())}\n\n`);
            else res.destroy();
          } catch {
            /* the client is gone */
          }
        }
      }
    } finally {
      budget.give(held.n);
      held.n = 0;
      opts.onRequest?.({
        method: req.method ?? '?',
        path,
        status: res.statusCode,
        ms: performance.now() - t0,
        promptTokens: ctx.acct.p,
        completionTokens: ctx.acct.c,
      });
    }
  };
  const server = http.createServer(handle);
  // Expect: 100-continue is answered only once the request passed the checks above
  server.on('checkContinue', handle);
  // Idle keep-alive connections outlive the clients' own idle timeouts (undici: 4 s), so a client
  // never sends on a connection the server is closing. Headers must arrive within 30 s and a whole
  // request within 2 minutes.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 30_000;
  server.requestTimeout = 120_000;
  server.maxConnections = opts.maxConnections ?? DEFAULT_SERVE.maxConnections;
  const perClient = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const key = clientKey(socket);
    const n = perClient.get(key) ?? 0;
    if (n >= perClientMax) {
      socket.end(
        `HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\nretry-after: 1\r\nx-content-type-options: nosniff\r\ncross-origin-resource-policy: same-origin\r\n\r\n${JSON.stringify(busy(`this client already holds ${n} connections (at most ${perClientMax})`).body())}`,
      );
      socket.destroySoon();
      return;
    }
    perClient.set(key, n + 1);
    socket.once('close', () => {
      const m = (perClient.get(key) ?? 1) - 1;
      if (m > 0) perClient.set(key, m);
      else perClient.delete(key);
    });
  });
  server.on('clientError', (_err, socket) => {
    if (socket.writable)
      socket.end(
        'HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nconnection: close\r\nx-content-type-options: nosniff\r\ncross-origin-resource-policy: same-origin\r\n\r\n{"error":{"message":"malformed HTTP request","type":"invalid_request_error","param":null,"code":"bad_request"}}',
      );
  });

  await new Promise<void>((resolve, reject) => {
    const why: Record<string, string> = {
      EADDRINUSE: 'the port is in use',
      EACCES: 'permission denied',
      EADDRNOTAVAIL: 'no such address on this machine',
      ENOTFOUND: 'no such host name',
      EAI_AGAIN: 'the host name could not be resolved now',
      EAI_NONAME: 'no such host name',
      EAI_FAIL: 'the host name could not be resolved',
      EAFNOSUPPORT: 'this machine does not support that address family',
    };
    const fail = (e: NodeJS.ErrnoException) =>
      reject(e.code && why[e.code] ? new UsageError(`cannot listen on ${host}:${opts.port ?? 8000}: ${why[e.code]} (${e.code})`) : e);
    server.once('error', fail);
    server.listen(opts.port ?? 8000, host, () => {
      server.off('error', fail);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  if (isLoopback(host)) allowedHosts = loopbackHosts(host === 'localhost' ? 'localhost' : addr.address, addr.port);
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

interface Acct {
  p: number;
  c: number;
}

/** Per request: token counts for the log, whether the client has gone, whether the answer is a stream. */
interface Ctx {
  acct: Acct;
  gone: () => boolean;
  sse: boolean;
}

function sendJson(res: http.ServerResponse, status: number, obj: unknown): void {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
