// What `crate-ts serve` computes: prompt log-probabilities (echo) and sampled continuations of a
// crate-ts language model, independent of HTTP.
//
// Prompt log-probabilities. Position i's distribution is log_softmax(logits[i-1]) over the full
// vocabulary: the log-sum-exp of each row, the target's logit and the top k come from the backend's
// logitsStats operator (exp in float32 summed in double on the native backends, float64 on the
// reference; the rows stay on the backend), the differences in float64 on the host. The logits are
// the model's on the selected backend: the
// forward runs there (runWithCache keeps the final LayerNorm output), and the tied head
// logits = LN_f(x)·wteᵀ is applied again, on the same backend, to the positions being scored only.
// Prompts longer than the block size T are scored with a sliding window (the same scheme as the
// Hugging Face perplexity guide): windows of T tokens whose starts advance by the stride S
// (default ⌊T/2⌋; the last window ends at the last token); the first window scores its targets
// 1..T-1, each later window only the targets no earlier window scored. So every token is scored
// exactly once, and every token past the first window sees at least T − S tokens of context.
//
// Generation conditions on the last T tokens, as nanoGPT's sampler does: while the context fits,
// the model's incremental decoder (src/model/decoder.ts) adds one position per token; once it would exceed
// T, each step runs model.forward on the last T tokens and takes the last position's logits.
//
// Requests computing at the same time share the model's steps (src/serve/batch.ts): decoding steps of
// different requests run together, and the LM head is applied to the rows of several requests in
// one product. The answers are the same as computed alone.
import type { LanguageModel } from '../model/lm.js';
import type { Tokenizer } from '../data/tokenizer.js';
import { TokenBytes } from './tokens.js';
import { loadCheckpoint, modelFromCheckpoint, resolveCheckpointPath } from '../checkpoint/checkpoint.js';
import { loadTokenizer } from '../data/tokenizer.js';
import { selectBackend, type BackendChoice } from '../backend/select.js';
import { UsageError } from '../errors.js';
import { Batcher, DEFAULT_BATCH, ECHO_ROWS, WINDOW_ROWS, type BatchOptions, type BatchStats } from './batch.js';
import type { GenerateOptions, GenerateResult, GeneratedToken, PromptLogprobs } from './sampling.js';

export { sampleId, yieldNow } from './sampling.js';
export type { GenerateOptions, GenerateResult, GeneratedToken, PromptLogprobs, TopEntry } from './sampling.js';

export interface EngineOptions extends Partial<BatchOptions> {
  /** Sliding-window stride for prompts longer than the block size (default ⌊T/2⌋). */
  echoStride?: number;
}

export class Engine {
  readonly blockSize: number;
  readonly vocabSize: number;
  /** Ids at or past this have no text (vocabulary padding); they are never sampled or listed. */
  readonly textVocab: number;
  readonly echoStride: number;
  private readonly batcher: Batcher;

  constructor(
    readonly model: LanguageModel<unknown>,
    readonly tokenizer: Tokenizer,
    readonly tokenBytes: TokenBytes,
    opts: EngineOptions = {},
  ) {
    this.blockSize = model.config.blockSize;
    this.vocabSize = model.config.vocabSize;
    this.textVocab = Math.min(tokenizer.vocabSize, this.vocabSize);
    const S = opts.echoStride ?? Math.max(1, Math.floor(this.blockSize / 2));
    if (!Number.isInteger(S) || S < 1 || S > this.blockSize)
      throw new UsageError((n) => `${n('echoStride')} must be an integer in [1, ${this.blockSize}] (the block size), got ${S}`, { option: 'echoStride' });
    this.echoStride = S;
    const maxBatch = opts.maxBatch ?? DEFAULT_BATCH.maxBatch,
      batchWaitMs = opts.batchWaitMs ?? DEFAULT_BATCH.batchWaitMs;
    if (!Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > 256)
      throw new UsageError((n) => `${n('maxBatch')} must be an integer in [1, 256], got ${maxBatch}`, { option: 'maxBatch' });
    if (!(batchWaitMs >= 0 && batchWaitMs <= 1000))
      throw new UsageError((n) => `${n('batchWaitMs')} must be in [0, 1000] milliseconds, got ${batchWaitMs}`, { option: 'batchWaitMs' });
    this.batcher = new Batcher(this, { maxBatch, batchWaitMs });
  }

  /** What the batch scheduler has done so far. */
  get batchStats(): Readonly<BatchStats> {
    return this.batcher.stats;
  }

  /** Sequences decoded together in one step. */
  get maxBatch(): number {
    return this.batcher.opts.maxBatch;
  }

  encode(text: string): number[] {
    return this.tokenizer.encode(text);
  }

  /** The windows [start, start+len) and the first target each scores (see the file comment). */
  echoWindows(N: number): { start: number; len: number; from: number }[] {
    const T = this.blockSize,
      S = this.echoStride;
    if (N <= 1) return [];
    if (N <= T) return [{ start: 0, len: N, from: 1 }];
    const out = [{ start: 0, len: T, from: 1 }];
    let scored = T - 1,
      a = 0;
    while (scored < N - 1) {
      a = Math.min(a + S, N - T);
      out.push({ start: a, len: T, from: scored + 1 });
      scored = a + T - 1;
    }
    return out;
  }

  /**
   * Log-probabilities of every prompt token and the k most likely alternatives at each position.
   * `stop` returning true (a client that has gone) ends it early with an incomplete result.
   */
  promptLogprobs(ids: readonly number[], k: number, stop?: () => boolean): Promise<PromptLogprobs> {
    return this.batcher.promptLogprobs(ids, k, stop);
  }

  /**
   * Continue `prompt`. onText(chunk) receives text as it becomes final (held back while it could
   * still turn into a stop string); returning false from it (a client that went away) stops early,
   * and a promise from it (a client that reads slowly) is awaited before the next token.
   */
  generate(
    prompt: readonly number[],
    opts: GenerateOptions,
    onText?: (chunk: string, tok: GeneratedToken | null) => boolean | void | Promise<boolean | void>,
  ): Promise<GenerateResult> {
    return this.batcher.generate(prompt, opts, onText);
  }

  /**
   * Memory one request's computation needs at its peak, an estimate in bytes: `shared`, what one
   * buffer serves every request with: the model's forward activations (forwards run one at a time:
   * for echo, over its largest group of windows, as LanguageModel lays them out, logits and their
   * gradient included; a forward over the block when a context outgrows it) plus the echo head
   * buffers, and for generation the pool's decoder (caches and scratch of maxBatch rows, which
   * every sequence decodes in); and `own`, what the request alone holds: the host's copies of its
   * rows and answers.
   */
  workBytes(lens: readonly number[], echo: boolean, maxTokens: number, k: number | null): { shared: number; own: number } {
    const c = this.model.config,
      be = this.model.backend,
      C = c.nEmbd,
      V = this.vocabSize,
      T = this.blockSize,
      H = c.overcomplete * C;
    const word = be.name === 'reference' ? 8 : 4;
    const forward = (B: number, len: number) => {
      const N = B * len;
      const att = be.attentionSavedSize(B, c.nHead, len);
      const perLayer = this.model.blocks.reduce((a, b) => a + Object.values(b.sizes(N, att)).reduce((x, y) => x + y, 0), 0);
      return perLayer + N * C * 3 + N * 2 + N * V * 2 + 3 * N * C + 2 * Math.max(3 * C, H) * N;
    };
    let forwardMax = 0,
      pool = 0,
      host = 0;
    for (const n of lens) {
      if (echo && n > 1) {
        const len = Math.min(n, T);
        const B = Math.max(1, Math.min(Math.floor(WINDOW_ROWS / len), Math.ceil(n / len)));
        forwardMax = Math.max(forwardMax, forward(B, len) + ECHO_ROWS * (C + V));
        host += n * (C * 8 + ((k ?? 0) + 1) * 64);
      }
      if (maxTokens > 0) {
        if (n + maxTokens > T) forwardMax = Math.max(forwardMax, forward(1, T));
        // every sequence decodes in the pool's decoder: maxBatch rows, one for all requests
        pool = (this.model.blocks.reduce((a, b) => a + b.cacheSize(1, T), 0) + 16 * C + 2 * Math.max(c.istaSteps * H, H) + V) * this.maxBatch;
        host += maxTokens * (((k ?? 0) + 1) * 64 + 64);
      }
    }
    return { shared: (forwardMax + pool) * word, own: host };
  }
}

/** Load a checkpoint onto a backend and wrap it in an Engine (the model of `crate-ts serve`). */
export async function loadEngine(
  checkpoint: string,
  backend: BackendChoice = 'auto',
  opts: EngineOptions & { threads?: number } = {},
): Promise<{ engine: Engine; backendReason: string; path: string }> {
  const ck = loadCheckpoint(resolveCheckpointPath(checkpoint));
  const tok = await loadTokenizer(ck.tokenizer, ck.tokenizerVocab);
  const sel = await selectBackend(backend, { threads: opts.threads });
  const model = modelFromCheckpoint(ck, sel.backend);
  const tb = await TokenBytes.forTokenizer(tok);
  return { engine: new Engine(model, tok, tb, opts), backendReason: sel.reason, path: ck.path };
}
