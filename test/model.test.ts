// Whole-model tests on the float64 reference: the golden vector (spec Appendix A), finite
// differences through every architecture, and the model-level properties of spec 4.3.
import { describe, test, expect } from 'vitest';
import { ReferenceBackend } from '../src/backend/reference.js';
import { LanguageModel } from '../src/model/lm.js';
import { makeConfig } from '../src/model/config.js';
import { paramTable, numParams } from '../src/model/params.js';
import { Rng } from '../src/util/rng.js';
import { fdCheck, randTokens } from './helpers/fd.js';
import { ARCHS_UNDER_TEST } from './helpers/archs.js';
import { goldenModel, GOLDEN } from '../src/verify/golden.js';

const be = new ReferenceBackend();

describe('reference model', () => {
  test('P23 golden vector: logits, loss and the layer-0 ISTA code of spec Appendix A', () => {
    const m = goldenModel(be);
    const { logits, loss, cache } = m.runWithCache(GOLDEN.idx, 1, 5, { targets: GOLDEN.targets, names: ['blocks.0.hook_neurons'] });
    const V = 11;
    expect(Math.abs((loss as number) - GOLDEN.loss)).toBeLessThan(1e-12);
    for (let i = 0; i < V; i++) {
      expect(Math.abs(logits![4 * V + i] - GOLDEN.logitsLast[i])).toBeLessThan(1e-6);
      expect(Math.abs(logits![i] - GOLDEN.logitsFirst[i])).toBeLessThan(1e-6);
    }
    const code = cache.get('blocks.0.hook_neurons').data,
      H = 32;
    let zeros = 0;
    for (let t = 0; t < 5; t++) {
      let nz = 0,
        sum = 0;
      for (let k = 0; k < H; k++) {
        const a = code[t * H + k];
        if (a > 0) nz++;
        else {
          expect(a).toBe(0);
          zeros++;
        }
        sum += a;
      }
      expect(nz).toBe(GOLDEN.code0Nonzeros[t]);
      expect(Math.abs(sum - GOLDEN.code0Sums[t])).toBeLessThan(1e-6);
    }
    expect(zeros / (5 * H)).toBe(GOLDEN.code0ZeroFraction);
  });

  for (const arch of ARCHS_UNDER_TEST) {
    test(`${arch}: backward matches central finite differences on every parameter tensor`, () => {
      const cfg = makeConfig(undefined, { arch, vocabSize: 13, blockSize: 6, nLayer: 2, nHead: 2, nEmbd: 6, overcomplete: 3, lam: 0.05 });
      const m = new LanguageModel(be, cfg, { seed: 7 });
      // scale weights up so that the gradients are not tiny and every ReLU path is exercised
      const p = m.getParams();
      for (let i = 0; i < p.length; i++) p[i] *= 5;
      m.setParams(p);
      const rng = new Rng(3),
        B = 2,
        T = 5;
      const idx = randTokens(rng, B * T, cfg.vocabSize),
        tg = randTokens(rng, B * T, cfg.vocabSize);
      tg[3] = -1;
      m.zeroGrad();
      m.forward(idx, B, T, tg);
      m.backward();
      const g = m.getGrads();
      const params = m.params as Float64Array; // reference buffers are host Float64Arrays
      const loss = () => m.forward(idx, B, T, tg, { grad: false, returnLogits: false }).loss as number;
      for (const spec of m.table) {
        const view = params.subarray(spec.offset, spec.offset + spec.size);
        const r = fdCheck(view, loss, g.subarray(spec.offset, spec.offset + spec.size), rng, { rtol: 1e-5, atol: 1e-8, maxCoords: 12 });
        expect(r.worst, `${spec.name}[${r.at}]: analytic ${r.analytic} numeric ${r.numeric}`).toBeLessThanOrEqual(1);
      }
    });
  }

  test('P18 causality: logits at t are unchanged (exactly) when later tokens change', () => {
    const cfg = makeConfig(undefined, { vocabSize: 20, blockSize: 9, nLayer: 2, nHead: 2, nEmbd: 8 });
    const m = new LanguageModel(be, cfg, { seed: 1 });
    const rng = new Rng(5),
      T = 9;
    const a = randTokens(rng, T, 20),
      b = Int32Array.from(a);
    for (let t = 5; t < T; t++) b[t] = (a[t] + 1 + rng.int(19)) % 20;
    const la = m.forward(a, 1, T).logits!,
      lb = m.forward(b, 1, T).logits!;
    for (let i = 0; i < 5 * 20; i++) expect(lb[i]).toBe(la[i]);
    let differs = false;
    for (let i = 5 * 20; i < T * 20; i++) if (la[i] !== lb[i]) differs = true;
    expect(differs).toBe(true);
  });

  test('P19 per-token shift invariance: adding c·1 to a token vector leaves every CRATE block output unchanged', () => {
    const cfg = makeConfig(undefined, { vocabSize: 10, blockSize: 6, nLayer: 3, nHead: 2, nEmbd: 8 });
    const m = new LanguageModel(be, cfg, { seed: 4 });
    const rng = new Rng(9),
      T = 6,
      idx = randTokens(rng, T, 10);
    const outs = (model: LanguageModel<Float64Array>, layers: number[]) => {
      const { cache } = model.runWithCache(idx, 1, T, { names: layers.map((l) => `blocks.${l}.hook_resid_post`) });
      return layers.map((l) => cache.get(`blocks.${l}.hook_resid_post`).data);
    };
    const before = outs(m, [0, 1, 2]);
    // shift every wte row and every wpe row by its own constant: the block input x⁰ of each token moves by c_t·1
    const p = m.getParams(),
      C = cfg.nEmbd;
    for (const name of ['transformer.wte.weight', 'transformer.wpe.weight']) {
      const s = m.spec(name);
      for (let r = 0; r < s.shape[0]; r++) {
        const c = 3 * rng.normal();
        for (let j = 0; j < C; j++) p[s.offset + r * C + j] += c;
      }
    }
    m.setParams(p);
    let worst = 0;
    outs(m, [0, 1, 2]).forEach((after, l) => {
      for (let i = 0; i < after.length; i++) worst = Math.max(worst, Math.abs(after[i] - before[l][i]));
    });
    expect(worst).toBeLessThan(1e-12);
    // the GPT-2 baseline does not have this property (residual around the MLP)
    const g = new LanguageModel(be, { ...cfg, arch: 'gpt2' }, { seed: 4 });
    const gb = outs(g, [0])[0],
      gp = g.getParams(),
      s = g.spec('transformer.wpe.weight');
    for (let i = 0; i < s.size; i++) gp[s.offset + i] += 1.5;
    g.setParams(gp);
    const ga = outs(g, [0])[0];
    expect(Math.max(...ga.map((x, i) => Math.abs(x - gb[i])))).toBeGreaterThan(0.1);
  });

  test('P21 weight tying: dwte gets both the head and the embedding contributions', () => {
    const cfg = makeConfig(undefined, { vocabSize: 9, blockSize: 4, nLayer: 1, nHead: 1, nEmbd: 5 });
    const m = new LanguageModel(be, cfg, { seed: 2 });
    const idx = [1, 2, 1, 3],
      tg = [2, 1, 3, 0];
    m.zeroGrad();
    m.forward(idx, 1, 4, tg);
    m.backward();
    const g = m.getGrads(),
      s = m.spec('transformer.wte.weight'),
      C = 5;
    // row 7 never appears in idx: only the head contributes, and it is non-zero
    expect(Math.max(...g.subarray(s.offset + 7 * C, s.offset + 8 * C).map(Math.abs))).toBeGreaterThan(1e-6);
    // row 1 appears in idx: its gradient equals finite differences, which needs both paths
    const params = m.params as Float64Array,
      rng = new Rng(1);
    const row = params.subarray(s.offset + C, s.offset + 2 * C);
    const r = fdCheck(
      row,
      () => m.forward(idx, 1, 4, tg, { grad: false, returnLogits: false }).loss as number,
      g.subarray(s.offset + C, s.offset + 2 * C),
      rng,
      { rtol: 1e-6 },
    );
    expect(r.worst).toBeLessThanOrEqual(1);
    // decomposition: with B = 1, dwpe[t] is the gradient reaching x⁰ at position t, so the embedding
    // path gives row 1 exactly dwpe[0] + dwpe[2] (token 1 sits at t = 0 and 2); the rest is the head's
    const dwpe = m.grad('transformer.wpe.weight') as Float64Array;
    let embNorm = 0,
      headNorm = 0;
    for (let j = 0; j < C; j++) {
      const emb = dwpe[j] + dwpe[2 * C + j];
      const head = g[s.offset + C + j] - emb;
      embNorm += emb * emb;
      headNorm += head * head;
    }
    expect(Math.sqrt(embNorm)).toBeGreaterThan(1e-6);
    expect(Math.sqrt(headNorm)).toBeGreaterThan(1e-6);
  });

  test('P22 parameter counts of the paper sizes (spec table 5.2)', () => {
    const expected: Record<string, [number, number]> = {
      '1L': [6538112, 6635904],
      '2L': [6637056, 6832768],
      '3L': [6736000, 7029632],
      S: [59891712, 81110784],
      B: [81148416, 123587328],
    };
    for (const [preset, [crate, gpt]] of Object.entries(expected)) {
      const c = makeConfig(preset);
      expect(numParams(paramTable(c))).toBe(crate);
      expect(numParams(paramTable({ ...c, arch: 'gpt2' }))).toBe(gpt);
      const V = c.vocabSize,
        d = c.nEmbd,
        L = c.nLayer;
      expect(crate).toBe(V * d + L * (6 * d * d + 5 * d) + 2 * d);
    }
  });

  test('initialization follows spec 3.2 (std 0.02, c_proj 0.02/sqrt(2L), ISTA uniform sqrt(6/d), LN 1/0)', () => {
    const cfg = makeConfig(undefined, { vocabSize: 3000, blockSize: 64, nLayer: 3, nHead: 4, nEmbd: 64 });
    const m = new LanguageModel(be, cfg, { seed: 11 });
    const p = m.getParams();
    const stats = (name: string) => {
      const s = m.spec(name),
        v = p.subarray(s.offset, s.offset + s.size);
      const mean = v.reduce((a, b) => a + b, 0) / v.length;
      const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
      return { mean, std, max: v.reduce((a, b) => Math.max(a, Math.abs(b)), 0) };
    };
    expect(stats('transformer.wte.weight').std).toBeCloseTo(0.02, 3);
    expect(stats('transformer.h.1.attn.c_proj.weight').std).toBeCloseTo(0.02 / Math.sqrt(6), 3);
    const ista = stats('transformer.h.0.ista.weight');
    expect(ista.max).toBeLessThanOrEqual(Math.sqrt(6 / 64));
    expect(ista.std).toBeCloseTo(Math.sqrt(2 / 64), 2);
    expect(stats('transformer.h.2.prenorm_2.weight')).toMatchObject({ mean: 1, std: 0 });
    expect(stats('transformer.h.2.attn.c_proj.bias')).toMatchObject({ mean: 0, std: 0 });
    // same seed, same parameters; another seed, different ones
    expect(Array.from(new LanguageModel(be, cfg, { seed: 11 }).getParams())).toEqual(Array.from(p));
    expect(new LanguageModel(be, cfg, { seed: 12 }).getParams()[0]).not.toBe(p[0]);
  });

  test('bad input is rejected with a message naming the problem', () => {
    const cfg = makeConfig(undefined, { vocabSize: 10, blockSize: 4, nLayer: 1, nHead: 2, nEmbd: 4 });
    const m = new LanguageModel(be, cfg, { seed: 1 });
    expect(() => m.forward([1, 2, 10, 3], 1, 4)).toThrow(/idx\[0\]\[2\] = 10 is outside the vocabulary \[0, 10\)/);
    expect(() => m.forward([1, 2, -1, 3], 1, 4)).toThrow(/outside the vocabulary/);
    expect(() => m.forward([1, 2, 1.5, 3], 1, 4)).toThrow(/outside the vocabulary/);
    expect(() => m.forward([1, 2, 3, 4, 5], 1, 5)).toThrow(/sequence length 5 exceeds the block size 4/);
    expect(() => m.forward([1, 2, 3], 1, 4)).toThrow(/idx has 3 elements, expected B\*T/);
    expect(() => m.forward([1, 2, 3, 4], 1, 4, [1, 2, 3, 11])).toThrow(/targets\[0\]\[3\] = 11/);
    expect(() => m.forward([1, 2, 3, NaN], 1, 4)).toThrow(/= NaN is outside/);
    const p = m.getParams();
    p[m.spec('transformer.h.0.ista.weight').offset + 3] = NaN;
    expect(() => m.setParams(p)).toThrow(/transformer\.h\.0\.ista\.weight has a non-finite value/);
    expect(() => m.backward()).toThrow(/backward\(\) needs a preceding forward\(\) with targets/);
    expect(() => makeConfig(undefined, { nEmbd: 10, nHead: 3 })).toThrow(/divisible/);
    expect(() => makeConfig('XL')).toThrow(/unknown preset 'XL'/);
  });
});
