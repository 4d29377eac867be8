// What `crate-ts serve` computes: prompt log-probabilities (echo) and sampled continuations of a
// crate-ts language model, independent of HTTP.
//
// Prompt log-probabilities. Position i's distribution is log_softmax(logits[i-1]) over the full
// vocabulary: the log-sum-exp of each row comes from the backend's cross-entropy operator (exp in
// float32 summed in double on the native backends, float64 on the reference), the rest in float64
// on the host. The logits are the model's on the selected backend: the
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
import type { LanguageModel } from '../model/lm.js';
import type { Tokenizer } from '../data/tokenizer.js';
import { Rng } from '../util/rng.js';
import type { Decoder } from '../model/decoder.js';
import { TextStream, TokenBytes } from './tokens.js';
import { loadCheckpoint, modelFromCheckpoint, resolveCheckpointPath } from '../checkpoint/checkpoint.js';
import { loadTokenizer } from '../data/tokenizer.js';
import { selectBackend, type BackendChoice } from '../backend/select.js';
import { OptionError } from '../errors.js';

/** Token positions per forward when batching echo windows (the logits stay on the backend). */
const WINDOW_ROWS = 4096;
/** Positions whose logits (V) come to the host at a time (small copies are much cheaper than big ones). */
const HEAD_ROWS = 8;

type Logits = Float64Array | Float32Array;

/**
 * Logits to the host without widening when the backend can (native backends compute in float32,
 * so a float32 copy holds the same values in half the bytes); float64 arithmetic follows either way.
 */
function downloadLogits(be: LanguageModel<unknown>['backend'], buf: unknown): Logits {
  const f32 = (be as { downloadF32?: (b: unknown) => Float32Array }).downloadF32;
  return typeof f32 === 'function' ? f32.call(be, buf) : be.download(buf);
}

export interface TopEntry {
  id: number;
  logprob: number;
}

export interface PromptLogprobs {
  /** logprob of ids[i] given ids[<i]; null for i = 0. */
  tokenLogprobs: (number | null)[];
  /** The k most likely ids at position i (descending), null for i = 0; empty arrays when k = 0. */
  top: (TopEntry[] | null)[];
}

export interface GenerateOptions {
  maxTokens: number;
  /** 0: greedy. */
  temperature: number;
  /** Nucleus: keep the smallest set of tokens whose probability reaches topP (1: all). */
  topP: number;
  /** Keep the k most likely tokens (0: all). */
  topK: number;
  rng: Rng;
  /** Stop strings: generation ends before the first occurrence of any of them. */
  stop: string[];
  /** Number of alternatives to report per generated token (null: no logprobs). */
  logprobs: number | null;
  /** Stop at the tokenizer's end-of-text token (default true). */
  stopAtEot?: boolean;
}

export interface GeneratedToken {
  id: number;
  /** Text this token adds (see src/serve/tokens.ts). */
  text: string;
  logprob: number;
  top: TopEntry[];
}

export interface GenerateResult {
  tokens: GeneratedToken[];
  /** The generated text (cut before a stop string). */
  text: string;
  finishReason: 'stop' | 'length';
}

/** Yield to the event loop (so the server keeps answering while a long request computes). */
export const yieldNow = (): Promise<void> => new Promise((r) => setImmediate(r));

/** log-sum-exp of logits[off, off+V). */
function logSumExp(logits: Logits, off: number, V: number): number {
  let max = -Infinity;
  for (let j = 0; j < V; j++) if (logits[off + j] > max) max = logits[off + j];
  let s = 0;
  for (let j = 0; j < V; j++) s += Math.exp(logits[off + j] - max);
  return max + Math.log(s);
}

/** The k largest of logits[off, off+n) (ids < n), descending, ties to the lower id. */
function topK(logits: Logits, off: number, n: number, k: number, lse: number): TopEntry[] {
  if (k <= 0) return [];
  const ids: number[] = [],
    vals: number[] = [];
  for (let j = 0; j < n; j++) {
    const v = logits[off + j];
    if (ids.length === k && v <= vals[k - 1]) continue;
    let p = ids.length < k ? ids.length : k - 1;
    while (p > 0 && vals[p - 1] < v) p--;
    ids.splice(p, 0, j);
    vals.splice(p, 0, v);
    if (ids.length > k) {
      ids.pop();
      vals.pop();
    }
  }
  return ids.map((id, i) => ({ id, logprob: vals[i] - lse }));
}

export interface EngineOptions {
  /** Sliding-window stride for prompts longer than the block size (default ⌊T/2⌋). */
  echoStride?: number;
}

export class Engine {
  readonly blockSize: number;
  readonly vocabSize: number;
  /** Ids at or past this have no text (vocabulary padding); they are never sampled or listed. */
  readonly textVocab: number;
  readonly echoStride: number;

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
      throw new OptionError('echoStride', `must be an integer in [1, ${this.blockSize}] (the block size), got ${S}`);
    this.echoStride = S;
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

  /** Log-probabilities of every prompt token and the k most likely alternatives at each position. */
  async promptLogprobs(ids: readonly number[], k: number, stop?: () => boolean): Promise<PromptLogprobs> {
    const N = ids.length,
      V = this.vocabSize,
      C = this.model.config.nEmbd;
    const tokenLogprobs: (number | null)[] = new Array(N).fill(null);
    const top: (TopEntry[] | null)[] = new Array(N).fill(null);
    const windows = this.echoWindows(N);
    const be = this.model.backend;
    // The head runs again only on the rows a window scores (a later window scores about half of
    // its rows), HEAD_ROWS at a time, so the host sees each position's V logits once.
    const rowsIn = be.alloc(HEAD_ROWS * C),
      rowsOut = be.alloc(HEAD_ROWS * V);
    try {
      let w = 0;
      while (w < windows.length) {
        const len = windows[w].len;
        const perBatch = Math.max(1, Math.floor(WINDOW_ROWS / len));
        const batch = [];
        while (w < windows.length && windows[w].len === len && batch.length < perBatch) batch.push(windows[w++]);
        const idx = new Int32Array(batch.length * len);
        batch.forEach((win, b) => {
          for (let t = 0; t < len; t++) idx[b * len + t] = ids[win.start + t];
        });
        // final LayerNorm output (B, T, C) of the forward on the backend; logits stay there
        const { cache } = this.model.runWithCache(idx, batch.length, len, { names: ['ln_final.hook_normalized'], returnLogits: false });
        const lnf = cache.get('ln_final.hook_normalized');
        // (window, target) pairs to score: row t - start - 1 of the window predicts target t
        const jobs: { b: number; t: number; start: number }[] = [];
        batch.forEach((win, b) => {
          for (let t = win.from; t < win.start + len; t++) jobs.push({ b, t, start: win.start });
        });
        const host = new Float64Array(HEAD_ROWS * C);
        for (let j0 = 0; j0 < jobs.length; j0 += HEAD_ROWS) {
          const part = jobs.slice(j0, j0 + HEAD_ROWS),
            n = part.length;
          part.forEach((job, r) => {
            for (let c = 0; c < C; c++) host[r * C + c] = lnf.get(job.b, job.t - job.start - 1, c);
          });
          be.upload(rowsIn, n === HEAD_ROWS ? host : Float64Array.from({ length: HEAD_ROWS * C }, (_, i) => (i < n * C ? host[i] : 0)));
          be.linearForward(rowsOut, rowsIn, this.model.param('transformer.wte.weight'), null, HEAD_ROWS, C, V); // tied head
          const L = downloadLogits(be, n === HEAD_ROWS ? rowsOut : be.view(rowsOut, 0, n * V));
          part.forEach((job, r) => {
            const off = r * V,
              target = ids[job.t];
            // -log p(target) = logsumexp(row) - row[target], from the backend's cross-entropy
            // operator (its exponentials are the backend's: float32 on the native backends, whose
            // logits carry float32 rounding anyway; float64 on the reference), so the host does
            // not take V exponentials per position.
            const nll = be.crossEntropyForward(null, be.view(rowsOut, off, V), Int32Array.of(target), 1, V, 1);
            tokenLogprobs[job.t] = -nll;
            top[job.t] = topK(L, off, this.textVocab, k, nll + L[off + target]);
          });
          await yieldNow();
          // a caller whose client has gone stops here (the result is then incomplete)
          if (stop?.()) return { tokenLogprobs, top };
        }
      }
    } finally {
      be.free(rowsIn);
      be.free(rowsOut);
    }
    return { tokenLogprobs, top };
  }

  /** Logits (V) of the last position of a forward over the last T tokens of ctx. */
  private windowLogits(ctx: readonly number[]): Logits {
    const T = this.blockSize,
      C = this.model.config.nEmbd,
      V = this.vocabSize,
      be = this.model.backend;
    const win = ctx.slice(-T);
    const { cache } = this.model.runWithCache(win, 1, win.length, { names: ['ln_final.hook_normalized'], returnLogits: false });
    const lnf = cache.get('ln_final.hook_normalized');
    const row = new Float64Array(C);
    for (let c = 0; c < C; c++) row[c] = lnf.get(0, win.length - 1, c);
    const inp = be.alloc(C),
      out = be.alloc(V);
    try {
      be.upload(inp, row);
      be.linearForward(out, inp, this.model.param('transformer.wte.weight'), null, 1, C, V); // tied head, last row only
      return downloadLogits(be, out);
    } finally {
      be.free(inp);
      be.free(out);
    }
  }

  /**
   * Continue `prompt`. onText(chunk) receives text as it becomes final (held back while it could
   * still turn into a stop string); returning false from it (a client that went away) stops early,
   * and a promise from it (a client that reads slowly) is awaited before the next token.
   */
  async generate(
    prompt: readonly number[],
    opts: GenerateOptions,
    onText?: (chunk: string, tok: GeneratedToken | null) => boolean | void | Promise<boolean | void>,
  ): Promise<GenerateResult> {
    const T = this.blockSize,
      V = this.vocabSize;
    const out: GeneratedToken[] = [];
    if (opts.maxTokens <= 0) return { tokens: out, text: '', finishReason: 'length' };
    const ctx = [...prompt];
    let dec: Decoder<unknown> | null = null;
    const decoders: Decoder<unknown>[] = [];
    try {
      let logits: Logits;
      if (ctx.length <= T) {
        dec = this.model.createDecoder(1);
        decoders.push(dec);
        const one = new Int32Array(1);
        logits = new Float64Array(0);
        for (let i = 0; i < ctx.length; i++) {
          one[0] = ctx[i];
          logits = dec.step(one);
          if ((i & 63) === 63) await yieldNow();
        }
      } else {
        logits = this.windowLogits(ctx);
      }
      const stream = new TextStream(this.tokenBytes);
      // Generated text only: the stream starts after the prompt's bytes (a prompt ending inside a
      // character is not continued across the boundary; the model's BPE prompts end on whole characters).
      const maxStop = opts.stop.reduce((m, s) => Math.max(m, s.length), 0);
      let text = '',
        emitted = 0,
        finish: 'stop' | 'length' = 'length';
      const eot = opts.stopAtEot === false ? null : this.tokenizer.eot;
      for (let i = 0; i < opts.maxTokens; i++) {
        const lse = logSumExp(logits, 0, V);
        const id = sampleId(logits, this.textVocab, opts);
        const tok: GeneratedToken = {
          id,
          text: '',
          logprob: logits[id] - lse,
          top: opts.logprobs !== null ? topK(logits, 0, this.textVocab, opts.logprobs, lse) : [],
        };
        if (eot !== null && id === eot) {
          finish = 'stop';
          break;
        }
        tok.text = stream.push(id);
        out.push(tok);
        text += tok.text;
        // stop strings: cut before the first occurrence
        if (maxStop > 0) {
          let cut = -1;
          for (const s of opts.stop) {
            const at = text.indexOf(s, Math.max(0, emitted - s.length));
            if (at >= 0 && (cut < 0 || at < cut)) cut = at;
          }
          if (cut >= 0) {
            text = text.slice(0, cut);
            finish = 'stop';
            break;
          }
        }
        const safe = maxStop > 0 ? Math.max(emitted, text.length - (maxStop - 1)) : text.length;
        if (onText) {
          // one call per token (the chunk may be empty while text is held back)
          const chunk = safe > emitted ? text.slice(emitted, safe) : '';
          emitted = Math.max(emitted, safe);
          const go = onText(chunk, tok);
          if ((go instanceof Promise ? await go : go) === false) break;
        }
        if (i + 1 === opts.maxTokens) break;
        ctx.push(id);
        if (dec && dec.position < T) logits = dec.step(Int32Array.of(id));
        else {
          dec = null;
          logits = this.windowLogits(ctx);
        }
        await yieldNow();
      }
      if (finish === 'length') text += stream.flush();
      if (onText && text.length > emitted) await onText(text.slice(emitted), null);
      return { tokens: out, text, finishReason: finish };
    } finally {
      for (const d of decoders) d.free();
    }
  }
}

/** Draw an id < n from logits with temperature, top-k and top-p (greedy when temperature is 0). */
export function sampleId(logits: Logits, n: number, o: { temperature: number; topK: number; topP: number; rng: Rng }): number {
  if (o.temperature <= 0) {
    let best = 0;
    for (let j = 1; j < n; j++) if (logits[j] > logits[best]) best = j;
    return best;
  }
  if (!(o.topK > 0 && o.topK < n) && !(o.topP < 1)) return sampleAll(logits, n, o.temperature, o.rng);
  let ids: number[];
  if (o.topK > 0 && o.topK < n) ids = topK(logits, 0, n, o.topK, 0).map((e) => e.id);
  else if (o.topP < 1) {
    ids = Array.from({ length: n }, (_, j) => j);
    ids.sort((a, b) => logits[b] - logits[a] || a - b);
  } else ids = Array.from({ length: n }, (_, j) => j);
  let max = -Infinity;
  for (const j of ids) if (logits[j] > max) max = logits[j];
  let w = ids.map((j) => Math.exp((logits[j] - max) / o.temperature));
  let total = w.reduce((a, b) => a + b, 0);
  if (o.topP < 1) {
    // ids are in descending order here: keep the shortest prefix whose mass reaches topP
    let acc = 0,
      keep = ids.length;
    for (let i = 0; i < ids.length; i++) {
      acc += w[i] / total;
      if (acc >= o.topP) {
        keep = i + 1;
        break;
      }
    }
    ids = ids.slice(0, keep);
    w = w.slice(0, keep);
    total = w.reduce((a, b) => a + b, 0);
  }
  let r = o.rng.uniform() * total;
  for (let i = 0; i < ids.length; i++) {
    r -= w[i];
    if (r < 0) return ids[i];
  }
  return ids[ids.length - 1];
}

/** Weights of the full distribution, reused between calls (one decoding step at a time). */
let sampleScratch = new Float64Array(0);

/**
 * Draw an id < n from softmax(logits / temperature) over all ids: the same weights, sum and walk
 * (in id order) as the filtered path of sampleId, without building arrays of n ids per token.
 */
function sampleAll(logits: Logits, n: number, temperature: number, rng: Rng): number {
  if (sampleScratch.length < n) sampleScratch = new Float64Array(n);
  const w = sampleScratch;
  let max = -Infinity;
  for (let j = 0; j < n; j++) if (logits[j] > max) max = logits[j];
  let total = 0;
  for (let j = 0; j < n; j++) {
    w[j] = Math.exp((logits[j] - max) / temperature);
    total += w[j];
  }
  let r = rng.uniform() * total;
  for (let j = 0; j < n; j++) {
    r -= w[j];
    if (r < 0) return j;
  }
  return n - 1;
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
