// AdamW over the flat parameter buffer (spec 5.1): betas (0.9, 0.95), eps 1e-8, weight decay on
// tensors of >= 2 dims only (ParamSpec.decay), applied per named view by backend.adamwUpdate.
// The moments m and v are flat buffers on the backend with the parameters' layout.
import type { LanguageModel } from '../model/lm.js';

export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const ADAMW_DEFAULTS: AdamWConfig = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };

export class AdamW<Buf> {
  readonly m: Buf;
  readonly v: Buf;
  /** Completed updates (the bias-correction step t of the last update). */
  t = 0;

  constructor(
    private readonly model: LanguageModel<Buf>,
    readonly hp: AdamWConfig = ADAMW_DEFAULTS,
  ) {
    const be = model.backend;
    this.m = be.alloc(model.numParameters);
    this.v = be.alloc(model.numParameters);
  }

  /** One update with learning rate lr, using the gradients in model.grads. */
  step(lr: number): void {
    const be = this.model.backend,
      { beta1, beta2, eps, weightDecay } = this.hp;
    this.t++;
    for (const p of this.model.table) {
      be.adamwUpdate(
        be.view(this.model.params, p.offset, p.size),
        be.view(this.model.grads, p.offset, p.size),
        be.view(this.m, p.offset, p.size),
        be.view(this.v, p.offset, p.size),
        lr,
        beta1,
        beta2,
        eps,
        p.decay ? weightDecay : 0,
        this.t,
      );
    }
  }

  getState(): { m: Float64Array; v: Float64Array; t: number } {
    const be = this.model.backend;
    return { m: be.download(this.m), v: be.download(this.v), t: this.t };
  }

  setState(s: { m: ArrayLike<number>; v: ArrayLike<number>; t: number }): void {
    const be = this.model.backend;
    be.upload(this.m, s.m);
    be.upload(this.v, s.v);
    this.t = s.t;
  }

  free(): void {
    this.model.backend.free(this.m);
    this.model.backend.free(this.v);
  }
}

/**
 * Global gradient-norm clipping (torch.nn.utils.clip_grad_norm_): with n = ||g||_2 over all
 * parameters, g *= maxNorm / (n + 1e-6) when that factor is below 1. Returns n (before clipping).
 */
export function clipGradNorm(model: LanguageModel<unknown>, maxNorm: number): number {
  const be = model.backend;
  const norm = Math.sqrt(be.sumSquares(model.grads));
  if (maxNorm > 0 && Number.isFinite(norm)) {
    const coef = maxNorm / (norm + 1e-6);
    if (coef < 1) be.scale(model.grads, coef);
  }
  return norm;
}

/**
 * Learning rate for update number `step` (1-based): linear warm-up from 0 to `lr` over `warmup`
 * updates, then cosine decay to `minLr` at update `total`, constant afterwards (nanoGPT get_lr).
 */
export function lrAt(step: number, o: { lr: number; minLr: number; warmup: number; total: number }): number {
  if (step <= o.warmup) return (o.lr * step) / Math.max(1, o.warmup);
  if (step >= o.total) return o.minLr;
  const progress = (step - o.warmup) / Math.max(1, o.total - o.warmup);
  return o.minLr + 0.5 * (1 + Math.cos(Math.PI * progress)) * (o.lr - o.minLr);
}
