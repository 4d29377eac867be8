// The language models, written once against the Backend interface (src/backend/types.ts):
// CRATE-LM (paper A, spec 3.1), the complete-ISTA CRATE of paper B (E14), and the GPT-2 baseline
// (spec 3.3). Choosing a backend is the only difference between a reference and a fast run.
//
// Parameters live in one flat buffer with named views (PyTorch state_dict names), gradients in a
// second flat buffer with the same layout. forward() keeps the activations backward() needs.
import type { Backend } from '../backend/types.js';
import { type ModelConfig, validateConfig } from './config.js';
import { type ParamSpec, paramTable, totalSize, initParams } from './params.js';
import { Rng } from '../util/rng.js';

/** Per-layer activations of one forward pass (each a view into one activation buffer). */
interface LayerActs<Buf> {
  x: Buf;       // block input (N,C)
  ln1: Buf; mean1: Buf; rstd1: Buf;
  qkv: Buf;     // crate: v = LN₁(x) c_attnᵀ (N,C);  gpt2: (N,3C)
  att: Buf;     // attention state kept for backward
  y: Buf;       // attention output before c_proj (N,C)
  xh: Buf;      // x + attention branch (N,C)
  ln2: Buf; mean2: Buf; rstd2: Buf;
  codes: Buf;   // crate: ISTA iterates (steps,N,H); gpt2: MLP pre-activation (N,H); crate-complete: unused
  hr: Buf;      // gpt2: relu(pre) (N,H); unused otherwise
}

export interface ForwardResult {
  /** Logits (B,T,V) on the host. */
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

export class LanguageModel<Buf = unknown> {
  readonly config: ModelConfig;
  readonly backend: Backend<Buf>;
  readonly table: ParamSpec[];
  readonly params: Buf;
  readonly grads: Buf;
  private readonly byName: Map<string, ParamSpec>;

  // activations, sized for (B,T) of the latest forward
  private shapeBT: [number, number] = [0, 0];
  private actBuf: Buf | null = null;
  private scratch: Buf | null = null;
  private layers: LayerActs<Buf>[] = [];
  private xL!: Buf; private lnf!: Buf; private meanf!: Buf; private rstdf!: Buf;
  private logitsBuf!: Buf; private dlogits!: Buf;
  private idx: Int32Array | null = null;
  private haveGrad = false;

  constructor(backend: Backend<Buf>, config: ModelConfig, opts: { seed?: number; params?: ArrayLike<number> } = {}) {
    validateConfig(config);
    this.config = { ...config };
    this.backend = backend;
    this.table = paramTable(config);
    this.byName = new Map(this.table.map((p) => [p.name, p]));
    const n = totalSize(this.table);
    this.params = backend.alloc(n);
    this.grads = backend.alloc(n);
    if (opts.params) {
      if (opts.params.length !== n) throw new Error(`params has ${opts.params.length} values, the config needs ${n}`);
      this.setParams(opts.params);
    } else {
      backend.upload(this.params, initParams(this.table, new Rng(opts.seed ?? 1337)));
    }
  }

  get numParameters(): number { return totalSize(this.table); }

  /** The named view of a parameter (or of its gradient). */
  param(name: string): Buf { const p = this.spec(name); return this.backend.view(this.params, p.offset, p.size); }
  grad(name: string): Buf { const p = this.spec(name); return this.backend.view(this.grads, p.offset, p.size); }
  spec(name: string): ParamSpec {
    const p = this.byName.get(name);
    if (!p) throw new Error(`no parameter named '${name}' in a ${this.config.arch} model`);
    return p;
  }

  /** Replace all parameters (flat, table order); rejects NaN/Inf with the tensor named. */
  setParams(values: ArrayLike<number>): void {
    if (values.length !== totalSize(this.table)) throw new Error(`setParams: got ${values.length} values, expected ${totalSize(this.table)}`);
    for (const p of this.table) {
      for (let i = 0; i < p.size; i++) {
        if (!Number.isFinite(values[p.offset + i])) throw new Error(`parameter ${p.name} has a non-finite value (${values[p.offset + i]}) at flat index ${i}`);
      }
    }
    this.backend.upload(this.params, values);
  }

  getParams(): Float64Array { return this.backend.download(this.params); }
  getGrads(): Float64Array { return this.backend.download(this.grads); }
  zeroGrad(): void { this.backend.fill(this.grads, 0); }

  free(): void {
    this.freeActs();
    this.backend.free(this.params);
    this.backend.free(this.grads);
  }

  private freeActs(): void {
    if (this.actBuf !== null) this.backend.free(this.actBuf);
    if (this.scratch !== null) this.backend.free(this.scratch);
    this.actBuf = null; this.scratch = null; this.layers = [];
  }

  /** Lay out every activation of a (B,T) forward in one buffer, and backward scratch in another. */
  private ensureActs(B: number, T: number): void {
    if (this.actBuf !== null && this.shapeBT[0] === B && this.shapeBT[1] === T) return;
    this.freeActs();
    const be = this.backend, c = this.config, N = B * T, C = c.nEmbd, H = c.overcomplete * C, V = c.vocabSize;
    const gpt = c.arch === 'gpt2';
    const attSize = be.attentionSavedSize(B, c.nHead, T);
    const sizes: Record<keyof LayerActs<Buf>, number> = {
      x: N * C, ln1: N * C, mean1: N, rstd1: N, qkv: (gpt ? 3 : 1) * N * C, att: attSize, y: N * C, xh: N * C,
      ln2: N * C, mean2: N, rstd2: N,
      codes: c.arch === 'crate' ? c.istaSteps * N * H : gpt ? N * H : 0,
      hr: gpt ? N * H : 0,
    };
    const perLayer = Object.values(sizes).reduce((a, b) => a + b, 0);
    const tail = N * C * 2 + N * 2 + N * V * 2;
    this.actBuf = be.alloc(perLayer * c.nLayer + tail);
    let off = 0;
    const take = (n: number): Buf => { const v = be.view(this.actBuf as Buf, off, n); off += n; return v; };
    this.layers = [];
    for (let l = 0; l < c.nLayer; l++) {
      const acts = {} as LayerActs<Buf>;
      for (const k of Object.keys(sizes) as (keyof LayerActs<Buf>)[]) acts[k] = take(sizes[k]);
      this.layers.push(acts);
    }
    this.xL = take(N * C); this.lnf = take(N * C); this.meanf = take(N); this.rstdf = take(N);
    this.logitsBuf = take(N * V); this.dlogits = take(N * V);
    // backward scratch: three (N,C) and two (N,max(3C,H)) buffers
    const wide = Math.max(3 * C, H) * N;
    this.scratch = be.alloc(3 * N * C + 2 * wide);
    this.shapeBT = [B, T];
  }

  private scratchViews(): { d1: Buf; d2: Buf; d3: Buf; w1: Buf; w2: Buf } {
    const be = this.backend, [B, T] = this.shapeBT, N = B * T, C = this.config.nEmbd;
    const wide = Math.max(3 * C, this.config.overcomplete * C) * N;
    const s = this.scratch as Buf;
    return {
      d1: be.view(s, 0, N * C), d2: be.view(s, N * C, N * C), d3: be.view(s, 2 * N * C, N * C),
      w1: be.view(s, 3 * N * C, wide), w2: be.view(s, 3 * N * C + wide, wide),
    };
  }

  /** Validate token ids / targets and return them as Int32Array. */
  private checkTokens(what: string, ids: ArrayLike<number>, B: number, T: number, allowIgnore: boolean): Int32Array {
    const V = this.config.vocabSize;
    if (ids.length !== B * T) throw new Error(`${what} has ${ids.length} elements, expected B*T = ${B}*${T} = ${B * T}`);
    const out = new Int32Array(B * T);
    for (let i = 0; i < ids.length; i++) {
      const t = ids[i];
      if (!Number.isInteger(t) || t >= V || t < (allowIgnore ? -1 : 0)) {
        throw new Error(`${what}[${Math.floor(i / T)}][${i % T}] = ${t} is outside the vocabulary [0, ${V})${allowIgnore ? ' (or -1 = ignore)' : ''}`);
      }
      out[i] = t;
    }
    return out;
  }

  /**
   * Forward pass. idx: (B,T) token ids, flat row-major. With targets, computes the mean
   * cross-entropy and (unless opts.grad === false) dlogits for backward().
   */
  forward(idx: ArrayLike<number>, B: number, T: number, targets?: ArrayLike<number> | null, opts: ForwardOptions = {}): ForwardResult {
    const c = this.config, be = this.backend;
    if (!Number.isInteger(B) || B < 1 || !Number.isInteger(T) || T < 1) throw new Error(`batch size and sequence length must be positive integers, got B=${B}, T=${T}`);
    if (T > c.blockSize) throw new Error(`sequence length ${T} exceeds the block size ${c.blockSize}`);
    const ids = this.checkTokens('idx', idx, B, T, false);
    const tg = targets ? this.checkTokens('targets', targets, B, T, true) : null;
    this.ensureActs(B, T);
    this.idx = ids;
    const N = B * T, C = c.nEmbd, V = c.vocabSize, NH = c.nHead, H = c.overcomplete * C;

    be.embeddingForward(this.layers.length ? this.layers[0].x : this.xL, ids, this.param('transformer.wte.weight'), this.param('transformer.wpe.weight'), B, T, C);
    for (let l = 0; l < c.nLayer; l++) {
      const a = this.layers[l];
      const out = l + 1 < c.nLayer ? this.layers[l + 1].x : this.xL;
      const p = `transformer.h.${l}.`;
      if (c.arch === 'gpt2') {
        be.layernormForward(a.ln1, a.mean1, a.rstd1, a.x, this.param(p + 'ln_1.weight'), null, N, C, c.lnEps);
        be.linearForward(a.qkv, a.ln1, this.param(p + 'attn.c_attn.weight'), null, N, C, 3 * C);      // (N,3C)
        be.attentionForward(a.y, a.att, a.qkv, B, T, C, NH);                                            // (N,C)
        be.linearForward(a.xh, a.y, this.param(p + 'attn.c_proj.weight'), null, N, C, C);
        be.add(a.xh, a.xh, a.x);                                                                        // residual
        be.layernormForward(a.ln2, a.mean2, a.rstd2, a.xh, this.param(p + 'ln_2.weight'), null, N, C, c.lnEps);
        be.linearForward(a.codes, a.ln2, this.param(p + 'mlp.c_fc.weight'), null, N, C, H);            // (N,H)
        be.reluForward(a.hr, a.codes);                                                                  // "neurons"
        be.linearForward(out, a.hr, this.param(p + 'mlp.c_proj.weight'), null, N, H, C);
        be.add(out, out, a.xh);                                                                         // residual
      } else {
        // x ← x + MSSA(LN₁ x)   (E16, E18)
        be.layernormForward(a.ln1, a.mean1, a.rstd1, a.x, this.param(p + 'prenorm_1.weight'), this.param(p + 'prenorm_1.bias'), N, C, c.lnEps);
        be.linearForward(a.qkv, a.ln1, this.param(p + 'attn.c_attn.weight'), null, N, C, C);          // v = U*ᵀ LN(x)
        be.mssaForward(a.y, a.att, a.qkv, B, T, C, NH);                                                // q = k = v
        be.linearForward(a.xh, a.y, this.param(p + 'attn.c_proj.weight'), this.param(p + 'attn.c_proj.bias'), N, C, C);
        be.add(a.xh, a.xh, a.x);
        // x ← D·ISTA(LN₂ x), no residual   (E19 / E14)
        be.layernormForward(a.ln2, a.mean2, a.rstd2, a.xh, this.param(p + 'prenorm_2.weight'), this.param(p + 'prenorm_2.bias'), N, C, c.lnEps);
        if (c.arch === 'crate') be.istaForward(out, a.codes, a.ln2, this.param(p + 'ista.weight'), N, C, H, c.eta, c.lam, c.istaSteps);
        else be.istaCompleteForward(out, a.ln2, this.param(p + 'ista.weight'), N, C, c.eta, c.lam);
      }
    }
    be.layernormForward(this.lnf, this.meanf, this.rstdf, this.xL, this.param('transformer.ln_f.weight'), c.arch === 'gpt2' ? null : this.param('transformer.ln_f.bias'), N, C, c.lnEps);
    be.linearForward(this.logitsBuf, this.lnf, this.param('transformer.wte.weight'), null, N, C, V);   // tied head

    const result: ForwardResult = {};
    if (opts.returnLogits ?? true) result.logits = be.download(this.logitsBuf);
    this.haveGrad = false;
    if (tg) {
      const wantGrad = opts.grad ?? true;
      result.loss = be.crossEntropyForward(wantGrad ? this.dlogits : null, this.logitsBuf, tg, N, V, opts.gradScale ?? 1);
      this.haveGrad = wantGrad;
    }
    return result;
  }

  /** Backward pass of the latest forward(idx, targets): accumulates into the gradient buffer. */
  backward(): void {
    if (!this.haveGrad || this.idx === null) throw new Error('backward() needs a preceding forward() with targets (and grad not disabled)');
    const c = this.config, be = this.backend, [B, T] = this.shapeBT;
    const N = B * T, C = c.nEmbd, V = c.vocabSize, NH = c.nHead, H = c.overcomplete * C;
    const { d1, d2, d3, w1, w2 } = this.scratchViews();
    // dx lives in d1 throughout: the gradient w.r.t. the current residual stream.
    be.linearBackward(d2, this.grad('transformer.wte.weight'), null, this.dlogits, this.lnf, this.param('transformer.wte.weight'), N, C, V);
    be.layernormBackward(d1, this.grad('transformer.ln_f.weight'), c.arch === 'gpt2' ? null : this.grad('transformer.ln_f.bias'), d2, this.xL, this.param('transformer.ln_f.weight'), this.meanf, this.rstdf, N, C);
    for (let l = c.nLayer - 1; l >= 0; l--) {
      const a = this.layers[l];
      const p = `transformer.h.${l}.`;
      if (c.arch === 'gpt2') {
        const dh = be.view(w1, 0, N * H), dpre = be.view(w2, 0, N * H);
        be.linearBackward(dh, this.grad(p + 'mlp.c_proj.weight'), null, d1, a.hr, this.param(p + 'mlp.c_proj.weight'), N, H, C);
        be.reluBackward(dpre, dh, a.hr);
        be.linearBackward(d2, this.grad(p + 'mlp.c_fc.weight'), null, dpre, a.ln2, this.param(p + 'mlp.c_fc.weight'), N, C, H);
        be.layernormBackward(d3, this.grad(p + 'ln_2.weight'), null, d2, a.xh, this.param(p + 'ln_2.weight'), a.mean2, a.rstd2, N, C);
        be.add(d1, d1, d3);                                                    // dxh = dx (residual) + MLP path
        be.linearBackward(d2, this.grad(p + 'attn.c_proj.weight'), null, d1, a.y, this.param(p + 'attn.c_proj.weight'), N, C, C);
        const dqkv = be.view(w1, 0, 3 * N * C);
        be.attentionBackward(dqkv, d2, a.qkv, a.y, a.att, B, T, C, NH);
        be.linearBackward(d2, this.grad(p + 'attn.c_attn.weight'), null, dqkv, a.ln1, this.param(p + 'attn.c_attn.weight'), N, C, 3 * C);
        be.layernormBackward(d3, this.grad(p + 'ln_1.weight'), null, d2, a.x, this.param(p + 'ln_1.weight'), a.mean1, a.rstd1, N, C);
        be.add(d1, d1, d3);
      } else {
        // ISTA: no residual, so dxh comes only through LN₂
        if (c.arch === 'crate') be.istaBackward(d2, this.grad(p + 'ista.weight'), d1, a.ln2, this.param(p + 'ista.weight'), a.codes, N, C, H, c.eta, c.lam, c.istaSteps);
        else be.istaCompleteBackward(d2, this.grad(p + 'ista.weight'), d1, a.ln2, this.param(p + 'ista.weight'), this.layers[l + 1]?.x ?? this.xL, N, C, c.eta, c.lam);
        be.layernormBackward(d1, this.grad(p + 'prenorm_2.weight'), this.grad(p + 'prenorm_2.bias'), d2, a.xh, this.param(p + 'prenorm_2.weight'), a.mean2, a.rstd2, N, C);
        // attention branch
        be.linearBackward(d2, this.grad(p + 'attn.c_proj.weight'), this.grad(p + 'attn.c_proj.bias'), d1, a.y, this.param(p + 'attn.c_proj.weight'), N, C, C);
        be.mssaBackward(d3, d2, a.qkv, a.y, a.att, B, T, C, NH);
        be.linearBackward(d2, this.grad(p + 'attn.c_attn.weight'), null, d3, a.ln1, this.param(p + 'attn.c_attn.weight'), N, C, C);
        be.layernormBackward(d3, this.grad(p + 'prenorm_1.weight'), this.grad(p + 'prenorm_1.bias'), d2, a.x, this.param(p + 'prenorm_1.weight'), a.mean1, a.rstd1, N, C);
        be.add(d1, d1, d3);                                                    // residual
      }
    }
    be.embeddingBackward(this.grad('transformer.wte.weight'), this.grad('transformer.wpe.weight'), d1, this.idx, B, T, C);
    this.haveGrad = false;
  }

  // ---- introspection ----------------------------------------------------------------------------

  /** Layer l's sparse code (the paper's "neurons", shape (B·T, H)): a_steps for CRATE, relu(c_fc) for GPT-2. */
  istaCode(layer: number): Float64Array {
    const c = this.config;
    if (!this.layers[layer]) throw new Error(`no activations for layer ${layer} (run forward first; the model has ${c.nLayer} layers)`);
    const a = this.layers[layer], [B, T] = this.shapeBT, NH = B * T * c.overcomplete * c.nEmbd;
    if (c.arch === 'gpt2') return this.backend.download(a.hr);
    if (c.arch === 'crate-complete') return this.blockOutput(layer);
    return this.backend.download(this.backend.view(a.codes, (c.istaSteps - 1) * NH, NH));
  }

  /** Output of block l (B·T, C) from the latest forward; blockOutput(-1) is the embedding. */
  blockOutput(layer: number): Float64Array {
    if (layer < -1 || layer >= this.config.nLayer || this.layers.length === 0 && layer !== this.config.nLayer - 1) throw new Error(`blockOutput: layer ${layer} out of range or no forward yet`);
    const next = layer + 1 < this.config.nLayer ? this.layers[layer + 1].x : this.xL;
    return this.backend.download(next);
  }

  /**
   * Every intermediate tensor of the latest forward, in execution order, named after the operator
   * that produced it (`h.0.ln_1`, `h.0.attn.c_attn`, `h.0.attn.mssa`, `h.0.attn.c_proj+residual`,
   * `h.0.ln_2`, `h.0.ista.a1`, …, `h.0.ista.decode`, …, `ln_f`, `logits`). Used by the
   * cross-backend audit to locate where two backends start to disagree or where a NaN appears.
   */
  activations(): { name: string; layer: number; data: Float64Array }[] {
    const c = this.config, be = this.backend, [B, T] = this.shapeBT, N = B * T, H = c.overcomplete * c.nEmbd;
    if (this.layers.length === 0) throw new Error('activations(): run forward first');
    const out: { name: string; layer: number; data: Float64Array }[] = [];
    const add = (name: string, layer: number, buf: Buf) => out.push({ name, layer, data: be.download(buf) });
    add('embedding', -1, this.layers[0].x);
    for (let l = 0; l < c.nLayer; l++) {
      const a = this.layers[l], next = l + 1 < c.nLayer ? this.layers[l + 1].x : this.xL, p = `h.${l}.`;
      add(p + 'ln_1', l, a.ln1);
      add(p + 'attn.c_attn', l, a.qkv);
      add(p + (c.arch === 'gpt2' ? 'attn.attention' : 'attn.mssa'), l, a.y);
      add(p + 'attn.c_proj+residual', l, a.xh);
      add(p + 'ln_2', l, a.ln2);
      if (c.arch === 'gpt2') {
        add(p + 'mlp.c_fc', l, a.codes);
        add(p + 'mlp.relu', l, a.hr);
        add(p + 'mlp.c_proj+residual', l, next);
      } else if (c.arch === 'crate') {
        for (let t = 0; t < c.istaSteps; t++) add(`${p}ista.a${t + 1}`, l, be.view(a.codes, t * N * H, N * H));
        add(p + 'ista.decode', l, next);
      } else {
        add(p + 'ista.complete', l, next);
      }
    }
    add('ln_f', c.nLayer, this.lnf);
    add('logits', c.nLayer, this.logitsBuf);
    return out;
  }

  /** The shared projection U*ᵀ LN(x) of layer l (B·T, C) (or q|k|v for GPT-2), from the latest forward. */
  attentionInput(layer: number): Float64Array {
    if (!this.layers[layer]) throw new Error(`no activations for layer ${layer}`);
    return this.backend.download(this.layers[layer].qkv);
  }
}
