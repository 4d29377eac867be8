// The edges of sampling that the seeded tests cannot reach: a draw that lands exactly on a boundary
// of the inverse CDF, a draw that rounding carries past every weight, the decoder steps one
// generation runs, and what it frees. (Written for the mutants StrykerJS found surviving in
// src/sample/: README, Tests.)
import { describe, it, expect, vi, afterEach } from 'vitest';
import { ReferenceBackend } from '../src/backend/reference.js';
import { LanguageModel } from '../src/model/lm.js';
import { makeConfig } from '../src/model/config.js';
import { generate, sampleToken } from '../src/sample/generate.js';
import { UsageError } from '../src/errors.js';
import type { Rng } from '../src/util/rng.js';

/** An Rng whose every uniform() is `u` (Rng.uniform returns k / 2^53, k < 2^53). */
const fixedRng = (u: number) => ({ uniform: () => u }) as unknown as Rng;

const tiny = () => new LanguageModel(new ReferenceBackend(), makeConfig('golden', { vocabSize: 11, blockSize: 6, nLayer: 1, nHead: 1, nEmbd: 4 }), { seed: 3 });

afterEach(() => {
  vi.restoreAllMocks();
});

describe('sampleToken: the inverse CDF at its edges', () => {
  it('a draw exactly on a boundary belongs to the next id: u·total = w0 picks id 1 (intervals are [c_{k-1}, c_k))', () => {
    // two equal logits: weights 1 and 1, total 2; u = 0.5 puts r exactly at the end of id 0's interval
    const logits = new Float64Array([0, 0]);
    expect(sampleToken(logits, fixedRng(0.5), 1, 0)).toBe(1);
    expect(sampleToken(logits, fixedRng(0), 1, 0)).toBe(0);
    // three ids of equal weight: u = 1/3 lands after id 0 only if the boundary goes to the next id
    expect(sampleToken(new Float64Array([0, 0, 0, 0]), fixedRng(0.25), 1, 0)).toBe(1);
  });

  it('a draw that rounding carries past every weight returns the last id, never undefined', () => {
    // weights e^(l - 1.5); with u = 1 - 2^-53 (the largest uniform() can return), subtracting the
    // four weights one by one from u·total leaves r ≥ 0 in float64 (found by search), so the loop
    // falls through to the final return
    const logits = new Float64Array([0.5, -1.75, 0.5, 1.5]);
    expect(sampleToken(logits, fixedRng(1 - 2 ** -53), 1, 0)).toBe(3);
  });
});

describe('sampleToken: weights relative to the largest logit', () => {
  it('a last logit 800 below the first does not overflow the weights: the first id is drawn (its probability is 1 - e^-800)', () => {
    // measured from the last logit instead of the largest, the first weight would be e^800 = Infinity
    const logits = new Float64Array([0, -800]);
    for (const u of [0, 0.3, 0.999]) expect(sampleToken(logits, fixedRng(u), 1, 0)).toBe(0);
    expect(sampleToken(new Float64Array([-800, 0]), fixedRng(0.5), 1.7, 0)).toBe(1);
  });
});

describe('generate: the decoder work of one call', () => {
  it('n tokens feed the prompt and n - 1 of them (no forward after the last token), and the decoder is freed', () => {
    const m = tiny();
    const freedAt: number[] = [];
    const orig = m.createDecoder.bind(m);
    vi.spyOn(m, 'createDecoder').mockImplementation((batch, opts) => {
      const dec = orig(batch, opts);
      const free = dec.free.bind(dec);
      dec.free = () => (freedAt.push(dec.position), free());
      return dec;
    });
    const out = generate(m, [1, 2], { tokens: 3, temperature: 0 });
    expect(out).toHaveLength(3);
    // prompt of 2, block of 6: the decoder fed 2 + (3 - 1) = 4 positions, no restart, one free
    expect(freedAt).toEqual([4]);
    m.free();
  });

  it('the decoder is freed when sampling throws', () => {
    const m = tiny();
    let freed = 0;
    const orig = m.createDecoder.bind(m);
    vi.spyOn(m, 'createDecoder').mockImplementation((batch, opts) => {
      const dec = orig(batch, opts);
      const free = dec.free.bind(dec);
      dec.free = () => (freed++, free());
      return dec;
    });
    const boom = () => {
      throw new Error('onToken failed');
    };
    expect(() => generate(m, [1], { tokens: 2, temperature: 0, onToken: boom })).toThrow('onToken failed');
    expect(freed).toBe(1);
    m.free();
  });

  it('generate(config, params, ...) frees the model it builds, also when it throws', () => {
    const m = tiny();
    const free = vi.spyOn(LanguageModel.prototype, 'free');
    expect(generate(m.config, m.getParams(), [1, 2], { tokens: 2, temperature: 0 })).toEqual(generate(m, [1, 2], { tokens: 2, temperature: 0 }));
    expect(free).toHaveBeenCalledTimes(1);
    expect(() => generate(m.config, m.getParams(), [], { tokens: 2 })).toThrow(UsageError);
    expect(free).toHaveBeenCalledTimes(2);
    free.mockRestore();
    m.free();
  });
});
