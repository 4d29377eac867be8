// What every route of `crate-ts serve` shares: the engine, the limits, the queue in front of the
// model, tokenization under the limits, the work bound of one request, and the logprobs objects
// in OpenAI's completion shape. One ServeContext per server (startServer makes it); one
// RequestState per request (the router makes it).
import type * as http from 'node:http';
import { randomBytes } from 'node:crypto';
import { Rng } from '../util/rng.js';
import type { Engine } from './engine.js';
import { yieldNow, type GeneratedToken, type TopEntry } from './sampling.js';
import { ApiError, type SamplingParams, type ServeLimits } from './validate.js';
import { TextStream, codePoints } from './tokens.js';
import { BoundedEncoder, TooManyTokens } from './encode.js';
import { ClientGone, Outbox } from './http.js';

/** The end-of-text token's text (GPT-2's special token). */
export const EOT_TEXT = '<|endoftext|>';

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

/**
 * The requests in front of the model: up to `slots` compute at once (their work is batched by the
 * engine), and at most 1 + `maxWaiting` are admitted in all; beyond that the answer is 503. Waiting
 * requests are taken round-robin over the clients that have some waiting (a client is its
 * address), first come first served within one client, so a client that sends many requests at
 * once waits for its own and cannot starve another.
 */
export class Queue {
  private running = 0;
  private waitingCount = 0;
  /** Waiting requests per client, and the clients in their turn order. */
  private readonly waiting = new Map<string, (() => void)[]>();
  private readonly turns: string[] = [];
  constructor(
    private readonly slots: number,
    private readonly maxWaiting: number,
  ) {}
  /** Requests admitted (computing or waiting). */
  get depth(): number {
    return this.running + this.waitingCount;
  }
  async run<T>(client: string, fn: () => Promise<T>): Promise<T> {
    if (this.depth >= 1 + this.maxWaiting)
      throw new ApiError(503, `the server is busy: ${this.depth - 1} requests are already waiting; retry later`, null, 'overloaded', 'server_error');
    if (this.running >= this.slots || this.waitingCount > 0) {
      await new Promise<void>((resolve) => {
        const list = this.waiting.get(client);
        if (list) list.push(resolve);
        else {
          this.waiting.set(client, [resolve]);
          this.turns.push(client);
        }
        this.waitingCount++;
      });
    } else this.running++;
    try {
      return await fn();
    } finally {
      this.release();
    }
  }
  /** A slot is free: it goes to the first waiter of the client whose turn it is (the slot passes on). */
  private release(): void {
    const client = this.turns.shift();
    if (client === undefined) {
      this.running--;
      return;
    }
    const list = this.waiting.get(client)!;
    const next = list.shift()!;
    if (list.length > 0) this.turns.push(client);
    else this.waiting.delete(client);
    this.waitingCount--;
    next();
  }
}

/**
 * Token ids as a route receives them: a plain array, or an Int32Array when a large body was parsed
 * by a worker (src/serve/json-pool.ts). Requests that only need their prompts' lengths never copy
 * them; the engine gets a plain array (plainIds).
 */
export type Ids = number[] | Int32Array;

/** Ids as the plain array the engine takes (a copy only for an Int32Array). */
export function plainIds(ids: Ids): number[] {
  if (Array.isArray(ids)) return ids;
  const out = new Array<number>(ids.length);
  for (let i = 0; i < ids.length; i++) out[i] = ids[i];
  return out;
}

/** Prompt and completion tokens of one request (for the usage object and the access log). */
export interface Acct {
  p: number;
  c: number;
}

/** Per request: token counts for the log, whether the client has gone, whether the answer is a stream. */
export interface RequestState {
  /** The client's address (the queue takes clients in turn). */
  client: string;
  acct: Acct;
  gone: () => boolean;
  sse: boolean;
}

export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

export type ChatLogprob = { token: string; logprob: number; bytes: number[]; top_logprobs: { token: string; logprob: number; bytes: number[] }[] };

export const newId = (prefix: string) => `${prefix}-${randomBytes(12).toString('hex')}`;

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

export interface ContextOptions {
  modelName: string;
  limits: ServeLimits;
  maxQueue: number;
  /** Requests computing at once. */
  maxBatch: number;
  /** Bytes the model may use for the requests computing together (see Engine.workBytes). */
  maxBatchBytes: number;
  writeTimeoutMs: number;
  onWarning?: (message: string) => void;
}

/** The shared state and helpers of one server's routes. */
export class ServeContext {
  readonly modelName: string;
  readonly limits: ServeLimits;
  readonly queue: Queue;
  readonly maxBatchBytes: number;
  /**
   * Estimated memory of the requests computing now (admitted by reserveMemory): the model's shared
   * forward buffer counts once, at the largest any of them needs; what each holds alone adds up.
   */
  private readonly reserved: { shared: number; own: number }[] = [];
  readonly writeTimeoutMs: number;
  readonly outbox = new Outbox();
  /** Unix seconds when the server started (the model's `created`). */
  readonly created = Math.floor(Date.now() / 1000);
  private readonly onWarning?: (message: string) => void;

  private constructor(
    readonly engine: Engine,
    readonly encoder: BoundedEncoder,
    o: ContextOptions,
  ) {
    this.modelName = o.modelName;
    this.limits = o.limits;
    this.queue = new Queue(o.maxBatch, o.maxQueue);
    this.maxBatchBytes = o.maxBatchBytes;
    this.writeTimeoutMs = o.writeTimeoutMs;
    this.onWarning = o.onWarning;
  }

  static async create(engine: Engine, o: ContextOptions): Promise<ServeContext> {
    return new ServeContext(engine, await BoundedEncoder.create(engine.tokenizer), o);
  }

  tooLong(i: number, n: string): ApiError {
    return new ApiError(
      400,
      `prompt ${i} has ${n} tokens, more than this server accepts (--max-prompt-tokens ${this.limits.maxPromptTokens})`,
      'prompt',
      'context_length_exceeded',
    );
  }

  /** Refusals that need no tokenization (before the request waits in the queue). */
  precheck(p: string | Ids, i: number): void {
    if (typeof p === 'string' && p.length > this.encoder.maxChars(this.limits.maxPromptTokens))
      throw this.tooLong(i, `at least ${Math.ceil(p.length / this.encoder.maxTokenBytes)}`);
    if (typeof p !== 'string' && p.length > this.limits.maxPromptTokens) throw this.tooLong(i, String(p.length));
  }

  /**
   * Text to ids. The literal end-of-text string "<|endoftext|>" is the end-of-text token (50256 for
   * GPT-2 BPE), as OpenAI-compatible servers built on Hugging Face tokenizers read it; the text
   * between is encoded as usual. Byte-level and char models have no such token: the string is text.
   */
  async encodeText(p: string, maxTokens: number): Promise<number[]> {
    const eot = this.engine.tokenizer.eot;
    if (eot === null || !p.includes(EOT_TEXT)) return this.encoder.encode(p, maxTokens);
    const out: number[] = [];
    const parts = p.split(EOT_TEXT);
    for (let j = 0; j < parts.length; j++) {
      if (j > 0) out.push(eot);
      if (out.length > maxTokens) throw new TooManyTokens(out.length, maxTokens);
      if (parts[j]) for (const id of await this.encoder.encode(parts[j], maxTokens - out.length)) out.push(id);
    }
    return out;
  }

  /** A prompt (text or ids) to ids, within --max-prompt-tokens and not empty. */
  async tokenize(p: string | Ids, i: number): Promise<Ids> {
    let ids: Ids;
    if (typeof p === 'string') {
      try {
        ids = await this.encodeText(p, this.limits.maxPromptTokens);
      } catch (e) {
        if (e instanceof TooManyTokens) throw this.tooLong(i, `at least ${e.atLeast}`);
        throw e;
      }
    } else ids = p;
    if (ids.length === 0) throw new ApiError(400, `prompt ${i} encodes to no tokens`, 'prompt');
    if (ids.length > this.limits.maxPromptTokens) throw this.tooLong(i, String(ids.length));
    return ids;
  }

  /** The work bounds of one request, checked before any of it starts. */
  checkWork(lens: number[], n: number, maxTokens: number, echo: boolean, k: number | null): number {
    let tokens = 0,
      entries = 0;
    for (const len of lens) {
      tokens += n * (len + maxTokens);
      if (k !== null) entries += n * ((echo ? len : 0) + maxTokens) * (k + 1);
    }
    if (tokens > this.limits.maxRequestTokens)
      throw new ApiError(
        400,
        `this request asks for ${tokens} tokens of work (prompt tokens + max_tokens, summed over ${lens.length} prompt(s) × n = ${n}), more than this server does per request (--max-request-tokens ${this.limits.maxRequestTokens})`,
        null,
        'request_too_large',
      );
    if (entries > this.limits.maxLogprobEntries)
      throw new ApiError(
        400,
        `this request asks for ${entries} log-probabilities (positions × (alternatives + 1), summed over every choice), more than this server returns per request (--max-request-logprobs ${this.limits.maxLogprobEntries}); ask for fewer alternatives, tokens or choices`,
        'logprobs',
        'request_too_large',
      );
    return tokens;
  }

  /**
   * Reserve the estimated memory of a request's computation (Engine.workBytes) before any of it
   * is allocated; a request that would take the batch past --max-batch-memory is refused with 503
   * (retry-after) instead. Returns the function that gives the reservation back.
   */
  reserveMemory(lens: number[], echo: boolean, maxTokens: number, k: number | null): () => void {
    const need = this.engine.workBytes(lens, echo, maxTokens, k);
    const total = (list: { shared: number; own: number }[]) => list.reduce((m, r) => Math.max(m, r.shared), 0) + list.reduce((a, r) => a + r.own, 0);
    const inUse = total(this.reserved),
      after = total([...this.reserved, need]),
      alone = need.shared + need.own;
    if (after > this.maxBatchBytes) {
      const mib = (b: number) => (b / 2 ** 20).toFixed(1);
      throw new ApiError(
        503,
        alone > this.maxBatchBytes
          ? `this request would need about ${mib(alone)} MiB of model memory, more than this server allows a batch (--max-batch-memory ${mib(this.maxBatchBytes)} MiB); send shorter prompts or fewer of them`
          : `the server is busy: this request would take the batch's model memory to about ${mib(after)} MiB (the requests computing now hold ${mib(inUse)}), more than ${mib(this.maxBatchBytes)} MiB; retry later`,
        null,
        'overloaded',
        'server_error',
      );
    }
    this.reserved.push(need);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.reserved.splice(this.reserved.indexOf(need), 1);
    };
  }

  /** Send a context warning with the response (and tell the server's owner). */
  warn(res: http.ServerResponse, warning: string | null): void {
    if (warning === null) return;
    res.setHeader(WARNING_HEADER, warning);
    this.onWarning?.(warning);
  }

  rngFor(s: SamplingParams): Rng {
    return new Rng(s.seed ?? randomBytes(4).readUInt32LE(0));
  }

  /** Prompt part of a completion's logprobs (echo). */
  async echoLogprobs(ids: Ids, k: number, gone: () => boolean): Promise<{ text: string; lp: CompletionLogprobs; end: TextStream }> {
    const engine = this.engine;
    const { tokenLogprobs, top } = await engine.promptLogprobs(plainIds(ids), k, gone);
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

  /** The text of a prompt's ids (echo without logprobs). */
  promptText(ids: Ids): string {
    const s = new TextStream(this.engine.tokenBytes);
    for (const id of ids) s.push(id);
    s.flush();
    return s.text;
  }

  /** Generated part of a completion's logprobs; offsets start at `startOffset` (after an echo). */
  generatedLogprobs(tokens: GeneratedToken[], k: number, startOffset: number): CompletionLogprobs {
    const stream = new TextStream(this.engine.tokenBytes);
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

  /** A chat completion's logprobs ({content: [...]}, OpenAI's chat shape) for generated tokens. */
  chatLogprobs(tokens: GeneratedToken[], k: number): { content: ChatLogprob[] } {
    const engine = this.engine;
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

  /** Generate with a callback; tokens generated before an abort still count in `acct`. */
  async generateCounted(
    ids: Ids,
    gen: Parameters<Engine['generate']>[1],
    acct: Acct,
    onText: (text: string, tok: GeneratedToken | null) => boolean | Promise<boolean>,
  ): Promise<Awaited<ReturnType<Engine['generate']>>> {
    let seen = 0;
    try {
      // max_tokens 0 needs no copy of the prompt (the engine returns at once)
      const out = await this.engine.generate(gen.maxTokens > 0 ? plainIds(ids) : [], gen, (text, tok) => {
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
}
