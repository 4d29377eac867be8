// The shuffled activation buffer (README "Sparse autoencoders"): `capacity` rows of width D in float32,
// read in a random order; when half of it has been read, the rows read are replaced by fresh
// activations and the order is reshuffled (the scheme of the authors' SAE code, whose buffer holds
// 2^19 rows). Memory is the buffer plus one forward's rows, whatever the number of training tokens.
import { Rng } from '../util/rng.js';

/** Produces the next rows of activations (float32, row-major, width D); never empty. */
export type RowSource = () => Float32Array;

export interface BufferState {
  data: Float32Array;
  perm: Int32Array;
  readPos: number;
  pending: Float32Array;
  rng: number[];
}

export class ActivationBuffer {
  readonly data: Float32Array;
  readonly perm: Int32Array;
  private readPos = 0;
  private pending: Float32Array = new Float32Array(0);
  private filled = false;

  constructor(
    readonly capacity: number,
    readonly D: number,
    private readonly rng: Rng,
    private readonly source: RowSource,
  ) {
    this.data = new Float32Array(capacity * D);
    this.perm = Int32Array.from({ length: capacity }, (_, i) => i);
  }

  /** Take `rows` rows from the source (pending rows first) into physical slots `slots`. */
  private fill(slots: ArrayLike<number>, count: number): void {
    const D = this.D;
    let got = 0;
    while (got < count) {
      if (this.pending.length === 0) this.pending = this.source();
      const avail = this.pending.length / D;
      const take = Math.min(avail, count - got);
      for (let r = 0; r < take; r++) this.data.set(this.pending.subarray(r * D, (r + 1) * D), slots[got + r] * D);
      this.pending = this.pending.slice(take * D);
      got += take;
    }
  }

  private shuffle(): void {
    const p = this.perm;
    for (let i = p.length - 1; i > 0; i--) {
      const j = this.rng.int(i + 1);
      const t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
    this.readPos = 0;
  }

  /** Fill the whole buffer (first call) and shuffle. */
  prime(): void {
    if (this.filled) return;
    this.fill(this.perm, this.capacity);
    this.filled = true;
    this.shuffle();
  }

  /** Copy the next `n` rows (n <= capacity / 2) into out (n·D floats). */
  next(n: number, out: Float32Array): void {
    this.prime();
    if (this.readPos + n > this.capacity) this.refill();
    const D = this.D;
    for (let r = 0; r < n; r++) {
      const s = this.perm[this.readPos + r];
      out.set(this.data.subarray(s * D, (s + 1) * D), r * D);
    }
    this.readPos += n;
    if (this.readPos >= this.capacity / 2) this.refill();
  }

  /** Replace the rows read so far with fresh ones, then reshuffle. */
  private refill(): void {
    this.fill(this.perm.subarray(0, this.readPos), this.readPos);
    this.shuffle();
  }

  /** Rows not yet read, in reading order (for resampling: a look at the data without consuming it). */
  peek(n: number): Float32Array {
    this.prime();
    const D = this.D;
    const m = Math.min(n, this.capacity);
    const out = new Float32Array(m * D);
    for (let r = 0; r < m; r++) {
      const s = this.perm[(this.readPos + r) % this.capacity];
      out.set(this.data.subarray(s * D, (s + 1) * D), r * D);
    }
    return out;
  }

  getState(): BufferState {
    return { data: this.data, perm: this.perm, readPos: this.readPos, pending: this.pending, rng: this.rng.getState() };
  }

  setState(s: BufferState): void {
    this.data.set(s.data);
    this.perm.set(s.perm);
    this.readPos = s.readPos;
    this.pending = Float32Array.from(s.pending);
    this.rng.setState(s.rng);
    this.filled = true;
  }
}
