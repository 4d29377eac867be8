// The incremental decoder the server generates with, behind one small interface.
//
// The model engineer is adding `model.createDecoder(batch)` (incremental decoding on the model's own
// backend). Until a LanguageModel has it, the host float64 IncrementalDecoder of src/sample/decode.ts
// (spec P20: equal to the full forward) stands in, one per sequence of the batch. makeDecoder()
// picks whichever exists, so the switch is this one function.
import type { LanguageModel } from '../model/lm.js';
import { IncrementalDecoder } from '../sample/decode.js';

export interface Decoder {
  /** Feed one token per sequence (tokens.length = batch); returns logits (batch·V) predicting the next position. */
  step(tokens: Int32Array): Float64Array;
  /** Forget every position. */
  reset(): void;
  /** Positions fed so far. */
  readonly position: number;
  /** Release backend buffers (the model's own decoder holds some). */
  free?(): void;
}

/** The host decoder, one IncrementalDecoder per sequence, behind the Decoder interface. */
export class HostDecoder implements Decoder {
  private readonly decs: IncrementalDecoder[];
  private readonly V: number;
  constructor(model: LanguageModel<unknown>, batch: number, params?: () => Float64Array) {
    const p = params ? params() : model.getParams();
    this.decs = Array.from({ length: batch }, () => new IncrementalDecoder(model.config, p));
    this.V = model.config.vocabSize;
  }
  step(tokens: Int32Array): Float64Array {
    if (tokens.length !== this.decs.length) throw new RangeError(`decoder step: ${tokens.length} tokens for a batch of ${this.decs.length}`);
    const out = new Float64Array(this.decs.length * this.V);
    for (let b = 0; b < this.decs.length; b++) out.set(this.decs[b].step(tokens[b]), b * this.V);
    return out;
  }
  reset(): void { for (const d of this.decs) d.reset(); }
  get position(): number { return this.decs[0].position; }
}

type WithDecoder = { createDecoder?: (batch: number) => Decoder };
// (src/model/decoder.ts's Decoder has exactly this shape: step, reset, position, free.)

/** The model's own decoder when it has one, else the host decoder (params: a cached getParams()). */
export function makeDecoder(model: LanguageModel<unknown>, batch: number, params?: () => Float64Array): Decoder {
  const m = model as unknown as WithDecoder;
  if (typeof m.createDecoder === 'function') return m.createDecoder(batch);
  return new HostDecoder(model, batch, params);
}
