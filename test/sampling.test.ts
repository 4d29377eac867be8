// The two samplers, `crate-ts sample`'s sampleToken (src/sample/generate.ts) and the server's
// sampleId (src/serve/engine.ts), against an inverse-CDF draw written out here from the textbook
// definition, at temperatures 0.5, 0.8 and 1.7 (at 0 and 1 dividing and multiplying the logits by
// the temperature agree), with and without top-k and top-p:
//
//   p_i ∝ exp(logit_i / temperature) over the ids < n; top-k keeps the k largest logits (ties: the
//   smaller id), renormalised; top-p then keeps the shortest most-likely-first prefix whose mass
//   reaches p, renormalised; the id drawn for a uniform u ∈ [0, 1) is the first one, walking the
//   kept ids in id order (no filter) or most likely first (a filter), whose cumulative probability
//   exceeds u.
//
// Two checks: (1) with one seeded stream, both draw the same id as the written-out draw, 400 times;
// (2) with u on an even grid of 20,000 points, each id is drawn as often as its probability says,
// within one grid point, which does not depend on the walk order at all.
import { describe, it, expect } from 'vitest';
import { sampleToken } from '../src/sample/generate.js';
import { sampleId } from '../src/serve/engine.js';
import { Rng } from '../src/util/rng.js';

interface Filter {
  topK: number;
  topP: number;
}

/** The kept ids in walk order and their probabilities (summing to 1), from the definition above. */
function distribution(logits: ArrayLike<number>, n: number, temperature: number, f: Filter): { ids: number[]; p: number[] } {
  const all = Array.from({ length: n }, (_, i) => i);
  const byLikelihood = [...all].sort((a, b) => (logits[a] === logits[b] ? a - b : logits[b] - logits[a]));
  const filtered = (f.topK > 0 && f.topK < n) || f.topP < 1;
  let ids = filtered ? byLikelihood : all;
  if (f.topK > 0 && f.topK < n) ids = ids.slice(0, f.topK);
  const softmax = (keep: number[]) => {
    const z = keep.map((i) => Math.exp(logits[i] / temperature));
    const s = z.reduce((a, b) => a + b, 0);
    return z.map((x) => x / s);
  };
  let p = softmax(ids);
  if (f.topP < 1) {
    let acc = 0,
      keep = ids.length;
    for (let i = 0; i < ids.length; i++) {
      acc += p[i];
      if (acc >= f.topP) {
        keep = i + 1;
        break;
      }
    }
    ids = ids.slice(0, keep);
    p = softmax(ids);
  }
  return { ids, p };
}

/** The inverse-CDF draw for u. */
function draw(d: { ids: number[]; p: number[] }, u: number): number {
  let cum = 0;
  for (let i = 0; i < d.ids.length; i++) {
    cum += d.p[i];
    if (u < cum) return d.ids[i];
  }
  return d.ids[d.ids.length - 1];
}

/** An Rng stand-in that hands out the given uniforms in order. */
const fixedUniforms = (us: number[]): Rng => {
  let k = 0;
  return { uniform: () => us[k++] } as unknown as Rng;
};

type Sampler = (logits: Float64Array, n: number, temperature: number, f: Filter, rng: Rng) => number;
const SAMPLERS: { name: string; sample: Sampler; topP: boolean }[] = [
  { name: 'sampleToken (crate-ts sample)', sample: (l, n, t, f, rng) => sampleToken(l, rng, t, f.topK, n), topP: false },
  { name: 'sampleId (crate-ts serve)', sample: (l, n, t, f, rng) => sampleId(l, n, { temperature: t, topK: f.topK, topP: f.topP, rng }), topP: true },
];

// 16 logits, the last two ids past n (padding that is never drawn), with a tie (ids 3 and 9) at
// the third place, so the tie rule decides which of the two top-k 3 keeps.
const V = 16,
  n = 14;
const logits = Float64Array.from([0.3, -1.2, 2.4, 1.9, -0.4, 0.8, 2.2, -2.0, 1.1, 1.9, 0.0, -0.7, 1.5, 0.6, 10, 10]);

const FILTERS: Filter[] = [
  { topK: 0, topP: 1 },
  { topK: 3, topP: 1 },
  { topK: 7, topP: 1 },
  { topK: 0, topP: 0.7 },
  { topK: 0, topP: 0.9 },
  { topK: 7, topP: 0.8 },
];

describe('samplers = the written-out inverse-CDF draw', () => {
  it('the test logits exercise what they should: a tie at the top-k 3 boundary and a nucleus that cuts mass', () => {
    expect(logits).toHaveLength(V);
    const order = distribution(logits, n, 1, { topK: 0, topP: 0.99 }).ids;
    expect(order.slice(0, 4)).toEqual([2, 6, 3, 9]);
    expect(logits[3]).toBe(logits[9]);
    for (const t of [0.5, 0.8, 1.7]) {
      const full = distribution(logits, n, t, { topK: 0, topP: 1 });
      const nucleus = distribution(logits, n, t, { topK: 0, topP: 0.7 });
      expect(nucleus.ids.length).toBeLessThan(full.ids.length);
      expect(nucleus.ids.length).toBeGreaterThan(1);
    }
  });

  for (const s of SAMPLERS) {
    for (const temperature of [0.5, 0.8, 1.7]) {
      for (const f of FILTERS.filter((f) => s.topP || f.topP === 1)) {
        const label = `${s.name}: temperature ${temperature}, top-k ${f.topK || 'off'}, top-p ${f.topP < 1 ? f.topP : 'off'}`;
        it(`${label}: the same id as the written-out draw for 400 seeded uniforms`, () => {
          const d = distribution(logits, n, temperature, f);
          const want = new Rng(17),
            got = new Rng(17);
          for (let i = 0; i < 400; i++) {
            const w = draw(d, want.uniform());
            expect(s.sample(logits, n, temperature, f, got), `draw ${i}`).toBe(w);
          }
        });

        it(`${label}: on an even grid of uniforms, each id is drawn as often as its probability`, () => {
          const d = distribution(logits, n, temperature, f);
          const G = 20_000;
          const us = Array.from({ length: G }, (_, j) => (j + 0.5) / G);
          const rng = fixedUniforms(us);
          const count = new Map<number, number>();
          for (let j = 0; j < G; j++) {
            const id = s.sample(logits, n, temperature, f, rng);
            count.set(id, (count.get(id) ?? 0) + 1);
          }
          expect(
            [...count.keys()].every((id) => d.ids.includes(id)),
            'only kept ids are drawn',
          ).toBe(true);
          d.ids.forEach((id, i) => {
            // an interval of length p holds p·G grid points, give or take one
            expect(Math.abs((count.get(id) ?? 0) - d.p[i] * G), `id ${id}`).toBeLessThanOrEqual(1 + 1e-9 * G);
          });
        });
      }
    }
  }
});
