// Batches of random windows (nanoGPT get_batch, spec 5.1): x = data[i : i+T], y = data[i+1 : i+T+1],
// with i drawn from a seeded Rng whose state is saved in checkpoints, so a resumed run draws the
// same windows an uninterrupted one would.
import { Rng } from '../util/rng.js';

export interface Batch {
  /** (B,T) input ids, flat row-major. */
  x: Int32Array;
  /** (B,T) targets: the inputs shifted by one. */
  y: Int32Array;
}

/** Copy the windows starting at `starts` into a batch. */
export function windowsAt(tokens: ArrayLike<number>, starts: readonly number[], T: number): Batch {
  const B = starts.length;
  const x = new Int32Array(B * T), y = new Int32Array(B * T);
  starts.forEach((s, b) => {
    if (s < 0 || s + T + 1 > tokens.length) throw new Error(`window [${s}, ${s + T + 1}) is outside ${tokens.length} tokens`);
    for (let t = 0; t < T; t++) {
      x[b * T + t] = tokens[s + t];
      y[b * T + t] = tokens[s + t + 1];
    }
  });
  return { x, y };
}

/** Random training windows from a seeded Rng (its state is the data position). */
export class BatchSampler {
  readonly rng: Rng;
  constructor(private readonly tokens: ArrayLike<number>, seed: number) {
    this.rng = new Rng(seed);
  }
  next(B: number, T: number): Batch {
    const n = this.tokens.length - T;
    if (n < 1) throw new Error(`cannot draw a window of ${T + 1} tokens from ${this.tokens.length}`);
    const starts: number[] = [];
    for (let b = 0; b < B; b++) starts.push(this.rng.int(n));
    return windowsAt(this.tokens, starts, T);
  }
  getState(): number[] { return this.rng.getState(); }
  setState(s: number[]): void { this.rng.setState(s); }
}

/**
 * A fixed set of `count` validation windows spread evenly over the split (the same windows at every
 * evaluation, so losses are comparable and no RNG stream is disturbed), grouped into batches of B.
 */
export function evalBatches(tokens: ArrayLike<number>, B: number, T: number, count: number): Batch[] {
  const last = tokens.length - T - 1;
  if (last < 0) throw new Error(`cannot take a window of ${T + 1} tokens from ${tokens.length}`);
  // Non-overlapping windows when the split is long enough, else evenly spaced (overlapping) ones.
  const maxDistinct = Math.floor(tokens.length / (T + 1));
  const k = Math.max(1, Math.min(count, maxDistinct));
  const starts: number[] = [];
  for (let i = 0; i < k; i++) starts.push(k === 1 ? 0 : Math.round((i * last) / (k - 1)));
  const out: Batch[] = [];
  for (let i = 0; i < starts.length; i += B) out.push(windowsAt(tokens, starts.slice(i, i + B), T));
  return out;
}

/** Entropy in nats of the empirical unigram distribution of `tokens` (a baseline a model must beat). */
export function unigramEntropy(tokens: ArrayLike<number>): number {
  const counts = new Map<number, number>();
  for (let i = 0; i < tokens.length; i++) counts.set(tokens[i], (counts.get(tokens[i]) ?? 0) + 1);
  let h = 0;
  const n = tokens.length;
  for (const c of counts.values()) {
    const p = c / n;
    h -= p * Math.log(p);
  }
  return h;
}
