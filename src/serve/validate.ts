// Request validation for the OpenAI-compatible endpoints: every field is checked for type and
// range before any work starts, and a bad one becomes an ApiError with the OpenAI error shape
// {error: {message, type, param, code}} and a 4xx status.

/** An error answered to the client (never a crash). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly type: string = status >= 500 ? 'server_error' : 'invalid_request_error',
  ) {
    super(message);
    this.name = 'ApiError';
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export interface ServeLimits {
  /** Prompt tokens per prompt (after tokenization). */
  maxPromptTokens: number;
  /** max_tokens per request. */
  maxTokens: number;
  /** n (choices per prompt). */
  maxN: number;
  /** Prompts in one completions request. */
  maxPrompts: number;
  /** logprobs / top_logprobs. */
  maxLogprobs: number;
  /** Work of one request: prompt tokens plus max_tokens, summed over every choice (n per prompt). */
  maxRequestTokens: number;
  /** Log-probabilities one response may carry: (echoed + generated positions) × (alternatives + 1), over every choice. */
  maxLogprobEntries: number;
}

export const DEFAULT_LIMITS: ServeLimits = {
  maxPromptTokens: 16384,
  maxTokens: 4096,
  maxN: 16,
  maxPrompts: 64,
  maxLogprobs: 20,
  maxRequestTokens: 1 << 20,
  maxLogprobEntries: 1 << 19,
};

export interface SamplingParams {
  maxTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  seed: number | null;
  stop: string[];
  n: number;
  stream: boolean;
  includeUsage: boolean;
}

export interface CompletionRequest extends SamplingParams {
  model: string;
  /**
   * One entry per prompt: text, or token ids (validated against the vocabulary); an Int32Array
   * where the body parser made one of a long array of integers (src/serve/json-pool.ts).
   */
  prompts: (string | number[] | Int32Array)[];
  echo: boolean;
  logprobs: number | null;
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface ChatRequest extends SamplingParams {
  model: string;
  messages: ChatMessage[];
  logprobs: boolean;
  topLogprobs: number;
}

type Json = Record<string, unknown>;

const bad = (param: string, message: string, code = 'invalid_value') => new ApiError(400, message, param, code);

function isObj(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

function optInt(b: Json, key: string, def: number, lo: number, hi: number): number {
  const v = b[key];
  if (v === undefined || v === null) return def;
  if (typeof v !== 'number' || !Number.isInteger(v))
    throw bad(key, `'${key}' must be an integer, got ${typeName(v) === 'number' ? v : typeName(v)}`, 'invalid_type');
  if (v < lo || v > hi) throw bad(key, `'${key}' must be between ${lo} and ${hi}, got ${v}`);
  return v;
}

function optNum(b: Json, key: string, def: number, lo: number, hi: number, loOpen = false): number {
  const v = b[key];
  if (v === undefined || v === null) return def;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(key, `'${key}' must be a number, got ${typeName(v)}`, 'invalid_type');
  if (v > hi || v < lo || (loOpen && v <= lo)) throw bad(key, `'${key}' must be ${loOpen ? '>' : '>='} ${lo} and <= ${hi}, got ${v}`);
  return v;
}

function optBool(b: Json, key: string, def: boolean): boolean {
  const v = b[key];
  if (v === undefined || v === null) return def;
  if (typeof v !== 'boolean') throw bad(key, `'${key}' must be a boolean, got ${typeName(v)}`, 'invalid_type');
  return v;
}

function stopList(b: Json): string[] {
  const v = b.stop;
  if (v === undefined || v === null) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list)) throw bad('stop', `'stop' must be a string or an array of strings, got ${typeName(v)}`, 'invalid_type');
  if (list.length > 4) throw bad('stop', `'stop' may hold at most 4 sequences, got ${list.length}`);
  for (const s of list) {
    if (typeof s !== 'string') throw bad('stop', `'stop' must hold only strings, got ${typeName(s)}`, 'invalid_type');
    if (s.length === 0) throw bad('stop', "'stop' sequences must not be empty");
  }
  return list as string[];
}

/** Fields this server does not implement: rejected when set to anything but their neutral value. */
function unsupported(b: Json): void {
  for (const k of ['presence_penalty', 'frequency_penalty']) {
    if (b[k] !== undefined && b[k] !== null && b[k] !== 0) throw bad(k, `'${k}' is not supported by crate-ts serve (only 0)`, 'unsupported_parameter');
  }
  for (const k of ['logit_bias', 'suffix', 'tools', 'functions', 'response_format']) {
    if (b[k] !== undefined && b[k] !== null) throw bad(k, `'${k}' is not supported by crate-ts serve`, 'unsupported_parameter');
  }
  if (b.best_of !== undefined && b.best_of !== null && b.best_of !== 1 && b.best_of !== b.n)
    throw bad('best_of', "'best_of' is not supported by crate-ts serve (only 1 or n)", 'unsupported_parameter');
}

function modelField(b: Json, served: string): string {
  const m = b.model;
  if (m === undefined) throw bad('model', "'model' is required", 'missing_required_parameter');
  if (typeof m !== 'string') throw bad('model', `'model' must be a string, got ${typeName(m)}`, 'invalid_type');
  if (m !== served) throw new ApiError(404, `The model '${m.slice(0, 200)}' does not exist; this server serves '${served}'`, 'model', 'model_not_found');
  return m;
}

function sampling(b: Json, limits: ServeLimits, defaultMax: number, maxKey = 'max_tokens'): SamplingParams {
  unsupported(b);
  let maxTokens = optInt(b, maxKey, defaultMax, 0, Number.MAX_SAFE_INTEGER);
  if (maxKey === 'max_tokens' && b.max_tokens === undefined && b.max_completion_tokens !== undefined)
    maxTokens = optInt(b, 'max_completion_tokens', defaultMax, 0, Number.MAX_SAFE_INTEGER);
  if (maxTokens > limits.maxTokens)
    throw bad(maxKey, `'${maxKey}' is ${maxTokens}, more than this server allows per request (${limits.maxTokens})`, 'too_many_tokens');
  const so = b.stream_options;
  if (so !== undefined && so !== null && !isObj(so)) throw bad('stream_options', `'stream_options' must be an object, got ${typeName(so)}`, 'invalid_type');
  const includeUsage = isObj(so) ? optBool(so, 'include_usage', false) : false;
  const seed = b.seed === undefined || b.seed === null ? null : optInt(b, 'seed', 0, -(2 ** 53) + 1, 2 ** 53 - 1);
  return {
    maxTokens,
    temperature: optNum(b, 'temperature', 1, 0, 2),
    topP: optNum(b, 'top_p', 1, 0, 1, true),
    topK: (() => {
      const k = optInt(b, 'top_k', -1, -1, Number.MAX_SAFE_INTEGER);
      return k <= 0 ? 0 : k;
    })(),
    seed,
    stop: stopList(b),
    n: optInt(b, 'n', 1, 1, limits.maxN),
    stream: optBool(b, 'stream', false),
    includeUsage,
  };
}

/** Token ids of a prompt given as an array: integers in [0, vocab). */
function tokenArray(v: unknown[] | Int32Array, param: string, vocab: number): number[] | Int32Array {
  if (v.length === 0) throw bad(param, `'${param}' must not be empty`);
  if (v instanceof Int32Array) {
    // integers already (the body parser made it of JSON integers): only the range to check
    for (let i = 0; i < v.length; i++)
      if (v[i] < 0 || v[i] >= vocab) throw bad(param, `'${param}' token ${i} = ${v[i]} is outside the vocabulary [0, ${vocab})`);
    return v;
  }
  for (let i = 0; i < v.length; i++) {
    const t = v[i];
    if (typeof t !== 'number' || !Number.isInteger(t))
      throw bad(param, `'${param}' token ${i} must be an integer token id, got ${typeName(t) === 'number' ? t : typeName(t)}`, 'invalid_type');
    if (t < 0 || t >= vocab) throw bad(param, `'${param}' token ${i} = ${t} is outside the vocabulary [0, ${vocab})`);
  }
  return v as number[];
}

/** Parse and check a POST /v1/completions body. */
export function parseCompletion(b: unknown, served: string, vocab: number, limits: ServeLimits): CompletionRequest {
  if (!isObj(b)) throw bad('', `the request body must be a JSON object, got ${typeName(b)}`, 'invalid_type');
  const model = modelField(b, served);
  const p = b.prompt;
  let prompts: (string | number[] | Int32Array)[];
  const ids = (x: unknown): x is unknown[] | Int32Array => Array.isArray(x) || x instanceof Int32Array;
  if (p === undefined || p === null) throw bad('prompt', "'prompt' is required", 'missing_required_parameter');
  if (typeof p === 'string') prompts = [p];
  else if (p instanceof Int32Array) prompts = [tokenArray(p, 'prompt', vocab)];
  else if (Array.isArray(p)) {
    if (p.length === 0) throw bad('prompt', "'prompt' must not be an empty array");
    if (p.every((x) => typeof x === 'string')) prompts = p as string[];
    else if (p.every((x) => typeof x === 'number')) prompts = [tokenArray(p, 'prompt', vocab)];
    else if (p.every(ids)) prompts = (p as (unknown[] | Int32Array)[]).map((x, i) => tokenArray(x, `prompt[${i}]`, vocab));
    else throw bad('prompt', "'prompt' must be a string, an array of strings, an array of token ids, or an array of arrays of token ids", 'invalid_type');
  } else throw bad('prompt', `'prompt' must be a string or an array, got ${typeName(p)}`, 'invalid_type');
  if (prompts.length > limits.maxPrompts) throw bad('prompt', `at most ${limits.maxPrompts} prompts per request, got ${prompts.length}`);
  for (let i = 0; i < prompts.length; i++) if (prompts[i] === '') throw bad('prompt', `prompt ${i} is empty; give at least one token`);
  const s = sampling(b, limits, 16);
  const echo = optBool(b, 'echo', false);
  let logprobs: number | null = null;
  if (b.logprobs !== undefined && b.logprobs !== null) {
    if (typeof b.logprobs === 'boolean')
      throw bad('logprobs', "'logprobs' of /v1/completions is an integer (the number of alternatives), not a boolean", 'invalid_type');
    logprobs = optInt(b, 'logprobs', 0, 0, limits.maxLogprobs);
  }
  if (s.n * prompts.length > limits.maxN * 4)
    throw bad('n', `n × prompts = ${s.n * prompts.length} is more choices than this server makes per request (${limits.maxN * 4})`);
  return { ...s, model, prompts, echo, logprobs };
}

/** Message content: a string, or an array of {type: "text", text} parts (joined). */
function contentOf(m: Json, i: number): string {
  const c = m.content;
  if (typeof c === 'string') return c;
  if (c === null && m.role === 'assistant') return '';
  if (Array.isArray(c)) {
    return c
      .map((part, j) => {
        if (!isObj(part) || part.type !== 'text' || typeof part.text !== 'string')
          throw bad(
            `messages[${i}].content[${j}]`,
            `messages[${i}].content[${j}] must be {"type": "text", "text": string}; crate-ts serve accepts text only`,
            'invalid_type',
          );
        return part.text;
      })
      .join('');
  }
  throw bad(`messages[${i}].content`, `messages[${i}].content must be a string or an array of text parts, got ${typeName(c)}`, 'invalid_type');
}

/** Parse and check a POST /v1/chat/completions body. */
export function parseChat(b: unknown, served: string, limits: ServeLimits): ChatRequest {
  if (!isObj(b)) throw bad('', `the request body must be a JSON object, got ${typeName(b)}`, 'invalid_type');
  const model = modelField(b, served);
  const ms = b.messages;
  if (ms === undefined || ms === null) throw bad('messages', "'messages' is required", 'missing_required_parameter');
  if (!Array.isArray(ms)) throw bad('messages', `'messages' must be an array, got ${typeName(ms)}`, 'invalid_type');
  if (ms.length === 0) throw bad('messages', "'messages' must hold at least one message");
  const messages: ChatMessage[] = ms.map((m, i) => {
    if (!isObj(m)) throw bad(`messages[${i}]`, `messages[${i}] must be an object, got ${typeName(m)}`, 'invalid_type');
    let role = m.role;
    if (role === 'developer') role = 'system';
    if (role !== 'system' && role !== 'user' && role !== 'assistant')
      throw bad(`messages[${i}].role`, `messages[${i}].role must be system, user or assistant, got ${JSON.stringify(role)?.slice(0, 40)}`);
    return { role, content: contentOf(m, i) };
  });
  const s = sampling(b, limits, Math.min(256, limits.maxTokens));
  const logprobs = optBool(b, 'logprobs', false);
  const topLogprobs = optInt(b, 'top_logprobs', 0, 0, limits.maxLogprobs);
  if (topLogprobs > 0 && !logprobs) throw bad('top_logprobs', "'top_logprobs' needs 'logprobs': true");
  return { ...s, model, messages, logprobs, topLogprobs };
}
