// The embedding: x0 = wte[idx] + wpe[t] (spec E20), with its two hook points.
import type { Ctx } from './context.js';
import { point, hostPoint } from './context.js';

/**
 * x0 ← wte[idx] + wpe[t0 + t] (B,T,C), fused on the backend. When hook_embed or hook_pos_embed is
 * asked for, the two halves are formed separately (the same single addition, so the result is
 * bitwise the fused one) and each passes its hook point.
 */
export function embed<Buf>(ctx: Ctx<Buf>, x0: Buf, tmp: Buf, ids: Int32Array, wte: Buf, wpe: Buf, t0: number): void {
  const { be, B, T, cfg } = ctx,
    C = cfg.nEmbd;
  const wpeT = be.view(wpe, t0 * C, T * C);
  const hs = ctx.hooks;
  if (hs === null || (!hs.wants('hook_embed') && !hs.wants('hook_pos_embed'))) {
    be.embeddingForward(x0, ids, wte, wpeT, B, T, C);
    return;
  }
  const zeros = be.alloc(T * C);
  try {
    be.embeddingForward(tmp, ids, wte, zeros, B, T, C); // wte[idx] + 0 = wte[idx] exactly
    point(ctx, 'hook_embed', tmp, [B, T, C]);
    const pos = be.download(wpeT);
    // (hostPoint's view is dense and row-major, so its data is the (B,T,C) tensor)
    const r = hostPoint(ctx, 'hook_pos_embed', [B, T, C], () => {
      const p = new Float64Array(B * T * C);
      for (let b = 0; b < B; b++) p.set(pos, b * T * C);
      return p;
    });
    if (r) be.upload(x0, r.act.data);
    else for (let b = 0; b < B; b++) be.upload(be.view(x0, b * T * C, T * C), pos);
    be.add(x0, tmp, x0);
  } finally {
    be.free(zeros);
  }
}
