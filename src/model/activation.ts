// Activations as a hook sees them: float64 `ndarray` views on the host, the hook function type, the
// cache runWithCache fills, and applying a hook's result to a view. Nothing here knows an
// architecture; the hook names and shapes are folds over the blocks (src/model/hooks.ts).
import ndarray from 'ndarray';
import type { NdArray } from 'ndarray';
import { UsageError } from '../errors.js';

export type Activation = NdArray<Float64Array>;

/**
 * A hook receives the activation (a float64 view of the documented shape) and its name. It may
 * modify the view in place, or return a replacement of the same shape (an ndarray or a flat array
 * in row-major order); returning nothing keeps the (possibly modified) values.
 */
export type HookFn = (act: Activation, name: string) => Activation | ArrayLike<number> | void;

/** The activations cached by runWithCache, by the names asked for (aliases included). */
export class ActivationCache {
  private readonly map = new Map<string, Activation>();

  /** The activation under `name`; throws if it was not cached. */
  get(name: string): Activation {
    const a = this.map.get(name);
    if (!a) throw new UsageError(`no activation '${name}' in the cache (cached: ${[...this.map.keys()].join(', ') || 'none'})`);
    return a;
  }

  has(name: string): boolean {
    return this.map.has(name);
  }
  keys(): string[] {
    return [...this.map.keys()];
  }
  get size(): number {
    return this.map.size;
  }
  /** @internal */
  set(name: string, a: Activation): void {
    this.map.set(name, a);
  }
}

/** A float64 view of `shape` over `data` (row-major, or explicit strides and offset). */
export function view(data: Float64Array, shape: number[], stride?: number[], offset = 0): Activation {
  return ndarray(data, shape, stride, offset);
}

/** Row-major copy of an activation's elements (it may be a strided view). */
export function toDense(a: Activation): Float64Array {
  const n = a.shape.reduce((x, y) => x * y, 1);
  const out = new Float64Array(n);
  const idx = new Array<number>(a.shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    let off = a.offset;
    for (let d = 0; d < idx.length; d++) off += idx[d] * a.stride[d];
    out[i] = a.data[off];
    for (let d = idx.length - 1; d >= 0; d--) {
      if (++idx[d] < a.shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

/** Write row-major `values` into an activation view (it may be strided). */
export function assignDense(a: Activation, values: ArrayLike<number>): void {
  const n = a.shape.reduce((x, y) => x * y, 1);
  const idx = new Array<number>(a.shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    let off = a.offset;
    for (let d = 0; d < idx.length; d++) off += idx[d] * a.stride[d];
    a.data[off] = values[i];
    for (let d = idx.length - 1; d >= 0; d--) {
      if (++idx[d] < a.shape[d]) break;
      idx[d] = 0;
    }
  }
}

/**
 * Call a hook and apply its result to `act`: a returned replacement must have the same number of
 * elements (and, for an ndarray, the same shape) and finite values.
 */
export function applyHook(fn: HookFn, act: Activation, name: string): void {
  const r = fn(act, name);
  if (r === undefined || r === null || r === act) return;
  const n = act.shape.reduce((x, y) => x * y, 1);
  let values: ArrayLike<number>;
  if (typeof (r as Activation).shape === 'object' && (r as Activation).data !== undefined) {
    const nd = r as Activation;
    if (nd.shape.length !== act.shape.length || nd.shape.some((s, i) => s !== act.shape[i])) {
      throw new UsageError(`hook for '${name}' returned shape [${nd.shape.join(', ')}], expected [${act.shape.join(', ')}]`);
    }
    values = toDense(nd);
  } else {
    values = r as ArrayLike<number>;
    if (typeof values.length !== 'number' || values.length !== n) {
      throw new UsageError(
        `hook for '${name}' returned ${typeof values.length === 'number' ? values.length : 'a non-array with no'} values, expected ${n} (shape [${act.shape.join(', ')}])`,
      );
    }
  }
  assignDense(act, values);
}
