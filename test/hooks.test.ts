// Hook points: every name of the README's table exists for its architecture, has the documented
// shape, and equals what the model computes — recomputed here by hand from the cached inputs and
// the parameters with plain loops; replacing a value (clamping a neuron, a pattern, an ISTA step)
// changes the rest of the forward exactly as recomputing by hand does; on reference and cpu.
import { describe, test, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { ReferenceBackend } from '../src/backend/reference.js';
import type { Backend } from '../src/backend/types.js';
import { LanguageModel } from '../src/model/lm.js';
import { ARCHS, makeConfig, type Arch, type ModelConfig } from '../src/model/config.js';
import { architecture } from '../src/model/archs.js';
import { hookPoints, hookTable, neuronHook, toDense } from '../src/model/hooks.js';
import { UsageError } from '../src/errors.js';
import { Rng } from '../src/util/rng.js';
import { nativeBackends } from './helpers/backends.js';
import { ARCHS_UNDER_TEST } from './helpers/archs.js';

const natives = await nativeBackends();
const B = 2,
  T = 5;

/** A small model with parameters large enough that attention is far from uniform and codes are sparse. */
function params(arch: Arch): { cfg: ModelConfig; p: Float64Array } {
  const cfg = makeConfig(undefined, { arch, vocabSize: 13, blockSize: 8, nLayer: 2, nHead: 2, nEmbd: 6, istaSteps: 3 });
  const m = new LanguageModel(new ReferenceBackend(), cfg, { seed: 3 });
  const rng = new Rng(17),
    p = m.getParams();
  for (const s of m.table) {
    for (let i = 0; i < s.size; i++) {
      const base = s.init.kind === 'const' ? s.init.value : 0; // LayerNorm weights 1, biases 0
      p[s.offset + i] = Math.fround(base + 0.5 * rng.normal());
    }
  }
  m.free();
  return { cfg, p };
}

const tokens = (cfg: ModelConfig) => {
  const r = new Rng(5);
  return Array.from({ length: B * T }, () => r.int(cfg.vocabSize));
};

// ---- independent plain-loop helpers ----------------------------------------------------------------
/** rows (N,K) · Wᵀ with W (M,K) (+ b) → (N,M) */
function linT(x: ArrayLike<number>, W: Float64Array, b: Float64Array | null, N: number, K: number, M: number): Float64Array {
  const o = new Float64Array(N * M);
  for (let n = 0; n < N; n++)
    for (let m = 0; m < M; m++) {
      let s = b ? b[m] : 0;
      for (let k = 0; k < K; k++) s += x[n * K + k] * W[m * K + k];
      o[n * M + m] = s;
    }
  return o;
}
/** rows (N,K) · W with W (K,M) → (N,M) */
function lin(x: ArrayLike<number>, W: Float64Array, N: number, K: number, M: number): Float64Array {
  const o = new Float64Array(N * M);
  for (let n = 0; n < N; n++)
    for (let m = 0; m < M; m++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x[n * K + k] * W[k * M + m];
      o[n * M + m] = s;
    }
  return o;
}
function ln(x: ArrayLike<number>, w: Float64Array, b: Float64Array | null, N: number, C: number): Float64Array {
  const o = new Float64Array(N * C);
  for (let n = 0; n < N; n++) {
    let mu = 0;
    for (let c = 0; c < C; c++) mu += x[n * C + c] / C;
    let v = 0;
    for (let c = 0; c < C; c++) v += (x[n * C + c] - mu) ** 2 / C;
    for (let c = 0; c < C; c++) o[n * C + c] = ((x[n * C + c] - mu) / Math.sqrt(v + 1e-5)) * w[c] + (b ? b[c] : 0);
  }
  return o;
}
const relu = (a: Float64Array) => a.map((x) => Math.max(0, x));
const addv = (a: ArrayLike<number>, b: ArrayLike<number>) => Float64Array.from(a, (x, i) => x + b[i]);
function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  expect(got.length, what).toBe(want.length);
  let scale = 1e-30,
    err = 0;
  for (let i = 0; i < want.length; i++) {
    scale = Math.max(scale, Math.abs(want[i]));
    err = Math.max(err, Math.abs(got[i] - want[i]));
  }
  expect(err / scale, `${what}: max |Δ| ${err} relative to ${scale}`).toBeLessThanOrEqual(tol);
}

const backends: { name: string; be: Backend<unknown> | null; tol: number }[] = [
  { name: 'reference', be: new ReferenceBackend() as Backend<unknown>, tol: 1e-12 },
  ...natives.map((n) => ({ name: n.name, be: n.backend ?? null, tol: 2e-5 })),
];

for (const { name: bname, be, tol } of backends) {
  const d = be ? describe : describe.skip;
  d(`hook points on ${bname}`, () => {
    for (const arch of ARCHS) {
      test(`${arch}: every documented hook exists with its shape and equals a hand recomputation`, () => {
        const { cfg, p } = params(arch);
        const m = new LanguageModel(be!, cfg, { params: p });
        const P = (n: string) => {
          const s = m.spec(n);
          return p.subarray(s.offset, s.offset + s.size);
        };
        try {
          const idx = tokens(cfg);
          const { cache, logits } = m.runWithCache(idx, B, T);
          const pts = hookPoints(cfg, B, T);
          for (const pt of pts) expect(cache.get(pt.name).shape, pt.name).toEqual(pt.shape);
          const g = (n: string) => cache.get(n),
            dense = (n: string) => {
              const a = g(n);
              return Float64Array.from({ length: a.size }, (_, i) => {
                const ix: number[] = [];
                let r = i;
                for (let k = a.shape.length - 1; k >= 0; k--) {
                  ix.unshift(r % a.shape[k]);
                  r = Math.floor(r / a.shape[k]);
                }
                return a.get(...ix);
              });
            };
          const C = cfg.nEmbd,
            NH = cfg.nHead,
            hp = C / NH,
            H = cfg.overcomplete * C,
            N = B * T,
            V = cfg.vocabSize;
          // embeddings
          const wte = P('transformer.wte.weight'),
            wpe = P('transformer.wpe.weight');
          const emb = new Float64Array(N * C),
            pos = new Float64Array(N * C);
          for (let n = 0; n < N; n++)
            for (let c = 0; c < C; c++) {
              emb[n * C + c] = wte[idx[n] * C + c];
              pos[n * C + c] = wpe[(n % T) * C + c];
            }
          expectClose(dense('hook_embed'), emb, tol, 'hook_embed');
          expectClose(dense('hook_pos_embed'), pos, tol, 'hook_pos_embed');
          expectClose(dense('blocks.0.hook_resid_pre'), addv(emb, pos), tol, 'blocks.0.hook_resid_pre');
          for (let l = 0; l < cfg.nLayer; l++) {
            const b = `blocks.${l}.`,
              pr = `transformer.h.${l}.`,
              gpt = arch === 'gpt2';
            const x = dense(b + 'hook_resid_pre');
            const u1 = ln(x, P(pr + (gpt ? 'ln_1' : 'prenorm_1') + '.weight'), gpt ? null : P(pr + 'prenorm_1.bias'), N, C);
            expectClose(dense(b + 'ln1.hook_normalized'), u1, tol, b + 'ln1');
            const proj = linT(u1, P(pr + 'attn.c_attn.weight'), null, N, C, gpt ? 3 * C : C);
            const W = gpt ? 3 * C : C,
              qo = 0,
              ko = gpt ? C : 0,
              vo = gpt ? 2 * C : 0;
            const slice = (o: number) => Float64Array.from({ length: N * C }, (_, i) => proj[Math.floor(i / C) * W + o + (i % C)]);
            if (gpt) {
              expectClose(dense(b + 'attn.hook_q'), slice(0), tol, b + 'q');
              expectClose(dense(b + 'attn.hook_k'), slice(C), tol, b + 'k');
              expectClose(dense(b + 'attn.hook_v'), slice(2 * C), tol, b + 'v');
            } else expectClose(dense(b + 'attn.hook_qkv'), proj, tol, b + 'qkv');
            // pattern: causal softmax of scaled scores; z = P v
            const pat = g(b + 'attn.hook_pattern'),
              z = new Float64Array(N * C);
            for (let bb = 0; bb < B; bb++)
              for (let h = 0; h < NH; h++)
                for (let i = 0; i < T; i++) {
                  const s: number[] = [];
                  for (let j = 0; j <= i; j++) {
                    let dot = 0;
                    for (let c = 0; c < hp; c++) dot += proj[(bb * T + i) * W + qo + h * hp + c] * proj[(bb * T + j) * W + ko + h * hp + c];
                    s.push(dot / Math.sqrt(hp));
                  }
                  const mx = Math.max(...s),
                    e = s.map((v) => Math.exp(v - mx)),
                    tot = e.reduce((a2, c2) => a2 + c2, 0);
                  for (let j = 0; j < T; j++) {
                    const want = j <= i ? e[j] / tot : 0;
                    expect(Math.abs(pat.get(bb, h, i, j) - want), `${b}pattern[${bb},${h},${i},${j}]`).toBeLessThanOrEqual(tol * 10);
                    if (j <= i) for (let c = 0; c < hp; c++) z[(bb * T + i) * C + h * hp + c] += want * proj[(bb * T + j) * W + vo + h * hp + c];
                  }
                }
            expectClose(dense(b + 'attn.hook_z'), z, tol, b + 'z');
            const ao = linT(dense(b + 'attn.hook_z'), P(pr + 'attn.c_proj.weight'), gpt ? null : P(pr + 'attn.c_proj.bias'), N, C, C);
            expectClose(dense(b + 'hook_attn_out'), ao, tol, b + 'attn_out');
            const xh = addv(x, dense(b + 'hook_attn_out'));
            expectClose(dense(b + 'hook_resid_mid'), xh, tol, b + 'resid_mid');
            const u2 = ln(dense(b + 'hook_resid_mid'), P(pr + (gpt ? 'ln_2' : 'prenorm_2') + '.weight'), gpt ? null : P(pr + 'prenorm_2.bias'), N, C);
            expectClose(dense(b + 'ln2.hook_normalized'), u2, tol, b + 'ln2');
            let post: Float64Array;
            if (arch === 'crate') {
              const A = P(pr + 'ista.weight'),
                eta = cfg.eta,
                lam = cfg.lam;
              let a = new Float64Array(N * H);
              for (let t = 1; t <= cfg.istaSteps; t++) {
                const r = Float64Array.from(u2, (v, i) => v - lin(a, A, N, H, C)[i]);
                const gr = linT(r, A, null, N, C, H);
                a = relu(Float64Array.from(a, (v, i) => v + eta * gr[i] - eta * lam));
                if (t === 1) expectClose(dense(b + 'ista.hook_code1'), a, tol, b + 'code1');
              }
              expectClose(dense(b + 'ista.hook_code'), a, tol, b + 'code');
              expectClose(dense(b + 'hook_neurons'), a, tol, b + 'hook_neurons (alias)');
              post = lin(dense(b + 'ista.hook_code'), A, N, H, C);
              expectClose(dense(b + 'hook_ista_out'), post, tol, b + 'ista_out');
            } else if (arch === 'crate-complete') {
              const Wc = P(pr + 'ista.weight'),
                xW = lin(u2, Wc, N, C, C),
                xWtW = lin(linT(u2, Wc, null, N, C, C), Wc, N, C, C);
              post = relu(Float64Array.from(u2, (v, i) => v + cfg.eta * (xW[i] - xWtW[i]) - cfg.eta * cfg.lam));
              expectClose(dense(b + 'ista.hook_code'), post, tol, b + 'code');
              expectClose(dense(b + 'hook_neurons'), post, tol, b + 'hook_neurons (alias)');
            } else {
              const pre = linT(u2, P(pr + 'mlp.c_fc.weight'), null, N, C, H);
              expectClose(dense(b + 'mlp.hook_pre'), pre, tol, b + 'pre');
              expectClose(dense(b + 'mlp.hook_post'), relu(pre), tol, b + 'post');
              expectClose(dense(b + 'hook_neurons'), relu(pre), tol, b + 'hook_neurons (alias)');
              const mo = linT(dense(b + 'mlp.hook_post'), P(pr + 'mlp.c_proj.weight'), null, N, H, C);
              expectClose(dense(b + 'hook_mlp_out'), mo, tol, b + 'mlp_out');
              post = addv(xh, mo);
            }
            expectClose(dense(b + 'hook_resid_post'), post, tol, b + 'resid_post');
            if (l + 1 < cfg.nLayer) expect(dense(b + 'hook_resid_post')).toEqual(dense(`blocks.${l + 1}.hook_resid_pre`));
          }
          const lf = ln(
            dense(`blocks.${cfg.nLayer - 1}.hook_resid_post`),
            P('transformer.ln_f.weight'),
            arch === 'gpt2' ? null : P('transformer.ln_f.bias'),
            N,
            C,
          );
          expectClose(dense('ln_final.hook_normalized'), lf, tol, 'ln_final');
          expectClose(dense('unembed.hook_out'), linT(lf, wte, null, N, C, V), tol, 'unembed');
          expect(dense('unembed.hook_out')).toEqual(logits);
        } finally {
          m.free();
        }
      });

      test(`${arch}: clamping blocks.0.hook_neurons coordinate i to v changes the logits exactly as recomputing block 0's output by hand`, () => {
        const { cfg, p } = params(arch);
        const m = new LanguageModel(be!, cfg, { params: p });
        const P = (n: string) => {
          const s = m.spec(n);
          return p.subarray(s.offset, s.offset + s.size);
        };
        try {
          const idx = tokens(cfg),
            C = cfg.nEmbd,
            H = arch === 'crate-complete' ? C : cfg.overcomplete * C,
            N = B * T,
            i = 3,
            v = 2.5;
          const base = m.runWithCache(idx, B, T, { names: ['blocks.0.hook_neurons', 'blocks.0.hook_resid_mid'] });
          const clamp = m.runWithHooks(idx, B, T, {
            'blocks.0.hook_neurons': (a) => {
              for (let bb = 0; bb < B; bb++) for (let t = 0; t < T; t++) a.set(bb, t, i, v);
            },
          });
          // by hand: the neurons with coordinate i set to v, turned into block 0's output
          const a2 = Float64Array.from(base.cache.get('blocks.0.hook_neurons').data);
          for (let n = 0; n < N; n++) a2[n * H + i] = v;
          let out: Float64Array;
          if (arch === 'crate')
            out = lin(a2, P('transformer.h.0.ista.weight'), N, H, C); // D·a2, exact decode
          else if (arch === 'crate-complete')
            out = a2; // the code is the stream
          else out = addv(base.cache.get('blocks.0.hook_resid_mid').data, linT(a2, P('transformer.h.0.mlp.c_proj.weight'), null, N, H, C));
          const byHand = m.runWithHooks(idx, B, T, { 'blocks.0.hook_resid_post': () => out });
          expectClose(clamp.logits!, byHand.logits!, tol, 'clamped logits vs recomputed');
          let moved = 0;
          for (let k = 0; k < clamp.logits!.length; k++) moved = Math.max(moved, Math.abs(clamp.logits![k] - base.logits![k]));
          expect(moved).toBeGreaterThan(1e-3);
          // a hooked forward cannot be differentiated
          m.forward(idx, B, T, idx);
          m.runWithHooks(idx, B, T, { 'blocks.0.hook_neurons': () => undefined }, { targets: idx });
          expect(() => m.backward()).toThrow(/backward\(\) refused/);
          // after a plain forward it works again
          m.forward(idx, B, T, idx);
          expect(() => m.backward()).not.toThrow();
        } finally {
          m.free();
        }
      });
    }

    test('crate: replacing a1 reruns the remaining ISTA steps from it; a uniform pattern averages the values', () => {
      const { cfg, p } = params('crate');
      const m = new LanguageModel(be!, cfg, { params: p });
      const A = (() => {
        const s = m.spec('transformer.h.0.ista.weight');
        return p.subarray(s.offset, s.offset + s.size);
      })();
      try {
        const idx = tokens(cfg),
          C = cfg.nEmbd,
          H = cfg.overcomplete * C,
          N = B * T,
          NH = cfg.nHead,
          hp = C / NH;
        let u: Float64Array | null = null,
          seen: Float64Array | null = null,
          qkv: Float64Array | null = null,
          z: Float64Array | null = null;
        m.runWithHooks(idx, B, T, [
          [
            'blocks.0.ln2.hook_normalized',
            (a) => {
              u = Float64Array.from(a.data);
            },
          ],
          ['blocks.0.ista.hook_code1', (a) => a.data.map(() => 0.25)],
          [
            'blocks.0.ista.hook_code',
            (a) => {
              seen = Float64Array.from(a.data);
            },
          ],
          [
            'blocks.1.attn.hook_qkv',
            (a) => {
              qkv = Float64Array.from(a.data);
            },
          ],
          [
            'blocks.1.attn.hook_pattern',
            (a) => {
              for (let bb = 0; bb < B; bb++)
                for (let h = 0; h < NH; h++) for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) a.set(bb, h, i, j, j <= i ? 1 / (i + 1) : 0);
            },
          ],
          [
            'blocks.1.attn.hook_z',
            (a) => {
              z = Float64Array.from(a.data);
            },
          ],
        ]);
        let a = new Float64Array(N * H).fill(0.25);
        for (let t = 2; t <= cfg.istaSteps; t++) {
          const r = Float64Array.from(u!, (v, i) => v - lin(a, A, N, H, C)[i]);
          const gr = linT(r, A, null, N, C, H);
          a = relu(Float64Array.from(a, (v, i) => v + cfg.eta * gr[i] - cfg.eta * cfg.lam));
        }
        expectClose(seen!, a, tol, 'a_steps from a replaced a1');
        const want = new Float64Array(N * C);
        for (let bb = 0; bb < B; bb++)
          for (let i = 0; i < T; i++)
            for (let j = 0; j <= i; j++) for (let c = 0; c < C; c++) want[(bb * T + i) * C + c] += qkv![(bb * T + j) * C + c] / (i + 1);
        void hp;
        expectClose(z!, want, tol, 'z from a uniform causal pattern');
      } finally {
        m.free();
      }
    });
  });
}

// What holds for any architecture, read from the blocks' declarations only: the generic half of
// this file, run on every registered architecture (a test-registered toy included).
for (const { name: bname, be, tol } of backends) {
  const d = be ? describe : describe.skip;
  d(`hook points of every registered architecture on ${bname}`, () => {
    for (const arch of ARCHS_UNDER_TEST) {
      test(`${arch}: every hook point has its declared shape, the stream hooks chain, and activations() lists the declared stored tensors`, () => {
        const { cfg, p } = params(arch);
        const m = new LanguageModel(be!, cfg, { params: p });
        try {
          const idx = tokens(cfg);
          const { cache, logits } = m.runWithCache(idx, B, T);
          const pts = hookPoints(cfg, B, T);
          expect(pts.map((pt) => pt.name)).toEqual(m.hookNames());
          for (const pt of pts) {
            expect(cache.get(pt.name).shape, pt.name).toEqual(pt.shape);
            expect(m.hookShape(pt.name, B, T), pt.name).toEqual(pt.shape);
          }
          const dense = (n: string) => toDense(cache.get(n));
          expectClose(dense('blocks.0.hook_resid_pre'), addv(dense('hook_embed'), dense('hook_pos_embed')), tol, 'resid_pre of block 0');
          for (let l = 0; l < cfg.nLayer; l++) {
            expect(dense(`blocks.${l}.hook_neurons`), `layer ${l} alias`).toEqual(dense(neuronHook(cfg, l)));
            if (l + 1 < cfg.nLayer) expect(dense(`blocks.${l}.hook_resid_post`)).toEqual(dense(`blocks.${l + 1}.hook_resid_pre`));
          }
          expect(dense('unembed.hook_out')).toEqual(logits);
          // the tensors a plain forward keeps, under the names and shapes the blocks declare
          m.forward(idx, B, T);
          const acts = m.activations();
          const stored = m.blocks.flatMap((b) => b.hooks.filter((h) => h.tensor).map((h) => `blocks.${b.layer}.${h.name}`));
          expect(acts.map((a) => a.name)).toEqual([...stored, 'ln_final.hook_normalized', 'unembed.hook_out']);
          for (const a of acts) expect(a.data, a.name).toEqual(dense(a.name));
        } finally {
          m.free();
        }
      });

      test(`${arch}: a replaced value is what the rest of the forward uses; a hooked forward refuses backward`, () => {
        const { cfg, p } = params(arch);
        const m = new LanguageModel(be!, cfg, { params: p });
        try {
          const idx = tokens(cfg),
            plain = m.forward(idx, B, T).logits!;
          expect(m.runWithHooks(idx, B, T, { 'blocks.0.hook_resid_post': () => undefined }).logits).toEqual(plain);
          const set = (a: { shape: number[]; set: (...x: number[]) => void }) => {
            for (let bb = 0; bb < B; bb++) for (let t = 0; t < T; t++) a.set(bb, t, 1, 2.5);
          };
          const unclamped = m.runWithCache(idx, B, T, { names: ['blocks.0.hook_resid_post'] });
          const viaAlias = m.runWithHooks(idx, B, T, { 'blocks.0.hook_neurons': set });
          expect(m.runWithHooks(idx, B, T, { [neuronHook(cfg, 0)]: set }).logits).toEqual(viaAlias.logits);
          let moved = 0;
          for (let k = 0; k < plain.length; k++) moved = Math.max(moved, Math.abs(viaAlias.logits![k] - plain[k]));
          expect(moved).toBeGreaterThan(1e-3);
          // the clamp reaches the head only through the stream: replaying block 0's clamped output gives the same logits
          let post: Float64Array | null = null;
          m.runWithHooks(idx, B, T, [
            ['blocks.0.hook_neurons', set],
            [
              'blocks.0.hook_resid_post',
              (a) => {
                post = toDense(a);
              },
            ],
          ]);
          expect(post).not.toEqual(toDense(unclamped.cache.get('blocks.0.hook_resid_post')));
          expectClose(m.runWithHooks(idx, B, T, { 'blocks.0.hook_resid_post': () => post! }).logits!, viaAlias.logits!, tol, 'replayed stream');
          m.runWithHooks(idx, B, T, { 'blocks.0.hook_neurons': () => undefined }, { targets: idx });
          expect(() => m.backward()).toThrow(/backward\(\) refused/);
          m.forward(idx, B, T, idx);
          expect(() => m.backward()).not.toThrow();
        } finally {
          m.free();
        }
      });
    }
  });
}

describe('hook API', () => {
  const { cfg, p } = params('crate');
  test('stopAtLayer runs only the blocks before it; unknown names are usage errors that list the valid ones', () => {
    const m = new LanguageModel(new ReferenceBackend(), cfg, { params: p });
    const idx = tokens(cfg);
    const r = m.runWithCache(idx, B, T, { names: ['blocks.0.hook_neurons', 'blocks.0.hook_resid_post'], stopAtLayer: 1 });
    expect(r.logits).toBeUndefined();
    expect(r.cache.keys().sort()).toEqual(['blocks.0.hook_neurons', 'blocks.0.hook_resid_post']);
    const full = m.runWithCache(idx, B, T, { names: ['blocks.0.hook_resid_post'] });
    expect(r.cache.get('blocks.0.hook_resid_post').data).toEqual(full.cache.get('blocks.0.hook_resid_post').data);
    expect(() => m.runWithCache(idx, B, T, { names: ['blocks.0.mlp.hook_post'] })).toThrow(UsageError);
    expect(() => m.runWithCache(idx, B, T, { names: ['blocks.7.hook_neurons'] })).toThrow(/the model has 2 layers/);
    expect(() => m.runWithCache(idx, B, T, { names: ['blocks.0.nope'] })).toThrow(/ista\.hook_code/);
    expect(() => m.runWithCache(idx, B, T, { stopAtLayer: 3 })).toThrow(/stopAtLayer/);
    expect(() => m.runWithHooks(idx, B, T, { 'blocks.0.hook_neurons': () => [1, 2, 3] })).toThrow(/returned 3 values/);
    m.free();
  });

  test('a forward without hooks downloads only the logits; a cached forward only the named tensors', () => {
    const ref = new ReferenceBackend();
    let downloads = 0,
      uploads = 0;
    const counting = new Proxy(ref, {
      get(target, prop, recv) {
        const v = Reflect.get(target, prop, recv);
        if (prop === 'download')
          return (b: Float64Array) => {
            downloads++;
            return ref.download(b);
          };
        if (prop === 'upload')
          return (b: Float64Array, s: ArrayLike<number>) => {
            uploads++;
            ref.upload(b, s);
          };
        return typeof v === 'function' ? v.bind(target) : v;
      },
    }) as ReferenceBackend;
    const m = new LanguageModel(counting, cfg, { params: p });
    const idx = tokens(cfg);
    downloads = 0;
    uploads = 0;
    m.forward(idx, B, T, null, { returnLogits: false });
    expect([downloads, uploads]).toEqual([0, 0]);
    m.forward(idx, B, T);
    expect([downloads, uploads]).toEqual([1, 0]);
    downloads = 0;
    m.runWithCache(idx, B, T, { names: ['blocks.1.hook_neurons', 'blocks.0.hook_resid_mid'], returnLogits: false });
    expect([downloads, uploads]).toEqual([2, 0]);
    downloads = 0;
    m.runWithHooks(idx, B, T, { 'blocks.0.hook_resid_mid': () => undefined }, { returnLogits: false });
    expect([downloads, uploads]).toEqual([1, 1]);
    m.free();
  });

  test("the README's hook table lists exactly the hook names of each architecture, and is the fold over the blocks' declarations", () => {
    const readme = readFileSync('README.md', 'utf8');
    const start = readme.indexOf('## Hooks');
    const end = readme.indexOf('\n## ', start + 1);
    const section = readme.slice(start, end < 0 ? undefined : end);
    const rows = [...section.matchAll(/^\| `([^`]+)` \| ([^|]+) \| ([^|]+) \| (.+) \|$/gm)].map((r) => ({
      name: r[1],
      archs: r[2].trim(),
      shape: r[3].trim(),
      doc: r[4].trim(),
    }));
    // the table is generated (node scripts/hook-table.mjs prints it), for the built-in architectures
    expect(rows).toEqual(hookTable(ARCHS.map(architecture)));
    for (const arch of ARCHS) {
      const c = makeConfig(undefined, { arch });
      const want = hookPoints(c, 1, 1)
        .map((h) => h.name.replace(/^blocks\.0\./, 'blocks.{l}.'))
        .filter((n) => !/^blocks\.[1-9]/.test(n));
      const mine = rows.filter((r) => r.archs === 'all' || r.archs.split(/,\s*/).includes(arch)).filter((r) => r.name !== 'blocks.{l}.hook_neurons');
      expect(new Set(mine.map((r) => r.name)), arch).toEqual(new Set(want));
      for (const r of mine) {
        const pt = hookPoints(c, 1, 1).find((h) => h.name === r.name.replace('{l}', '0'))!;
        const sym =
          pt.shape.length === 4 && pt.shape[1] === c.nHead
            ? '(B, NH, T, T)'
            : pt.shape.length === 4
              ? '(B, T, NH, p)'
              : `(B, T, ${pt.shape[2] === c.nEmbd ? 'd' : pt.shape[2] === c.vocabSize ? 'V' : 'h'})`;
        expect(r.shape, `${arch} ${r.name}`).toBe(sym);
      }
    }
  });
});
