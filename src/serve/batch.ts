// Batched execution for `crate-ts serve`: the requests computing at the same time share the model.
//
// The model runs on one thread, so the work of every request is cut into steps that a scheduler
// interleaves; what makes sharing pay is that the LM head, logits = LN_f(x)·wteᵀ with V × C weights
// (25 MB for GPT-2's vocabulary), is applied to the rows of several requests in one product
// instead of streaming its weights once per row.
//
// - Generation: one decoding step of up to `maxBatch` sequences runs their blocks and then one head
//   product over all their rows (at most HEAD_ROWS rows a product). The model's decoder advances
//   all its rows at one position, so sequences that start in the same step with prompts of the
//   same length share one decoder (a cohort: its prompt rows are fed together and each step of its
//   blocks advances them all); any other sequence has its own. Each sequence samples from its own
//   row with its own Rng, so batching changes no draw.
// - Echo (prompt log-probabilities): each prompt's windows run through the model's forward as
//   before; the final-LayerNorm rows of the positions to score, from every echo request waiting,
//   are packed into head products of ECHO_ROWS rows (padded), one product a step.
//
// Same answers batched or alone: the head product computes each output row from that row of its
// input only, in an order that does not depend on the other rows (the native GEMV of a few rows
// and the packed SGEMM both sum each output over C in a fixed order; the reference backend is a
// plain loop), echo products always have ECHO_ROWS rows whatever fills them, and everything after
// the head (log-sum-exp, top-k, sampling) reads one row. test/serve-batch.test.ts checks it.
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
  logSumExp,
  sampleId,
  topK,
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
 * Sequences that started in the same step with prompts of the same length: they share one
 * decoder of their batch (one position for all, so one step of its blocks advances every row).
 * A finished member's row is fed a placeholder token and ignored until the cohort ends.
 */
interface Cohort {
  dec: Decoder<unknown>;
  members: (GenJob | null)[];
}

interface GenJob {
  opts: GenerateOptions;
  onText?: OnText;
  ctx: number[];
  /** The decoder it shares while its context fits the block (null: a forward per token). */
  cohort: Cohort | null;
  /** Its row in the cohort's decoder. */
  slot: number;
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
  /** The most sequences that shared one decoder. */
  cohortMax: number;
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
  readonly stats: BatchStats = { genSteps: 0, genRows: 0, genMaxRows: 0, cohortMax: 0, echoSteps: 0, echoMaxRequests: 0 };
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
        cohort: null,
        slot: 0,
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
        await this.genStep();
        await this.echoStep();
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

  /** A job may step when it and every live member of its cohort have their text written. */
  private canStep(job: GenJob): boolean {
    if (job.waiting) return false;
    return !job.cohort || job.cohort.members.every((m) => m === null || !m.waiting);
  }

  /** One decoding step of up to maxBatch ready sequences: their blocks, one head, one token each. */
  private async genStep(): Promise<void> {
    const picked: GenJob[] = [];
    for (const job of this.gen) {
      if (picked.length >= this.opts.maxBatch) break;
      if (picked.includes(job) || !this.canStep(job)) continue;
      // a cohort steps whole
      if (job.cohort) {
        for (const m of job.cohort.members) if (m) picked.push(m);
      } else picked.push(job);
    }
    if (picked.length === 0) return;
    // the sequences served go to the back, so more than maxBatch take turns
    this.gen = [...this.gen.filter((j) => !picked.includes(j)), ...picked];
    const rows: { job: GenJob; row: Float64Array }[] = [];
    const T = this.engine.blockSize;
    // new sequences: those whose prompts have one length start one cohort
    const fresh = new Map<number, GenJob[]>();
    const cohorts = new Set<Cohort>();
    for (const job of picked) {
      if (!job.started && job.ctx.length <= T) fresh.set(job.ctx.length, [...(fresh.get(job.ctx.length) ?? []), job]);
      else if (job.cohort) cohorts.add(job.cohort);
      else
        try {
          job.started = true;
          rows.push({ job, row: this.windowRow(job.ctx) });
        } catch (e) {
          this.fail(job, e);
        }
    }
    for (const group of fresh.values()) {
      try {
        rows.push(...(await this.startCohort(group)));
      } catch (e) {
        for (const job of group) this.fail(job, e);
      }
    }
    for (const cohort of cohorts) {
      const live = cohort.members.filter((m): m is GenJob => m !== null);
      try {
        if (cohort.dec.position < T) {
          const out = cohort.dec.stepNormalized(cohort.members.map((m) => (m ? m.ctx[m.ctx.length - 1] : 0)));
          for (const m of live) rows.push({ job: m, row: out.subarray(m.slot * this.C, (m.slot + 1) * this.C) });
        } else {
          // the context is full: each member goes on with a forward over its last T tokens
          cohort.dec.free();
          for (const m of live) {
            m.cohort = null;
            rows.push({ job: m, row: this.windowRow(m.ctx) });
          }
        }
      } catch (e) {
        for (const m of live) this.fail(m, e);
      }
    }
    const { C, V } = this;
    const be = this.engine.model.backend;
    this.stats.genSteps++;
    this.stats.genRows += rows.length;
    this.stats.genMaxRows = Math.max(this.stats.genMaxRows, rows.length);
    for (let r0 = 0; r0 < rows.length; r0 += HEAD_ROWS) {
      const part = rows.slice(r0, r0 + HEAD_ROWS),
        n = part.length;
      let logits: Logits;
      const { genIn, genOut } = this.buffers();
      try {
        const host = new Float64Array(n * C);
        part.forEach((p, r) => host.set(p.row, r * C));
        const inp = be.view(genIn, 0, n * C),
          out = be.view(genOut, 0, n * V);
        be.upload(inp, host);
        be.linearForward(out, inp, this.engine.model.param('transformer.wte.weight'), null, n, C, V); // tied head
        logits = downloadLogits(be, out);
      } catch (e) {
        for (const p of part) this.fail(p.job, e);
        continue;
      }
      part.forEach((p, r) => {
        try {
          this.emit(p.job, logits.subarray(r * V, (r + 1) * V));
        } catch (e) {
          this.fail(p.job, e);
        }
      });
    }
  }

  /** A cohort for sequences with prompts of one length: their prompts fed together; their first rows. */
  private async startCohort(group: GenJob[]): Promise<{ job: GenJob; row: Float64Array }[]> {
    const cohort: Cohort = { dec: this.engine.model.createDecoder(group.length), members: [...group] };
    this.stats.cohortMax = Math.max(this.stats.cohortMax, group.length);
    group.forEach((job, i) => {
      job.started = true;
      job.cohort = cohort;
      job.slot = i;
    });
    const len = group[0].ctx.length;
    const tokens = new Int32Array(group.length);
    let out: Float64Array = new Float64Array(0);
    for (let i = 0; i < len; i++) {
      group.forEach((job, r) => (tokens[r] = job.ctx[i]));
      out = cohort.dec.stepNormalized(tokens);
      if ((i & 63) === 63) await yieldNow();
    }
    return group.map((job, r) => ({ job, row: out.subarray(r * this.C, (r + 1) * this.C) }));
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

  /** Sample the job's next token from its logits row, hand out its text, and finish or go on. */
  private emit(job: GenJob, logits: Logits): void {
    const o = job.opts,
      V = this.V,
      textVocab = this.engine.textVocab;
    const id = sampleId(logits, textVocab, o);
    // the log-sum-exp (V exponentials on the host) only when log-probabilities are asked for
    const lse = o.logprobs !== null ? logSumExp(logits, 0, V) : NaN;
    const tok: GeneratedToken = {
      id,
      text: '',
      logprob: logits[id] - lse,
      top: o.logprobs !== null ? topK(logits, 0, textVocab, o.logprobs, lse) : [],
    };
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

  private remove(job: GenJob): void {
    this.gen = this.gen.filter((j) => j !== job);
    const cohort = job.cohort;
    if (cohort) {
      cohort.members[job.slot] = null;
      if (cohort.members.every((m) => m === null)) cohort.dec.free();
      job.cohort = null;
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
      const L = downloadLogits(be, be.view(out, 0, n * V));
      picked.forEach((p, r) => {
        const off = r * V,
          target = p.job.ids[p.t];
        // -log p(target) = logsumexp(row) - row[target], from the backend's cross-entropy
        // operator (its exponentials are the backend's: float32 on the native backends, whose
        // logits carry float32 rounding anyway; float64 on the reference), so the host does
        // not take V exponentials per position.
        const nll = be.crossEntropyForward(null, be.view(out, off, V), Int32Array.of(target), 1, V, 1);
        p.job.result.tokenLogprobs[p.t] = -nll;
        p.job.result.top[p.t] = topK(L, off, this.engine.textVocab, p.job.k, nll + L[off + target]) as TopEntry[];
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
