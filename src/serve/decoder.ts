// The incremental decoder the server generates with: the model's own (src/model/decoder.ts), which
// runs the same blocks as the full forward one position at a time on the model's backend, with the
// per-layer caches kept there (spec P20: equal to the full forward).
import type { LanguageModel } from '../model/lm.js';

export interface Decoder {
  /** Feed one token per sequence (tokens.length = batch); returns logits (batch·V) predicting the next position. */
  step(tokens: Int32Array): Float64Array;
  /** Forget every position. */
  reset(): void;
  /** Positions fed so far. */
  readonly position: number;
  /** Release the decoder's backend buffers. */
  free(): void;
}

/** A decoder of `batch` sequences on the model's backend. */
export function makeDecoder(model: LanguageModel<unknown>, batch: number): Decoder {
  return model.createDecoder(batch);
}
