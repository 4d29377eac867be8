// The language model: embedding, a stack of blocks, final LayerNorm and the tied head, written
// once against the Backend interface. Architectures differ only in their block (src/model/blocks/,
// listed in src/model/archs.ts): CRATE-LM (paper A), complete-ISTA CRATE (paper B, E14) and the
// GPT-2 baseline (spec 3.3). Choosing a backend is the only difference between a reference and a
// fast run.
//
// Parameters live in one flat buffer with named views (PyTorch state_dict names), gradients in a
// second flat buffer with the same layout. forward() keeps the activations backward() needs.
// Every intermediate has a TransformerLens-style hook name (src/model/hooks.ts): runWithCache reads
// them, runWithHooks may replace them, createDecoder runs the same blocks one position at a time.
import type { Backend } from '../backend/types.js';
import { type ModelConfig, validateConfig } from './config.js';
import { type ParamSpec, paramTable, totalSize, initParams } from './params.js';
import { Rng } from '../util/rng.js';
import { UsageError } from '../errors.js';
import type { Architecture, Block, Scratch } from './blocks/block.js';
import { architecture } from './archs.js';
import { HookState, point, type Ctx } from './blocks/context.js';
import { embed } from './blocks/embed.js';
import { ActivationCache, canonicalHookName, checkHookNames, hookDims, hookPoints, type HookFn } from './hooks.js';
import { Decoder, type DecoderOptions } from './decoder.js';

type Acts<Buf> = Record<string, Buf> & { x: Buf };

export interface ForwardResult {
  /** Logits (B,T,V) on the host (absent when stopAtLayer stopped before the head). */
  logits?: Float64Array;
  /** Mean cross-entropy when targets were given. */
  loss?: number;
}

export interface ForwardOptions {
  /** Copy the logits to the host (default true). Training loops pass false. */
  returnLogits?: boolean;
  /** Compute dlogits for a following backward() (default: true when targets are given). */
  grad?: boolean;
  /** Multiplies dlogits (e.g. 1/gradAccum). Default 1. */
  gradScale?: number;
}

export interface RunOptions extends ForwardOptions {
  /** Targets (B,T) for the loss (-1 = ignore). */
  targets?: ArrayLike<number> | null;
  /**
   * Run the embedding and blocks 0..stopAtLayer-1 only (TransformerLens semantics: exclusive), so
   * no final LayerNorm, head, logits or loss. Default: the whole model.
   */
  stopAtLayer?: number;
}

export interface CacheOptions extends RunOptions {
  /** Hook names to cache (aliases allowed), or a filter over the canonical names. Default: every hook point. */
  names?: string[] | ((name: string) => boolean);
}

export interface CacheResult extends ForwardResult {
  cache: ActivationCache;
}

/** Hooks for one call: name → function, or a list of [name, function] pairs (several per name run in order). */
export type Hooks = Record<string, HookFn> | [string, HookFn][];

export class LanguageModel<Buf = unknown> {
  readonly config: ModelConfig;
  readonly backend: Backend<Buf>;
  readonly table: ParamSpec[];
  readonly params: Buf;
  readonly grads: Buf;
  readonly blocks: Block<Acts<Buf>>[];
  /** The architecture of config.arch (src/model/archs.ts). */
  readonly arch: Architecture;
  private readonly byName: Map<string, ParamSpec>;

  // activations, sized for (B,T) of the latest forward
  private shapeBT: [number, number] = [0, 0];
  private actBuf: Buf | null = null;
  private scratch: Buf | null = null;
  private layers: Acts<Buf>[] = [];
  private xL!: Buf;
  private lnf!: Buf;
  private meanf!: Buf;
  private rstdf!: Buf;
  private logitsBuf!: Buf;
  private dlogits!: Buf;
  private tmpC!: Buf;
  private idx: Int32Array | null = null;
  private haveGrad = false;
  /** Why the latest forward cannot be differentiated (hooks replaced values, or it stopped early). */
  private noBackward: string | null = null;

  constructor(backend: Backend<Buf>, config: ModelConfig, opts: { seed?: number; params?: ArrayLike<number> } = {}) {
    validateConfig(config);
    this.config = { ...config };
    this.backend = backend;
    this.table = paramTable(config);
    this.byName = new Map(this.table.map((p) => [p.name, p]));
    this.arch = architecture(config.arch);
    this.blocks = Array.from({ length: config.nLayer }, (_, l) => this.arch.block(l, this.config) as Block<Acts<Buf>>);
    const n = totalSize(this.table);
    this.params = backend.alloc(n);
    this.grads = backend.alloc(n);
    if (opts.params) {
      if (opts.params.length !== n) throw new UsageError(`params has ${opts.params.length} values, the config needs ${n}`);
      this.setParams(opts.params);
    } else {
      backend.upload(this.params, initParams(this.table, new Rng(opts.seed ?? 1337)));
    }
  }

  get numParameters(): number {
    return totalSize(this.table);
  }

  /** Flat offset of block l's first parameter (its parameters are contiguous, up to the next block's or ln_f). */
  layerStart(l: number): number {
    const prefix = `transformer.h.${l}.`;
    const p = this.table.find((q) => q.name.startsWith(prefix));
    if (!p) throw new UsageError(`layerStart: no block ${l} in a ${this.config.nLayer}-layer model`);
    return p.offset;
  }

  /** The named view of a parameter (or of its gradient). */
  param(name: string): Buf {
    const p = this.spec(name);
    return this.backend.view(this.params, p.offset, p.size);
  }
  grad(name: string): Buf {
    const p = this.spec(name);
    return this.backend.view(this.grads, p.offset, p.size);
  }
  /** A parameter's values as a host Float64Array copy (any backend), in its PyTorch layout. */
  paramArray(name: string): Float64Array {
    return this.backend.download(this.param(name));
  }
  /** A parameter's gradient as a host Float64Array copy. */
  gradArray(name: string): Float64Array {
    return this.backend.download(this.grad(name));
  }
  spec(name: string): ParamSpec {
    const p = this.byName.get(name);
    if (!p) throw new UsageError(`no parameter named '${name}' in a ${this.config.arch} model`);
    return p;
  }

  /** Replace all parameters (flat, table order); rejects NaN/Inf with the tensor named. */
  setParams(values: ArrayLike<number>): void {
    if (values.length !== totalSize(this.table)) throw new UsageError(`setParams: got ${values.length} values, expected ${totalSize(this.table)}`);
    for (const p of this.table) {
      for (let i = 0; i < p.size; i++) {
        if (!Number.isFinite(values[p.offset + i]))
          throw new UsageError(`parameter ${p.name} has a non-finite value (${values[p.offset + i]}) at flat index ${i}`);
      }
    }
    this.backend.upload(this.params, values);
  }

  getParams(): Float64Array {
    return this.backend.download(this.params);
  }
  getGrads(): Float64Array {
    return this.backend.download(this.grads);
  }
  zeroGrad(): void {
    this.backend.fill(this.grads, 0);
  }

  free(): void {
    this.freeActs();
    this.backend.free(this.params);
    this.backend.free(this.grads);
  }

  private freeActs(): void {
    if (this.actBuf !== null) this.backend.free(this.actBuf);
    if (this.scratch !== null) this.backend.free(this.scratch);
    this.actBuf = null;
    this.scratch = null;
    this.layers = [];
  }

  /** Lay out every activation of a (B,T) forward in one buffer, and backward scratch in another. */
  private ensureActs(B: number, T: number): void {
    if (this.actBuf !== null && this.shapeBT[0] === B && this.shapeBT[1] === T) return;
    this.freeActs();
    const be = this.backend,
      c = this.config,
      N = B * T,
      C = c.nEmbd,
      H = c.overcomplete * C,
      V = c.vocabSize;
    const attSize = be.attentionSavedSize(B, c.nHead, T);
    const sizes = this.blocks.map((b) => b.sizes(N, attSize));
    const perLayer = sizes.reduce((a, s) => a + Object.values(s).reduce((x, y) => x + y, 0), 0);
    const tail = N * C * 3 + N * 2 + N * V * 2;
    this.actBuf = be.alloc(perLayer + tail);
    let off = 0;
    const take = (n: number): Buf => {
      const v = be.view(this.actBuf as Buf, off, n);
      off += n;
      return v;
    };
    this.layers = sizes.map((s) => {
      const acts = {} as Acts<Buf>;
      for (const k of Object.keys(s)) (acts as Record<string, Buf>)[k] = take(s[k]);
      return acts;
    });
    this.xL = take(N * C);
    this.lnf = take(N * C);
    this.meanf = take(N);
    this.rstdf = take(N);
    this.logitsBuf = take(N * V);
    this.dlogits = take(N * V);
    this.tmpC = take(N * C);
    // backward scratch: three (N,C) and two (N,max(3C,H)) buffers
    const wide = Math.max(3 * C, H) * N;
    this.scratch = be.alloc(3 * N * C + 2 * wide);
    this.shapeBT = [B, T];
  }

  private scratchViews(): Scratch<Buf> {
    const be = this.backend,
      [B, T] = this.shapeBT,
      N = B * T,
      C = this.config.nEmbd;
    const wide = Math.max(3 * C, this.config.overcomplete * C) * N;
    const s = this.scratch as Buf;
    return {
      d1: be.view(s, 0, N * C),
      d2: be.view(s, N * C, N * C),
      d3: be.view(s, 2 * N * C, N * C),
      w1: be.view(s, 3 * N * C, wide),
      w2: be.view(s, 3 * N * C + wide, wide),
    };
  }

  /** Validate token ids / targets and return them as Int32Array. */
  checkTokens(what: string, ids: ArrayLike<number>, B: number, T: number, allowIgnore: boolean): Int32Array {
    const V = this.config.vocabSize;
    if (ids.length !== B * T) throw new UsageError(`${what} has ${ids.length} elements, expected B*T = ${B}*${T} = ${B * T}`);
    const out = new Int32Array(B * T);
    for (let i = 0; i < ids.length; i++) {
      const t = ids[i];
      if (!Number.isInteger(t) || t >= V || t < (allowIgnore ? -1 : 0)) {
        throw new UsageError(`${what}[${Math.floor(i / T)}][${i % T}] = ${t} is outside the vocabulary [0, ${V})${allowIgnore ? ' (or -1 = ignore)' : ''}`);
      }
      out[i] = t;
    }
    return out;
  }

  private ctx(B: number, T: number, hooks: HookState | null): Ctx<Buf> {
    return { be: this.backend, cfg: this.config, B, T, N: B * T, param: (n) => this.param(n), grad: (n) => this.grad(n), hooks };
  }

  /**
   * Forward pass. idx: (B,T) token ids, flat row-major. With targets, computes the mean
   * cross-entropy and (unless opts.grad === false) dlogits for backward().
   */
  forward(idx: ArrayLike<number>, B: number, T: number, targets?: ArrayLike<number> | null, opts: ForwardOptions = {}): ForwardResult {
    return this.run(idx, B, T, { ...opts, targets }, null);
  }

  /**
   * Forward pass that caches the named activations (float64 ndarray views, shapes as in hookPoints).
   * Only the named tensors are downloaded; stopAtLayer skips everything after the last needed block.
   */
  runWithCache(idx: ArrayLike<number>, B: number, T: number, opts: CacheOptions = {}): CacheResult {
    const hs = new HookState();
    const all = hookPoints(this.config, 1, 1).map((p) => p.name);
    let asked: string[];
    if (opts.names === undefined) asked = [...all, ...this.blocks.map((b) => `blocks.${b.layer}.hook_neurons`)];
    else if (typeof opts.names === 'function') asked = all.filter(opts.names);
    else {
      checkHookNames(this.config, opts.names);
      asked = opts.names;
    }
    for (const n of asked) {
      const c = canonicalHookName(this.config, n);
      const list = hs.cacheAs.get(c) ?? [];
      if (!list.includes(n)) list.push(n);
      hs.cacheAs.set(c, list);
    }
    const r = this.run(idx, B, T, { grad: false, ...opts }, hs);
    return { ...r, cache: hs.cache };
  }

  /**
   * Forward pass with hooks that may read or replace activations for this call only. backward()
   * after a forward whose hooks could replace values is refused (see README, "Hooks").
   */
  runWithHooks(idx: ArrayLike<number>, B: number, T: number, hooks: Hooks, opts: RunOptions = {}): ForwardResult {
    const hs = new HookState();
    const pairs: [string, HookFn][] = Array.isArray(hooks) ? hooks : Object.entries(hooks);
    checkHookNames(
      this.config,
      pairs.map(([n]) => n),
    );
    for (const [n, fn] of pairs) {
      if (typeof fn !== 'function') throw new UsageError(`the hook for '${n}' is not a function`);
      const c = canonicalHookName(this.config, n);
      hs.patches.set(c, [...(hs.patches.get(c) ?? []), [n, fn]]);
    }
    return this.run(idx, B, T, opts, hs);
  }

  /** Every hook name of this model in execution order. */
  hookNames(): string[] {
    return hookPoints(this.config, 1, 1).map((p) => p.name);
  }

  /** The shape of a hook's tensor for a (B,T) call (aliases allowed). */
  hookShape(name: string, B: number, T: number): number[] {
    checkHookNames(this.config, [name]);
    const c = canonicalHookName(this.config, name);
    return (hookPoints(this.config, B, T).find((p) => p.name === c) as { shape: number[] }).shape;
  }

  private run(idx: ArrayLike<number>, B: number, T: number, opts: RunOptions, hs: HookState | null): ForwardResult {
    const c = this.config,
      be = this.backend;
    if (!Number.isInteger(B) || B < 1 || !Number.isInteger(T) || T < 1)
      throw new UsageError(`batch size and sequence length must be positive integers, got B=${B}, T=${T}`);
    if (T > c.blockSize) throw new UsageError(`sequence length ${T} exceeds the block size ${c.blockSize}`);
    const stop = opts.stopAtLayer ?? c.nLayer;
    if (!Number.isInteger(stop) || stop < 0 || stop > c.nLayer) throw new UsageError(`stopAtLayer must be an integer in [0, ${c.nLayer}], got ${stop}`);
    const ids = this.checkTokens('idx', idx, B, T, false);
    const tg = opts.targets ? this.checkTokens('targets', opts.targets, B, T, true) : null;
    this.ensureActs(B, T);
    this.idx = ids;
    this.haveGrad = false;
    const N = B * T,
      C = c.nEmbd,
      V = c.vocabSize;
    const ctx = this.ctx(B, T, hs);
    const x0 = this.layers.length ? this.layers[0].x : this.xL;

    embed(ctx, x0, this.tmpC, ids, this.param('transformer.wte.weight'), this.param('transformer.wpe.weight'), 0);
    for (let l = 0; l < stop; l++) {
      const out = l + 1 < c.nLayer ? this.layers[l + 1].x : this.xL;
      this.blocks[l].forward(ctx, this.layers[l], out, this.tmpC);
    }
    if (opts.stopAtLayer !== undefined) {
      // TransformerLens: any stop_at_layer returns before ln_final/unembed
      this.noBackward = `the latest forward stopped at layer ${stop}`;
      return {};
    }
    be.layernormForward(
      this.lnf,
      this.meanf,
      this.rstdf,
      this.xL,
      this.param('transformer.ln_f.weight'),
      this.arch.bias ? this.param('transformer.ln_f.bias') : null,
      N,
      C,
      c.lnEps,
    );
    point(ctx, 'ln_final.hook_normalized', this.lnf, [B, T, C]);
    be.linearForward(this.logitsBuf, this.lnf, this.param('transformer.wte.weight'), null, N, C, V); // tied head
    point(ctx, 'unembed.hook_out', this.logitsBuf, [B, T, V]);
    this.noBackward = hs?.patched
      ? 'the latest forward ran hooks that may have replaced activations, and backward through replaced values is not supported (run forward() again without hooks)'
      : null;

    const result: ForwardResult = {};
    if (opts.returnLogits ?? true) result.logits = be.download(this.logitsBuf);
    if (tg) {
      const wantGrad = (opts.grad ?? true) && this.noBackward === null;
      result.loss = be.crossEntropyForward(wantGrad ? this.dlogits : null, this.logitsBuf, tg, N, V, opts.gradScale ?? 1);
      this.haveGrad = wantGrad;
    }
    return result;
  }

  /**
   * Backward pass of the latest forward(idx, targets): accumulates into the gradient buffer.
   * onReady(from), when given, is called each time the gradients [from, numParameters) of the flat
   * buffer are final for this backward: after each block, from the top one down (from = the
   * block's first parameter; the first call also covers ln_f), and once more with from = 0 after
   * the embeddings (wte, tied to the output projection, is final only then). Data-parallel training
   * starts reducing a finished part while the backward of the layers below runs.
   */
  backward(onReady?: (from: number) => void): void {
    if (this.noBackward !== null) throw new UsageError(`backward() refused: ${this.noBackward}`);
    if (!this.haveGrad || this.idx === null) throw new UsageError('backward() needs a preceding forward() with targets (and grad not disabled)');
    const c = this.config,
      be = this.backend,
      [B, T] = this.shapeBT;
    const N = B * T,
      C = c.nEmbd,
      V = c.vocabSize;
    const s = this.scratchViews();
    const ctx = this.ctx(B, T, null);
    // s.d1 carries the gradient of the current residual stream throughout.
    be.linearBackward(s.d2, this.grad('transformer.wte.weight'), null, this.dlogits, this.lnf, this.param('transformer.wte.weight'), N, C, V);
    be.layernormBackward(
      s.d1,
      this.grad('transformer.ln_f.weight'),
      this.arch.bias ? this.grad('transformer.ln_f.bias') : null,
      s.d2,
      this.xL,
      this.param('transformer.ln_f.weight'),
      this.meanf,
      this.rstdf,
      N,
      C,
    );
    for (let l = c.nLayer - 1; l >= 0; l--) {
      const out = l + 1 < c.nLayer ? this.layers[l + 1].x : this.xL;
      this.blocks[l].backward(ctx, this.layers[l], out, s);
      onReady?.(this.layerStart(l));
    }
    be.embeddingBackward(this.grad('transformer.wte.weight'), this.grad('transformer.wpe.weight'), s.d1, this.idx, B, T, C);
    this.haveGrad = false;
    onReady?.(0);
  }

  /**
   * An incremental decoder on this model's backend: feed one token per sequence per step and get
   * the next-token logits, with a per-layer cache of what later positions attend to (CRATE: the
   * shared projection U*ᵀ LN₁(z); GPT-2: k and v). Equal to the full forward (spec P20).
   */
  createDecoder(batch = 1, opts: DecoderOptions = {}): Decoder<Buf> {
    return new Decoder(this, batch, opts, (hs, n) => this.ctx(n, 1, hs));
  }

  // ---- introspection ----------------------------------------------------------------------------

  /**
   * Every stored intermediate of the latest forward, in execution order, under its hook name: the
   * hook points whose blocks declare a stored tensor (not hook_embed/hook_pos_embed/hook_pattern,
   * nor a branch output kept in scratch), then ln_final and the logits. Used by the cross-backend
   * audit to locate where two backends start to disagree.
   */
  activations(): { name: string; layer: number; data: Float64Array }[] {
    const [B, T] = this.shapeBT,
      c = this.config,
      be = this.backend,
      N = B * T,
      dims = hookDims(c, B, T);
    if (this.idx === null) throw new UsageError('activations(): run forward first');
    const out: { name: string; layer: number; data: Float64Array }[] = [];
    for (let l = 0; l < c.nLayer; l++) {
      const acts = this.layers[l] as Record<string, Buf>,
        next = l + 1 < c.nLayer ? this.layers[l + 1].x : this.xL;
      for (const h of this.blocks[l].hooks) {
        const ref = h.tensor;
        if (!ref) continue;
        const buf = ref.act === 'out' ? next : acts[ref.act],
          size = h.shape.reduce((a, s) => a * dims[s], 1);
        let data: Float64Array;
        if (ref.rowWidth !== undefined) {
          // columns [column, column + size/N) of each token's row
          const all = be.download(buf),
            w = size / N,
            col = ref.column ?? 0;
          data = new Float64Array(size);
          for (let n = 0; n < N; n++) data.set(all.subarray(n * ref.rowWidth + col, n * ref.rowWidth + col + w), n * w);
        } else {
          data = be.download(be.view(buf, (ref.index ?? 0) * size, size));
        }
        out.push({ name: `blocks.${l}.${h.name}`, layer: l, data });
      }
    }
    out.push({ name: 'ln_final.hook_normalized', layer: c.nLayer, data: be.download(this.lnf) });
    out.push({ name: 'unembed.hook_out', layer: c.nLayer, data: be.download(this.logitsBuf) });
    return out;
  }
}
