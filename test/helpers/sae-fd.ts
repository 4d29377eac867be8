// Central finite differences of the SAE reference's whole loss (normalised MSE + L1, optionally
// AuxK), shared by test/sae-reference.test.ts and the finite-difference registry of
// test/reference-grad.test.ts.
import { expect } from 'vitest';
import {
  saeDecodeBackward,
  saeDecodeForward,
  saeDecoderProject,
  saeEncodeBackward,
  saeEncodeForward,
  saeMseLoss,
  saeNormalizeRows,
  saeTopk,
} from '../../src/reference/sae.js';
import { Rng } from '../../src/util/rng.js';

export interface Params {
  We: Float64Array;
  be: Float64Array;
  Wd: Float64Array;
  bd: Float64Array;
}

export function randn(rng: Rng, n: number, s = 1): Float64Array {
  return Float64Array.from({ length: n }, () => s * rng.normal());
}

/** L = normalised MSE + l1/N Σh, plus (auxK > 0) the AuxK term on the features with mask != 0. */
export function loss(
  p: Params,
  x: Float64Array,
  N: number,
  D: number,
  S: number,
  k: number,
  l1: number,
  aux?: { mask: Float64Array; kAux: number; coef: number; target?: Float64Array },
): number {
  const pre = new Float64Array(N * S),
    h = new Float64Array(N * S),
    xh = new Float64Array(N * D);
  saeEncodeForward(pre, h, x, p.We, p.be, p.bd, N, D, S, k);
  saeDecodeForward(xh, h, p.Wd, p.bd, N, D, S);
  let L = saeMseLoss(null, xh, x, N, D, 1) + (l1 / N) * h.reduce((a, b) => a + b, 0);
  if (aux) {
    // AuxK: e = x − x̂ is a constant target (computed at the current parameters and held fixed)
    const ha = new Float64Array(N * S),
      eh = new Float64Array(N * D);
    saeTopk(ha, pre, aux.mask, N, S, aux.kAux);
    saeDecodeForward(eh, ha, p.Wd, null, N, D, S);
    L += aux.coef * saeMseLoss(null, eh, aux.target!, N, D, 1);
  }
  return L;
}

export function grads(
  p: Params,
  x: Float64Array,
  N: number,
  D: number,
  S: number,
  k: number,
  l1: number,
  aux?: { mask: Float64Array; kAux: number; coef: number; target?: Float64Array },
): Params {
  const g: Params = { We: new Float64Array(D * S), be: new Float64Array(S), Wd: new Float64Array(S * D), bd: new Float64Array(D) };
  const pre = new Float64Array(N * S),
    h = new Float64Array(N * S),
    xh = new Float64Array(N * D),
    dxh = new Float64Array(N * D),
    dpre = new Float64Array(N * S);
  saeEncodeForward(pre, h, x, p.We, p.be, p.bd, N, D, S, k);
  saeDecodeForward(xh, h, p.Wd, p.bd, N, D, S);
  saeMseLoss(dxh, xh, x, N, D, 1);
  saeDecodeBackward(dpre, g.Wd, g.bd, dxh, h, p.Wd, N, D, S, l1 / N);
  saeEncodeBackward(g.We, g.be, g.bd, dpre, x, p.We, p.bd, N, D, S);
  if (aux) {
    const ha = new Float64Array(N * S),
      eh = new Float64Array(N * D),
      deh = new Float64Array(N * D),
      dpa = new Float64Array(N * S);
    saeTopk(ha, pre, aux.mask, N, S, aux.kAux);
    saeDecodeForward(eh, ha, p.Wd, null, N, D, S);
    saeMseLoss(deh, eh, aux.target!, N, D, aux.coef);
    saeDecodeBackward(dpa, g.Wd, null, deh, ha, p.Wd, N, D, S, 0);
    saeEncodeBackward(g.We, g.be, g.bd, dpa, x, p.We, p.bd, N, D, S);
  }
  return g;
}

export function checkFd(N: number, D: number, S: number, k: number, l1: number, seed: number, withAux = false): void {
  const rng = new Rng(seed);
  const x = randn(rng, N * D, 1);
  const p: Params = { We: randn(rng, D * S, 0.7), be: randn(rng, S, 0.3), Wd: randn(rng, S * D), bd: randn(rng, D, 0.2) };
  saeNormalizeRows(p.Wd, S, D);
  let aux: { mask: Float64Array; kAux: number; coef: number; target: Float64Array } | undefined;
  if (withAux) {
    const mask = Float64Array.from({ length: S }, (_, j) => (j % 2 === 1 ? 1 : 0));
    // target: the residual at the starting parameters, held fixed (as the trainer does)
    const pre = new Float64Array(N * S),
      h = new Float64Array(N * S),
      xh = new Float64Array(N * D);
    saeEncodeForward(pre, h, x, p.We, p.be, p.bd, N, D, S, k);
    saeDecodeForward(xh, h, p.Wd, p.bd, N, D, S);
    aux = { mask, kAux: 2, coef: 1 / 32, target: x.map((v, e) => v - xh[e]) };
  }
  const g = grads(p, x, N, D, S, k, l1, aux);
  const eps = 1e-6;
  let checked = 0;
  for (const name of ['We', 'be', 'Wd', 'bd'] as const) {
    const a = p[name];
    for (let i = 0; i < a.length; i++) {
      const v = a[i];
      a[i] = v + eps;
      const lp = loss(p, x, N, D, S, k, l1, aux as never);
      a[i] = v - eps;
      const lm = loss(p, x, N, D, S, k, l1, aux as never);
      a[i] = v;
      const fd = (lp - lm) / (2 * eps);
      expect(Math.abs(fd - g[name][i]), `${name}[${i}] fd ${fd} analytic ${g[name][i]} (N=${N} D=${D} S=${S} k=${k})`).toBeLessThan(1e-6 + 1e-5 * Math.abs(fd));
      checked++;
    }
  }
  expect(checked).toBe(2 * D * S + S + D);
}

/**
 * saeDecoderProject against finite differences: at unit-norm decoder rows, the derivative of the loss
 * of the renormalised rows, L(W_j / |W_j|), is the gradient with its component along W_j removed.
 */
export function checkProjectFd(N: number, D: number, S: number, k: number, seed: number): void {
  const rng = new Rng(seed);
  const x = randn(rng, N * D, 1);
  const p: Params = { We: randn(rng, D * S, 0.7), be: randn(rng, S, 0.3), Wd: randn(rng, S * D), bd: randn(rng, D, 0.2) };
  saeNormalizeRows(p.Wd, S, D);
  const g = grads(p, x, N, D, S, k, 0);
  saeDecoderProject(g.Wd, p.Wd, S, D);
  const renormalised = (): number => {
    const Wd = Float64Array.from(p.Wd);
    saeNormalizeRows(Wd, S, D);
    return loss({ ...p, Wd }, x, N, D, S, k, 0);
  };
  const eps = 1e-6;
  for (let i = 0; i < p.Wd.length; i++) {
    const v = p.Wd[i];
    p.Wd[i] = v + eps;
    const lp = renormalised();
    p.Wd[i] = v - eps;
    const lm = renormalised();
    p.Wd[i] = v;
    const fd = (lp - lm) / (2 * eps);
    expect(Math.abs(fd - g.Wd[i]), `Wd[${i}] fd ${fd} projected ${g.Wd[i]}`).toBeLessThan(1e-6 + 1e-5 * Math.abs(fd));
  }
}
