// The complete-ISTA CRATE block of paper B (E14), with paper A's MSSA half:
//   z ← z + MSSA(LN₁ z)
//   z ← relu(u + η (u W − u Wᵀ W) − ηλ),  u = LN₂ z     (one step warm-started at u; NO residual)
// W = ista.weight (C×C). The output is the code itself: it is both the neurons and the stream.
import type { Ctx } from './context.js';
import { point } from './context.js';
import { SelfAttention, type AttnActs, type DecodeScratch, type Scratch } from './attention.js';
import type { Block, DecodeBufs } from './block.js';

export interface CompleteActs<Buf> extends AttnActs<Buf> {
  ln2: Buf;
  mean2: Buf;
  rstd2: Buf;
}

export class CrateCompleteBlock implements Block<CompleteActs<unknown>> {
  readonly attn: SelfAttention;
  constructor(
    readonly layer: number,
    readonly C: number,
    readonly NH: number,
  ) {
    this.attn = new SelfAttention(layer, C, NH, 'crate-complete');
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
    dec?: { cache: Buf; t: number; maxT: number; d: DecodeScratch<Buf> },
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

  decode<Buf>(ctx: Ctx<Buf>, cache: Buf, io: DecodeBufs<Buf>, t: number, maxT: number, d: DecodeScratch<Buf>): void {
    const n = ctx.B;
    // The attention half reads io.x before the ISTA half overwrites it with the code.
    const a = { x: io.x, xh: io.xh, ln2: d.tmp, mean2: d.mean, rstd2: d.rstd } as CompleteActs<Buf>;
    this.run(ctx, a, io.x, null, n, 1, n, { cache, t, maxT, d });
  }
}
