// Central finite differences in float64 for checking hand-written backward passes.
import { Rng } from '../../src/util/rng.js';

export function randn(rng: Rng, n: number, scale = 1): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = scale * rng.normal();
  return a;
}

export function randTokens(rng: Rng, n: number, V: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.int(V);
  return a;
}

/**
 * For a scalar function L(x) = <forward(x), R>, compare an analytic gradient with
 *   (L(x + h e_i) − L(x − h e_i)) / 2h
 * on up to `maxCoords` coordinates. Returns the worst |analytic − numeric| / (atol + |numeric|) ratio
 * measured against tolerance `rtol` (≤ 1 means pass) and details of the worst coordinate.
 */
export function fdCheck(
  x: Float64Array,
  loss: () => number,
  analytic: Float64Array,
  rng: Rng,
  opts: { h?: number; rtol?: number; atol?: number; maxCoords?: number } = {},
): { worst: number; at: number; analytic: number; numeric: number } {
  const h = opts.h ?? 1e-6,
    rtol = opts.rtol ?? 1e-6,
    atol = opts.atol ?? 1e-8;
  const coords: number[] = [];
  const maxC = opts.maxCoords ?? 60;
  if (x.length <= maxC) for (let i = 0; i < x.length; i++) coords.push(i);
  else for (let k = 0; k < maxC; k++) coords.push(rng.int(x.length));
  let worst = 0,
    at = -1,
    an = 0,
    nu = 0;
  for (const i of coords) {
    const x0 = x[i];
    x[i] = x0 + h;
    const lp = loss();
    x[i] = x0 - h;
    const lm = loss();
    x[i] = x0;
    const numeric = (lp - lm) / (2 * h);
    const err = Math.abs(analytic[i] - numeric) / (atol + rtol * Math.abs(numeric));
    if (err > worst) {
      worst = err;
      at = i;
      an = analytic[i];
      nu = numeric;
    }
  }
  return { worst, at, analytic: an, numeric: nu };
}

export function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}
