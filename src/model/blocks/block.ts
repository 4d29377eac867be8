// The contract between LanguageModel and the three blocks (CRATE, complete-ISTA CRATE, GPT-2):
// each owns its parameters' use, the activations it keeps for backward, its hook points, and an
// incremental decode step that reuses the same code path for one new position per sequence.
import type { Ctx } from './context.js';
import type { DecodeScratch, Scratch } from './attention.js';

/** The residual stream of a decode step: x (n,C) enters and leaves the block; xh (n,C) is the middle. */
export interface DecodeBufs<Buf> {
  x: Buf;
  xh: Buf;
}

export interface Block<Acts> {
  readonly layer: number;
  /** Elements of each activation this block keeps for backward, for N rows. */
  sizes(N: number, attSaved: number): Record<string, number>;
  /** out ← block(acts.x); fills acts and calls the hook points in execution order. tmp: (N,C) scratch. */
  forward<Buf>(ctx: Ctx<Buf>, acts: Acts, out: Buf, tmp: Buf): void;
  /** s.d1 holds d(out) on entry and d(acts.x) on exit; parameter gradients accumulate. */
  backward<Buf>(ctx: Ctx<Buf>, acts: Acts, out: Buf, s: Scratch<Buf>): void;
  /** Elements of this layer's decode cache for `batch` sequences of up to maxT positions. */
  cacheSize(batch: number, maxT: number): number;
  /** One new position t per sequence: io.x ← block(io.x), appending to the cache. */
  decode<Buf>(ctx: Ctx<Buf>, cache: Buf, io: DecodeBufs<Buf>, t: number, maxT: number, d: DecodeScratch<Buf>): void;
}
