// The attention half of every block: x ← x + c_proj(attention(c_attn(LN₁ x))).
//
//   CRATE (both papers): MSSA (spec E16, E18). One projection v = U*ᵀ LN₁(x) serves as query, key
//     and value of every head; LN₁ and c_proj have biases.
//   GPT-2 baseline (spec 3.3): separate q, k, v from one c_attn of width 3C; no biases.
import type { Ctx } from './context.js';
import { point, hostPoint } from './context.js';
import type { DecodeScratch, Dim, HookDecl, ParamDecl, Scratch, DecodePos } from './block.js';

/** Per-layer tensors the attention half keeps for backward (views into the model's activation buffer). */
export interface AttnActs<Buf> {
  x: Buf; // block input (N,C)
  ln1: Buf;
  mean1: Buf;
  rstd1: Buf;
  qkv: Buf; // CRATE: v = LN₁(x) c_attnᵀ (N,C);  GPT-2: [q | k | v] per token (N,3C)
  att: Buf; // the attention state the backend keeps for backward (attentionSavedSize)
  y: Buf; // attention output before c_proj (N,C) = hook_z
  xh: Buf; // x + attention branch (N,C) = hook_resid_mid
}

export class SelfAttention {
  readonly width: number; // c_attn output width per token
  /** The attention half's parameters (LN₁, c_attn, c_proj), names after `transformer.h.{layer}.`. */
  readonly params: ParamDecl[];
  /** Its hook points from LN₁ to the branch output, names after `blocks.{layer}.`. */
  readonly hooks: HookDecl[];
  /**
   * tied: MSSA, q = k = v, and LN₁ and c_proj with biases (CRATE); otherwise GPT-2's separate q, k, v
   * without biases. nLayer sets c_proj's initialisation std 0.02/sqrt(2L) (spec 3.2).
   */
  constructor(
    readonly layer: number,
    readonly C: number,
    readonly NH: number,
    readonly tied: boolean,
    nLayer: number,
  ) {
    this.width = tied ? C : 3 * C;
    const std = 0.02,
      ln = tied ? 'prenorm_1' : 'ln_1';
    this.params = [
      { name: ln + '.weight', shape: [C], init: { kind: 'const', value: 1 } },
      ...(tied ? [{ name: ln + '.bias', shape: [C], init: { kind: 'const', value: 0 } } as ParamDecl] : []),
      { name: 'attn.c_attn.weight', shape: [this.width, C], init: { kind: 'normal', std } },
      { name: 'attn.c_proj.weight', shape: [C, C], init: { kind: 'normal', std: std / Math.sqrt(2 * nLayer) } },
      ...(tied ? [{ name: 'attn.c_proj.bias', shape: [C], init: { kind: 'const', value: 0 } } as ParamDecl] : []),
    ];
    const perHead: Dim[] = ['B', 'T', 'NH', 'p'];
    this.hooks = [
      { name: 'ln1.hook_normalized', shape: ['B', 'T', 'd'], doc: 'LN₁ output (CRATE: with bias)', tensor: { act: 'ln1' } },
      ...(tied
        ? [{ name: 'attn.hook_qkv', shape: perHead, doc: 'the shared projection U*ᵀ LN₁(z): query = key = value', tensor: { act: 'qkv' } }]
        : (['q', 'k', 'v'] as const).map((x, i) => ({
            name: `attn.hook_${x}`,
            shape: perHead,
            doc: { q: 'queries', k: 'keys', v: 'values' }[x],
            tensor: { act: 'qkv', column: i * C, rowWidth: 3 * C },
          }))),
      { name: 'attn.hook_pattern', shape: ['B', 'NH', 'T', 'T'], doc: 'causal softmax attention (query, key)' },
      { name: 'attn.hook_z', shape: perHead, doc: 'attention output per head, before c_proj', tensor: { act: 'y' } },
      { name: 'hook_attn_out', shape: ['B', 'T', 'd'], doc: 'c_proj output: the attention branch' },
    ];
  }

  private get p(): string {
    return `transformer.h.${this.layer}.`;
  }
  private get lnName(): string {
    return this.p + (this.tied ? 'prenorm_1' : 'ln_1');
  }

  sizes(N: number, attSaved: number): Record<keyof AttnActs<unknown>, number> {
    return { x: N * this.C, ln1: N * this.C, mean1: N, rstd1: N, qkv: N * this.width, att: attSaved, y: N * this.C, xh: N * this.C };
  }

  /** a.xh ← a.x + c_proj(attention(c_attn(LN₁ a.x))); `tmp` (N,C) holds the branch (hook_attn_out). */
  forward<Buf>(ctx: Ctx<Buf>, a: AttnActs<Buf>, tmp: Buf): void {
    const { be, cfg, B, T, N } = ctx,
      C = this.C,
      NH = this.NH,
      hp = C / NH,
      h = `blocks.${this.layer}.`;
    const bias = (n: string) => (this.tied ? ctx.param(n) : null);
    be.layernormForward(a.ln1, a.mean1, a.rstd1, a.x, ctx.param(this.lnName + '.weight'), bias(this.lnName + '.bias'), N, C, cfg.lnEps);
    point(ctx, h + 'ln1.hook_normalized', a.ln1, [B, T, C]);
    be.linearForward(a.qkv, a.ln1, ctx.param(this.p + 'attn.c_attn.weight'), null, N, C, this.width);
    if (this.tied) {
      point(ctx, h + 'attn.hook_qkv', a.qkv, [B, T, NH, hp]);
      be.mssaForward(a.y, a.att, a.qkv, B, T, C, NH);
    } else {
      const st = [T * 3 * C, 3 * C, hp, 1];
      point(ctx, h + 'attn.hook_q', a.qkv, [B, T, NH, hp], st, 0);
      point(ctx, h + 'attn.hook_k', a.qkv, [B, T, NH, hp], st, C);
      point(ctx, h + 'attn.hook_v', a.qkv, [B, T, NH, hp], st, 2 * C);
      be.attentionForward(a.y, a.att, a.qkv, B, T, C, NH);
    }
    this.patternPoint(ctx, a);
    point(ctx, h + 'attn.hook_z', a.y, [B, T, NH, hp]);
    be.linearForward(tmp, a.y, ctx.param(this.p + 'attn.c_proj.weight'), bias(this.p + 'attn.c_proj.bias'), N, C, C);
    point(ctx, h + 'hook_attn_out', tmp, [B, T, C]);
    be.add(a.xh, tmp, a.x);
  }

  /**
   * hook_pattern: P[b,h,i,j] = softmax_j≤i(<q_i, k_j>/√p), computed on the host in float64 from the
   * projection (the native backends keep only each row's logsumexp). A replaced pattern is applied
   * exactly: z = P v on the host, uploaded in place of the backend's z.
   */
  private patternPoint<Buf>(ctx: Ctx<Buf>, a: AttnActs<Buf>): void {
    const name = `blocks.${this.layer}.attn.hook_pattern`;
    if (ctx.hooks === null || !ctx.hooks.wants(name)) return;
    const { B, T } = ctx,
      C = this.C,
      NH = this.NH,
      hp = C / NH,
      W = this.width;
    const qkv = ctx.be.download(a.qkv);
    const ko = this.tied ? 0 : C,
      vo = this.tied ? 0 : 2 * C;
    const r = hostPoint(ctx, name, [B, NH, T, T], () => {
      const P = new Float64Array(B * NH * T * T),
        scale = 1 / Math.sqrt(hp);
      for (let b = 0; b < B; b++)
        for (let h = 0; h < NH; h++)
          for (let i = 0; i < T; i++) {
            const row = ((b * NH + h) * T + i) * T,
              qi = (b * T + i) * W + h * hp;
            let max = -Infinity;
            for (let j = 0; j <= i; j++) {
              const kj = (b * T + j) * W + ko + h * hp;
              let s = 0;
              for (let c = 0; c < hp; c++) s += qkv[qi + c] * qkv[kj + c];
              P[row + j] = s * scale;
              if (P[row + j] > max) max = P[row + j];
            }
            let sum = 0;
            for (let j = 0; j <= i; j++) {
              P[row + j] = Math.exp(P[row + j] - max);
              sum += P[row + j];
            }
            for (let j = 0; j <= i; j++) P[row + j] /= sum;
          }
      return P;
    });
    if (!r || !r.patched) return;
    const P = r.act,
      z = new Float64Array(B * T * C);
    for (let b = 0; b < B; b++)
      for (let h = 0; h < NH; h++)
        for (let i = 0; i < T; i++) {
          const zi = (b * T + i) * C + h * hp;
          for (let j = 0; j < T; j++) {
            const w = P.get(b, h, i, j);
            if (w === 0) continue;
            const vj = (b * T + j) * W + vo + h * hp;
            for (let c = 0; c < hp; c++) z[zi + c] += w * qkv[vj + c];
          }
        }
    ctx.be.upload(a.y, z);
  }

  /** d1 holds d(xh) on entry and d(x) on exit (the residual path plus this branch). */
  backward<Buf>(ctx: Ctx<Buf>, a: AttnActs<Buf>, s: Scratch<Buf>): void {
    const { be, B, T, N } = ctx,
      C = this.C,
      NH = this.NH;
    const dbias = (n: string) => (this.tied ? ctx.grad(n) : null);
    be.linearBackward(
      s.d2,
      ctx.grad(this.p + 'attn.c_proj.weight'),
      dbias(this.p + 'attn.c_proj.bias'),
      s.d1,
      a.y,
      ctx.param(this.p + 'attn.c_proj.weight'),
      N,
      C,
      C,
    );
    const dproj = this.tied ? s.d3 : be.view(s.w1, 0, N * this.width);
    if (this.tied) be.mssaBackward(dproj, s.d2, a.qkv, a.y, a.att, B, T, C, NH);
    else be.attentionBackward(dproj, s.d2, a.qkv, a.y, a.att, B, T, C, NH);
    be.linearBackward(s.d2, ctx.grad(this.p + 'attn.c_attn.weight'), null, dproj, a.ln1, ctx.param(this.p + 'attn.c_attn.weight'), N, C, this.width);
    be.layernormBackward(
      s.d3,
      ctx.grad(this.lnName + '.weight'),
      dbias(this.lnName + '.bias'),
      s.d2,
      a.x,
      ctx.param(this.lnName + '.weight'),
      a.mean1,
      a.rstd1,
      N,
      C,
    );
    be.add(s.d1, s.d1, s.d3);
  }

  /** Elements of this layer's decode cache for `batch` sequences: the projections of every position so far. */
  cacheSize(batch: number, maxT: number): number {
    return (this.tied ? 1 : 2) * batch * maxT * this.C;
  }

  /**
   * One new position t for each of `batch` sequences (rows of x, (batch,C)): xh ← x + branch, with
   * the new projection appended to the cache at position t (t[b] for row b when t is per row).
   * CRATE caches v = U*ᵀ LN₁(z) (query = key = value); GPT-2 caches k and v. `d` holds the
   * per-step scratch.
   */
  decode<Buf>(ctx: Ctx<Buf>, cache: Buf, x: Buf, xh: Buf, t: DecodePos, maxT: number, d: DecodeScratch<Buf>): void {
    const { be, cfg } = ctx,
      n = ctx.B,
      C = this.C,
      NH = this.NH,
      h = `blocks.${this.layer}.`;
    const bias = (nm: string) => (this.tied ? ctx.param(nm) : null);
    be.layernormForward(d.u, d.mean, d.rstd, x, ctx.param(this.lnName + '.weight'), bias(this.lnName + '.bias'), n, C, cfg.lnEps);
    point(ctx, h + 'ln1.hook_normalized', d.u, [n, 1, C]);
    const proj = be.view(d.proj, 0, n * this.width);
    be.linearForward(proj, d.u, ctx.param(this.p + 'attn.c_attn.weight'), null, n, C, this.width);
    const K = be.view(cache, 0, n * maxT * C),
      V = this.tied ? K : be.view(cache, n * maxT * C, n * maxT * C);
    const hp = C / NH;
    const at = (b: number) => (typeof t === 'number' ? t : t[b]);
    // one attentionDecode per run of rows at one position (every row when t is one number)
    const attend = (q: Buf) => {
      if (typeof t === 'number') return be.attentionDecode(d.y, q, K, V, n, t, maxT, C, NH);
      for (let b0 = 0; b0 < n;) {
        let b1 = b0 + 1;
        while (b1 < n && t[b1] === t[b0]) b1++;
        const r = b1 - b0,
          Kr = be.view(K, b0 * maxT * C, r * maxT * C),
          Vr = this.tied ? Kr : be.view(V, b0 * maxT * C, r * maxT * C);
        be.attentionDecode(be.view(d.y, b0 * C, r * C), be.view(q, b0 * C, r * C), Kr, Vr, r, t[b0], maxT, C, NH);
        b0 = b1;
      }
    };
    if (this.tied) {
      point(ctx, h + 'attn.hook_qkv', proj, [n, 1, NH, hp]);
      for (let b = 0; b < n; b++) be.copy(be.view(K, (b * maxT + at(b)) * C, C), be.view(proj, b * C, C));
      attend(proj);
    } else {
      const st = [3 * C, 3 * C, hp, 1];
      point(ctx, h + 'attn.hook_q', proj, [n, 1, NH, hp], st, 0);
      point(ctx, h + 'attn.hook_k', proj, [n, 1, NH, hp], st, C);
      point(ctx, h + 'attn.hook_v', proj, [n, 1, NH, hp], st, 2 * C);
      for (let b = 0; b < n; b++) {
        be.copy(be.view(d.q, b * C, C), be.view(proj, b * 3 * C, C));
        be.copy(be.view(K, (b * maxT + at(b)) * C, C), be.view(proj, b * 3 * C + C, C));
        be.copy(be.view(V, (b * maxT + at(b)) * C, C), be.view(proj, b * 3 * C + 2 * C, C));
      }
      attend(d.q);
    }
    point(ctx, h + 'attn.hook_z', d.y, [n, 1, NH, hp]);
    be.linearForward(d.tmp, d.y, ctx.param(this.p + 'attn.c_proj.weight'), bias(this.p + 'attn.c_proj.bias'), n, C, C);
    point(ctx, h + 'hook_attn_out', d.tmp, [n, 1, C]);
    be.add(xh, d.tmp, x);
  }
}
