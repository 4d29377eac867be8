// The CRATE block of paper A (spec 3.1, E16-E19):
//   z ← z + MSSA(LN₁ z)                        (attention half, shared q = k = v)
//   z ← D · ISTA_steps(LN₂ z)                  (overcomplete ISTA from zero, decoded; NO residual)
// with A = ista.weight = Dᵀ (H×C, H = overcomplete·C). The ISTA code a_steps is the paper's neuron.
import type { BlockConfig, Ctx } from './context.js';
import { point, patches } from './context.js';
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

export interface CrateActs<Buf> extends AttnActs<Buf> {
  ln2: Buf;
  mean2: Buf;
  rstd2: Buf;
  codes: Buf; // every ISTA iterate a_1..a_steps (steps,N,H)
}

export class CrateBlock implements Block<CrateActs<unknown>> {
  readonly attn: SelfAttention;
  readonly C: number;
  readonly H: number;
  readonly steps: number;
  readonly params: readonly ParamDecl[];
  readonly hooks: readonly HookDecl[];
  readonly neurons = 'ista.hook_code';

  constructor(
    readonly layer: number,
    cfg: BlockConfig,
  ) {
    const C = cfg.nEmbd;
    this.C = C;
    this.H = cfg.overcomplete * C;
    this.steps = cfg.istaSteps;
    this.attn = new SelfAttention(layer, C, cfg.nHead, true, cfg.nLayer);
    this.params = [
      ...this.attn.params,
      { name: 'prenorm_2.weight', shape: [C], init: { kind: 'const', value: 1 } },
      { name: 'prenorm_2.bias', shape: [C], init: { kind: 'const', value: 0 } },
      // a bare nn.Parameter: PyTorch's kaiming_uniform default, bound sqrt(6/d)
      { name: 'ista.weight', shape: [this.H, C], init: { kind: 'uniform', bound: Math.sqrt(6 / C) } },
    ];
    this.hooks = [
      SHARED_HOOKS.residPre,
      ...this.attn.hooks,
      SHARED_HOOKS.residMid,
      SHARED_HOOKS.ln2,
      { name: 'ista.hook_code1', shape: ['B', 'T', 'h'], doc: 'ISTA code after the first step, a1 = relu(η u Aᵀ − ηλ)', tensor: { act: 'codes' } },
      {
        name: 'ista.hook_code',
        shape: ['B', 'T', 'h'],
        doc: "ISTA code after the last step (a2 by default): **the paper's neurons**",
        tensor: { act: 'codes', index: this.steps - 1 },
      },
      // the block's output buffer: listed under hook_resid_post
      { name: 'hook_ista_out', shape: ['B', 'T', 'd'], doc: 'decoded code D·a2 (replaces the stream: no residual around ISTA)' },
      SHARED_HOOKS.residPost,
    ];
  }

  /** Row i of A = Dᵀ is what neuron i adds to the stream (D·a decodes the code). */
  neuronDirections(param: (name: string) => Float64Array): Float64Array {
    return param('ista.weight').slice();
  }

  private get p(): string {
    return `transformer.h.${this.layer}.`;
  }

  sizes(N: number, attSaved: number): Record<string, number> {
    return { ...this.attn.sizes(N, attSaved), ln2: N * this.C, mean2: N, rstd2: N, codes: this.steps * N * this.H };
  }

  forward<Buf>(ctx: Ctx<Buf>, a: CrateActs<Buf>, out: Buf, tmp: Buf): void {
    const { be, cfg, B, T, N } = ctx,
      C = this.C,
      h = `blocks.${this.layer}.`;
    point(ctx, h + 'hook_resid_pre', a.x, [B, T, C]);
    this.attn.forward(ctx, a, tmp);
    point(ctx, h + 'hook_resid_mid', a.xh, [B, T, C]);
    be.layernormForward(a.ln2, a.mean2, a.rstd2, a.xh, ctx.param(this.p + 'prenorm_2.weight'), ctx.param(this.p + 'prenorm_2.bias'), N, C, cfg.lnEps);
    point(ctx, h + 'ln2.hook_normalized', a.ln2, [B, T, C]);
    this.ista(ctx, a.codes, a.ln2, out, B, T, N);
    point(ctx, h + 'hook_resid_post', out, [B, T, C]);
  }

  /**
   * out = a_steps A with a_t = relu(a_{t−1} + η (u − a_{t−1} A) Aᵀ − ηλ), a_0 = 0 (E19), fused on
   * the backend. When a hook replaces a code, the rest is recomputed exactly from the replaced
   * value on the host in float64 (later steps from that iterate, then the decode), so clamping a
   * neuron is decoded with no approximation.
   */
  private ista<Buf>(ctx: Ctx<Buf>, codes: Buf, u: Buf, out: Buf, B: number, T: number, N: number): void {
    const { be, cfg } = ctx,
      C = this.C,
      H = this.H,
      S = this.steps,
      h = `blocks.${this.layer}.`;
    const A = ctx.param(this.p + 'ista.weight');
    be.istaForward(out, codes, u, A, N, C, H, cfg.eta, cfg.lam, S);
    const c1 = h + 'ista.hook_code1',
      cS = h + 'ista.hook_code';
    const code = (t: number) => be.view(codes, (t - 1) * N * H, N * H);
    const patch1 = patches(ctx, c1),
      patchS = patches(ctx, cS);
    if (!patch1 && !patchS) {
      point(ctx, c1, code(1), [B, T, H]);
      point(ctx, cS, code(S), [B, T, H]);
      point(ctx, h + 'hook_ista_out', out, [B, T, C]);
      return;
    }
    // exact path: host iterates from the first replaced one
    const Ah = be.download(A),
      uh = be.download(u);
    point(ctx, c1, code(1), [B, T, H]);
    if (S > 1 && patch1) {
      let prev = be.download(code(1));
      for (let t = 2; t <= S; t++) {
        prev = istaStepHost(prev, uh, Ah, N, C, H, cfg.eta, cfg.lam);
        be.upload(code(t), prev);
      }
    }
    point(ctx, cS, code(S), [B, T, H]);
    be.upload(out, decodeHost(be.download(code(S)), Ah, N, C, H));
    point(ctx, h + 'hook_ista_out', out, [B, T, C]);
  }

  backward<Buf>(ctx: Ctx<Buf>, a: CrateActs<Buf>, _out: Buf, s: Scratch<Buf>): void {
    const { be, cfg, N } = ctx,
      C = this.C;
    // ISTA has no residual: d(xh) comes only through LN₂
    be.istaBackward(
      s.d2,
      ctx.grad(this.p + 'ista.weight'),
      s.d1,
      a.ln2,
      ctx.param(this.p + 'ista.weight'),
      a.codes,
      N,
      C,
      this.H,
      cfg.eta,
      cfg.lam,
      this.steps,
    );
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
    const { be, cfg } = ctx,
      n = ctx.B,
      C = this.C,
      H = this.H,
      h = `blocks.${this.layer}.`;
    point(ctx, h + 'hook_resid_pre', io.x, [n, 1, C]);
    this.attn.decode(ctx, cache, io.x, io.xh, t, maxT, d);
    point(ctx, h + 'hook_resid_mid', io.xh, [n, 1, C]);
    be.layernormForward(d.u, d.mean, d.rstd, io.xh, ctx.param(this.p + 'prenorm_2.weight'), ctx.param(this.p + 'prenorm_2.bias'), n, C, cfg.lnEps);
    point(ctx, h + 'ln2.hook_normalized', d.u, [n, 1, C]);
    this.ista(ctx, be.view(d.wide1, 0, this.steps * n * H), d.u, io.x, n, 1, n);
    point(ctx, h + 'hook_resid_post', io.x, [n, 1, C]);
  }
}

/** CRATE-LM of paper A (overcomplete ISTA, E19). */
export const crate: Architecture<'crate'> = {
  name: 'crate',
  summary: "paper A's CRATE-LM: MSSA and overcomplete ISTA from zero, no residual around ISTA",
  modelType: 'crate',
  bias: true,
  block: (layer, cfg) => new CrateBlock(layer, cfg),
  recognizes: (name, shape) => name === 'ista.weight' && shape[0] !== shape[1] && 'by shape',
};

/** One ISTA step on the host: relu(a + η (u − a A) Aᵀ − ηλ), in the reference's order of operations. */
export function istaStepHost(a: Float64Array, u: Float64Array, A: Float64Array, N: number, C: number, H: number, eta: number, lam: number): Float64Array {
  const next = new Float64Array(N * H),
    r = new Float64Array(C);
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) r[c] = u[n * C + c];
    for (let k = 0; k < H; k++) {
      const ak = a[n * H + k];
      for (let c = 0; c < C; c++) r[c] -= ak * A[k * C + c];
    }
    for (let k = 0; k < H; k++) {
      let g = 0;
      for (let c = 0; c < C; c++) g += r[c] * A[k * C + c];
      const pre = a[n * H + k] + eta * g - eta * lam;
      next[n * H + k] = pre > 0 ? pre : pre <= 0 ? 0 : pre; // relu that keeps NaN, as the reference
    }
  }
  return next;
}

/** out = a A (the decode D·a) on the host, in the reference's order of operations. */
export function decodeHost(a: Float64Array, A: Float64Array, N: number, C: number, H: number): Float64Array {
  const out = new Float64Array(N * C);
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) {
      let s = 0;
      for (let k = 0; k < H; k++) s += a[n * H + k] * A[k * C + c];
      out[n * C + c] = s;
    }
  }
  return out;
}
