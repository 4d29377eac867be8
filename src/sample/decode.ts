// Incremental decoding in float64 on the host (spec P20), for callers that hold a configuration and
// a flat parameter vector rather than a model: a reference-backend LanguageModel and its decoder
// (src/model/decoder.ts), which runs the same blocks as the full forward one position at a time.
// New code should call model.createDecoder() on the model it already has, on any backend.
import type { ModelConfig } from '../model/config.js';
import { LanguageModel } from '../model/lm.js';
import type { Decoder } from '../model/decoder.js';
import { paramTable, totalSize } from '../model/params.js';
import { ReferenceBackend } from '../backend/reference.js';
import { UsageError } from '../errors.js';

export class IncrementalDecoder {
  readonly config: ModelConfig;
  private readonly model: LanguageModel<Float64Array>;
  private readonly dec: Decoder<Float64Array>;

  /** params: the flat parameter vector in table order (LanguageModel.getParams()). */
  constructor(config: ModelConfig, params: Float64Array) {
    this.config = { ...config };
    const n = totalSize(paramTable(config));
    if (params.length !== n) throw new UsageError(`IncrementalDecoder: got ${params.length} parameters, the config needs ${n}`);
    this.model = new LanguageModel(new ReferenceBackend(), config, { params });
    this.dec = this.model.createDecoder(1);
  }

  /** Number of positions fed so far. */
  get position(): number {
    return this.dec.position;
  }

  reset(): void {
    this.dec.reset();
  }

  /** Feed the token at the next position; returns the logits (V) predicting the position after it. */
  step(token: number): Float64Array {
    return this.dec.step([token]);
  }

  /** Feed several tokens; returns the logits after the last one. */
  prefill(tokens: ArrayLike<number>): Float64Array {
    if (tokens.length === 0) throw new UsageError('prefill needs at least one token');
    return this.dec.prefill([tokens]);
  }
}
