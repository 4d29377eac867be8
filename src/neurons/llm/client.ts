// The HTTP side of explain/simulate: the official `openai` package talks to any OpenAI-compatible
// server (vLLM, llama.cpp's server, Ollama, a hosted API, crate-ts serve). Around it:
//   - bounded concurrency (at most `concurrency` requests in flight; cache hits take no slot);
//   - retries with exponential backoff and jitter on 429, 408, 409, 5xx, timeouts and dropped
//     connections (honouring Retry-After), never on other 4xx: a bad request fails at once;
//   - the on-disk cache of cache.ts: a response that arrived is never requested again;
//   - a dry-run mode that counts the calls (and estimated prompt tokens) a run would make;
//   - counters for the summary: calls made, cached, failed, retried, tokens sent.
import OpenAI from 'openai';
import { DiskCache, requestKey } from './cache.js';

export interface Endpoint {
  baseURL: string;
  apiKey: string;
  model: string;
}

export type Api = 'completions' | 'chat/completions';

export interface ClientOptions {
  concurrency?: number;
  cache?: DiskCache | null;
  /** Retries after the first attempt (default 6). */
  maxRetries?: number;
  /** First backoff delay (default 500 ms), doubled per retry up to maxDelayMs (default 30 s), with jitter. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Per-request timeout (default 300 s). */
  timeoutMs?: number;
  /** Count what would be sent; send nothing (cached responses are still read). */
  dryRun?: boolean;
  /** Prompt-token estimate for dry runs and servers that report no usage (default: characters / 4). */
  countTokens?: (text: string) => number;
  /** Called before each retry (for logging). */
  onRetry?: (info: { attempt: number; delayMs: number; reason: string }) => void;
  /** Replaceable in tests. */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

export interface ClientStats {
  /** Requests answered by the server. */
  calls: number;
  /** Requests answered from the cache. */
  cached: number;
  /** Requests that failed for good (after retries, or a 4xx). */
  failed: number;
  retries: number;
  /** Prompt tokens sent (the server's usage.prompt_tokens when it reports it, else the estimate). */
  promptTokens: number;
  completionTokens: number;
  /** Dry run: requests that would be sent, and their estimated prompt tokens. */
  planned: number;
  plannedPromptTokens: number;
}

/** A request that failed for good; `status` is the HTTP status when there was one. */
export class LlmCallError extends Error {
  constructor(
    message: string,
    readonly status: number | null,
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'LlmCallError';
  }
}

function promptText(body: Record<string, unknown>): string {
  if (typeof body.prompt === 'string') return body.prompt;
  if (Array.isArray(body.messages)) return (body.messages as { content?: unknown }[]).map((m) => (typeof m.content === 'string' ? m.content : '')).join('\n');
  return '';
}

/** Is this error worth retrying, and what does it say. */
export function classify(e: unknown): { retryable: boolean; status: number | null; reason: string; retryAfterMs: number | null } {
  if (e instanceof OpenAI.APIConnectionTimeoutError) return { retryable: true, status: null, reason: 'timed out', retryAfterMs: null };
  if (e instanceof OpenAI.APIConnectionError)
    return { retryable: true, status: null, reason: `connection failed (${(e.cause as Error | undefined)?.message ?? e.message})`, retryAfterMs: null };
  if (e instanceof OpenAI.APIError) {
    const status = typeof e.status === 'number' ? e.status : null;
    const h = (e.headers as { get?: (k: string) => string | null } | undefined)?.get?.('retry-after') ?? null;
    const ra = h !== null && Number.isFinite(Number(h)) ? Number(h) * 1000 : null;
    const retryable = status === null || status === 408 || status === 409 || status === 429 || status >= 500;
    const msg = (e.error as { message?: string } | undefined)?.message ?? e.message;
    return { retryable, status, reason: `HTTP ${status ?? '?'}: ${String(msg).slice(0, 300)}`, retryAfterMs: ra };
  }
  return { retryable: false, status: null, reason: (e as Error)?.message ?? String(e), retryAfterMs: null };
}

export class LlmClient {
  readonly stats: ClientStats = { calls: 0, cached: 0, failed: 0, retries: 0, promptTokens: 0, completionTokens: 0, planned: 0, plannedPromptTokens: 0 };
  private readonly sdks = new Map<string, OpenAI>();
  private inFlight = 0;
  private readonly pending = new Map<string, Promise<unknown>>();
  private readonly plannedKeys = new Set<string>();
  private readonly waiters: (() => void)[] = [];
  private readonly o: Required<Omit<ClientOptions, 'cache' | 'onRetry'>> & Pick<ClientOptions, 'cache' | 'onRetry'>;

  constructor(opts: ClientOptions = {}) {
    this.o = {
      concurrency: opts.concurrency ?? 8,
      cache: opts.cache ?? null,
      maxRetries: opts.maxRetries ?? 6,
      baseDelayMs: opts.baseDelayMs ?? 500,
      maxDelayMs: opts.maxDelayMs ?? 30_000,
      timeoutMs: opts.timeoutMs ?? 300_000,
      dryRun: opts.dryRun ?? false,
      countTokens: opts.countTokens ?? ((t) => Math.ceil(t.length / 4)),
      onRetry: opts.onRetry,
      sleep: opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms))),
      random: opts.random ?? Math.random,
    };
    if (!Number.isInteger(this.o.concurrency) || this.o.concurrency < 1)
      throw new RangeError(`concurrency must be a positive integer, got ${this.o.concurrency}`);
  }

  get cache(): DiskCache | null {
    return this.o.cache ?? null;
  }
  get dryRun(): boolean {
    return this.o.dryRun;
  }
  get concurrency(): number {
    return this.o.concurrency;
  }

  private sdk(ep: Endpoint): OpenAI {
    const k = `${ep.baseURL}\n${ep.apiKey}`;
    let c = this.sdks.get(k);
    if (!c) {
      c = new OpenAI({ baseURL: ep.baseURL, apiKey: ep.apiKey || 'none', maxRetries: 0, timeout: this.o.timeoutMs });
      this.sdks.set(k, c);
    }
    return c;
  }

  private async acquire(): Promise<void> {
    if (this.inFlight < this.o.concurrency) {
      this.inFlight++;
      return;
    }
    await new Promise<void>((r) => this.waiters.push(r));
  }

  private release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.inFlight--;
  }

  /** Is this request answered by the cache? */
  isCached(ep: Endpoint, api: Api, body: Record<string, unknown>): boolean {
    return this.o.cache?.has(requestKey(api, { ...body, model: ep.model })) ?? false;
  }

  /**
   * Send one request (body without `model`; the endpoint's model is added) and return what
   * `keep(response)` keeps of it (also what the cache stores). Dry run: null for uncached requests.
   */
  async request<T = unknown>(ep: Endpoint, api: Api, body: Record<string, unknown>, keep: (response: unknown) => T = (r) => r as T): Promise<T | null> {
    const full = { ...body, model: ep.model };
    const key = requestKey(api, full);
    // the same request already in flight (a record shared by two scoring sets): wait for it
    const pending = this.pending.get(key);
    if (pending) {
      this.stats.cached++;
      return (await pending) as T | null;
    }
    const p = this.send(key, ep, api, full, keep);
    this.pending.set(key, p);
    try {
      return await p;
    } finally {
      this.pending.delete(key);
    }
  }

  private async send<T>(key: string, ep: Endpoint, api: Api, full: Record<string, unknown>, keep: (response: unknown) => T): Promise<T | null> {
    const hit = this.o.cache?.get(key);
    if (hit !== undefined) {
      this.stats.cached++;
      return hit as T;
    }
    if (this.o.dryRun) {
      if (this.plannedKeys.has(key)) {
        this.stats.cached++;
        return null;
      }
      this.plannedKeys.add(key);
      this.stats.planned++;
      this.stats.plannedPromptTokens += this.o.countTokens(promptText(full));
      return null;
    }
    await this.acquire();
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          const sdk = this.sdk(ep);
          const resp =
            api === 'completions'
              ? await sdk.completions.create(full as unknown as OpenAI.CompletionCreateParamsNonStreaming)
              : await sdk.chat.completions.create(full as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming);
          this.stats.calls++;
          const usage = (resp as { usage?: { prompt_tokens?: number; completion_tokens?: number } }).usage;
          this.stats.promptTokens += typeof usage?.prompt_tokens === 'number' ? usage.prompt_tokens : this.o.countTokens(promptText(full));
          this.stats.completionTokens += usage?.completion_tokens ?? 0;
          const kept = keep(resp);
          this.o.cache?.set(key, api, full, kept);
          return kept;
        } catch (e) {
          const c = classify(e);
          if (!c.retryable || attempt >= this.o.maxRetries) {
            this.stats.failed++;
            throw new LlmCallError(
              `${api} request to ${ep.baseURL} failed${attempt > 0 ? ` after ${attempt + 1} attempts` : ''}: ${c.reason}`,
              c.status,
              c.retryable,
            );
          }
          const backoff = Math.min(this.o.maxDelayMs, this.o.baseDelayMs * 2 ** attempt) * (0.5 + 0.5 * this.o.random());
          const delayMs = Math.max(backoff, Math.min(c.retryAfterMs ?? 0, this.o.maxDelayMs));
          this.stats.retries++;
          this.o.onRetry?.({ attempt: attempt + 1, delayMs, reason: c.reason });
          await this.o.sleep(delayMs);
        }
      }
    } finally {
      this.release();
    }
  }
}
