// The complete-ISTA CRATE block of paper B (E14), with paper A's MSSA half:
//   z ← z + MSSA(LN₁ z)
//   z ← relu(u + η (u W − u Wᵀ W) − ηλ),  u = LN₂ z     (one step warm-started at u; NO residual)
// W = ista.weight (C×C). The output is the code itself: it is both the neurons and the stream.
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

export interface CompleteActs<Buf> extends AttnActs<Buf> {
  ln2: Buf;
  mean2: Buf;
  rstd2: Buf;
}

export class CrateCompleteBlock implements Block<CompleteActs<unknown>> {
  readonly attn: SelfAttention;
  readonly C: number;
  readonly params: readonly ParamDecl[];
  readonly hooks: readonly HookDecl[];
  readonly neurons = 'ista.hook_code';

  constructor(
    readonly layer: number,
    cfg: BlockConfig,
  ) {
    const C = cfg.nEmbd;
    this.C = C;
    this.attn = new SelfAttention(layer, C, cfg.nHead, true, cfg.nLayer);
    this.params = [
      ...this.attn.params,
      { name: 'prenorm_2.weight', shape: [C], init: { kind: 'const', value: 1 } },
      { name: 'prenorm_2.bias', shape: [C], init: { kind: 'const', value: 0 } },
      // a bare nn.Parameter: PyTorch's kaiming_uniform default, bound sqrt(6/d)
      { name: 'ista.weight', shape: [C, C], init: { kind: 'uniform', bound: Math.sqrt(6 / C) } },
    ];
    this.hooks = [
      SHARED_HOOKS.residPre,
      ...this.attn.hooks,
      SHARED_HOOKS.residMid,
      SHARED_HOOKS.ln2,
      {
        name: 'ista.hook_code',
        shape: ['B', 'T', 'd'],
        doc: 'complete-ISTA code relu(u + η(uW − uWᵀW) − ηλ): the neurons and the block output',
        tensor: { act: 'out' },
      },
      SHARED_HOOKS.residPost,
    ];
  }

  /** The code is the stream itself: neuron i adds the unit vector e_i. */
  neuronDirections(): Float64Array {
    const d = this.C,
      out = new Float64Array(d * d);
    for (let i = 0; i < d; i++) out[i * d + i] = 1;
    return out;
  }

  private get p(): string {
    return `transformer.h.${this.layer}.`;
  }

  sizes(N: number, attSaved: number): Record<string, number> {
    return { ...this.attn.sizes(N, attSaved), ln2: N * this.C, mean2: N, rstd2: N };
  }

  forward<Buf>(ctx: Ctx<Buf>, a: CompleteActs<Buf>, out: Buf, tmp: Buf): void {
    const { B, T, N } = ctx;
    this.run(ctx, a, out, tmp, B, T, N);
  }

  private run<Buf>(
    ctx: Ctx<Buf>,
    a: CompleteActs<Buf>,
    out: Buf,
    tmp: Buf | null,
    B: number,
    T: number,
    N: number,
    dec?: { cache: Buf; t: DecodePos; maxT: number; d: DecodeScratch<Buf> },
  ): void {
    const { be, cfg } = ctx,
      C = this.C,
      h = `blocks.${this.layer}.`;
    point(ctx, h + 'hook_resid_pre', a.x, [B, T, C]);
    if (dec) this.attn.decode(ctx, dec.cache, a.x, a.xh, dec.t, dec.maxT, dec.d);
    else this.attn.forward(ctx, a, tmp as Buf);
    point(ctx, h + 'hook_resid_mid', a.xh, [B, T, C]);
    be.layernormForward(a.ln2, a.mean2, a.rstd2, a.xh, ctx.param(this.p + 'prenorm_2.weight'), ctx.param(this.p + 'prenorm_2.bias'), N, C, cfg.lnEps);
    point(ctx, h + 'ln2.hook_normalized', a.ln2, [B, T, C]);
    be.istaCompleteForward(out, a.ln2, ctx.param(this.p + 'ista.weight'), N, C, cfg.eta, cfg.lam);
    point(ctx, h + 'ista.hook_code', out, [B, T, C]);
    point(ctx, h + 'hook_resid_post', out, [B, T, C]);
  }

  backward<Buf>(ctx: Ctx<Buf>, a: CompleteActs<Buf>, out: Buf, s: Scratch<Buf>): void {
    const { be, cfg, N } = ctx,
      C = this.C;
    be.istaCompleteBackward(s.d2, ctx.grad(this.p + 'ista.weight'), s.d1, a.ln2, ctx.param(this.p + 'ista.weight'), out, N, C, cfg.eta, cfg.lam);
    be.layernormBackward(
      s.d1,
      ctx.grad(this.p + 'prenorm_2.weight'),
      ctx.grad(this.p + 'prenorm_2.bias'),
      s.d2,
      a.xh,
      ctx.param(this.p + 'prenorm_2.weight'),
      a.mean2,
      a.rstd2,
      N,
      C,
    );
    this.attn.backward(ctx, a, s);
  }

  cacheSize(batch: number, maxT: number): number {
    return this.attn.cacheSize(batch, maxT);
  }

  decode<Buf>(ctx: Ctx<Buf>, cache: Buf, io: DecodeBufs<Buf>, t: DecodePos, maxT: number, d: DecodeScratch<Buf>): void {
    const n = ctx.B;
    // The attention half reads io.x before the ISTA half overwrites it with the code.
    const a = { x: io.x, xh: io.xh, ln2: d.tmp, mean2: d.mean, rstd2: d.rstd } as CompleteActs<Buf>;
    this.run(ctx, a, io.x, null, n, 1, n, { cache, t, maxT, d });
  }
}

/** Complete-ISTA CRATE of paper B (E14), with paper A's MSSA. */
export const crateComplete: Architecture<'crate-complete'> = {
  name: 'crate-complete',
  summary: "paper B's complete ISTA: one step warm-started at the input, W square, the code is the stream",
  modelType: 'crate',
  bias: true,
  block: (layer, cfg) => new CrateCompleteBlock(layer, cfg),
  recognizes: (name, shape) => name === 'ista.weight' && shape[0] === shape[1] && 'by shape',
};
