// Incremental decoding on the host in float64 (spec P20): positions are fed one at a time and each
// layer caches what later positions attend to. For CRATE that is the single shared projection
// v_j = U*ᵀ LN₁(z_j) (query = key = value); for the GPT-2 baseline, k_j and v_j. Per-row operators
// are the reference ones applied to one row, and the attention over the cache follows the reference
// loop order, so the logits equal a full causal forward on the reference backend.
import type { ModelConfig } from '../model/config.js';
import { paramTable, totalSize, type ParamSpec } from '../model/params.js';
import { layernormForward } from '../reference/layernorm.js';
import { linearForward } from '../reference/linear.js';
import { istaForward, istaCompleteForward } from '../reference/ista.js';
import { reluForward } from '../reference/elementwise.js';

export class IncrementalDecoder {
  readonly config: ModelConfig;
  private readonly p: Map<string, Float64Array>;
  /** Per layer: crate: v (blockSize, C); gpt2: k and v (blockSize, C) each. */
  private readonly kCache: Float64Array[];
  private readonly vCache: Float64Array[];
  private pos = 0;
  // per-token scratch
  private readonly x: Float64Array; private readonly u: Float64Array; private readonly qkv: Float64Array;
  private readonly y: Float64Array; private readonly xh: Float64Array; private readonly h: Float64Array;
  private readonly hr: Float64Array; private readonly codes: Float64Array; private readonly att: Float64Array;
  private readonly mean = new Float64Array(1); private readonly rstd = new Float64Array(1);

  /** params: the flat parameter vector in table order (LanguageModel.getParams()). */
  constructor(config: ModelConfig, params: Float64Array) {
    this.config = { ...config };
    const table: ParamSpec[] = paramTable(config);
    if (params.length !== totalSize(table)) throw new Error(`IncrementalDecoder: got ${params.length} parameters, the config needs ${totalSize(table)}`);
    this.p = new Map(table.map((s) => [s.name, params.subarray(s.offset, s.offset + s.size)]));
    const C = config.nEmbd, H = config.overcomplete * C, T = config.blockSize;
    this.kCache = []; this.vCache = [];
    for (let l = 0; l < config.nLayer; l++) {
      this.vCache.push(new Float64Array(T * C));
      this.kCache.push(config.arch === 'gpt2' ? new Float64Array(T * C) : this.vCache[l]);
    }
    this.x = new Float64Array(C); this.u = new Float64Array(C); this.qkv = new Float64Array(3 * C);
    this.y = new Float64Array(C); this.xh = new Float64Array(C); this.h = new Float64Array(H);
    this.hr = new Float64Array(H); this.codes = new Float64Array(config.istaSteps * H); this.att = new Float64Array(T);
  }

  /** Number of positions fed so far. */
  get position(): number { return this.pos; }

  reset(): void { this.pos = 0; }

  private w(name: string): Float64Array {
    const t = this.p.get(name);
    if (!t) throw new Error(`no parameter ${name}`);
    return t;
  }

  /**
   * Causal attention of one query against cached keys/values 0..t (heads of width p = C/NH):
   * the reference order of operations (scores, max, exp, sum, normalize, weighted sum).
   */
  private attend(y: Float64Array, q: Float64Array, K: Float64Array, V: Float64Array, t: number): void {
    const C = this.config.nEmbd, NH = this.config.nHead, p = C / NH, scale = 1 / Math.sqrt(p), att = this.att;
    for (let h = 0; h < NH; h++) {
      const ho = h * p;
      let max = -Infinity;
      for (let j = 0; j <= t; j++) {
        let dot = 0;
        for (let c = 0; c < p; c++) dot += q[ho + c] * K[j * C + ho + c];
        att[j] = dot * scale;
        if (att[j] > max) max = att[j];
      }
      let sum = 0;
      for (let j = 0; j <= t; j++) { att[j] = Math.exp(att[j] - max); sum += att[j]; }
      for (let j = 0; j <= t; j++) att[j] /= sum;
      for (let c = 0; c < p; c++) y[ho + c] = 0;
      for (let j = 0; j <= t; j++) {
        const a = att[j];
        for (let c = 0; c < p; c++) y[ho + c] += a * V[j * C + ho + c];
      }
    }
  }

  /** Feed the token at the next position; returns the logits (V) predicting the position after it. */
  step(token: number): Float64Array {
    const c = this.config, C = c.nEmbd, H = c.overcomplete * C, V = c.vocabSize, t = this.pos;
    if (t >= c.blockSize) throw new Error(`context full: the model's block size is ${c.blockSize}; reset() and feed a shorter context`);
    if (!Number.isInteger(token) || token < 0 || token >= V) throw new Error(`token ${token} is outside the vocabulary [0, ${V})`);
    const x = this.x, u = this.u, y = this.y, xh = this.xh;
    const wte = this.w('transformer.wte.weight'), wpe = this.w('transformer.wpe.weight');
    for (let i = 0; i < C; i++) x[i] = wte[token * C + i] + wpe[t * C + i];
    for (let l = 0; l < c.nLayer; l++) {
      const pre = `transformer.h.${l}.`;
      if (c.arch === 'gpt2') {
        layernormForward(u, this.mean, this.rstd, x, this.w(pre + 'ln_1.weight'), null, 1, C, c.lnEps);
        linearForward(this.qkv, u, this.w(pre + 'attn.c_attn.weight'), null, 1, C, 3 * C);
        this.kCache[l].set(this.qkv.subarray(C, 2 * C), t * C);
        this.vCache[l].set(this.qkv.subarray(2 * C, 3 * C), t * C);
        this.attend(y, this.qkv, this.kCache[l], this.vCache[l], t);
        linearForward(xh, y, this.w(pre + 'attn.c_proj.weight'), null, 1, C, C);
        for (let i = 0; i < C; i++) xh[i] = xh[i] + x[i];
        layernormForward(u, this.mean, this.rstd, xh, this.w(pre + 'ln_2.weight'), null, 1, C, c.lnEps);
        linearForward(this.h, u, this.w(pre + 'mlp.c_fc.weight'), null, 1, C, H);
        reluForward(this.hr, this.h);
        linearForward(x, this.hr, this.w(pre + 'mlp.c_proj.weight'), null, 1, H, C);
        for (let i = 0; i < C; i++) x[i] = x[i] + xh[i];
      } else {
        layernormForward(u, this.mean, this.rstd, x, this.w(pre + 'prenorm_1.weight'), this.w(pre + 'prenorm_1.bias'), 1, C, c.lnEps);
        const v = this.vCache[l].subarray(t * C, (t + 1) * C);
        linearForward(v, u, this.w(pre + 'attn.c_attn.weight'), null, 1, C, C);     // cache U*ᵀ LN(z_t)
        this.attend(y, v, this.vCache[l], this.vCache[l], t);                        // q = k = v
        linearForward(xh, y, this.w(pre + 'attn.c_proj.weight'), this.w(pre + 'attn.c_proj.bias'), 1, C, C);
        for (let i = 0; i < C; i++) xh[i] = xh[i] + x[i];
        layernormForward(u, this.mean, this.rstd, xh, this.w(pre + 'prenorm_2.weight'), this.w(pre + 'prenorm_2.bias'), 1, C, c.lnEps);
        if (c.arch === 'crate') istaForward(x, this.codes, u, this.w(pre + 'ista.weight'), 1, C, H, c.eta, c.lam, c.istaSteps);
        else istaCompleteForward(x, u, this.w(pre + 'ista.weight'), 1, C, c.eta, c.lam);
      }
    }
    layernormForward(u, this.mean, this.rstd, x, this.w('transformer.ln_f.weight'), c.arch === 'gpt2' ? null : this.w('transformer.ln_f.bias'), 1, C, c.lnEps);
    const logits = new Float64Array(V);
    linearForward(logits, u, wte, null, 1, C, V);
    this.pos++;
    return logits;
  }

  /** Feed several tokens; returns the logits after the last one. */
  prefill(tokens: ArrayLike<number>): Float64Array {
    if (tokens.length === 0) throw new Error('prefill needs at least one token');
    let logits!: Float64Array;
    for (let i = 0; i < tokens.length; i++) logits = this.step(tokens[i]);
    return logits;
  }
}
