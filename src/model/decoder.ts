// Incremental decoding on the model's backend (spec P20): one new position per sequence per step,
// through the same blocks as the full forward (Block.decode), with a per-layer cache of what later
// positions attend to — CRATE: the shared projection v_j = U*ᵀ LN₁(z_j) (query = key = value);
// GPT-2: k_j and v_j. Buffers stay on the backend; only the logits come back to the host.
import type { LanguageModel } from './lm.js';
import { embed } from './blocks/embed.js';
import type { Ctx } from './blocks/context.js';
import { HookState, point } from './blocks/context.js';
import type { DecodeScratch } from './blocks/block.js';
import { canonicalHookName, checkHookNames, type HookFn } from './hooks.js';
import { UsageError } from '../errors.js';

export interface DecoderOptions {
  /**
   * Hooks applied at every step (shapes have T = 1: the new position). This is how a clamp is
   * held during generation. hook_pattern is not available while decoding.
   */
  hooks?: Record<string, HookFn> | [string, HookFn][];
}

export class Decoder<Buf> {
  readonly batch: number;
  private readonly model: LanguageModel<Buf>;
  private readonly caches: Buf[];
  private readonly buf: Buf;
  private readonly x: Buf;
  private readonly xh: Buf;
  private readonly lnf: Buf;
  private readonly logits: Buf;
  private readonly embTmp: Buf;
  private readonly d: DecodeScratch<Buf>;
  private readonly hooks: HookState | null;
  private readonly makeCtx: (hs: HookState | null, n: number) => Ctx<Buf>;
  private pos = 0;
  private freed = false;

  constructor(model: LanguageModel<Buf>, batch: number, opts: DecoderOptions, makeCtx: (hs: HookState | null, n: number) => Ctx<Buf>) {
    if (!Number.isInteger(batch) || batch < 1) throw new UsageError(`decoder batch must be a positive integer, got ${batch}`);
    this.model = model;
    this.batch = batch;
    this.makeCtx = makeCtx;
    const c = model.config,
      be = model.backend,
      n = batch,
      C = c.nEmbd,
      H = c.overcomplete * C,
      maxT = c.blockSize;
    this.hooks = null;
    if (opts.hooks) {
      const pairs: [string, HookFn][] = Array.isArray(opts.hooks) ? opts.hooks : Object.entries(opts.hooks);
      checkHookNames(
        c,
        pairs.map(([k]) => k),
      );
      const hs = new HookState();
      for (const [k, fn] of pairs) {
        const name = canonicalHookName(c, k);
        if (/hook_pattern$/.test(name))
          throw new UsageError(`'${k}' cannot be hooked while decoding (the decoder never forms the attention pattern); use runWithHooks on the full sequence`);
        hs.patches.set(name, [...(hs.patches.get(name) ?? []), [k, fn]]);
      }
      this.hooks = hs;
    }
    this.caches = model.blocks.map((b) => be.alloc(b.cacheSize(n, maxT)));
    const wide = Math.max(c.istaSteps * H, H) * n;
    const sizes = {
      x: n * C,
      xh: n * C,
      lnf: n * C,
      logits: n * c.vocabSize,
      embTmp: n * C,
      u: n * C,
      mean: n,
      rstd: n,
      proj: 3 * n * C,
      q: n * C,
      y: n * C,
      tmp: n * C,
      wide1: wide,
      wide2: wide,
    };
    this.buf = be.alloc(Object.values(sizes).reduce((a, b) => a + b, 0));
    let off = 0;
    const v: Record<string, Buf> = {};
    for (const [k, len] of Object.entries(sizes)) {
      v[k] = be.view(this.buf, off, len);
      off += len;
    }
    this.x = v.x;
    this.xh = v.xh;
    this.lnf = v.lnf;
    this.logits = v.logits;
    this.embTmp = v.embTmp;
    this.d = { u: v.u, mean: v.mean, rstd: v.rstd, proj: v.proj, q: v.q, y: v.y, tmp: v.tmp, wide1: v.wide1, wide2: v.wide2 };
  }

  /** Positions fed so far (the same for every sequence of the batch). */
  get position(): number {
    return this.pos;
  }

  /** Start again from position 0 (the cache is simply overwritten). */
  reset(): void {
    this.pos = 0;
  }

  /**
   * Feed one token per sequence at the next position; returns the logits predicting the position
   * after it, (batch, V) row-major.
   */
  step(tokens: ArrayLike<number>): Float64Array {
    const m = this.model,
      c = m.config;
    const ctx = this.advance(tokens);
    m.backend.linearForward(this.logits, this.lnf, m.param('transformer.wte.weight'), null, this.batch, c.nEmbd, c.vocabSize);
    point(ctx, 'unembed.hook_out', this.logits, [this.batch, 1, c.vocabSize]);
    return m.backend.download(this.logits);
  }

  /**
   * As step, without the head: feed one token per sequence and return the final LayerNorm output of
   * the new position, (batch, C) row-major — what the tied head turns into logits. A caller that
   * applies the head to the rows of several decoders at once (a server batching requests of
   * different lengths) uses this; the values are exactly those step() would apply the head to.
   */
  stepNormalized(tokens: ArrayLike<number>): Float64Array {
    this.advance(tokens);
    return this.model.backend.download(this.lnf);
  }

  /**
   * Rows at their own positions: feed tokens[b] at position positions[b] to row b, for the first
   * `rows` rows, and return their final LayerNorm output, (rows, C) — what stepNormalized returns,
   * for rows whose sequences have different lengths (a server decoding requests that started at
   * different times in one decoder). Row b's cache entries past positions[b] are left as they are
   * (the row's next step overwrites them), so a row may sit a step out by being fed its pending
   * token again at the same position, or any token at position 0 when it holds no sequence. A row's
   * result depends on its own tokens only. position() is not advanced (the caller keeps each row's);
   * not available with hooks.
   */
  stepRowsNormalized(tokens: ArrayLike<number>, positions: ArrayLike<number>, rows: number): Float64Array {
    if (this.freed) throw new UsageError('this decoder has been freed');
    if (this.hooks) throw new UsageError('a decoder with hooks advances every row at one position (step / stepNormalized)');
    const m = this.model,
      c = m.config,
      be = m.backend,
      C = c.nEmbd;
    if (!Number.isInteger(rows) || rows < 1 || rows > this.batch) throw new UsageError(`rows must be an integer in [1, ${this.batch}], got ${rows}`);
    if (positions.length !== rows) throw new UsageError(`positions has ${positions.length} entries, expected rows = ${rows}`);
    const pos = new Int32Array(rows);
    for (let b = 0; b < rows; b++) {
      const p = positions[b];
      if (!Number.isInteger(p) || p < 0 || p >= c.blockSize)
        throw new UsageError(`positions[${b}] = ${p} is outside the context [0, ${c.blockSize}) (the model's block size)`);
      pos[b] = p;
    }
    const ids = m.checkTokens('token', tokens, rows, 1, false);
    const v = this.rowViews(rows);
    const ctx = this.makeCtx(null, rows);
    const wte = m.param('transformer.wte.weight'),
      wpe = m.param('transformer.wpe.weight');
    // the embedding of each run of rows at one position
    for (let b0 = 0; b0 < rows;) {
      let b1 = b0 + 1;
      while (b1 < rows && pos[b1] === pos[b0]) b1++;
      const r = b1 - b0;
      be.embeddingForward(be.view(v.x, b0 * C, r * C), ids.subarray(b0, b1), wte, be.view(wpe, pos[b0] * C, C), r, 1, C);
      b0 = b1;
    }
    for (let l = 0; l < c.nLayer; l++) m.blocks[l].decode(ctx, this.caches[l], { x: v.x, xh: v.xh }, pos, c.blockSize, v.d);
    be.layernormForward(
      v.lnf,
      v.d.mean,
      v.d.rstd,
      v.x,
      m.param('transformer.ln_f.weight'),
      m.arch.bias ? m.param('transformer.ln_f.bias') : null,
      rows,
      C,
      c.lnEps,
    );
    return be.download(v.lnf);
  }

  /** The step buffers cut to their first `rows` rows (each is rows-major: a prefix is those rows). */
  private rowViews(rows: number): { x: Buf; xh: Buf; lnf: Buf; d: DecodeScratch<Buf> } {
    const be = this.model.backend,
      n = this.batch;
    const cut = (b: Buf) => (rows === n ? b : be.view(b, 0, (be.size(b) / n) * rows));
    const d = Object.fromEntries(Object.entries(this.d).map(([k, b]) => [k, cut(b as Buf)])) as unknown as DecodeScratch<Buf>;
    return { x: cut(this.x), xh: cut(this.xh), lnf: cut(this.lnf), d };
  }

  /** Everything of a step up to the final LayerNorm (lnf holds its output); returns the step's hook context. */
  private advance(tokens: ArrayLike<number>): Ctx<Buf> {
    if (this.freed) throw new UsageError('this decoder has been freed');
    const m = this.model,
      c = m.config,
      be = m.backend,
      n = this.batch,
      C = c.nEmbd,
      t = this.pos;
    if (t >= c.blockSize) throw new UsageError(`context full: the model's block size is ${c.blockSize}; reset() and feed a shorter context`);
    const ids = m.checkTokens('token', tokens, n, 1, false);
    const ctx = this.makeCtx(this.hooks, n);
    embed(ctx, this.x, this.embTmp, ids, m.param('transformer.wte.weight'), m.param('transformer.wpe.weight'), t);
    for (let l = 0; l < c.nLayer; l++) m.blocks[l].decode(ctx, this.caches[l], { x: this.x, xh: this.xh }, t, c.blockSize, this.d);
    be.layernormForward(
      this.lnf,
      this.d.mean,
      this.d.rstd,
      this.x,
      m.param('transformer.ln_f.weight'),
      m.arch.bias ? m.param('transformer.ln_f.bias') : null,
      n,
      C,
      c.lnEps,
    );
    point(ctx, 'ln_final.hook_normalized', this.lnf, [n, 1, C]);
    this.pos++;
    return ctx;
  }

  /** Feed a whole prompt (one sequence per row, all of the same length); returns the last logits. */
  prefill(tokens: ArrayLike<number>[]): Float64Array {
    if (tokens.length !== this.batch) throw new UsageError(`prefill needs ${this.batch} sequences, got ${tokens.length}`);
    const len = tokens[0]?.length ?? 0;
    if (len === 0 || tokens.some((s) => s.length !== len)) throw new UsageError('prefill needs non-empty sequences of equal length');
    let logits!: Float64Array;
    const row = new Array<number>(this.batch);
    for (let i = 0; i < len; i++) {
      for (let b = 0; b < this.batch; b++) row[b] = tokens[b][i];
      logits = this.step(row);
    }
    return logits;
  }

  /** Release the decoder's backend buffers. */
  free(): void {
    if (this.freed) return;
    const be = this.model.backend;
    for (const c of this.caches) be.free(c);
    be.free(this.buf);
    this.freed = true;
  }
}
