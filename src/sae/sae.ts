// An SAE resident on a backend: its parameters in one flat buffer with named views (llm.c style),
// the gradient, Adam's moments, and the work buffers of a batch. `gradient()` computes the whole
// gradient of one batch into `grad` (the buffer a data-parallel run would all-reduce), `update()`
// applies it: the decoder-gradient projection, Adam, the unit-norm decoder rows.
import type { Backend } from '../backend/types.js';
import type { SaeWeights } from './format.js';

/** Offsets of the named views in the flat parameter buffer: W_enc (D,S), b_enc (S), W_dec (S,D), b_dec (D). */
export function saeLayout(D: number, S: number) {
  return { Wenc: 0, benc: D * S, Wdec: D * S + S, bdec: 2 * D * S + S, size: 2 * D * S + S + D };
}

export interface BatchStats {
  /** The loss optimised (normalised reconstruction + λ·L1 term, or + AuxK). */
  loss: number;
  /** Σ‖x̂ − x‖² / Σ‖x − x̄‖² over the batch: the batch's FVU. */
  fvu: number;
  /** Σ_{n,j} h_nj. */
  l1: number;
  aux: number;
  /** counts[j]: rows of the batch on which feature j fired. */
  counts: Float64Array;
}

export class ResidentSae<B> {
  readonly params: B;
  readonly grad: B;
  readonly m: B;
  readonly v: B;
  private readonly views: Record<'Wenc' | 'benc' | 'Wdec' | 'bdec' | 'gWenc' | 'gbenc' | 'gWdec' | 'gbdec', B>;
  private work: { N: number; bufs: Record<string, B> } | null = null;
  private zeroBdec: B | null = null;

  constructor(
    readonly be: Backend<B>,
    readonly D: number,
    readonly S: number,
  ) {
    const L = saeLayout(D, S);
    this.params = be.alloc(L.size);
    this.grad = be.alloc(L.size);
    this.m = be.alloc(L.size);
    this.v = be.alloc(L.size);
    be.fill(this.grad, 0);
    be.fill(this.m, 0);
    be.fill(this.v, 0);
    const vw = (buf: B, off: number, n: number) => be.view(buf, off, n);
    this.views = {
      Wenc: vw(this.params, L.Wenc, D * S),
      benc: vw(this.params, L.benc, S),
      Wdec: vw(this.params, L.Wdec, S * D),
      bdec: vw(this.params, L.bdec, D),
      gWenc: vw(this.grad, L.Wenc, D * S),
      gbenc: vw(this.grad, L.benc, S),
      gWdec: vw(this.grad, L.Wdec, S * D),
      gbdec: vw(this.grad, L.bdec, D),
    };
  }

  setWeights(w: SaeWeights): void {
    const L = saeLayout(this.D, this.S);
    const all = new Float64Array(L.size);
    all.set(w.Wenc, L.Wenc);
    all.set(w.benc, L.benc);
    all.set(w.Wdec, L.Wdec);
    all.set(w.bdec, L.bdec);
    this.be.upload(this.params, all);
  }

  weights(): SaeWeights {
    const L = saeLayout(this.D, this.S);
    const all = this.be.download(this.params);
    return {
      D: this.D,
      S: this.S,
      Wenc: all.slice(L.Wenc, L.Wenc + this.D * this.S),
      benc: all.slice(L.benc, L.benc + this.S),
      Wdec: all.slice(L.Wdec, L.Wdec + this.S * this.D),
      bdec: all.slice(L.bdec, L.bdec + this.D),
    };
  }

  /** A buffer's values on the host in the backend's own precision (float32 for the native backends). */
  host(buf: B): Float32Array | Float64Array {
    const be = this.be as Backend<B> & { downloadF32?: (b: B) => Float32Array };
    return be.dtype === 'f32' && typeof be.downloadF32 === 'function' ? be.downloadF32(buf) : be.download(buf);
  }

  /** Work buffers for batches of up to N rows. */
  private ws(N: number): Record<string, B> {
    if (this.work && this.work.N >= N) return this.work.bufs;
    if (this.work) for (const b of Object.values(this.work.bufs)) this.be.free(b);
    const { D, S } = this;
    const sizes: Record<string, number> = { x: N * D, pre: N * S, h: N * S, xhat: N * D, dxhat: N * D, dpre: N * S, counts: S, mask: S };
    const bufs: Record<string, B> = {};
    for (const [k, n] of Object.entries(sizes)) bufs[k] = this.be.alloc(n);
    this.work = { N, bufs };
    return bufs;
  }
  private aux(N: number): Record<string, B> {
    const w = this.ws(N);
    if (!w.ha) {
      const { D, S } = this;
      const n = this.work!.N;
      Object.assign(w, {
        ha: this.be.alloc(n * S),
        e: this.be.alloc(n * D),
        ehat: this.be.alloc(n * D),
        dehat: this.be.alloc(n * D),
        dpa: this.be.alloc(n * S),
      });
    }
    return w;
  }
  private v_(name: string, N: number, per: number): B {
    return this.be.view(this.work!.bufs[name], 0, N * per);
  }

  /** Encode (and decode) rows x (N·D, float32 values) on the backend; returns h and x̂ on the host. */
  encodeDecode(x: ArrayLike<number>, N: number, k: number, applyBDec = true): { h: Float64Array; xhat: Float64Array } {
    const { be, D, S } = this;
    this.ws(N);
    const X = this.v_('x', N, D),
      pre = this.v_('pre', N, S),
      h = this.v_('h', N, S),
      xh = this.v_('xhat', N, D);
    be.upload(X, x);
    be.saeEncodeForward(pre, h, X, this.views.Wenc, this.views.benc, applyBDec ? this.views.bdec : this.zeros(), N, D, S, k);
    be.saeDecodeForward(xh, h, this.views.Wdec, this.views.bdec, N, D, S);
    return { h: be.download(h), xhat: be.download(xh) };
  }

  private zeros(): B {
    if (!this.zeroBdec) {
      this.zeroBdec = this.be.alloc(this.D);
      this.be.fill(this.zeroBdec, 0);
    }
    return this.zeroBdec;
  }

  /**
   * The gradient of one batch into `grad` (overwritten). relu: L = [Σ‖x̂−x‖² + λ Σh] / den;
   * topk: L = Σ‖x̂−x‖²/den + auxCoef · AuxK, AuxK = Σ‖ê−e‖²/Σ‖e−ē‖², e = x − x̂ (held fixed),
   * ê = topk_{kAux}(pre over the dead features) W_dec. den = Σ‖x − x̄‖² of the batch (host, float64).
   */
  gradient(
    x: ArrayLike<number>,
    N: number,
    den: number,
    o: { k: number; l1: number; auxK?: number; auxCoef?: number; dead?: Float64Array | null; scale?: number },
  ): BatchStats {
    // scale multiplies the whole gradient (1/K for one of K micro-batches of a step); the stats are unscaled
    const sc = o.scale ?? 1;
    const { be, D, S } = this;
    const w = this.ws(N);
    const V = this.views;
    const X = this.v_('x', N, D),
      pre = this.v_('pre', N, S),
      h = this.v_('h', N, S),
      xh = this.v_('xhat', N, D),
      dxh = this.v_('dxhat', N, D),
      dpre = this.v_('dpre', N, S);
    be.upload(X, x);
    be.fill(this.grad, 0);
    be.saeEncodeForward(pre, h, X, V.Wenc, V.benc, V.bdec, N, D, S, o.k);
    be.saeDecodeForward(xh, h, V.Wdec, V.bdec, N, D, S);
    const fvu = be.saeMseLoss(dxh, xh, X, N, D, sc);
    be.saeDecodeBackward(dpre, V.gWdec, V.gbdec, dxh, h, V.Wdec, N, D, S, (o.l1 / den) * sc);
    let aux = 0;
    const nDead = o.dead ? o.dead.reduce((a, b) => a + (b !== 0 ? 1 : 0), 0) : 0;
    if (o.dead && nDead > 0 && o.auxK && o.auxCoef) {
      const a = this.aux(N);
      const ha = be.view(a.ha, 0, N * S),
        e = be.view(a.e, 0, N * D),
        eh = be.view(a.ehat, 0, N * D),
        deh = be.view(a.dehat, 0, N * D),
        dpa = be.view(a.dpa, 0, N * S);
      be.upload(w.mask, o.dead);
      be.copy(e, xh);
      be.scale(e, -1);
      be.add(e, e, X);
      be.saeTopk(ha, pre, w.mask, N, S, o.auxK);
      be.saeDecodeForward(eh, ha, V.Wdec, null, N, D, S);
      aux = be.saeMseLoss(deh, eh, e, N, D, o.auxCoef * sc);
      be.saeDecodeBackward(dpa, V.gWdec, null, deh, ha, V.Wdec, N, D, S, 0);
      be.add(dpre, dpre, dpa);
    }
    be.saeEncodeBackward(V.gWenc, V.gbenc, V.gbdec, dpre, X, V.Wenc, V.bdec, N, D, S);
    const l1 = be.saeFireCounts(w.counts, h, N, S);
    const counts = be.download(w.counts);
    const loss = fvu + (o.l1 * l1) / den + (o.auxCoef ?? 0) * aux;
    return { loss, fvu, l1, aux, counts };
  }

  /** Apply `grad`: remove the decoder gradient's radial part, Adam (β1, β2), renormalise the decoder rows. */
  update(lr: number, step: number, beta1: number, beta2: number): void {
    const be = this.be;
    be.saeDecoderProject(this.views.gWdec, this.views.Wdec, this.S, this.D);
    be.adamwUpdate(this.params, this.grad, this.m, this.v, lr, beta1, beta2, 1e-8, 0, step);
    be.saeNormalizeRows(this.views.Wdec, this.S, this.D);
  }

  free(): void {
    for (const b of [this.params, this.grad, this.m, this.v]) this.be.free(b);
    if (this.work) for (const b of Object.values(this.work.bufs)) this.be.free(b);
    if (this.zeroBdec) this.be.free(this.zeroBdec);
    this.work = null;
  }
}
