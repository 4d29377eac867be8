// Streaming per-neuron statistics over N tokens in memory independent of N: count, mean and the
// central moment sums M2 = Σ(x−μ)², M3 = Σ(x−μ)³, M4 = Σ(x−μ)⁴ in float64, updated one chunk of
// rows at a time. Each chunk's own mean and central sums are computed exactly (two passes over the
// chunk), then merged with the running ones by the pairwise formulas of Chan et al. (M2) and Pébay
// (2008, eqs. 3.1-3.3; M3, M4), which avoid the cancellation of raw power sums Σx^k.
// Also: the number of tokens > 0 (density), max and min.
import { NumericsError } from '../errors.js';

/** One pushed chunk: its row count, mean and central sums Σ(x−m)^k, k = 2..4, per neuron. */
export interface ChunkSummary {
  n: number;
  mean: Float64Array;
  c2: Float64Array;
  c3: Float64Array;
  c4: Float64Array;
}

export class StreamingMoments {
  /** Tokens seen. */
  count = 0;
  readonly mean: Float64Array;
  readonly M2: Float64Array;
  readonly M3: Float64Array;
  readonly M4: Float64Array;
  /** Tokens with activation > 0, per neuron. */
  readonly positive: Float64Array;
  readonly max: Float64Array;
  readonly min: Float64Array;
  private readonly s1: Float64Array;
  private readonly c2: Float64Array;
  private readonly c3: Float64Array;
  private readonly c4: Float64Array;

  /** With recordChunks, every chunk's summary as push() merged it (for merging shards exactly). */
  readonly chunks: ChunkSummary[] | null;

  /** H: neurons (columns). what: names the tensor in error messages. */
  constructor(
    readonly H: number,
    private readonly what = 'activation',
    recordChunks = false,
  ) {
    this.chunks = recordChunks ? [] : null;
    const f = () => new Float64Array(H);
    this.mean = f();
    this.M2 = f();
    this.M3 = f();
    this.M4 = f();
    this.positive = f();
    this.max = f().fill(-Infinity);
    this.min = f().fill(Infinity);
    this.s1 = f();
    this.c2 = f();
    this.c3 = f();
    this.c4 = f();
  }

  /**
   * Add n rows of x (row-major (n, H): row r is flat position firstPos + r). A NaN or ±Inf anywhere
   * throws a NumericsError naming the neuron and the position.
   */
  push(x: ArrayLike<number>, n: number, firstPos: number): void {
    const H = this.H;
    if (n <= 0) return;
    if (x.length < n * H) throw new RangeError(`StreamingMoments.push: ${x.length} values for ${n} rows of ${H}`);
    const { s1, c2, c3, c4, positive, max, min } = this;
    s1.fill(0);
    c2.fill(0);
    c3.fill(0);
    c4.fill(0);
    for (let r = 0; r < n; r++) {
      const off = r * H;
      for (let i = 0; i < H; i++) {
        const v = x[off + i];
        s1[i] += v;
        if (v > 0) positive[i]++;
        if (v > max[i]) max[i] = v;
        if (v < min[i]) min[i] = v;
      }
    }
    for (let i = 0; i < H; i++) {
      if (!Number.isFinite(s1[i])) this.nonFinite(x, n, firstPos);
      s1[i] /= n; // the chunk mean
    }
    for (let r = 0; r < n; r++) {
      const off = r * H;
      for (let i = 0; i < H; i++) {
        const d = x[off + i] - s1[i],
          d2 = d * d;
        c2[i] += d2;
        c3[i] += d2 * d;
        c4[i] += d2 * d2;
      }
    }
    if (this.chunks) this.chunks.push({ n, mean: s1.slice(), c2: c2.slice(), c3: c3.slice(), c4: c4.slice() });
    this.mergeChunk(n, s1, c2, c3, c4);
  }

  /**
   * Merge one chunk's count, mean and central sums into the running moments (Chan et al., Pébay):
   * what push() does after summarising its chunk. Replaying the chunks of several shards in
   * position order reproduces a single pass bitwise.
   */
  mergeChunk(n: number, s1: ArrayLike<number>, c2: ArrayLike<number>, c3: ArrayLike<number>, c4: ArrayLike<number>): void {
    const H = this.H;
    const na = this.count,
      nb = n,
      nn = na + nb;
    const { mean, M2, M3, M4 } = this;
    for (let i = 0; i < H; i++) {
      const delta = s1[i] - mean[i],
        d2 = delta * delta;
      const m2a = M2[i],
        m3a = M3[i];
      M4[i] =
        M4[i] +
        c4[i] +
        (d2 * d2 * na * nb * (na * na - na * nb + nb * nb)) / (nn * nn * nn) +
        (6 * d2 * (na * na * c2[i] + nb * nb * m2a)) / (nn * nn) +
        (4 * delta * (na * c3[i] - nb * m3a)) / nn;
      M3[i] = m3a + c3[i] + (d2 * delta * na * nb * (na - nb)) / (nn * nn) + (3 * delta * (na * c2[i] - nb * m2a)) / nn;
      M2[i] = m2a + c2[i] + (d2 * na * nb) / nn;
      mean[i] += (delta * nb) / nn;
    }
    this.count = nn;
  }

  private nonFinite(x: ArrayLike<number>, n: number, firstPos: number): never {
    const H = this.H;
    for (let r = 0; r < n; r++) {
      for (let i = 0; i < H; i++) {
        const v = x[r * H + i];
        if (!Number.isFinite(v))
          throw new NumericsError(
            `${this.what} of neuron ${i} is ${v} at flat position ${firstPos + r}; the model's numbers went wrong (check the checkpoint with crate-ts audit)`,
          );
      }
    }
    throw new NumericsError(`${this.what}: a chunk sum overflowed to a non-finite value at positions ${firstPos}..${firstPos + n - 1}`);
  }

  /** Population variance M2/N, raw central moments M3/N and M4/N, and their standardised forms. */
  summary(i: number): {
    mean: number;
    variance: number;
    m3: number;
    m4: number;
    skewness: number;
    kurtosis: number;
    density: number;
    max: number;
    min: number;
  } {
    const n = this.count;
    const variance = this.M2[i] / n,
      m3 = this.M3[i] / n,
      m4 = this.M4[i] / n;
    const sd = Math.sqrt(variance);
    return {
      mean: this.mean[i],
      variance,
      m3,
      m4,
      skewness: variance > 0 ? m3 / (sd * sd * sd) : NaN,
      kurtosis: variance > 0 ? m4 / (variance * variance) : NaN,
      density: this.positive[i] / n,
      max: this.max[i],
      min: this.min[i],
    };
  }
}
