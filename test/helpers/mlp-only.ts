// A fourth architecture, written the way a new one is added to src/model/blocks/: one file that
// declares its block (parameters, hook points, forward, backward, decode step) and exports an
// Architecture, registered by one line (test/helpers/archs.ts; for the package, a line in
// src/model/archs.ts). It is a toy, an MLP-only model with no attention:
//   x ← x + fc_out(relu(fc_in(LN x)))
// so that the generic tests (hooks, finite differences, native against reference, checkpoint round
// trip, decoding equals forward) show that they run on any registered architecture unchanged.
import type { BlockConfig, Ctx } from '../../src/model/blocks/context.js';
import { point } from '../../src/model/blocks/context.js';
import {
  SHARED_HOOKS,
  type Architecture,
  type Block,
  type DecodeBufs,
  type DecodeScratch,
  type HookDecl,
  type ParamDecl,
  type Scratch,
} from '../../src/model/blocks/block.js';

interface MlpActs<Buf> {
  x: Buf; // block input (N,C)
  ln: Buf;
  mean: Buf;
  rstd: Buf;
  pre: Buf; // fc_in(LN x) (N,H)
  post: Buf; // relu(pre) (N,H)
}

export class MlpOnlyBlock implements Block<MlpActs<unknown>> {
  readonly C: number;
  readonly H: number;
  readonly params: readonly ParamDecl[];
  readonly hooks: readonly HookDecl[];
  readonly neurons = 'mlp.hook_post';

  constructor(
    readonly layer: number,
    cfg: BlockConfig,
  ) {
    this.C = cfg.nEmbd;
    this.H = cfg.overcomplete * cfg.nEmbd;
    this.params = [
      { name: 'ln.weight', shape: [this.C], init: { kind: 'const', value: 1 } },
      { name: 'mlp.fc_in.weight', shape: [this.H, this.C], init: { kind: 'normal', std: 0.02 } },
      { name: 'mlp.fc_out.weight', shape: [this.C, this.H], init: { kind: 'normal', std: 0.02 / Math.sqrt(2 * cfg.nLayer) } },
    ];
    this.hooks = [
      SHARED_HOOKS.residPre,
      { name: 'ln.hook_normalized', shape: ['B', 'T', 'd'], doc: 'LayerNorm output', tensor: { act: 'ln' } },
      { name: 'mlp.hook_pre', shape: ['B', 'T', 'h'], doc: 'fc_in(LN x)', tensor: { act: 'pre' } },
      { name: 'mlp.hook_post', shape: ['B', 'T', 'h'], doc: 'relu(hook_pre): the neurons', tensor: { act: 'post' } },
      { name: 'hook_mlp_out', shape: ['B', 'T', 'd'], doc: 'fc_out(hook_post)' },
      SHARED_HOOKS.residPost,
    ];
  }

  private get p(): string {
    return `transformer.h.${this.layer}.`;
  }

  sizes(N: number): Record<string, number> {
    return { x: N * this.C, ln: N * this.C, mean: N, rstd: N, pre: N * this.H, post: N * this.H };
  }

  forward<Buf>(ctx: Ctx<Buf>, a: MlpActs<Buf>, out: Buf, tmp: Buf): void {
    this.run(ctx, a, out, tmp, ctx.B, ctx.T);
  }

  private run<Buf>(ctx: Ctx<Buf>, a: MlpActs<Buf>, out: Buf, tmp: Buf, B: number, T: number): void {
    const { be, cfg } = ctx,
      C = this.C,
      H = this.H,
      N = B * T,
      h = `blocks.${this.layer}.`;
    point(ctx, h + 'hook_resid_pre', a.x, [B, T, C]);
    be.layernormForward(a.ln, a.mean, a.rstd, a.x, ctx.param(this.p + 'ln.weight'), null, N, C, cfg.lnEps);
    point(ctx, h + 'ln.hook_normalized', a.ln, [B, T, C]);
    be.linearForward(a.pre, a.ln, ctx.param(this.p + 'mlp.fc_in.weight'), null, N, C, H);
    point(ctx, h + 'mlp.hook_pre', a.pre, [B, T, H]);
    be.reluForward(a.post, a.pre);
    point(ctx, h + 'mlp.hook_post', a.post, [B, T, H]);
    be.linearForward(tmp, a.post, ctx.param(this.p + 'mlp.fc_out.weight'), null, N, H, C);
    point(ctx, h + 'hook_mlp_out', tmp, [B, T, C]);
    be.add(out, tmp, a.x);
    point(ctx, h + 'hook_resid_post', out, [B, T, C]);
  }

  backward<Buf>(ctx: Ctx<Buf>, a: MlpActs<Buf>, _out: Buf, s: Scratch<Buf>): void {
    const { be, N } = ctx,
      C = this.C,
      H = this.H;
    const dpost = be.view(s.w1, 0, N * H),
      dpre = be.view(s.w2, 0, N * H);
    be.linearBackward(dpost, ctx.grad(this.p + 'mlp.fc_out.weight'), null, s.d1, a.post, ctx.param(this.p + 'mlp.fc_out.weight'), N, H, C);
    be.reluBackward(dpre, dpost, a.post);
    be.linearBackward(s.d2, ctx.grad(this.p + 'mlp.fc_in.weight'), null, dpre, a.ln, ctx.param(this.p + 'mlp.fc_in.weight'), N, C, H);
    be.layernormBackward(s.d3, ctx.grad(this.p + 'ln.weight'), null, s.d2, a.x, ctx.param(this.p + 'ln.weight'), a.mean, a.rstd, N, C);
    be.add(s.d1, s.d1, s.d3); // the residual path plus the MLP's
  }

  /** Nothing to cache: a position never looks at another. */
  cacheSize(): number {
    return 0;
  }

  decode<Buf>(ctx: Ctx<Buf>, _cache: Buf, io: DecodeBufs<Buf>, _t: number, _maxT: number, d: DecodeScratch<Buf>): void {
    const n = ctx.B,
      be = ctx.be;
    const a: MlpActs<Buf> = { x: io.x, ln: d.u, mean: d.mean, rstd: d.rstd, pre: be.view(d.wide1, 0, n * this.H), post: be.view(d.wide2, 0, n * this.H) };
    this.run(ctx, a, io.x, d.tmp, n, 1);
  }

  /** Column i of fc_out (d × h) is what hidden unit i adds to the stream. */
  neuronDirections(param: (name: string) => Float64Array): Float64Array {
    const W = param('mlp.fc_out.weight'),
      d = this.C,
      h = this.H,
      out = new Float64Array(h * d);
    for (let i = 0; i < h; i++) for (let j = 0; j < d; j++) out[i * d + j] = W[j * h + i];
    return out;
  }
}

export const mlpOnly: Architecture<'mlp-only'> = {
  name: 'mlp-only',
  summary: 'a toy for the tests: LayerNorm and a ReLU MLP with a residual, no attention',
  modelType: 'mlp-only',
  bias: false,
  block: (layer, cfg) => new MlpOnlyBlock(layer, cfg),
  recognizes: (name) => name === 'mlp.fc_in.weight' && 'by name',
};
