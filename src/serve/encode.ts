// Bounded, time-sliced tokenization for `crate-ts serve`.
//
// A server must not let one request's text hold the event loop. Three things make encoding safe:
//
// 1. A bound before any work: no token of a tokenizer is longer than `maxTokenBytes` UTF-8 bytes
//    (128 for GPT-2's r50k, 1 for bytes, the longest entry for a char vocabulary), so a text of more
//    than maxTokens × maxTokenBytes UTF-16 units (each is at least one byte) has more than maxTokens
//    tokens and is refused at once.
// 2. Pieces: GPT-2 BPE first splits text with its pre-tokenizer regex and merges within each piece;
//    the match at a position depends only on the text from there on, so encoding piece by piece is
//    exactly encoding the whole. A piece of b bytes has at least ⌈b / maxTokenBytes⌉ tokens: the sum
//    of those lower bounds is checked before a piece is merged, and the count stops at the limit.
// 3. Merges in O(n log n): the reference merge loop (gpt-tokenizer's, tiktoken's) rescans every
//    pair after each merge, quadratic in the piece's length ("a" × 100,000 took seconds). Pieces
//    longer than SHORT_PIECE bytes are merged here with a heap of adjacent pairs keyed by (rank,
//    position): the lowest-ranked pair, leftmost among equals, exactly as the reference picks it.
//    Stale heap entries are skipped by checking that both ends are still live and adjacent.
//
// Between pieces and every few thousand merges the encoder yields to the event loop once a slice of
// SLICE_MS has passed, so /health and other clients are answered while a long prompt is encoded.
import type { Tokenizer } from '../data/tokenizer.js';
import { yieldNow } from './sampling.js';

/** Thrown (not returned) when the text has more tokens than allowed; `atLeast` is a lower bound. */
export class TooManyTokens extends Error {
  constructor(
    readonly atLeast: number,
    readonly limit: number,
  ) {
    super(`more than ${limit} tokens (at least ${atLeast})`);
    this.name = 'TooManyTokens';
  }
}

/** Longest run of the event loop spent encoding before it yields (milliseconds). */
const SLICE_MS = 8;
/** Pieces up to this many bytes go to the reference merge loop (cheap at this size). */
const SHORT_PIECE = 64;

interface BpeCore {
  getBpeRankFromString(s: string): number | undefined;
  getBpeRankFromBytes(b: Uint8Array): number | undefined;
  bytePairMerge?(b: Uint8Array): number[];
  bytePairRankDecoder: unknown[];
  tokenSplitRegex: RegExp;
}

/** The tokenizer's longest token in bytes. */
function maxTokenBytesOf(tok: Tokenizer, core: BpeCore | null): number {
  if (tok.name === 'byte') return 1;
  if (tok.name === 'char') return Math.max(...(tok.vocab ?? ['']).map((s) => new TextEncoder().encode(s).length), 1);
  if (!core) return 128; // r50k's longest token
  const enc = new TextEncoder();
  let m = 1;
  for (const v of core.bytePairRankDecoder) {
    const n = typeof v === 'string' ? enc.encode(v).length : v && typeof v === 'object' ? (v as ArrayLike<number>).length : 0;
    if (n > m) m = n;
  }
  return m;
}

/** Ranks for the heap merge: each byte's rank, and the rank of the token two tokens make (or undefined). */
interface MergeRanks {
  byte: Int32Array;
  pair(a: number, b: number): number | undefined;
}

/**
 * Merge one pre-tokenized piece's bytes into ranks with a binary heap of candidate pairs.
 * Yields (awaits) every few thousand steps when the time slice is used up.
 */
async function heapMerge(bytes: Uint8Array, ranks: MergeRanks, slice: { t: number }): Promise<number[]> {
  const n = bytes.length;
  // parts as a doubly linked list over byte offsets: part i spans [i, next[i]) and is token tok[i]
  const next = new Int32Array(n + 1),
    prev = new Int32Array(n + 1),
    tok = new Int32Array(n + 1);
  for (let i = 0; i <= n; i++) {
    next[i] = i + 1;
    prev[i] = i - 1;
    if (i < n) tok[i] = ranks.byte[bytes[i]];
  }
  const live = new Uint8Array(n + 1).fill(1);
  // heap of (rank, left start, right start, right end) as parallel arrays
  let hr = new Float64Array(Math.max(16, n)),
    hl = new Int32Array(hr.length),
    hm = new Int32Array(hr.length),
    he = new Int32Array(hr.length),
    size = 0;
  const less = (a: number, b: number) => hr[a] < hr[b] || (hr[a] === hr[b] && hl[a] < hl[b]);
  const swap = (a: number, b: number) => {
    let t = hr[a];
    hr[a] = hr[b];
    hr[b] = t;
    t = hl[a];
    hl[a] = hl[b];
    hl[b] = t;
    t = hm[a];
    hm[a] = hm[b];
    hm[b] = t;
    t = he[a];
    he[a] = he[b];
    he[b] = t;
  };
  const push = (l: number) => {
    const m = next[l];
    if (m >= n) return;
    const e = next[m];
    const r = ranks.pair(tok[l], tok[m]);
    if (r === undefined) return;
    if (size === hr.length) {
      const grow = <T extends Float64Array | Int32Array>(a: T): T => {
        const b = new (a.constructor as new (k: number) => T)(a.length * 2);
        b.set(a);
        return b;
      };
      hr = grow(hr);
      hl = grow(hl);
      hm = grow(hm);
      he = grow(he);
    }
    let i = size++;
    hr[i] = r;
    hl[i] = l;
    hm[i] = m;
    he[i] = e;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(i, p)) break;
      swap(i, p);
      i = p;
    }
  };
  const pop = () => {
    size--;
    if (size > 0) {
      swap(0, size);
      let i = 0;
      for (;;) {
        const a = 2 * i + 1,
          b = a + 1;
        let s = i;
        if (a < size && less(a, s)) s = a;
        if (b < size && less(b, s)) s = b;
        if (s === i) break;
        swap(i, s);
        i = s;
      }
    }
  };
  const pause = async () => {
    if (performance.now() - slice.t > SLICE_MS) {
      await yieldNow();
      slice.t = performance.now();
    }
  };
  for (let i = 0; i < n - 1; i++) {
    push(i);
    if ((i & 4095) === 4095) await pause();
  }
  let merges = 0;
  while (size > 0) {
    const r = hr[0],
      l = hl[0],
      m = hm[0],
      e = he[0];
    pop();
    // stale: either end merged away or extended since this pair was pushed
    if (!live[l] || !live[m] || next[l] !== m || next[m] !== e) continue;
    live[m] = 0;
    next[l] = e;
    tok[l] = r;
    if (e <= n) prev[e] = l;
    if (prev[l] >= 0) push(prev[l]);
    push(l);
    if ((++merges & 4095) === 0) await pause();
  }
  const out: number[] = [];
  for (let i = 0; i < n; i = next[i]) out.push(tok[i]);
  return out;
}

/** A tokenizer wrapped for the server: bounded, time-sliced encoding. */
export class BoundedEncoder {
  /** Longest token of the tokenizer, in UTF-8 bytes. */
  readonly maxTokenBytes: number;
  private readonly core: BpeCore | null;
  private readonly enc = new TextEncoder();

  constructor(
    readonly tokenizer: Tokenizer,
    bpeModule?: unknown,
  ) {
    const c = (bpeModule as { default?: { bytePairEncodingCoreProcessor?: BpeCore } } | undefined)?.default?.bytePairEncodingCoreProcessor;
    this.core =
      tokenizer.name === 'gpt2' &&
      c &&
      typeof c.getBpeRankFromString === 'function' &&
      typeof c.getBpeRankFromBytes === 'function' &&
      c.tokenSplitRegex instanceof RegExp &&
      Array.isArray(c.bytePairRankDecoder)
        ? c
        : null;
    this.maxTokenBytes = maxTokenBytesOf(tokenizer, this.core);
  }

  /** The GPT-2 BPE core of gpt-tokenizer, when the tokenizer is gpt2 (loaded once). */
  static async create(tokenizer: Tokenizer): Promise<BoundedEncoder> {
    if (tokenizer.name !== 'gpt2') return new BoundedEncoder(tokenizer);
    return new BoundedEncoder(tokenizer, await import('gpt-tokenizer/encoding/r50k_base'));
  }

  /** Longest text (UTF-16 units) that can possibly encode to at most `maxTokens` tokens. */
  maxChars(maxTokens: number): number {
    return maxTokens * this.maxTokenBytes;
  }

  /**
   * Encode `text`, throwing TooManyTokens as soon as it is known to have more than `maxTokens`
   * tokens. Yields to the event loop between slices of work. The result equals tokenizer.encode(text).
   */
  async encode(text: string, maxTokens: number): Promise<number[]> {
    if (text.length > this.maxChars(maxTokens)) throw new TooManyTokens(Math.ceil(text.length / this.maxTokenBytes), maxTokens);
    const slice = { t: performance.now() };
    const pause = async () => {
      if (performance.now() - slice.t > SLICE_MS) {
        await yieldNow();
        slice.t = performance.now();
      }
    };
    if (this.tokenizer.name !== 'gpt2' || !this.core) {
      // byte and char encoders are linear; the text is bounded above
      if (this.tokenizer.name === 'gpt2') return this.encodeFallback(text, maxTokens, pause);
      const ids = this.tokenizer.encode(text);
      if (ids.length > maxTokens) throw new TooManyTokens(ids.length, maxTokens);
      return ids;
    }
    const core = this.core;
    const re = new RegExp(
      core.tokenSplitRegex.source,
      core.tokenSplitRegex.flags.includes('g') ? core.tokenSplitRegex.flags : core.tokenSplitRegex.flags + 'g',
    );
    const out: number[] = [];
    let k = 0;
    for (const [piece] of text.matchAll(re)) {
      const whole = core.getBpeRankFromString(piece);
      if (whole !== undefined) out.push(whole);
      else {
        const bytes = this.enc.encode(piece);
        const atLeast = out.length + Math.ceil(bytes.length / this.maxTokenBytes);
        if (atLeast > maxTokens) throw new TooManyTokens(atLeast, maxTokens);
        const ids =
          bytes.length <= SHORT_PIECE && typeof core.bytePairMerge === 'function'
            ? core.bytePairMerge(bytes)
            : await heapMerge(bytes, this.mergeRanks(), slice);
        for (const id of ids) out.push(id);
      }
      if (out.length > maxTokens) throw new TooManyTokens(out.length, maxTokens);
      if ((++k & 255) === 0) await pause();
    }
    return out;
  }

  private merge: MergeRanks | null = null;

  /** Byte ranks and a cache of pair ranks (a pair's rank is the rank of its two tokens' bytes joined). */
  private mergeRanks(): MergeRanks {
    if (this.merge) return this.merge;
    const latin: string[] = [];
    const byString = new Map<string, number>();
    this.core!.bytePairRankDecoder.forEach((v, rank) => {
      const b = typeof v === 'string' ? this.enc.encode(v) : v && typeof v === 'object' ? Uint8Array.from(v as ArrayLike<number>) : null;
      if (!b) return;
      const key = String.fromCharCode(...b);
      latin[rank] = key;
      byString.set(key, rank);
    });
    const byte = new Int32Array(256);
    for (let x = 0; x < 256; x++) {
      const r = byString.get(String.fromCharCode(x));
      if (r === undefined) throw new Error(`GPT-2 BPE: no token for byte ${x}`);
      byte[x] = r;
    }
    let cache = new Map<number, number>();
    const longest = this.maxTokenBytes;
    const pair = (a: number, b: number): number | undefined => {
      const key = a * 65536 + b;
      let r = cache.get(key);
      if (r === undefined) {
        const s = latin[a] + latin[b];
        r = s.length > longest ? -1 : (byString.get(s) ?? -1);
        // bounded: distinct pairs are few in text, but a hostile text could try many
        if (cache.size >= 1 << 20) cache = new Map();
        cache.set(key, r);
      }
      return r < 0 ? undefined : r;
    };
    this.merge = { byte, pair };
    return this.merge;
  }

  /** gpt2 without access to the BPE core (another gpt-tokenizer version): piece by piece (a long piece is still quadratic). */
  private async encodeFallback(text: string, maxTokens: number, pause: () => Promise<void>): Promise<number[]> {
    const re = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
    const out: number[] = [];
    for (const [piece] of text.matchAll(re)) {
      for (const id of this.tokenizer.encode(piece)) out.push(id);
      if (out.length > maxTokens) throw new TooManyTokens(out.length, maxTokens);
      await pause();
    }
    return out;
  }
}
