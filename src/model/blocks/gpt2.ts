// The GPT-2 baseline block of paper A (spec 3.3): ReLU MLP, no biases anywhere.
//   x ← x + c_proj(attention(c_attn(LN₁ x)))
//   x ← x + c_proj(relu(c_fc(LN₂ x)))            (the post-ReLU hidden is the neuron)
import type { BlockConfig, Ctx } from './context.js';
import { point } from './context.js';
import { SelfAttention, type AttnActs } from './attention.js';
import {
  SHARED_HOOKS,
  type Architecture,
  type Block,
  type DecodeBufs,
  type DecodePos,
  type DecodeScratch,
  type HookDecl,
  type ParamDecl,
  type Scratch,
} from './block.js';

export interface Gpt2Acts<Buf> extends AttnActs<Buf> {
  ln2: Buf;
  mean2: Buf;
  rstd2: Buf;
  pre: Buf; // c_fc(LN₂ x) (N,H)
  post: Buf; // relu(pre) (N,H)
}

export class Gpt2Block implements Block<Gpt2Acts<unknown>> {
  readonly attn: SelfAttention;
  readonly C: number;
  readonly H: number;
  readonly params: readonly ParamDecl[];
  readonly hooks: readonly HookDecl[];
  readonly neurons = 'mlp.hook_post';

  constructor(
    readonly layer: number,
    cfg: BlockConfig,
  ) {
    const C = cfg.nEmbd,
      H = cfg.overcomplete * C,
      std = 0.02;
    this.C = C;
    this.H = H;
    this.attn = new SelfAttention(layer, C, cfg.nHead, false, cfg.nLayer);
    // nanoGPT with bias=False and a ReLU MLP (spec 3.3)
    this.params = [
      ...this.attn.params,
      { name: 'ln_2.weight', shape: [C], init: { kind: 'const', value: 1 } },
      { name: 'mlp.c_fc.weight', shape: [H, C], init: { kind: 'normal', std } },
      { name: 'mlp.c_proj.weight', shape: [C, H], init: { kind: 'normal', std: std / Math.sqrt(2 * cfg.nLayer) } },
    ];
    this.hooks = [
      SHARED_HOOKS.residPre,
      ...this.attn.hooks,
      SHARED_HOOKS.residMid,
      SHARED_HOOKS.ln2,
      { name: 'mlp.hook_pre', shape: ['B', 'T', 'h'], doc: 'MLP pre-activation c_fc(LN₂ x)', tensor: { act: 'pre' } },
      { name: 'mlp.hook_post', shape: ['B', 'T', 'h'], doc: 'MLP hidden after ReLU: **the neurons**', tensor: { act: 'post' } },
      { name: 'hook_mlp_out', shape: ['B', 'T', 'd'], doc: 'MLP output c_proj(hook_post)' },
      SHARED_HOOKS.residPost,
    ];
  }

  /** Column i of mlp.c_proj (d × h) is what hidden unit i adds to the stream. */
  neuronDirections(param: (name: string) => Float64Array): Float64Array {
    const W = param('mlp.c_proj.weight'),
      d = this.C,
      h = this.H,
      out = new Float64Array(h * d);
    for (let i = 0; i < h; i++) for (let j = 0; j < d; j++) out[i * d + j] = W[j * h + i];
    return out;
  }

  private get p(): string {
    return `transformer.h.${this.layer}.`;
  }

  sizes(N: number, attSaved: number): Record<string, number> {
    return { ...this.attn.sizes(N, attSaved), ln2: N * this.C, mean2: N, rstd2: N, pre: N * this.H, post: N * this.H };
  }

  forward<Buf>(ctx: Ctx<Buf>, a: Gpt2Acts<Buf>, out: Buf, tmp: Buf): void {
    const { B, T, N } = ctx;
    this.run(ctx, a, out, tmp, B, T, N);
  }

  private run<Buf>(
    ctx: Ctx<Buf>,
    a: Gpt2Acts<Buf>,
    out: Buf,
    tmp: Buf,
    B: number,
    T: number,
    N: number,
    dec?: { cache: Buf; t: DecodePos; maxT: number; d: DecodeScratch<Buf> },
  ): void {
    const { be, cfg } = ctx,
      C = this.C,
      H = this.H,
      h = `blocks.${this.layer}.`;
    point(ctx, h + 'hook_resid_pre', a.x, [B, T, C]);
    if (dec) this.attn.decode(ctx, dec.cache, a.x, a.xh, dec.t, dec.maxT, dec.d);
    else this.attn.forward(ctx, a, tmp);
    point(ctx, h + 'hook_resid_mid', a.xh, [B, T, C]);
    be.layernormForward(a.ln2, a.mean2, a.rstd2, a.xh, ctx.param(this.p + 'ln_2.weight'), null, N, C, cfg.lnEps);
    point(ctx, h + 'ln2.hook_normalized', a.ln2, [B, T, C]);
    be.linearForward(a.pre, a.ln2, ctx.param(this.p + 'mlp.c_fc.weight'), null, N, C, H);
    point(ctx, h + 'mlp.hook_pre', a.pre, [B, T, H]);
    be.reluForward(a.post, a.pre);
    point(ctx, h + 'mlp.hook_post', a.post, [B, T, H]);
    be.linearForward(tmp, a.post, ctx.param(this.p + 'mlp.c_proj.weight'), null, N, H, C);
    point(ctx, h + 'hook_mlp_out', tmp, [B, T, C]);
    be.add(out, tmp, a.xh);
    point(ctx, h + 'hook_resid_post', out, [B, T, C]);
  }

  backward<Buf>(ctx: Ctx<Buf>, a: Gpt2Acts<Buf>, _out: Buf, s: Scratch<Buf>): void {
    const { be, N } = ctx,
      C = this.C,
      H = this.H;
    const dpost = be.view(s.w1, 0, N * H),
      dpre = be.view(s.w2, 0, N * H);
    be.linearBackward(dpost, ctx.grad(this.p + 'mlp.c_proj.weight'), null, s.d1, a.post, ctx.param(this.p + 'mlp.c_proj.weight'), N, H, C);
    be.reluBackward(dpre, dpost, a.post);
    be.linearBackward(s.d2, ctx.grad(this.p + 'mlp.c_fc.weight'), null, dpre, a.ln2, ctx.param(this.p + 'mlp.c_fc.weight'), N, C, H);
    be.layernormBackward(s.d3, ctx.grad(this.p + 'ln_2.weight'), null, s.d2, a.xh, ctx.param(this.p + 'ln_2.weight'), a.mean2, a.rstd2, N, C);
    be.add(s.d1, s.d1, s.d3); // d(xh) = d(out) through the residual + the MLP path
    this.attn.backward(ctx, a, s);
  }

  cacheSize(batch: number, maxT: number): number {
    return this.attn.cacheSize(batch, maxT);
  }

  decode<Buf>(ctx: Ctx<Buf>, cache: Buf, io: DecodeBufs<Buf>, t: DecodePos, maxT: number, d: DecodeScratch<Buf>): void {
    const n = ctx.B,
      H = this.H,
      be = ctx.be;
    const a = {
      x: io.x,
      xh: io.xh,
      ln2: d.u,
      mean2: d.mean,
      rstd2: d.rstd,
      pre: be.view(d.wide1, 0, n * H),
      post: be.view(d.wide2, 0, n * H),
    } as Gpt2Acts<Buf>;
    this.run(ctx, a, io.x, d.tmp, n, 1, n, { cache, t, maxT, d });
  }
}

/** The GPT-2 baseline of paper A (spec 3.3): ReLU MLP, no biases. */
export const gpt2: Architecture<'gpt2'> = {
  name: 'gpt2',
  summary: 'the GPT-2 baseline: separate q, k, v and a ReLU MLP, no biases (nanoGPT bias=False)',
  modelType: 'gpt2-relu-nobias',
  bias: false,
  block: (layer, cfg) => new Gpt2Block(layer, cfg),
  recognizes: (name) => name === 'mlp.c_fc.weight' && 'by name',
};
