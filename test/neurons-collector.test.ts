// The streaming layer collector against brute force on small matrices: top-k (ties to the lower
// position) with their excerpts, random and quantile samples with theirs, and the moments.
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { LayerCollector } from '../src/neurons/collector.js';
import { StreamingMoments } from '../src/neurons/moments.js';
import { Rng } from '../src/util/rng.js';

/** An (N, H) matrix with many exact zeros and repeated values, as a ReLU code has. */
function matrix(N: number, H: number, seed: number, zeroFrac: number, nonneg = false): Float64Array {
  const rng = new Rng(seed);
  const x = new Float64Array(N * H);
  for (let j = 0; j < x.length; j++) {
    const u = rng.uniform();
    const g = Math.round(rng.normal() * 1000) / 100;
    x[j] = u < zeroFrac ? 0 : u < zeroFrac + 0.1 ? 0.5 : nonneg ? Math.abs(g) + 0.01 : g;
  }
  return x;
}

const col = (x: Float64Array, H: number, i: number, s: number, e: number) => Array.from({ length: e - s }, (_, r) => x[(s + r) * H + i]);

function feed(c: LayerCollector, x: Float64Array, H: number, N: number, chunks: number[]): void {
  let p = 0,
    ci = 0;
  while (p < N) {
    const n = Math.min(N - p, chunks[ci++ % chunks.length]);
    c.push(x.subarray(p * H, (p + n) * H), n);
    p += n;
  }
  c.finish();
}

describe('LayerCollector', () => {
  it('top-k, random and quantile selections and excerpts equal brute force, for any chunking', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 300 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 0, max: 1e6 }),
        fc.array(fc.integer({ min: 1, max: 70 }), { minLength: 1, maxLength: 4 }),
        fc.double({ min: 0, max: 0.9, noNaN: true }),
        (N, H, seed, chunks, zeroFrac) => {
          const x = matrix(N, H, seed, zeroFrac);
          const geometry = { top: { before: 5, after: 3 }, random: { before: 2, after: 6 }, quantile: { before: 1, after: 1 } };
          const c = new LayerCollector({
            H,
            N,
            topK: 7,
            nRandom: 4,
            quantile: { bins: 11, perBin: 2, sample: 60 },
            geometry,
            seed,
            layer: 1,
            precision: 'f64',
          });
          feed(c, x, H, N, chunks);
          for (let i = 0; i < H; i++) {
            const sel = c.neuron(i);
            // brute force: sort positions by value desc, position asc
            const order = Array.from({ length: N }, (_, p) => p).sort((a, b) => x[b * H + i] - x[a * H + i] || a - b);
            expect(sel.top.map((s) => s.pos)).toEqual(order.slice(0, Math.min(7, N)));
            for (const s of [...sel.top, ...sel.random, ...(sel.quantile ?? []).flat()]) {
              expect(s.value).toBe(x[s.pos * H + i]);
            }
            for (const s of sel.top) expect(Array.from(s.excerpt)).toEqual(col(x, H, i, Math.max(0, s.pos - 5), Math.min(N, s.pos + 3)));
            for (const s of sel.random) expect(Array.from(s.excerpt)).toEqual(col(x, H, i, Math.max(0, s.pos - 2), Math.min(N, s.pos + 6)));
            expect(sel.random).toHaveLength(4);
            // quantile: 11 bins of the candidate sample's twelfths; each bin's values lie between its boundaries
            const S = Math.min(60, N);
            expect(sel.boundaries).toHaveLength(12);
            const b = sel.boundaries!;
            for (let k = 1; k < 12; k++) expect(b[k]).toBeGreaterThanOrEqual(b[k - 1]);
            sel.quantile!.forEach((bin, k) => {
              const size = Math.floor(((k + 1) * S) / 12) - Math.floor((k * S) / 12);
              expect(bin).toHaveLength(Math.min(2, size));
              for (const s of bin) {
                expect(s.value).toBeGreaterThanOrEqual(b[k]);
                if (k < 11) expect(s.value).toBeLessThanOrEqual(b[k + 1]);
                expect(Array.from(s.excerpt)).toEqual(col(x, H, i, Math.max(0, s.pos - 1), Math.min(N, s.pos + 1)));
              }
            });
            const qpos = sel.quantile!.flat().map((s) => s.pos);
            expect(new Set(qpos).size).toBe(qpos.length); // without replacement
          }
        },
      ),
      { numRuns: 60, seed: 24 }, // fixed: the same 60 cases every run
    );
  });

  it('top-k ties go to the lower position: seeded cases with many equal values, every chunking', () => {
    // brute force: positions by value descending, then position ascending
    const brute = (x: Float64Array, H: number, N: number, i: number, k: number) =>
      Array.from({ length: N }, (_, p) => p)
        .sort((a, b) => x[b * H + i] - x[a * H + i] || a - b)
        .slice(0, Math.min(k, N));
    const cases: { name: string; N: number; H: number; x: Float64Array }[] = [];
    // every value equal: the first k positions
    cases.push({ name: 'constant', N: 40, H: 2, x: new Float64Array(80).fill(0.5) });
    // a tied block after the heap has filled: the later equal values must not replace kept ones
    const late = new Float64Array(60);
    for (let p = 0; p < 60; p++) late[p] = p < 10 ? 1 + p : p < 30 ? 0.5 : 2;
    cases.push({ name: 'late ties', N: 60, H: 1, x: late });
    // three levels at seeded random positions (fixed seeds: the same matrices every run)
    for (const seed of [1, 2, 3, 4, 5]) {
      const rng = new Rng(seed),
        N = 97,
        H = 3;
      const x = Float64Array.from({ length: N * H }, () => [0, 0.5, 1][rng.int(3)]);
      cases.push({ name: `levels seed ${seed}`, N, H, x });
    }
    for (const { name, N, H, x } of cases) {
      for (const k of [1, 5, 7, 33]) {
        for (const chunks of [[1], [7], [N], [3, 11]]) {
          const c = new LayerCollector({
            H,
            N,
            topK: k,
            nRandom: 1,
            quantile: null,
            geometry: { top: { before: 1, after: 1 }, random: { before: 0, after: 1 }, quantile: { before: 0, after: 1 } },
            seed: 0,
            layer: 0,
            precision: 'f64',
          });
          feed(c, x, H, N, chunks);
          for (let i = 0; i < H; i++)
            expect(
              c.neuron(i).top.map((s) => s.pos),
              `${name} k ${k} chunks ${chunks} neuron ${i}`,
            ).toEqual(brute(x, H, N, i, k));
        }
      }
    }
  });

  it('the same seed draws the same positions; another seed or layer draws others', () => {
    const N = 500,
      H = 3,
      x = matrix(N, H, 1, 0.5);
    const make = (seed: number, layer: number) => {
      const c = new LayerCollector({
        H,
        N,
        topK: 5,
        nRandom: 50,
        quantile: null,
        geometry: { top: { before: 2, after: 2 }, random: { before: 2, after: 2 }, quantile: { before: 1, after: 1 } },
        seed,
        layer,
        precision: 'f32',
      });
      feed(c, x, H, N, [64]);
      return c.neuron(0).random.map((s) => s.pos);
    };
    expect(make(3, 0)).toEqual(make(3, 0));
    expect(make(3, 0)).not.toEqual(make(4, 0));
    expect(make(3, 0)).not.toEqual(make(3, 1));
    // with replacement and roughly uniform: mean position near N/2
    const pos = make(3, 0);
    expect(Math.abs(pos.reduce((s, p) => s + p, 0) / pos.length - N / 2)).toBeLessThan(N / 4);
  });

  it('zero-heavy neurons: every quantile bin is filled even when 70% of values are exactly 0', () => {
    const N = 5000,
      H = 2,
      x = matrix(N, H, 9, 0.7, true);
    const c = new LayerCollector({
      H,
      N,
      topK: 50,
      nRandom: 50,
      quantile: { bins: 11, perBin: 20, sample: 720 },
      geometry: { top: { before: 4, after: 4 }, random: { before: 4, after: 4 }, quantile: { before: 4, after: 4 } },
      seed: 0,
      layer: 0,
      precision: 'f64',
    });
    feed(c, x, H, N, [1000]);
    const sel = c.neuron(1);
    expect(sel.quantile!.map((b) => b.length)).toEqual(Array(11).fill(20));
    // bins 0..7 lie in the zero block (70% < 8/12): their values are 0, at distinct positions
    for (let b = 0; b < 8; b++) expect(sel.quantile![b].every((s) => s.value === 0)).toBe(true);
    expect(sel.quantile![10].every((s) => s.value > 0)).toBe(true);
  });
});

describe('StreamingMoments', () => {
  it('chunk-merged moments equal the two-pass float64 values (population variance, raw central m3, m4)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 400 }),
        fc.integer({ min: 0, max: 1e6 }),
        fc.array(fc.integer({ min: 1, max: 90 }), { minLength: 1, maxLength: 3 }),
        fc.double({ min: -1e3, max: 1e3, noNaN: true }),
        (N, seed, chunks, offset) => {
          const H = 3,
            x = matrix(N, H, seed, 0.3).map((v) => v + offset);
          const m = new StreamingMoments(H);
          let p = 0,
            ci = 0;
          while (p < N) {
            const n = Math.min(N - p, chunks[ci++ % chunks.length]);
            m.push(x.subarray(p * H, (p + n) * H), n, p);
            p += n;
          }
          for (let i = 0; i < H; i++) {
            const v = col(x, H, i, 0, N);
            const mu = v.reduce((s, a) => s + a, 0) / N;
            const c = (k: number) => v.reduce((s, a) => s + (a - mu) ** k, 0) / N;
            const s = m.summary(i);
            const scale = Math.max(1, Math.abs(offset));
            expect(s.mean).toBeCloseTo(mu, 9);
            expect(Math.abs(s.variance - c(2))).toBeLessThanOrEqual(1e-9 * Math.max(1, c(2)) * scale);
            expect(Math.abs(s.m3 - c(3))).toBeLessThanOrEqual(1e-8 * Math.max(1, Math.abs(c(2)) ** 1.5) * scale);
            expect(Math.abs(s.m4 - c(4))).toBeLessThanOrEqual(1e-8 * Math.max(1, c(2) ** 2) * scale);
            if (c(2) > 1e-12) {
              expect(s.skewness).toBeCloseTo(c(3) / c(2) ** 1.5, 6);
              expect(s.kurtosis).toBeCloseTo(c(4) / c(2) ** 2, 6);
            }
            expect(s.density).toBe(v.filter((a) => a > 0).length / N);
            expect(s.max).toBe(Math.max(...v));
          }
        },
      ),
      { numRuns: 80, seed: 24 },
    );
  });

  it('a NaN activation is a NumericsError naming the neuron and the position', () => {
    const m = new StreamingMoments(4, 'blocks.0.hook_neurons');
    const x = new Float64Array(12);
    x[2 * 4 + 3] = NaN;
    expect(() => m.push(x, 3, 100)).toThrow(/blocks\.0\.hook_neurons of neuron 3 is NaN at flat position 102/);
  });
});
