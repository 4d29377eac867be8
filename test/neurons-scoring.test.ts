// Scores, normalisation, splits and the token-lookup simulator against hand-computed cases and
// against independent formulas.
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import {
  pearson,
  rSquaredAboutZero,
  absoluteDevExplained,
  normalizeActivations,
  maxActivation,
  tarSplit,
  randomOnlySplit,
  anthropicSplit,
  meanOfFinite,
  populationVariance,
  layersForModelMean,
  flatten,
  cutRecord,
  type NeuronRecords,
} from '../src/neurons/scoring.js';
import { lookupTable, lookupSimulate, lookupScore, selectivity, consistency } from '../src/neurons/lookup.js';
import { summarizeModel, type LayerScore } from '../src/neurons/score.js';
import { gap, type GroupSummary } from '../src/neurons/compare.js';
import type { ActivationRecord } from '../src/neurons/format.js';

const rec = (tokens: string[], activations: number[]): ActivationRecord => ({ tokens, activations });
/** A record whose single token names it ("t3", "r7", ...), so a split's membership is readable. */
const tag = (name: string, a = 1): ActivationRecord => rec([name], [a]);

describe('scores of a simulation', () => {
  it('pearson: hand-computed value, invariance to affine maps, NaN for a constant side', () => {
    // x = 1,2,3,4; y = 2,1,4,3: x̄ = ȳ = 2.5; Σdxdy = (−1.5)(−.5)+(−.5)(−1.5)+(.5)(1.5)+(1.5)(.5) = 3; Σdx² = Σdy² = 5
    expect(pearson([1, 2, 3, 4], [2, 1, 4, 3])).toBeCloseTo(3 / 5, 15);
    expect(
      pearson(
        [1, 2, 3, 4],
        [2, 1, 4, 3].map((v) => 7 - 3 * v),
      ),
    ).toBeCloseTo(-3 / 5, 15);
    expect(pearson([1, 1, 1], [1, 2, 3])).toBeNaN();
    expect(pearson([1, 2, 3], [0, 0, 0])).toBeNaN();
    expect(() => pearson([1, 2], [1])).toThrow(/different lengths/);
  });

  it('R² is about zero, not about the mean; absolute deviation explained', () => {
    // real = 1,3; pred = 2,2: mean sq err = 1, mean real² = 5 → 1 − 1/5
    expect(rSquaredAboutZero([1, 3], [2, 2])).toBeCloseTo(0.8, 15);
    // mean |err| = 1, mean |real| = 2 → 0.5
    expect(absoluteDevExplained([1, 3], [2, 2])).toBeCloseTo(0.5, 15);
    expect(rSquaredAboutZero([1, 3], [1, 3])).toBe(1);
  });

  it('pearson agrees with the two-pass textbook formula on random data', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.double({ min: -100, max: 100, noNaN: true }), fc.double({ min: -100, max: 100, noNaN: true })), { minLength: 2, maxLength: 60 }),
        (pairs) => {
          const x = pairs.map((p) => p[0]),
            y = pairs.map((p) => p[1]);
          const mx = x.reduce((a, b) => a + b) / x.length,
            my = y.reduce((a, b) => a + b) / y.length;
          const sxy = x.reduce((a, v, i) => a + (v - mx) * (y[i] - my), 0),
            sxx = x.reduce((a, v) => a + (v - mx) ** 2, 0),
            syy = y.reduce((a, v) => a + (v - my) ** 2, 0);
          const r = pearson(x, y);
          if (sxx > 1e-9 && syy > 1e-9) expect(r).toBeCloseTo(sxy / Math.sqrt(sxx * syy), 9);
        },
      ),
    );
  });
});

describe('normalisation (spec 7.4)', () => {
  it('min(10, floor(10·max(a,0)/m)) with m the max over the explanation records; zeros when m ≤ 0', () => {
    const recs = [rec(['a', 'b'], [0.5, -1]), rec(['c'], [2])];
    expect(maxActivation(recs)).toBe(2);
    expect(normalizeActivations([0.5, -1, 2, 1.99, 0.2, 0.19], 2)).toEqual([2, 0, 10, 9, 1, 0]);
    expect(normalizeActivations([3, 1], 2)).toEqual([10, 5]); // above m (a scoring record) clamps at 10
    expect(normalizeActivations([0.5, 1], 0)).toEqual([0, 0]);
    expect(maxActivation([rec(['x'], [-3])])).toBe(0);
  });
});

function neuron(nTop: number, nRandom: number, quantile: boolean): NeuronRecords {
  const top = Array.from({ length: nTop }, (_, j) => tag(`t${j}`, 100 - j));
  const random = Array.from({ length: nRandom }, (_, j) => tag(`r${j}`, 0));
  const q = quantile ? Array.from({ length: 11 }, (_, b) => Array.from({ length: 20 }, (_, j) => tag(`q${b}.${j}`, b))) : null;
  return {
    top,
    random,
    quantile: q,
    topOffsets: top.map(() => 0),
    randomOffsets: random.map(() => 0),
    quantileOffsets: q ? q.map((bin) => bin.map(() => 0)) : null,
  };
}
const names = (rs: ActivationRecord[]) => rs.map((r) => r.tokens.join('|'));

describe('record splits (spec 7.3)', () => {
  it('TaR: explain on top #0,2,4,6,8; score on random #0,2,4,6,8 then top #1,3,5,7,9', () => {
    const s = tarSplit(neuron(50, 50, false));
    expect(names(s.explanation)).toEqual(['t0', 't2', 't4', 't6', 't8']);
    expect(names(s.scoring)).toEqual(['r0', 'r2', 'r4', 'r6', 'r8', 't1', 't3', 't5', 't7', 't9']);
  });

  it('Random-only: explain on top #0,2,4,6,8; score on random #0-9', () => {
    const s = randomOnlySplit(neuron(50, 50, false));
    expect(names(s.explanation)).toEqual(['t0', 't2', 't4', 't6', 't8']);
    expect(names(s.scoring)).toEqual(Array.from({ length: 10 }, (_, j) => `r${j}`));
  });

  it('Anthropic: top #0-14 + bins #0-1 + random #0-4 / top #15-24 + bins #2-3 + random #5-9 + top #25-34 out of context', () => {
    const s = anthropicSplit(neuron(50, 50, true))!;
    const bins = (a: number, b: number) => Array.from({ length: 11 }, (_, k) => [`q${k}.${a}`, `q${k}.${b}`]).flat();
    expect(names(s.explanation)).toEqual([...Array.from({ length: 15 }, (_, j) => `t${j}`), ...bins(0, 1), ...Array.from({ length: 5 }, (_, j) => `r${j}`)]);
    expect(names(s.scoring)).toEqual([
      ...Array.from({ length: 10 }, (_, j) => `t${15 + j}`),
      ...bins(2, 3),
      ...Array.from({ length: 5 }, (_, j) => `r${5 + j}`),
      ...Array.from({ length: 10 }, (_, j) => `t${25 + j}`),
    ]);
    expect(anthropicSplit(neuron(50, 50, false))).toBeNull();
  });

  it('Anthropic cuts excerpts to [q−4, q+4) and the out-of-context records to the selected token ±1 ([3:6))', () => {
    const long = rec(
      Array.from({ length: 64 }, (_, j) => `w${j}`),
      Array.from({ length: 64 }, (_, j) => j),
    );
    const n: NeuronRecords = {
      top: Array(35).fill(long),
      random: Array(10).fill(long),
      quantile: Array(11).fill(Array(4).fill(long)),
      topOffsets: Array(35).fill(32),
      randomOffsets: Array(10).fill(32),
      quantileOffsets: Array(11).fill(Array(4).fill(32)),
    };
    const s = anthropicSplit(n)!;
    expect(s.explanation[0].tokens).toEqual(['w28', 'w29', 'w30', 'w31', 'w32', 'w33', 'w34', 'w35']);
    expect(s.scoring[s.scoring.length - 1].tokens).toEqual(['w31', 'w32', 'w33']);
    // a selected token near the start of the data: the excerpt is clipped, the offset says where it is
    expect(cutRecord(long, 2, 4, 4).tokens).toEqual(['w0', 'w1', 'w2', 'w3', 'w4', 'w5']);
  });

  it('splits take what exists when a neuron has fewer records (tiny collections)', () => {
    const s = tarSplit(neuron(3, 4, false));
    expect(names(s.explanation)).toEqual(['t0', 't2']);
    expect(names(s.scoring)).toEqual(['r0', 'r2', 't1']);
  });
});

describe('token-lookup simulator (spec 7.8.1)', () => {
  it('hand-computed case: table of mean normalised activation per token string, unseen → 0, Pearson on the concatenation', () => {
    // explanation: m = 4. 'the' at 4 → 10 and at 1 → 2 (mean 6); 'cat' at 2 → 5; 'sat' at 0 → 0
    const explanation = [rec(['the', 'cat'], [4, 2]), rec(['the', 'sat'], [1, 0])];
    const table = lookupTable(explanation);
    expect(Object.fromEntries(table)).toEqual({ the: 6, cat: 5, sat: 0 });
    // scoring tokens: the, dog(unseen), cat, sat with true activations 3, 1, 2, 0
    const scoring = [rec(['the', 'dog'], [3, 1]), rec(['cat', 'sat'], [2, 0])];
    const sim = lookupSimulate(table, scoring);
    expect(Array.from(sim)).toEqual([6, 0, 5, 0]);
    // Pearson((3,1,2,0), (6,0,5,0)): x̄ = 1.5, ȳ = 2.75; dx = 1.5,−.5,.5,−1.5; dy = 3.25,−2.75,2.25,−2.75
    // Σdxdy = 4.875+1.375+1.125+4.125 = 11.5; Σdx² = 5; Σdy² = 10.5625+7.5625+5.0625+7.5625 = 30.75
    const expected = 11.5 / Math.sqrt(5 * 30.75);
    expect(lookupScore({ explanation, scoring })).toBeCloseTo(expected, 14);
    expect(pearson(flatten(scoring), sim)).toBeCloseTo(expected, 14);
  });

  it('a neuron that fires exactly on one token string scores 1; a dead neuron scores NaN', () => {
    const mk = (toks: string[]) =>
      rec(
        toks,
        toks.map((t) => (t === 'x' ? 2.5 : 0)),
      );
    const split = { explanation: [mk(['a', 'x', 'b']), mk(['x', 'c'])], scoring: [mk(['x', 'a', 'q']), mk(['b', 'x', 'x'])] };
    expect(lookupScore(split)).toBeCloseTo(1, 14);
    const dead = (toks: string[]) =>
      rec(
        toks,
        toks.map(() => 0),
      );
    expect(lookupScore({ explanation: [dead(['a'])], scoring: [dead(['a', 'b'])] })).toBeNaN();
  });

  it('selectivity: the fraction of random tokens at ≥ a tenth of the top maximum; consistency: share of the modal top token', () => {
    const top = [rec(['a'], [10]), rec(['b'], [5])];
    const random = [rec(['x', 'y', 'z', 'w'], [1, 0.99, 0, 3])];
    expect(selectivity(top, random)).toBe(2 / 4);
    expect(selectivity([rec(['a'], [0])], random)).toBeNaN();
    expect(consistency([' the', ' the', ' a', ' the'])).toBe(3 / 4);
  });
});

describe('aggregation (spec 6.2, 7.5)', () => {
  it('NaN scores are dropped and counted; SE = sd/√n', () => {
    const s = meanOfFinite([0.1, NaN, 0.3, 0.5]);
    expect(s.mean).toBeCloseTo(0.3, 15);
    expect(s.n).toBe(3);
    expect(s.dropped).toBe(1);
    expect(s.se).toBeCloseTo(0.2 / Math.sqrt(3), 15);
  });

  it("the paper's table: the last layer is dropped for L ≥ 6; variance is the population variance of the layer means", () => {
    expect(layersForModelMean([0, 1, 2], 3)).toEqual([0, 1, 2]);
    expect(layersForModelMean([0, 1, 2, 3, 4, 5], 6)).toEqual([0, 1, 2, 3, 4]);
    // CRATE-3L TaR per layer 9.6, 9.3, 8.4 (spec 6.3) → mean 9.1, variance 0.26 (spec 6.2)
    expect(populationVariance([9.6, 9.3, 8.4])).toBeCloseTo(0.26, 10);
    const row = (layer: number, tar: number): LayerScore => ({
      layer,
      tar,
      randomOnly: tar,
      anthropic: null,
      selectivity: 0.1,
      consistency: 0.5,
      density: 0.2,
      dead: 0,
      neurons: 10,
      scored: { tar: 10, randomOnly: 10, anthropic: 0 },
      se: { tar: 1, randomOnly: 1, anthropic: null },
    });
    const m = summarizeModel([row(0, 10.5), row(1, 7.4), row(2, 5.8), row(3, 8.0), row(4, 8.1), row(5, 5.7)], 6);
    // CRATE-6L TaR: the table's 7.96 is the mean of the first five layers
    expect(m.tar.mean).toBeCloseTo(7.96, 10);
    expect(m.layers).toEqual([0, 1, 2, 3, 4]);
    expect(m.tar.variance).toBeCloseTo(2.29, 2);
    expect(m.tar.se).toBeCloseTo(Math.sqrt(5) / 5, 12);
    expect(m.anthropic.mean).toBeNull();
  });
});

describe('compare: a gap is called only beyond 2 SE of the difference and the seed spread', () => {
  const group = (label: string, mean: number, se: number, spread: number | null): GroupSummary => ({
    label,
    seeds: spread === null ? 1 : 2,
    arch: label === 'GPT-2' ? 'gpt2' : 'crate',
    nLayer: 2,
    layers: [],
    model: {
      tar: { mean, variance: 0, se, spread },
      randomOnly: { mean: null, variance: null, se: null, spread: null },
      anthropic: { mean: null, variance: null, se: null, spread: null },
    },
    selectivity: null,
    consistency: null,
    density: null,
  });
  it('relative improvement (A − B)/|B| and the three verdicts', () => {
    const g = gap(group('CRATE', 66, 0.6, 1.0), group('GPT-2', 55, 0.8, 2.0), 'tar');
    expect(g.diff).toBeCloseTo(11, 12);
    expect(g.relative).toBeCloseTo(11 / 55, 12);
    expect(g.seDiff).toBeCloseTo(1, 12);
    expect(g.called).toBe(true);
    expect(gap(group('CRATE', 56.5, 0.6, 0.5), group('GPT-2', 55, 0.8, 0.5), 'tar').why).toMatch(/within 2 SE/);
    expect(gap(group('CRATE', 60, 0.6, 6), group('GPT-2', 55, 0.8, 1), 'tar').why).toMatch(/within the seed spread/);
    expect(gap(group('CRATE', 60, 0.6, null), group('GPT-2', 55, 0.8, null), 'tar')).toMatchObject({
      called: false,
      why: expect.stringMatching(/single seed/),
    });
    expect(gap(group('CRATE', 60, 0.6, 1), group('GPT-2', 55, 0.8, 1), 'randomOnly').why).toBe('not collected');
  });
});
