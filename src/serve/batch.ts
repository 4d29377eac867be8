// Batched execution for `crate-ts serve`: the requests computing at the same time share the model.
//
// The model runs on one thread, so the work of every request is cut into steps that a scheduler
// interleaves; what makes sharing pay is that the LM head, logits = LN_f(x)·wteᵀ with V × C weights
// (25 MB for GPT-2's vocabulary), is applied to the rows of several requests in one product
// instead of streaming its weights once per row.
//
// - Generation: one decoding step of up to `maxBatch` sequences runs their blocks and then one head
//   product over all their rows (at most HEAD_ROWS rows a product). Every sequence whose context
//   fits the block has a row of one decoder of maxBatch rows (the pool), each row at its own
//   position (Decoder.stepRowsNormalized), so one run of the blocks advances all of them, however
//   long their prompts and whenever they started: a row still being fed its prompt takes one prompt
//   token a step beside rows that draw. A sequence past the block runs a forward over its last T
//   tokens a step instead. Each row's token is drawn on the
//   backend (sampleLogits, native/serve_rows.cc: the float64 draw of src/reference/logits.ts) with
//   a uniform from the sequence's own Rng, so batching changes no draw and the logits never come
//   to the host; log-probabilities, when asked, come from logitsStats of the rows that ask.
// - Echo (prompt log-probabilities): each prompt's windows run through the model's forward as
//   before; the final-LayerNorm rows of the positions to score, from every echo request waiting,
//   are packed into head products of ECHO_ROWS rows (padded), one product a step, and logitsStats
//   on the backend turns each product into what the answer needs (log-sum-exp, the target's logit,
//   the top k): a few numbers a row come back instead of V logits.
//
// Same answers batched or alone: the head product computes each output row from that row of its
// input only, in an order that does not depend on the other rows (the native GEMV of a few rows
// and the packed SGEMM both sum each output over C in a fixed order; the reference backend is a
// plain loop), echo products always have ECHO_ROWS rows whatever fills them, and everything after
// the head (logitsStats, sampleLogits) reads one row. In the pool's decoder a row's blocks read only
// that row and its own cache (the block products over the rows give each row the same result
// whatever the number of rows), and the rows of sequences that sit a step out are fed a
// placeholder at their next position, which their own next step overwrites.
// test/serve-batch.test.ts checks it.
//
// A step of the scheduler does one decoding step of the ready sequences and one echo head
// product, then yields to the event loop, so HTTP is served between steps. A request arriving while
// the scheduler is idle waits `batchWaitMs` for others to join it.
import type { Decoder } from '../model/decoder.js';
import type { LanguageModel } from '../model/lm.js';
import type { Tokenizer } from '../data/tokenizer.js';
import type { TokenBytes } from './tokens.js';
import { TextStream } from './tokens.js';
import {
  downloadLogits,
  yieldNow,
  type GenerateOptions,
  type GenerateResult,
  type GeneratedToken,
  type Logits,
  type PromptLogprobs,
  type TopEntry,
} from './sampling.js';

/** Rows per head product while decoding (the native backends' few-row GEMV streams the weights once for all). */
const HEAD_ROWS = 8;
/** Rows per echo head product (always this many, padded: the packed SGEMM). */
export const ECHO_ROWS = 64;
/** Token positions per forward when batching one prompt's echo windows (the logits stay on the backend). */
export const WINDOW_ROWS = 4096;

export interface BatchOptions {
  /** Sequences decoded together in one step (default 8). */
  maxBatch: number;
  /** How long a request arriving at an idle scheduler waits for others (milliseconds, default 2). */
  batchWaitMs: number;
}

export const DEFAULT_BATCH: BatchOptions = { maxBatch: 8, batchWaitMs: 2 };

type OnText = (chunk: string, tok: GeneratedToken | null) => boolean | void | Promise<boolean | void>;

interface EchoJob {
  ids: readonly number[];
  k: number;
  stop?: () => boolean;
  windows: { start: number; len: number; from: number }[];
  /** The next window to run through the forward. */
  w: number;
  /** Final-LayerNorm rows computed and not yet through the head: target position and row. */
  rows: { t: number; row: Float64Array }[];
  result: PromptLogprobs;
  resolve: (r: PromptLogprobs) => void;
  reject: (e: unknown) => void;
}

/**
 * The decoder every sequence whose context fits the block decodes in: one row (slot) a sequence,
 * each row at its own position (Decoder.stepRowsNormalized), so the sequences of one step, however
 * long and whenever they started, advance together through one run of the blocks.
 */
interface Pool {
  dec: Decoder<unknown>;
  slots: (GenJob | null)[];
}

interface GenJob {
  opts: GenerateOptions;
  onText?: OnText;
  ctx: number[];
  /** Its row in the pool's decoder while its context fits the block (-1: none, or a forward per token). */
  slot: number;
  /** Tokens of ctx fed into its row of the pool's decoder (its next position). */
  fed: number;
  started: boolean;
  /** Waiting for its client (a promise from onText). */
  waiting: boolean;
  out: GeneratedToken[];
  stream: TextStream;
  text: string;
  emitted: number;
  maxStop: number;
  eot: number | null;
  finish: 'stop' | 'length';
  resolve: (r: GenerateResult) => void;
  reject: (e: unknown) => void;
}

/** What the scheduler has done (tests and benchmarks read it to see that requests were batched). */
export interface BatchStats {
  /** Decoding steps, the sequences they advanced in all, and the most in one step. */
  genSteps: number;
  genRows: number;
  genMaxRows: number;
  /** The most sequences that one step of the pool's decoder advanced. */
  poolMax: number;
  /** Steps of the scheduler's loop (a decoding step and an echo product each, at most). */
  loops: number;
  /** Echo head products, and the most requests whose rows shared one. */
  echoSteps: number;
  echoMaxRequests: number;
}

/** What the scheduler needs of the engine that owns it (src/serve/engine.ts). */
export interface BatchModel {
  readonly model: LanguageModel<unknown>;
  readonly tokenizer: Tokenizer;
  readonly tokenBytes: TokenBytes;
  readonly blockSize: number;
  readonly vocabSize: number;
  readonly textVocab: number;
  echoWindows(N: number): { start: number; len: number; from: number }[];
}

export class Batcher {
  readonly stats: BatchStats = { genSteps: 0, genRows: 0, genMaxRows: 0, poolMax: 0, loops: 0, echoSteps: 0, echoMaxRequests: 0 };
  private readonly echo: EchoJob[] = [];
  private gen: GenJob[] = [];
  private running = false;
  private readonly C: number;
  private readonly V: number;

  constructor(
    private readonly engine: BatchModel,
    readonly opts: BatchOptions,
  ) {
    this.C = engine.model.config.nEmbd;
    this.V = engine.vocabSize;
  }

  /** Requests in the scheduler now (echo and generation). */
  get active(): number {
    return this.echo.length + this.gen.length;
  }

  promptLogprobs(ids: readonly number[], k: number, stop?: () => boolean): Promise<PromptLogprobs> {
    const N = ids.length;
    const result: PromptLogprobs = { tokenLogprobs: new Array(N).fill(null), top: new Array(N).fill(null) };
    const windows = this.engine.echoWindows(N);
    if (windows.length === 0) return Promise.resolve(result);
    return new Promise((resolve, reject) => {
      this.echo.push({ ids, k, stop, windows, w: 0, rows: [], result, resolve, reject });
      this.kick(true);
    });
  }

  generate(prompt: readonly number[], opts: GenerateOptions, onText?: OnText): Promise<GenerateResult> {
    if (opts.maxTokens <= 0) return Promise.resolve({ tokens: [], text: '', finishReason: 'length' });
    return new Promise((resolve, reject) => {
      this.gen.push({
        opts,
        onText,
        ctx: [...prompt],
        slot: -1,
        fed: 0,
        started: false,
        waiting: false,
        out: [],
        stream: new TextStream(this.engine.tokenBytes),
        text: '',
        emitted: 0,
        maxStop: opts.stop.reduce((m, s) => Math.max(m, s.length), 0),
        eot: opts.stopAtEot === false ? null : this.engine.tokenizer.eot,
        finish: 'length',
        resolve,
        reject,
      });
      this.kick(true);
    });
  }

  /** Start the scheduler if it is idle (after the batch wait when a new request arrived). */
  private kick(arrived: boolean): void {
    if (this.running) return;
    this.running = true;
    const go = () => void this.loop();
    if (arrived && this.opts.batchWaitMs > 0) setTimeout(go, this.opts.batchWaitMs);
    else setImmediate(go);
  }

  /** Backend buffers of the head products, (rows, C) in and (rows, V) out: kept while busy. */
  private bufs: { genIn: unknown; genOut: unknown; echoIn: unknown; echoOut: unknown } | null = null;

  private buffers(): { genIn: unknown; genOut: unknown; echoIn: unknown; echoOut: unknown } {
    if (!this.bufs) {
      const be = this.engine.model.backend;
      const { C, V } = this;
      this.bufs = { genIn: be.alloc(HEAD_ROWS * C), genOut: be.alloc(HEAD_ROWS * V), echoIn: be.alloc(ECHO_ROWS * C), echoOut: be.alloc(ECHO_ROWS * V) };
    }
    return this.bufs;
  }

  private async loop(): Promise<void> {
    try {
      while (this.echo.length > 0 || this.gen.some((j) => !j.waiting)) {
        this.stats.loops++;
        const gen = await this.genStep();
        const echo = this.echo.length > 0;
        await this.echoStep();
        // nothing could step (new sequences waiting for a row of the pool that sequences waiting
        // for their clients hold): stop rather than spin; a row given back starts the loop again
        if (!gen && !echo) break;
        await yieldNow();
      }
    } finally {
      this.running = false;
      // idle: the head buffers go back (a server between bursts holds none)
      if (this.bufs) {
        const be = this.engine.model.backend;
        for (const b of Object.values(this.bufs)) be.free(b);
        this.bufs = null;
      }
    }
  }

  // ---- generation ---------------------------------------------------------------------------------

  /** The pool's decoder (maxBatch rows), made when a sequence first needs it. */
  private pool: Pool | null = null;

  /**
   * One decoding step of up to maxBatch ready sequences: one run of the pool's decoder for those
   * whose context fits (a prompt token or the last token each), a forward over the last T tokens
   * for the others, then one head over the rows that are ready to draw, one token each.
   */
  private async genStep(): Promise<boolean> {
    const picked: GenJob[] = [];
    for (const job of this.gen) {
      if (picked.length >= this.opts.maxBatch) break;
      if (!job.waiting) picked.push(job);
    }
    if (picked.length === 0) return false;
    // the sequences served go to the back, so more than maxBatch take turns
    this.gen = [...this.gen.filter((j) => !picked.includes(j)), ...picked];
    const rows: { job: GenJob; row: Float64Array }[] = [];
    const T = this.engine.blockSize;
    const stepping: GenJob[] = [];
    for (const job of picked) {
      if (job.slot < 0 && !job.started && job.ctx.length <= T) {
        // a new sequence takes a free row of the pool (or waits for one)
        try {
          this.pool ??= { dec: this.engine.model.createDecoder(this.opts.maxBatch), slots: new Array(this.opts.maxBatch).fill(null) };
        } catch (e) {
          this.fail(job, e);
          continue;
        }
        const free = this.pool.slots.indexOf(null);
        if (free < 0) continue;
        this.pool.slots[free] = job;
        job.slot = free;
        job.fed = 0;
        job.started = true;
      }
      if (job.slot >= 0 && job.fed < T) stepping.push(job);
      else {
        // past the block (or a context that never fitted): a forward over the last T tokens
        this.release(job);
        job.started = true;
        try {
          rows.push({ job, row: this.windowRow(job.ctx) });
        } catch (e) {
          this.fail(job, e);
        }
      }
    }
    if (stepping.length > 0 && this.pool) {
      const pool = this.pool;
      const hi = stepping.reduce((m, j) => Math.max(m, j.slot + 1), 0);
      const tokens = new Int32Array(hi),
        positions = new Int32Array(hi);
      // rows not stepping sit out: token 0 at their next position (overwritten when they feed it), or 0
      for (let r = 0; r < hi; r++) {
        const j = pool.slots[r];
        positions[r] = j ? Math.min(j.fed, T - 1) : 0;
      }
      for (const job of stepping) tokens[job.slot] = job.ctx[job.fed];
      this.stats.poolMax = Math.max(this.stats.poolMax, stepping.length);
      try {
        const out = pool.dec.stepRowsNormalized(tokens, positions, hi);
        for (const job of stepping) {
          job.fed++;
          // the prompt fed: its last row goes to the head (a prompt still being fed goes on next step)
          if (job.fed === job.ctx.length) rows.push({ job, row: out.subarray(job.slot * this.C, (job.slot + 1) * this.C) });
        }
      } catch (e) {
        for (const job of stepping) this.fail(job, e);
      }
    }
    if (stepping.length === 0 && rows.length === 0) return false;
    const { C, V } = this;
    const be = this.engine.model.backend;
    this.stats.genSteps++;
    this.stats.genRows += rows.length;
    this.stats.genMaxRows = Math.max(this.stats.genMaxRows, rows.length);
    for (let r0 = 0; r0 < rows.length; r0 += HEAD_ROWS) {
      const part = rows.slice(r0, r0 + HEAD_ROWS),
        n = part.length;
      const { genIn, genOut } = this.buffers();
      const out = be.view(genOut, 0, n * V);
      try {
        const host = new Float64Array(n * C);
        part.forEach((p, r) => host.set(p.row, r * C));
        const inp = be.view(genIn, 0, n * C);
        be.upload(inp, host);
        be.linearForward(out, inp, this.engine.model.param('transformer.wte.weight'), null, n, C, V); // tied head
      } catch (e) {
        for (const p of part) this.fail(p.job, e);
        continue;
      }
      // each row's draw on the backend (its logits stay there), with the job's own Rng
      const ids = new Int32Array(n);
      const ok = part.map((p, r) => {
        const o = p.job.opts;
        try {
          const u = o.temperature > 0 ? o.rng.uniform() : 0;
          ids[r] = be.sampleLogits(be.view(out, r * V, V), this.engine.textVocab, o.temperature, o.topK, o.topP, u);
          return true;
        } catch (e) {
          this.fail(p.job, e);
          return false;
        }
      });
      // log-probabilities (the drawn id's and the top k) for the rows that ask, in one call
      const want = part.map((p, r) => r).filter((r) => ok[r] && part[r].job.opts.logprobs !== null);
      let lp: ReturnType<Batcher['rowStats']> | null = null;
      if (want.length > 0) {
        try {
          const K = want.reduce((m, r) => Math.max(m, part[r].job.opts.logprobs ?? 0), 0);
          // the asking rows are gathered in order: a copy each into the front of the output rows
          want.forEach((r, i) => {
            if (r !== i) be.copy(be.view(out, i * V, V), be.view(out, r * V, V));
          });
          lp = this.rowStats(
            be.view(out, 0, want.length * V),
            Int32Array.from(want, (r) => ids[r]),
            want.length,
            K,
          );
        } catch (e) {
          for (const r of want) this.fail(part[r].job, e);
          for (const r of want) ok[r] = false;
        }
      }
      part.forEach((p, r) => {
        if (!ok[r]) return;
        try {
          const i = want.indexOf(r);
          const tok: GeneratedToken =
            lp !== null && i >= 0
              ? { id: ids[r], text: '', logprob: lp.stats(i).logprob, top: lp.top(i, p.job.opts.logprobs ?? 0) }
              : { id: ids[r], text: '', logprob: NaN, top: [] };
          this.emit(p.job, tok);
        } catch (e) {
          this.fail(p.job, e);
        }
      });
    }
    return true;
  }

  /** Final-LayerNorm row of the last position of a forward over the last T tokens of ctx. */
  private windowRow(ctx: readonly number[]): Float64Array {
    const win = ctx.slice(-this.engine.blockSize);
    const { cache } = this.engine.model.runWithCache(win, 1, win.length, { names: ['ln_final.hook_normalized'], returnLogits: false });
    const lnf = cache.get('ln_final.hook_normalized');
    const row = new Float64Array(this.C);
    for (let c = 0; c < this.C; c++) row[c] = lnf.get(0, win.length - 1, c);
    return row;
  }

  /** Hand out the job's next token (drawn from its logits row), and finish or go on. */
  private emit(job: GenJob, tok: GeneratedToken): void {
    const o = job.opts,
      id = tok.id;
    if (job.eot !== null && id === job.eot) {
      job.finish = 'stop';
      return this.finish(job);
    }
    tok.text = job.stream.push(id);
    job.out.push(tok);
    job.text += tok.text;
    // stop strings: cut before the first occurrence
    if (job.maxStop > 0) {
      let cut = -1;
      for (const s of o.stop) {
        const at = job.text.indexOf(s, Math.max(0, job.emitted - s.length));
        if (at >= 0 && (cut < 0 || at < cut)) cut = at;
      }
      if (cut >= 0) {
        job.text = job.text.slice(0, cut);
        job.finish = 'stop';
        return this.finish(job);
      }
    }
    const last = job.out.length === o.maxTokens;
    const next = () => {
      if (last) return this.finish(job);
      job.ctx.push(id);
    };
    if (job.onText) {
      const safe = job.maxStop > 0 ? Math.max(job.emitted, job.text.length - (job.maxStop - 1)) : job.text.length;
      // one call per token (the chunk may be empty while text is held back)
      const chunk = safe > job.emitted ? job.text.slice(job.emitted, safe) : '';
      job.emitted = Math.max(job.emitted, safe);
      const go = job.onText(chunk, tok);
      if (go instanceof Promise) {
        // a client that reads slowly: this sequence sits out until its text is written
        job.waiting = true;
        go.then(
          (g) => {
            job.waiting = false;
            if (g === false) this.finish(job);
            else {
              next();
              this.kick(false);
            }
          },
          (e) => this.fail(job, e),
        );
        return;
      }
      if (go === false) return this.finish(job);
    }
    next();
  }

  /** The job's row of the pool is free again. */
  private release(job: GenJob): void {
    if (job.slot >= 0 && this.pool) {
      this.pool.slots[job.slot] = null;
      // a new sequence may have been waiting for a row
      if (this.gen.some((j) => j !== job && j.slot < 0 && !j.started && !j.waiting)) this.kick(false);
    }
    job.slot = -1;
  }

  private remove(job: GenJob): void {
    this.gen = this.gen.filter((j) => j !== job);
    this.release(job);
    // no sequence left: the pool's decoder goes back (a server between bursts holds none)
    if (this.gen.length === 0 && this.pool) {
      this.pool.dec.free();
      this.pool = null;
    }
  }

  /** The job is done: flush its text, hand out the rest, resolve. */
  private finish(job: GenJob): void {
    this.remove(job);
    if (job.finish === 'length') job.text += job.stream.flush();
    const result: GenerateResult = { tokens: job.out, text: job.text, finishReason: job.finish };
    if (job.onText && job.text.length > job.emitted) {
      let r: ReturnType<OnText>;
      try {
        r = job.onText(job.text.slice(job.emitted), null);
      } catch (e) {
        return job.reject(e);
      }
      if (r instanceof Promise) r.then(() => job.resolve(result), job.reject);
      else job.resolve(result);
    } else job.resolve(result);
  }

  private fail(job: GenJob, e: unknown): void {
    this.remove(job);
    job.reject(e);
  }

  // ---- echo ---------------------------------------------------------------------------------------

  /** One head product of ECHO_ROWS rows from the echo requests waiting, oldest first. */
  private async echoStep(): Promise<void> {
    if (this.echo.length === 0) return;
    const { C, V } = this;
    const be = this.engine.model.backend;
    const picked: { job: EchoJob; t: number; row: Float64Array }[] = [];
    for (const job of this.echoTurns()) {
      if (job.stop?.()) {
        // a caller whose client has gone stops here (the result is then incomplete)
        this.dropEcho(job);
        job.resolve(job.result);
        continue;
      }
      try {
        while (picked.length < ECHO_ROWS) {
          if (job.rows.length === 0) {
            if (job.w >= job.windows.length) break;
            this.echoForward(job);
          }
          const take = job.rows.splice(0, ECHO_ROWS - picked.length);
          for (const x of take) picked.push({ job, ...x });
        }
      } catch (e) {
        this.dropEcho(job);
        job.reject(e);
      }
      if (picked.length === ECHO_ROWS) break;
    }
    if (picked.length === 0) return;
    const n = picked.length;
    const { echoIn: inp, echoOut: out } = this.buffers();
    const jobs = new Set(picked.map((p) => p.job));
    this.stats.echoSteps++;
    this.stats.echoMaxRequests = Math.max(this.stats.echoMaxRequests, jobs.size);
    try {
      const host = new Float64Array(ECHO_ROWS * C);
      picked.forEach((p, r) => host.set(p.row, r * C));
      be.upload(inp, host);
      be.linearForward(out, inp, this.engine.model.param('transformer.wte.weight'), null, ECHO_ROWS, C, V); // tied head
      // the rows' log-sum-exps, targets' logits and top k on the backend: only these come back
      const K = picked.reduce((m, p) => Math.max(m, p.job.k), 0);
      const rows = this.rowStats(
        be.view(out, 0, n * V),
        Int32Array.from(picked, (p) => p.job.ids[p.t]),
        n,
        K,
      );
      picked.forEach((p, r) => {
        const st = rows.stats(r);
        p.job.result.tokenLogprobs[p.t] = st.logprob;
        p.job.result.top[p.t] = rows.top(r, p.job.k);
      });
    } catch (e) {
      for (const job of jobs) {
        this.dropEcho(job);
        job.reject(e);
      }
      return;
    }
    for (const job of jobs)
      if (job.rows.length === 0 && job.w >= job.windows.length) {
        this.dropEcho(job);
        job.resolve(job.result);
      }
  }

  /** Where the next echo step starts in the list of echo jobs. */
  private echoTurn = 0;

  /**
   * The echo jobs in the order this step fills its rows: each step starts one job further on, so a
   * short prompt waits for one turn of the jobs, not for every row of those before it (one forward
   * and one head product per job at most). Which rows share a product does not change an answer.
   */
  private echoTurns(): EchoJob[] {
    const n = this.echo.length;
    const s = this.echoTurn++ % n;
    return [...this.echo.slice(s), ...this.echo.slice(0, s)];
  }

  /**
   * logitsStats of n rows of logits on the backend (one target each, the k largest with k <= K),
   * brought back as the target's log-probability and the top entries: logprob = logit - lse, with
   * the log-sum-exp as the backend's pair hi + lo (float32 backends: to ~2^-48), in float64.
   */
  private rowStats(
    logits: unknown,
    targets: Int32Array,
    n: number,
    K: number,
  ): { stats(r: number): { lse: number; logprob: number }; top(r: number, k: number): TopEntry[] } {
    const be = this.engine.model.backend;
    const sb = be.alloc(n * 3),
      tb = be.alloc(n * K * 2);
    let st: Logits, tp: Logits;
    try {
      be.logitsStats(sb, tb, logits, targets, n, this.V, this.engine.textVocab, K);
      st = downloadLogits(be, sb);
      tp = downloadLogits(be, tb);
    } finally {
      be.free(sb);
      be.free(tb);
    }
    const lse = (r: number) => st[3 * r] + st[3 * r + 1];
    return {
      stats: (r) => ({ lse: lse(r), logprob: st[3 * r + 2] - lse(r) }),
      top: (r, k) => {
        const out: TopEntry[] = [],
          l = lse(r);
        for (let i = 0; i < k; i++) {
          const id = tp[(r * K + i) * 2];
          if (id < 0) break;
          out.push({ id, logprob: tp[(r * K + i) * 2 + 1] - l });
        }
        return out;
      },
    };
  }

  /** The job's next windows (of one length, up to WINDOW_ROWS positions) through the forward. */
  private echoForward(job: EchoJob): void {
    const { C } = this;
    const len = job.windows[job.w].len;
    const perBatch = Math.max(1, Math.floor(WINDOW_ROWS / len));
    const batch = [];
    while (job.w < job.windows.length && job.windows[job.w].len === len && batch.length < perBatch) batch.push(job.windows[job.w++]);
    const idx = new Int32Array(batch.length * len);
    batch.forEach((win, b) => {
      for (let t = 0; t < len; t++) idx[b * len + t] = job.ids[win.start + t];
    });
    // final LayerNorm output (B, T, C) of the forward on the backend
    const { cache } = this.engine.model.runWithCache(idx, batch.length, len, { names: ['ln_final.hook_normalized'], returnLogits: false });
    const lnf = cache.get('ln_final.hook_normalized');
    // row t - start - 1 of a window predicts target t
    batch.forEach((win, b) => {
      for (let t = win.from; t < win.start + len; t++) {
        const row = new Float64Array(C);
        for (let c = 0; c < C; c++) row[c] = lnf.get(b, t - win.start - 1, c);
        job.rows.push({ t, row });
      }
    });
  }

  private dropEcho(job: EchoJob): void {
    const i = this.echo.indexOf(job);
    if (i >= 0) this.echo.splice(i, 1);
  }
}
