// Incremental decoding (spec P20): feeding positions one at a time with a per-layer cache of the
// shared projection gives the logits of a full causal forward, for every architecture.
import { describe, it, expect } from 'vitest';
import { ReferenceBackend } from '../src/backend/reference.js';
import { LanguageModel } from '../src/model/lm.js';
import { makeConfig, type Arch } from '../src/model/config.js';
import { generate, sampleToken, topKIds } from '../src/sample/generate.js';
import { Rng } from '../src/util/rng.js';
import type { Backend } from '../src/backend/types.js';
import { nativeBackends } from './helpers/backends.js';
import { ARCHS_UNDER_TEST } from './helpers/archs.js';

/** Random parameters of a useful size (init std 0.02 would make attention nearly uniform). */
function randomModel(arch: Arch, seed: number) {
  const cfg = makeConfig('golden', { arch, vocabSize: 23, blockSize: 12, nLayer: 2, nHead: 2, nEmbd: 8 });
  const m = new LanguageModel(new ReferenceBackend(), cfg, { seed });
  const rng = new Rng(seed);
  const p = m.getParams();
  for (const s of m.table) {
    for (let i = 0; i < s.size; i++) {
      const base = s.init.kind === 'const' ? s.init.value : 0; // LayerNorm weights 1, biases 0
      p[s.offset + i] = base + 0.6 * rng.normal();
    }
  }
  m.setParams(p);
  return m;
}

describe('model.createDecoder = full forward (reference, float64)', () => {
  for (const arch of ARCHS_UNDER_TEST) {
    it(`${arch}: logits at every position agree to 1e-12`, () => {
      const m = randomModel(arch, 7);
      const { vocabSize: V, blockSize: T } = m.config;
      const rng = new Rng(11);
      const idx = Array.from({ length: T }, () => rng.int(V));
      const full = m.forward(idx, 1, T).logits as Float64Array;
      const dec = m.createDecoder(1);
      let maxDiff = 0;
      for (let t = 0; t < T; t++) {
        const got = dec.step([idx[t]]);
        for (let v = 0; v < V; v++) maxDiff = Math.max(maxDiff, Math.abs(got[v] - full[t * V + v]));
      }
      expect(maxDiff).toBeLessThanOrEqual(1e-12);
      expect(() => dec.step([0])).toThrow(/context full/);
      dec.reset();
      const again = dec.prefill([idx.slice(0, 5)]);
      for (let v = 0; v < V; v++) expect(Math.abs(again[v] - full[4 * V + v])).toBeLessThanOrEqual(1e-12);
      dec.free();
      m.free();
    });
  }

  for (const arch of ARCHS_UNDER_TEST) {
    it(`${arch}: rows at their own positions (stepRowsNormalized) = each sequence decoded alone, rows sitting out included`, () => {
      const m = randomModel(arch, 9);
      const { vocabSize: V, blockSize: T, nEmbd: C } = m.config;
      const rng = new Rng(21);
      // three sequences of different lengths; sequence 1 starts 4 steps late, sequence 2 sits out steps 5 and 6
      const seqs = [10, 7, 9].map((n) => Array.from({ length: n }, () => rng.int(V)));
      const alone = seqs.map((s) => {
        const d = m.createDecoder(1);
        const rows = s.map((tok) => d.stepNormalized([tok]));
        d.free();
        return rows;
      });
      const dec = m.createDecoder(4);
      const fed = [0, 0, 0];
      for (let step = 0; step < 14; step++) {
        const active = [fed[0] < 10, step >= 4 && fed[1] < 7, !(step === 5 || step === 6) && fed[2] < 9];
        if (!active.some(Boolean)) break;
        const rows = 3;
        const tokens = active.map((a, b) => (a ? seqs[b][fed[b]] : 0));
        const positions = active.map((a, b) => Math.min(fed[b], T - 1));
        const out = dec.stepRowsNormalized(tokens, positions, rows);
        active.forEach((a, b) => {
          if (!a) return;
          const want = alone[b][fed[b]];
          for (let c = 0; c < C; c++) expect(Math.abs(out[b * C + c] - want[c]), `seq ${b} pos ${fed[b]}`).toBeLessThanOrEqual(1e-12);
          fed[b]++;
        });
      }
      expect(fed).toEqual([10, 7, 9]);
      expect(() => dec.stepRowsNormalized([0], [T], 1)).toThrow(/outside the context/);
      expect(() => dec.stepRowsNormalized([0, 0], [0], 2)).toThrow(/positions has 1 entries/);
      expect(() => dec.stepRowsNormalized([0], [0], 5)).toThrow(/rows must be an integer in \[1, 4\]/);
      dec.free();
      m.free();
    });
  }

  it('rejects out-of-vocabulary tokens and wrong parameter counts', () => {
    const m = randomModel('crate', 1);
    const dec = m.createDecoder(1);
    expect(() => dec.step([23])).toThrow(/outside the vocabulary \[0, 23\)/);
    expect(() => new LanguageModel(new ReferenceBackend(), m.config, { params: new Float64Array(3) })).toThrow(/params has 3 values/);
    dec.free();
    m.free();
  });
});

describe('sampling', () => {
  it('temperature 0 and top-k 1 are greedy; maxId excludes padding ids', () => {
    const logits = Float64Array.from([0.1, 3, -2, 2.9, 5]);
    const rng = new Rng(1);
    expect(sampleToken(logits, rng, 0, 0)).toBe(4);
    expect(sampleToken(logits, rng, 1, 1)).toBe(4);
    expect(sampleToken(logits, rng, 0, 0, 4)).toBe(1);
    for (let i = 0; i < 50; i++) expect([1, 3]).toContain(sampleToken(logits, rng, 1, 2, 4));
  });

  it('generate runs past the block size, is deterministic per seed, and greedy matches the full forward', () => {
    const m = randomModel('crate', 5);
    const params = m.getParams();
    const a = generate(m.config, params, [1, 2, 3], { tokens: 30, temperature: 1, topK: 5, seed: 9 });
    const b = generate(m.config, params, [1, 2, 3], { tokens: 30, temperature: 1, topK: 5, seed: 9 });
    expect(a).toHaveLength(30);
    expect(a).toEqual(b);
    // greedy continuation within the block equals argmax of full forwards
    const g = generate(m.config, params, [4, 5], { tokens: 6, temperature: 0 });
    const ctx = [4, 5];
    for (const tok of g) {
      const V = m.config.vocabSize,
        logits = m.forward(ctx, 1, ctx.length).logits as Float64Array;
      const last = logits.subarray((ctx.length - 1) * V);
      let best = 0;
      for (let v = 1; v < V; v++) if (last[v] > last[best]) best = v;
      expect(tok).toBe(best);
      ctx.push(tok);
    }
    m.free();
  });
});

const natives = await nativeBackends();

describe('model.createDecoder on every backend (the blocks run one position at a time)', () => {
  for (const n of [{ name: 'reference', backend: new ReferenceBackend() as Backend<unknown> }, ...natives]) {
    const t = n.backend ? it : it.skip;
    t(`${n.name}: a batch of 3 sequences decoded step by step equals the full forward; hooks are held at every step`, () => {
      for (const arch of ARCHS_UNDER_TEST) {
        const host = randomModel(arch, 3);
        const m = new LanguageModel(n.backend!, host.config, { params: host.getParams().map(Math.fround) });
        const { vocabSize: V, blockSize: T } = m.config,
          Bn = 3;
        const rng = new Rng(21);
        const idx = Array.from({ length: Bn * T }, () => rng.int(V));
        const full = m.forward(idx, Bn, T).logits as Float64Array;
        const tol = n.name === 'reference' ? 1e-12 : 2e-5;
        const dec = m.createDecoder(Bn);
        let worst = 0,
          scale = 0;
        for (let tt = 0; tt < T; tt++) {
          const got = dec.step([0, 1, 2].map((b) => idx[b * T + tt]));
          for (let b = 0; b < Bn; b++)
            for (let v = 0; v < V; v++) {
              const want = full[(b * T + tt) * V + v];
              worst = Math.max(worst, Math.abs(got[b * V + v] - want));
              scale = Math.max(scale, Math.abs(want));
            }
        }
        expect(worst / scale, `${arch}`).toBeLessThanOrEqual(tol);
        dec.free();
        // a clamp held by the decoder equals the clamped full forward at every position
        const clamp = {
          'blocks.0.hook_neurons': (a: { shape: number[]; set: (...x: number[]) => void }) => {
            for (let b = 0; b < a.shape[0]; b++) for (let s = 0; s < a.shape[1]; s++) a.set(b, s, 1, 1.5);
          },
        };
        const fullC = m.runWithHooks(idx.slice(0, T), 1, T, clamp).logits as Float64Array;
        const decC = m.createDecoder(1, { hooks: clamp });
        let worstC = 0;
        for (let tt = 0; tt < T; tt++) {
          const got = decC.step([idx[tt]]);
          for (let v = 0; v < V; v++) worstC = Math.max(worstC, Math.abs(got[v] - fullC[tt * V + v]));
        }
        expect(worstC / scale, `${arch} clamped`).toBeLessThanOrEqual(tol);
        if (m.hookNames().includes('blocks.0.attn.hook_pattern'))
          expect(() => m.createDecoder(1, { hooks: { 'blocks.0.attn.hook_pattern': () => undefined } })).toThrow(/cannot be hooked while decoding/);
        decC.free();
        m.free();
        host.free();
      }
    });
  }
});

describe('top-k selection', () => {
  it('topKIds equals sorting every id (higher logit first, lower id on ties) and keeping k, with many ties', () => {
    const rng = new Rng(4);
    for (let trial = 0; trial < 200; trial++) {
      const n = 1 + rng.int(300),
        k = 1 + rng.int(n);
      const logits = Float64Array.from({ length: n }, () => rng.int(7) - 3 + (rng.int(3) === 0 ? rng.normal() : 0));
      const all = Array.from({ length: n }, (_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);
      expect(topKIds(logits, n, k)).toEqual(all.slice(0, k));
    }
  });
});
