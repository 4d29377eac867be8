// The two samplers, `crate-ts sample`'s sampleToken (src/sample/generate.ts) and the server's
// sampleId (src/serve/engine.ts), and the backends' sampleLogits operator the server draws with
// (the float64 reference and the cpu backend's native twin), against an inverse-CDF draw written out here from the textbook
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
import { generate, sampleToken } from '../src/sample/generate.js';
import { LanguageModel } from '../src/model/lm.js';
import { makeConfig } from '../src/model/config.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { sampleId } from '../src/serve/engine.js';
import { Rng } from '../src/util/rng.js';
import { selectBackend } from '../src/backend/select.js';
import type { Backend } from '../src/backend/types.js';

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
    const top = Math.max(...keep.map((i) => logits[i])); // exp(l/T) / Σ exp(l/T), shifted so nothing overflows
    const z = keep.map((i) => Math.exp((logits[i] - top) / temperature));
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

/**
 * A backend's sampleLogits operator (what `crate-ts serve` draws with): the logits uploaded once per
 * array, one uniform from the Rng when the temperature is above 0, as the server draws it.
 */
function backendSampler<B>(be: Backend<B>): Sampler {
  let last: Float64Array | null = null,
    buf: B | null = null;
  return (l, n, t, f, rng) => {
    if (last !== l) {
      if (buf !== null) be.free(buf);
      buf = be.alloc(l.length);
      be.upload(buf, l);
      last = l;
    }
    return be.sampleLogits(buf as B, n, t, f.topK, f.topP, t > 0 ? rng.uniform() : 0);
  };
}
const cpu = await selectBackend('cpu').then(
  (r) => r.backend,
  () => null,
);

const SAMPLERS: { name: string; sample: Sampler; topP: boolean }[] = [
  { name: 'sampleToken (crate-ts sample)', sample: (l, n, t, f, rng) => sampleToken(l, rng, t, f.topK, n), topP: false },
  { name: 'sampleId (crate-ts serve)', sample: (l, n, t, f, rng) => sampleId(l, n, { temperature: t, topK: f.topK, topP: f.topP, rng }), topP: true },
  { name: 'sampleLogits (reference backend)', sample: backendSampler(new ReferenceBackend()), topP: true },
  // the native twin (native/serve_rows.cc) the server draws with on the cpu backend
  ...(cpu ? [{ name: 'sampleLogits (cpu backend)', sample: backendSampler(cpu as Backend<unknown>), topP: true }] : []),
];

// 16 logits, the last two ids past n (padding that is never drawn), with a tie (ids 3 and 9) at
// the third place, so the tie rule decides which of the two top-k 3 keeps.
const V = 16,
  n = 14;
// float32 values, so the float32 native backends draw from exactly these logits too.
const logits = Float64Array.from([0.3, -1.2, 2.4, 1.9, -0.4, 0.8, 2.2, -2.0, 1.1, 1.9, 0.0, -0.7, 1.5, 0.6, 10, 10], Math.fround);

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

describe('samplers: edges of the definition', () => {
  for (const s of SAMPLERS) {
    it(`${s.name}: temperature 0 and top-k 1 take the most likely id, the smaller one on a tie`, () => {
      const tied = Float64Array.from([0.5, 3, -1, 2, 3, 0]);
      const rng = new Rng(1);
      expect(s.sample(tied, 6, 0, { topK: 0, topP: 1 }, rng)).toBe(1);
      expect(s.sample(tied, 6, 1, { topK: 1, topP: 1 }, rng)).toBe(1);
      expect(s.sample(tied, 4, 0, { topK: 0, topP: 1 }, rng)).toBe(1); // n = 4: id 4 is out of reach
      expect(s.sample(Float64Array.from([-3, -2, -1]), 3, 0, { topK: 0, topP: 1 }, rng)).toBe(2);
    });

    it(`${s.name}: top-k of n or more is no filter (the same draws as top-k 0 for the same seed)`, () => {
      for (const k of [n, n + 1, 100]) {
        const a = new Rng(4),
          b = new Rng(4);
        for (let i = 0; i < 200; i++) expect(s.sample(logits, n, 0.8, { topK: k, topP: 1 }, a)).toBe(s.sample(logits, n, 0.8, { topK: 0, topP: 1 }, b));
      }
    });

    it(`${s.name}: logits far from 0 (±1000) do not overflow the weights`, () => {
      const big = Float64Array.from([1000, 999.5, -1000, 998]);
      for (const f of [{ topK: 0, topP: 1 }, { topK: 2, topP: 1 }, ...(s.topP ? [{ topK: 0, topP: 0.9 }] : [])]) {
        const d = distribution(big, 4, 0.5, f);
        const G = 2000;
        const rng = fixedUniforms(Array.from({ length: G }, (_, j) => (j + 0.5) / G));
        const count = [0, 0, 0, 0];
        for (let j = 0; j < G; j++) count[s.sample(big, 4, 0.5, f, rng)]++;
        d.ids.forEach((id, i) => expect(Math.abs(count[id] - d.p[i] * G), `id ${id}`).toBeLessThanOrEqual(1));
        expect(count[2]).toBe(0);
      }
    });
  }
});

describe('generate', () => {
  /** A model with random parameters whose greedy text varies (block 7, odd, so generation soon passes it). */
  const randomModel = () => {
    const cfg = makeConfig('golden', { arch: 'gpt2', vocabSize: 19, blockSize: 7, nLayer: 2, nHead: 2, nEmbd: 8 });
    const rng = new Rng(13);
    const m = new LanguageModel(new ReferenceBackend(), cfg, { seed: 1 });
    const p = m.getParams();
    for (const s of m.table) {
      const one = /(prenorm|ln_)/.test(s.name) && s.name.endsWith('weight') ? 1 : 0;
      for (let i = s.offset; i < s.offset + s.size; i++) p[i] = one + rng.normal();
    }
    m.setParams(p);
    return m;
  };
  const argmax = (x: ArrayLike<number>) => {
    let best = 0;
    for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
    return best;
  };

  it('past the block size it restarts from the most recent half block: greedy tokens = argmax of the full forward of that window', () => {
    const m = randomModel();
    const { blockSize: T, vocabSize: V } = m.config;
    const prompt = [3, 1, 4, 1, 5, 9, 2, 6, 5]; // longer than the block: only the last T tokens are seen
    const got = generate(m, prompt, { tokens: 14, temperature: 0 });
    // written out: the window the model sees grows to T tokens, then restarts as the last ⌈T/2⌉
    let window = prompt.slice(-T);
    const all = [...window],
      want: number[] = [];
    for (let i = 0; i < 14; i++) {
      const logits = m.forward(window, 1, window.length, null, { grad: false }).logits as Float64Array;
      const id = argmax(logits.subarray((window.length - 1) * V));
      want.push(id);
      all.push(id);
      window = window.length >= T ? all.slice(-Math.ceil(T / 2)) : [...window, id];
    }
    expect(got).toEqual(want);
    // the model must not just repeat one token, or the windows would not matter
    expect(new Set(got).size).toBeGreaterThan(2);
    m.free();
  });

  it('onToken sees every id as it is drawn; temperature defaults to 0.8; no seed is still deterministic', () => {
    const m = randomModel();
    const seen: number[] = [];
    const a = generate(m, [1, 2], { tokens: 40, seed: 5, onToken: (id) => seen.push(id) });
    expect(seen).toEqual(a);
    expect(a).toEqual(generate(m, [1, 2], { tokens: 40, seed: 5, temperature: 0.8 }));
    for (const t of [0.7, 1]) expect(a, `temperature ${t}`).not.toEqual(generate(m, [1, 2], { tokens: 40, seed: 5, temperature: t }));
    expect(generate(m, [1, 2], { tokens: 9 })).toEqual(generate(m, [1, 2], { tokens: 9 }));
    expect(generate(m, [1, 2], { tokens: 0 })).toEqual([]);
    expect(() => generate(m, [], { tokens: 3 })).toThrow(/the prompt must hold at least one token/);
    // maxId: ids at or past it are never produced
    expect(generate(m, [1, 2], { tokens: 40, seed: 2, temperature: 1.7, maxId: 4 }).every((id) => id < 4)).toBe(true);
    m.free();
  });

  it('generate(config, params, ...) decodes the flat parameters on the reference: the same tokens as the model', () => {
    const m = randomModel();
    expect(generate(m.config, m.getParams(), [7, 7, 1], { tokens: 12, seed: 3, topK: 5 })).toEqual(generate(m, [7, 7, 1], { tokens: 12, seed: 3, topK: 5 }));
    m.free();
  });
});
