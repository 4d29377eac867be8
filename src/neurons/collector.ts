// One layer's streaming collection (spec 7.2-7.3) over N flat token positions that arrive in order,
// a chunk of rows (n, H) at a time. Memory is independent of N:
//
//   - moments, density, max/min: StreamingMoments (float64, chunk-merged);
//   - top-k per neuron: a min-heap of (value, position) whose root is the worst kept entry (lowest
//     value; among equal values the highest position, so ties go to the lower position); a new
//     position enters only if its value beats the root's, which after warm-up is one comparison
//     per (token, neuron);
//   - random positions (uniform, with replacement) and the quantile candidates (uniform, without
//     replacement) are drawn before the pass from the seeded Rng, since N is known: they are just
//     events at known positions;
//   - excerpts [q − before, q + after) are copied out of a short history of recent rows. A position
//     is evaluated only once the rows up to q + after have arrived (or at finish, clipped to N), so
//     an entry's excerpt is complete the moment it enters; an evicted entry's slot is reused.
//
// Quantile bins (spec 7.3: ranks in twelfths, 11 bins, 20 positions each): exact ranks need all N
// values of a neuron; instead the ranks are those of a uniform sample of S candidate positions
// (default 720 = 60 per twelfth), ties (the many exact zeros of a ReLU code) broken by the random
// draw order, so every twelfth of the sample holds its share even when most values are 0. Each bin
// then keeps 20 of its candidates in random order. quantile_boundaries are the sample's values at
// ranks ⌊b·S/12⌋, b = 0..11.
import { Rng } from '../util/rng.js';
import { StreamingMoments } from './moments.js';
import type { ExcerptGeometry } from './format.js';

export interface LayerCollectorOptions {
  /** Neurons per token. */
  H: number;
  /** Total flat positions that will be pushed. */
  N: number;
  /** Top-k (spec: 50). */
  topK: number;
  /** Random positions per neuron (spec: 50). */
  nRandom: number;
  /** Quantile sampling, or null (the OpenAI variants do not use it). */
  quantile: { bins: number; perBin: number; sample: number } | null;
  geometry: { top: ExcerptGeometry; random: ExcerptGeometry; quantile: ExcerptGeometry };
  /** Seed of the position draws; layer mixes into it so layers draw independently. */
  seed: number;
  layer: number;
  /** Store excerpt activations in float64 (reference backend) or float32 (native backends compute in float32). */
  precision: 'f64' | 'f32';
  /** Names the tensor in error messages. */
  what?: string;
  /**
   * One rank's share of a collection split across ranks: rows arrive from position `first`; the
   * positions [lo, hi) are this shard's (top-k, samples, moments); the rows before lo and after hi
   * are a halo that only excerpts read (at least the excerpt reach on each side, or to 0 and N).
   * Pushes must not straddle lo or hi. exportShard() then hands the shard's state to mergeShards().
   */
  shard?: { first: number; lo: number; hi: number };
}

/** One selected position with its excerpt activations. */
export interface Selected {
  pos: number;
  value: number;
  excerpt: Float64Array | Float32Array;
  start: number;
}

export interface NeuronSelection {
  top: Selected[];
  random: Selected[];
  quantile: Selected[][] | null;
  boundaries: number[] | null;
}

const excerptLen = (g: ExcerptGeometry): number => g.before + g.after;

/** A seed for an independent Rng stream per (seed, layer, purpose). */
export function streamSeed(seed: number, layer: number, purpose: number): number {
  let h = Math.imul((seed >>> 0) ^ 0x9e3779b9, 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (layer + 0x632be5ab), 0xc2b2ae35) >>> 0;
  h = Math.imul(h ^ (purpose * 0x27d4eb2d), 0x165667b1) >>> 0;
  return (h ^ (h >>> 15)) >>> 0;
}

export class LayerCollector {
  readonly moments: StreamingMoments;
  private readonly H: number;
  private readonly N: number;
  private readonly k: number;
  private readonly o: LayerCollectorOptions;
  // history of recent rows: rows [histBase, histBase + histLen) at hist[(p − histBase)·H ...]
  private hist: Float64Array;
  private histBase = 0;
  private histLen = 0;
  private received = 0;
  private nextEval = 0;
  private readonly maxBefore: number;
  private readonly maxAfter: number;
  // top-k heaps, per neuron i at [i·k, (i+1)·k): value, position, storage slot
  private readonly hVal: Float64Array;
  private readonly hPos: Float64Array;
  private readonly hSlot: Int32Array;
  private readonly hSize: Int32Array;
  private readonly thr: Float64Array;
  private readonly topStore: Float64Array | Float32Array;
  private readonly topStart: Float64Array;
  // events at pre-drawn positions (sorted by position): kind 0 = random, 1 = quantile candidate
  private readonly evPos: Float64Array;
  private readonly evNeuron: Int32Array;
  private readonly evSlot: Int32Array;
  private readonly evKind: Uint8Array;
  private evNext = 0;
  private readonly lo: number;
  private readonly hi: number;
  private readonly randPos: Float64Array;
  private readonly randVal: Float64Array;
  private readonly randStore: Float64Array | Float32Array;
  private readonly qSample: number;
  private readonly qPos: Float64Array;
  private readonly qVal: Float64Array;
  private readonly qStore: Float64Array | Float32Array;

  constructor(opts: LayerCollectorOptions) {
    this.o = opts;
    const { H, N, topK, nRandom, geometry } = opts;
    if (!Number.isInteger(H) || H < 1 || !Number.isInteger(N) || N < 1)
      throw new RangeError(`LayerCollector: H and N must be positive integers (got ${H}, ${N})`);
    this.H = H;
    this.N = N;
    this.k = Math.min(topK, N);
    const sh = opts.shard;
    if (
      sh &&
      !(Number.isInteger(sh.first) && Number.isInteger(sh.lo) && Number.isInteger(sh.hi) && 0 <= sh.first && sh.first <= sh.lo && sh.lo < sh.hi && sh.hi <= N)
    )
      throw new RangeError(`LayerCollector: bad shard ${JSON.stringify(sh)} for N = ${N}`);
    this.lo = sh ? sh.lo : 0;
    this.hi = sh ? sh.hi : N;
    this.received = sh ? sh.first : 0;
    this.histBase = this.received;
    this.nextEval = this.lo;
    this.moments = new StreamingMoments(H, opts.what, sh !== undefined);
    const q = opts.quantile;
    const geos = [geometry.top, geometry.random, ...(q ? [geometry.quantile] : [])];
    this.maxBefore = Math.max(...geos.map((g) => g.before));
    this.maxAfter = Math.max(...geos.map((g) => g.after));
    if (sh && sh.first > Math.max(0, sh.lo - this.maxBefore))
      throw new RangeError(
        `LayerCollector: the shard's rows start at ${sh.first}, after ${Math.max(0, sh.lo - this.maxBefore)} which excerpts of position ${sh.lo} need`,
      );
    this.hist = new Float64Array(0);
    const Store = opts.precision === 'f64' ? Float64Array : Float32Array;
    const k = this.k;
    this.hVal = new Float64Array(H * k);
    this.hPos = new Float64Array(H * k);
    this.hSlot = new Int32Array(H * k);
    this.hSize = new Int32Array(H);
    this.thr = new Float64Array(H).fill(-Infinity);
    this.topStore = new Store(H * k * excerptLen(geometry.top));
    this.topStart = new Float64Array(H * k);

    // pre-drawn positions
    const rngR = new Rng(streamSeed(opts.seed, opts.layer, 1));
    this.randPos = new Float64Array(H * nRandom);
    for (let i = 0; i < H * nRandom; i++) this.randPos[i] = rngR.int(N);
    this.randVal = new Float64Array(H * nRandom);
    this.randStore = new Store(H * nRandom * excerptLen(geometry.random));
    this.qSample = q ? Math.min(q.sample, N) : 0;
    this.qPos = new Float64Array(H * this.qSample);
    this.qVal = new Float64Array(H * this.qSample);
    this.qStore = new Store(H * this.qSample * (q ? excerptLen(geometry.quantile) : 0));
    if (q) {
      const rngQ = new Rng(streamSeed(opts.seed, opts.layer, 2));
      const S = this.qSample;
      for (let i = 0; i < H; i++) {
        if (S === N) {
          // every position, in random order (Fisher-Yates)
          const perm = Array.from({ length: N }, (_, j) => j);
          for (let j = N - 1; j > 0; j--) {
            const r = rngQ.int(j + 1);
            const t = perm[j];
            perm[j] = perm[r];
            perm[r] = t;
          }
          for (let j = 0; j < S; j++) this.qPos[i * S + j] = perm[j];
        } else {
          const seen = new Set<number>();
          for (let j = 0; j < S; j++) {
            let p = rngQ.int(N);
            while (seen.has(p)) p = rngQ.int(N);
            seen.add(p);
            this.qPos[i * S + j] = p;
          }
        }
      }
    }
    // events sorted by position (then kind, neuron, slot: a fixed order)
    const nE = H * nRandom + H * this.qSample;
    const order = new Int32Array(nE);
    const pos = new Float64Array(nE),
      neuron = new Int32Array(nE),
      slot = new Int32Array(nE),
      kind = new Uint8Array(nE);
    let e = 0;
    for (let i = 0; i < H; i++)
      for (let j = 0; j < nRandom; j++, e++) {
        pos[e] = this.randPos[i * nRandom + j];
        neuron[e] = i;
        slot[e] = j;
        kind[e] = 0;
      }
    for (let i = 0; i < H; i++)
      for (let j = 0; j < this.qSample; j++, e++) {
        pos[e] = this.qPos[i * this.qSample + j];
        neuron[e] = i;
        slot[e] = j;
        kind[e] = 1;
      }
    for (let j = 0; j < nE; j++) order[j] = j;
    order.sort((a, b) => pos[a] - pos[b] || a - b);
    this.evPos = new Float64Array(nE);
    this.evNeuron = new Int32Array(nE);
    this.evSlot = new Int32Array(nE);
    this.evKind = new Uint8Array(nE);
    for (let j = 0; j < nE; j++) {
      const s = order[j];
      this.evPos[j] = pos[s];
      this.evNeuron[j] = neuron[s];
      this.evSlot[j] = slot[s];
      this.evKind[j] = kind[s];
    }
    while (this.evNext < nE && this.evPos[this.evNext] < this.lo) this.evNext++;
  }

  /** Flat positions pushed so far. */
  get count(): number {
    return this.received;
  }

  /** Add the next n rows (row-major (n, H)); row r is flat position count + r. */
  push(x: ArrayLike<number>, n: number): void {
    const H = this.H;
    if (this.received + n > this.N) throw new RangeError(`LayerCollector: ${this.received + n} rows pushed, but N = ${this.N}`);
    const a = this.received,
      b = a + n;
    if (a < this.hi && b > this.lo) {
      if (a < this.lo || b > this.hi) throw new RangeError(`LayerCollector: rows [${a}, ${b}) straddle the shard [${this.lo}, ${this.hi})`);
      this.moments.push(x, n, this.received);
    }
    // keep the rows an unevaluated excerpt may still need, then append
    const keepFrom = Math.max(0, Math.min(this.nextEval - this.maxBefore, this.received));
    const drop = keepFrom - this.histBase;
    if (drop > 0) {
      this.hist.copyWithin(0, drop * H, this.histLen * H);
      this.histBase = keepFrom;
      this.histLen -= drop;
    }
    const need = (this.histLen + n) * H;
    if (need > this.hist.length) {
      const grown = new Float64Array(Math.max(need, 2 * this.hist.length));
      grown.set(this.hist.subarray(0, this.histLen * H));
      this.hist = grown;
    }
    if (x instanceof Float64Array) this.hist.set(x.subarray(0, n * H), this.histLen * H);
    else for (let j = 0; j < n * H; j++) this.hist[this.histLen * H + j] = x[j];
    this.histLen += n;
    this.received += n;
    this.evaluateUpTo(this.received - this.maxAfter);
  }

  /** Evaluate every position p < end (exclusive): top-k entries and events at p. */
  private evaluateUpTo(end: number): void {
    const H = this.H,
      k = this.k,
      hist = this.hist,
      thr = this.thr;
    const lim = Math.min(end, this.received, this.hi);
    for (let p = this.nextEval; p < lim; p++) {
      const off = (p - this.histBase) * H;
      for (let i = 0; i < H; i++) {
        const v = hist[off + i];
        if (v > thr[i]) this.topInsert(i, v, p, k);
      }
      while (this.evNext < this.evPos.length && this.evPos[this.evNext] === p) {
        const e = this.evNext++;
        const i = this.evNeuron[e],
          j = this.evSlot[e];
        if (this.evKind[e] === 0) {
          const L = excerptLen(this.o.geometry.random),
            nr = this.o.nRandom;
          this.randVal[i * nr + j] = hist[off + i];
          this.capture(i, p, this.o.geometry.random, this.randStore, (i * nr + j) * L);
        } else {
          const L = excerptLen(this.o.geometry.quantile),
            S = this.qSample;
          this.qVal[i * S + j] = hist[off + i];
          this.capture(i, p, this.o.geometry.quantile, this.qStore, (i * S + j) * L);
        }
      }
    }
    if (lim > this.nextEval) this.nextEval = lim;
  }

  /** Copy neuron i's activations over [max(0, p − before), min(p + after, N)) into store at off. */
  private capture(i: number, p: number, g: ExcerptGeometry, store: Float64Array | Float32Array, off: number): number {
    const H = this.H,
      s = Math.max(0, p - g.before),
      e = Math.min(this.N, p + g.after);
    let src = (s - this.histBase) * H + i;
    for (let r = s; r < e; r++, src += H) store[off + r - s] = this.hist[src];
    return s;
  }

  // heap order: a is worse than b when a.v < b.v, or a.v == b.v and a.p > b.p
  private worse(a: number, b: number): boolean {
    const va = this.hVal[a],
      vb = this.hVal[b];
    return va < vb || (va === vb && this.hPos[a] > this.hPos[b]);
  }

  private swap(a: number, b: number): void {
    const v = this.hVal[a],
      p = this.hPos[a],
      s = this.hSlot[a];
    this.hVal[a] = this.hVal[b];
    this.hPos[a] = this.hPos[b];
    this.hSlot[a] = this.hSlot[b];
    this.hVal[b] = v;
    this.hPos[b] = p;
    this.hSlot[b] = s;
  }

  private topInsert(i: number, v: number, p: number, k: number): void {
    const base = i * k;
    let size = this.hSize[i];
    let slot: number;
    if (size < k) {
      slot = size;
      let c = base + size;
      this.hVal[c] = v;
      this.hPos[c] = p;
      this.hSlot[c] = slot;
      size = ++this.hSize[i];
      while (c > base) {
        const parent = base + ((c - base - 1) >> 1);
        if (!this.worse(c, parent)) break;
        this.swap(c, parent);
        c = parent;
      }
    } else {
      slot = this.hSlot[base];
      this.hVal[base] = v;
      this.hPos[base] = p;
      let c = base;
      for (;;) {
        const l = base + 2 * (c - base) + 1,
          r = l + 1;
        let m = c;
        if (l < base + size && this.worse(l, m)) m = l;
        if (r < base + size && this.worse(r, m)) m = r;
        if (m === c) break;
        this.swap(c, m);
        c = m;
      }
    }
    if (size === k) this.thr[i] = this.hVal[base];
    const L = excerptLen(this.o.geometry.top);
    this.topStart[base + slot] = this.capture(i, p, this.o.geometry.top, this.topStore, (base + slot) * L);
  }

  /** Evaluate the last positions (excerpts clipped at N); call once after all N rows were pushed. */
  finish(): void {
    const need = this.o.shard ? Math.min(this.N, this.hi + this.maxAfter) : this.N;
    if (this.received < need || (!this.o.shard && this.received !== this.N))
      throw new RangeError(`LayerCollector.finish: rows up to ${this.received} of the ${need} needed were pushed`);
    this.evaluateUpTo(this.hi);
  }

  /**
   * This shard's state after finish(): its top-k entries with their excerpts, its random and quantile
   * events, its moment chunks and extremes, as one Float64Array (float32 excerpts are exact in it).
   */
  exportShard(): Float64Array {
    if (!this.o.shard) throw new RangeError('LayerCollector.exportShard: this collector is not a shard');
    const H = this.H,
      k = this.k;
    const Lt = excerptLen(this.o.geometry.top),
      Lr = excerptLen(this.o.geometry.random),
      Lq = this.o.quantile ? excerptLen(this.o.geometry.quantile) : 0;
    const owned = (pos: Float64Array) => {
      const mine: number[] = [];
      for (let e = 0; e < pos.length; e++) if (pos[e] >= this.lo && pos[e] < this.hi) mine.push(e);
      return mine;
    };
    const rand = owned(this.randPos),
      quant = owned(this.qPos);
    const m = this.moments,
      chunks = m.chunks!;
    let entries = 0;
    for (let i = 0; i < H; i++) entries += this.hSize[i];
    const size = H + entries * (3 + Lt) + 1 + rand.length * (2 + Lr) + 1 + quant.length * (2 + Lq) + 1 + chunks.length * (1 + 4 * H) + 3 * H;
    const out = new Float64Array(size);
    let at = 0;
    for (let i = 0; i < H; i++) {
      const n = this.hSize[i];
      out[at++] = n;
      for (let j = 0; j < n; j++) {
        const h = i * k + j,
          slot = i * k + this.hSlot[h];
        out[at++] = this.hVal[h];
        out[at++] = this.hPos[h];
        out[at++] = this.topStart[slot];
        out.set(this.topStore.subarray(slot * Lt, (slot + 1) * Lt), at);
        at += Lt;
      }
    }
    const events = (mine: number[], val: Float64Array, store: Float64Array | Float32Array, L: number) => {
      out[at++] = mine.length;
      for (const e of mine) {
        out[at++] = e;
        out[at++] = val[e];
        out.set(store.subarray(e * L, (e + 1) * L), at);
        at += L;
      }
    };
    events(rand, this.randVal, this.randStore, Lr);
    events(quant, this.qVal, this.qStore, Lq);
    out[at++] = chunks.length;
    for (const c of chunks) {
      out[at++] = c.n;
      for (const a of [c.mean, c.c2, c.c3, c.c4]) {
        out.set(a, at);
        at += H;
      }
    }
    for (const a of [m.positive, m.max, m.min]) {
      out.set(a, at);
      at += H;
    }
    return out;
  }

  /**
   * Fill this (unsharded, unused) collector from every shard's exportShard(), in rank order (the
   * shards' ranges in position order, covering [0, N)): the top-k of the union under the same
   * order (value descending, position ascending), each sampled position from the shard that holds
   * it, and the moments by replaying the shards' chunk merges in position order, so the result is
   * bitwise the single pass's.
   */
  mergeShards(parts: readonly Float64Array[]): void {
    if (this.o.shard || this.received !== 0) throw new RangeError('LayerCollector.mergeShards needs a fresh collector over all N positions');
    const H = this.H,
      k = this.k,
      Lt = excerptLen(this.o.geometry.top);
    const cands: { v: number; p: number; start: number; part: Float64Array; at: number }[][] = Array.from({ length: H }, () => []);
    const readers = parts.map((part) => ({ part, at: 0 }));
    for (const r of readers) {
      for (let i = 0; i < H; i++) {
        const size = r.part[r.at++];
        for (let j = 0; j < size; j++) {
          cands[i].push({ v: r.part[r.at], p: r.part[r.at + 1], start: r.part[r.at + 2], part: r.part, at: r.at + 3 });
          r.at += 3 + Lt;
        }
      }
      const events = (val: Float64Array, store: Float64Array | Float32Array, L: number) => {
        const n = r.part[r.at++];
        for (let j = 0; j < n; j++) {
          const e = r.part[r.at],
            v = r.part[r.at + 1];
          val[e] = v;
          store.set(r.part.subarray(r.at + 2, r.at + 2 + L), e * L);
          r.at += 2 + L;
        }
      };
      events(this.randVal, this.randStore, excerptLen(this.o.geometry.random));
      events(this.qVal, this.qStore, this.o.quantile ? excerptLen(this.o.geometry.quantile) : 0);
      const m = this.moments;
      const nc = r.part[r.at++];
      for (let c = 0; c < nc; c++) {
        const n = r.part[r.at++];
        const sub = (q: number) => r.part.subarray(r.at + q * H, r.at + (q + 1) * H);
        m.mergeChunk(n, sub(0), sub(1), sub(2), sub(3));
        r.at += 4 * H;
      }
      const pos = r.part.subarray(r.at, r.at + H),
        mx = r.part.subarray(r.at + H, r.at + 2 * H),
        mn = r.part.subarray(r.at + 2 * H, r.at + 3 * H);
      for (let i = 0; i < H; i++) {
        m.positive[i] += pos[i];
        if (mx[i] > m.max[i]) m.max[i] = mx[i];
        if (mn[i] < m.min[i]) m.min[i] = mn[i];
      }
      r.at += 3 * H;
      if (r.at !== r.part.length) throw new RangeError(`LayerCollector.mergeShards: a shard's state has ${r.part.length} values, ${r.at} were read`);
    }
    for (let i = 0; i < H; i++) {
      const c = cands[i];
      c.sort((a, b) => b.v - a.v || a.p - b.p);
      const keep = Math.min(k, c.length);
      for (let j = 0; j < keep; j++) {
        const h = i * k + j;
        this.hVal[h] = c[j].v;
        this.hPos[h] = c[j].p;
        this.hSlot[h] = j;
        this.topStart[h] = c[j].start;
        this.topStore.set(c[j].part.subarray(c[j].at, c[j].at + Lt), h * Lt);
      }
      this.hSize[i] = keep;
    }
    this.received = this.N;
    this.nextEval = this.N;
  }

  private excerpt(store: Float64Array | Float32Array, index: number, p: number, g: ExcerptGeometry): { excerpt: Float64Array | Float32Array; start: number } {
    const L = excerptLen(g),
      s = Math.max(0, p - g.before),
      e = Math.min(this.N, p + g.after);
    return { excerpt: store.slice(index * L, index * L + (e - s)), start: s };
  }

  /** The selections of neuron i (after finish): top-k descending (ties: lower position first), random in draw order, quantile bins. */
  neuron(i: number): NeuronSelection {
    const k = this.k,
      base = i * k,
      size = this.hSize[i];
    const idx = Array.from({ length: size }, (_, j) => base + j);
    idx.sort((a, b) => this.hVal[b] - this.hVal[a] || this.hPos[a] - this.hPos[b]);
    const gTop = this.o.geometry.top;
    const top = idx.map((h) => {
      const p = this.hPos[h];
      return { pos: p, value: this.hVal[h], ...this.excerpt(this.topStore, base + this.hSlot[h], p, gTop) };
    });
    const nr = this.o.nRandom,
      gR = this.o.geometry.random;
    const random = Array.from({ length: nr }, (_, j) => {
      const p = this.randPos[i * nr + j];
      return { pos: p, value: this.randVal[i * nr + j], ...this.excerpt(this.randStore, i * nr + j, p, gR) };
    });
    const q = this.o.quantile;
    if (!q) return { top, random, quantile: null, boundaries: null };
    // ranks of the candidate sample, ties broken by draw order (random); twelfths of those ranks
    const S = this.qSample,
      gQ = this.o.geometry.quantile;
    const cand = Array.from({ length: S }, (_, j) => j);
    cand.sort((a, b) => this.qVal[i * S + a] - this.qVal[i * S + b] || a - b);
    const parts = q.bins + 1; // 11 bins of twelfths: the top twelfth is not a bin
    const rng = new Rng(streamSeed(this.o.seed, this.o.layer, 3 + i));
    const quantile: Selected[][] = [];
    const boundaries: number[] = [];
    for (let b = 0; b <= parts - 1; b++) boundaries.push(S ? this.qVal[i * S + cand[Math.min(S - 1, Math.floor((b * S) / parts))]] : NaN);
    for (let b = 0; b < q.bins; b++) {
      const members = cand.slice(Math.floor((b * S) / parts), Math.floor(((b + 1) * S) / parts));
      for (let j = members.length - 1; j > 0; j--) {
        const r = rng.int(j + 1);
        const t = members[j];
        members[j] = members[r];
        members[r] = t;
      }
      quantile.push(
        members.slice(0, q.perBin).map((j) => {
          const p = this.qPos[i * S + j];
          return { pos: p, value: this.qVal[i * S + j], ...this.excerpt(this.qStore, i * S + j, p, gQ) };
        }),
      );
    }
    return { top, random, quantile, boundaries };
  }
}
