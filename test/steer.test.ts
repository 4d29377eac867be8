// Steering (spec 8): a neuron clamped to a constant at every position, checked against the forward
// recomputed by hand from the unclamped activations (CRATE: LN₂ output → two ISTA steps → clamp →
// decode D·a2 → ln_f → tied head; GPT-2: MLP hidden → clamp → c_proj + residual → ln_f → head), on
// the float64 reference and on the cpu twin (float32 tolerance).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LanguageModel } from '../src/model/lm.js';
import { makeConfig, type ModelConfig } from '../src/model/config.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import type { Backend } from '../src/backend/types.js';
import { saveCheckpoint } from '../src/checkpoint/checkpoint.js';
import { generate } from '../src/sample/generate.js';
import { checkClamp, clampHooks, parseClamp } from '../src/steer/clamp.js';
import { compareDistributions, klDivergence, nextToken, softmax, steer, sweep, topIds } from '../src/steer/steer.js';
import { nativeBackends } from './helpers/backends.js';
import { capture } from './helpers/capture.js';

const natives = await nativeBackends();
const cpu = natives.find((n) => n.name === 'cpu')?.backend;

function cfg(arch: ModelConfig['arch'], nLayer: number, vocabSize = 24): ModelConfig {
  return { ...makeConfig('golden'), arch, vocabSize, blockSize: 8, nLayer, nHead: 2, nEmbd: 8 };
}

/** A model whose codes are not all zero: random init with a larger ISTA matrix. */
function model<Buf>(backend: Backend<Buf>, c: ModelConfig, seed = 7): LanguageModel<Buf> {
  const ref = new LanguageModel(new ReferenceBackend(), c, { seed });
  const p = ref.getParams();
  ref.free();
  // Scale the embeddings up so LayerNorm outputs and codes have some spread (the init is 0.02).
  const m = new LanguageModel(backend, c, { params: p });
  const wte = m.spec('transformer.wte.weight');
  for (let i = wte.offset; i < wte.offset + wte.size; i++) p[i] *= 25;
  m.setParams(p);
  return m;
}

const P = (m: LanguageModel<unknown>, name: string): Float64Array => {
  const s = m.spec(name);
  return m.getParams().slice(s.offset, s.offset + s.size);
};

/** x (N×C) → LayerNorm with weight w and bias b (population variance, eps inside the sqrt). */
function layerNorm(x: Float64Array, N: number, C: number, w: Float64Array, b: Float64Array | null, eps: number): Float64Array {
  const out = new Float64Array(N * C);
  for (let n = 0; n < N; n++) {
    let mu = 0,
      v = 0;
    for (let c = 0; c < C; c++) mu += x[n * C + c];
    mu /= C;
    for (let c = 0; c < C; c++) v += (x[n * C + c] - mu) ** 2;
    v /= C;
    const r = 1 / Math.sqrt(v + eps);
    for (let c = 0; c < C; c++) out[n * C + c] = (x[n * C + c] - mu) * r * w[c] + (b ? b[c] : 0);
  }
  return out;
}

/** y = x Wᵀ for x (N×K), W (M×K). */
function linear(x: Float64Array, W: Float64Array, N: number, K: number, M: number): Float64Array {
  const y = new Float64Array(N * M);
  for (let n = 0; n < N; n++)
    for (let m = 0; m < M; m++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x[n * K + k] * W[m * K + k];
      y[n * M + m] = s;
    }
  return y;
}

/** The last position's logits from the final residual stream x (T×C). */
function head(m: LanguageModel<unknown>, x: Float64Array, T: number): Float64Array {
  const c = m.config,
    C = c.nEmbd;
  const lnf = layerNorm(x, T, C, P(m, 'transformer.ln_f.weight'), c.arch === 'gpt2' ? null : P(m, 'transformer.ln_f.bias'), c.lnEps);
  return linear(lnf.slice((T - 1) * C), P(m, 'transformer.wte.weight'), 1, C, c.vocabSize);
}

/** CRATE, one layer: logits after clamping a2[:, i] = v, recomputed from the LN₂ output u. */
function crateByHand(m: LanguageModel<unknown>, ids: number[], i: number, v: number | null): Float64Array {
  const c = m.config,
    T = ids.length,
    C = c.nEmbd,
    H = c.overcomplete * C,
    eta = c.eta,
    lam = c.lam;
  const u = m.runWithCache(ids, 1, T, { names: ['blocks.0.ln2.hook_normalized'] }).cache.get('blocks.0.ln2.hook_normalized').data as Float64Array;
  const A = P(m, 'transformer.h.0.ista.weight'); // (H×C) = Dᵀ
  const relu = (x: number) => (x > 0 ? x : 0);
  const uA = linear(u, A, T, C, H); // u Aᵀ  (T×H)
  const a1 = uA.map((x) => relu(eta * x - eta * lam));
  const At = new Float64Array(C * H); // Aᵀ as (C×H) rows, so a A = linear(a, Aᵀ)
  for (let k = 0; k < H; k++) for (let cc = 0; cc < C; cc++) At[cc * H + k] = A[k * C + cc];
  const r = u.map((x, j) => x - linear(a1, At, T, H, C)[j]);
  const rA = linear(r, A, T, C, H);
  const a2 = a1.map((x, j) => relu(x + eta * rA[j] - eta * lam));
  if (v !== null) for (let t = 0; t < T; t++) a2[t * H + i] = v;
  return head(m, linear(a2, At, T, H, C), T); // x = a2 A = D a2, no residual
}

/** GPT-2, one layer: logits after clamping the post-ReLU hidden h[:, i] = v. */
function gpt2ByHand(m: LanguageModel<unknown>, ids: number[], i: number, v: number): Float64Array {
  const c = m.config,
    T = ids.length,
    C = c.nEmbd,
    H = c.overcomplete * C;
  const cache = m.runWithCache(ids, 1, T, { names: ['blocks.0.hook_resid_mid', 'blocks.0.ln2.hook_normalized'] }).cache;
  const mid = cache.get('blocks.0.hook_resid_mid').data as Float64Array;
  const u = cache.get('blocks.0.ln2.hook_normalized').data as Float64Array;
  const hid = linear(u, P(m, 'transformer.h.0.mlp.c_fc.weight'), T, C, H).map((x) => (x > 0 ? x : 0));
  for (let t = 0; t < T; t++) hid[t * H + i] = v;
  const out = linear(hid, P(m, 'transformer.h.0.mlp.c_proj.weight'), T, H, C);
  return head(
    m,
    mid.map((x, j) => x + out[j]),
    T,
  );
}

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
};
const ids = [3, 1, 4, 1, 5, 9];

describe('clamp specs and ranges', () => {
  it('parses L:I=V and names what is wrong with a bad one', () => {
    expect(parseClamp('0:12=5')).toEqual({ layer: 0, neuron: 12, value: 5 });
    expect(parseClamp(' 1 : 40 = -2.5 ')).toEqual({ layer: 1, neuron: 40, value: -2.5 });
    expect(() => parseClamp('0-12=5')).toThrow(/L:I=V/);
    expect(() => parseClamp('0:12=abc')).toThrow(/not a finite number/);
    expect(() => parseClamp('0:12=NaN')).toThrow(/not a finite number/);
  });
  it('refuses a layer or neuron out of range, naming the valid range', () => {
    const c = cfg('crate', 2);
    expect(() => checkClamp(c, { layer: 2, neuron: 0, value: 1 })).toThrow(/layer 2 is out of range: the model has 2 layers \(0\.\.1\)/);
    expect(() => checkClamp(c, { layer: 0, neuron: 32, value: 1 })).toThrow(/neuron 32 is out of range: layer 0 has 32 neurons \(0\.\.31\)/);
    expect(() => checkClamp(cfg('crate-complete', 1), { layer: 0, neuron: 8, value: 1 })).toThrow(/has 8 neurons/);
    expect(() => checkClamp(c, { layer: 0, neuron: 1, value: Infinity })).toThrow(/finite/);
  });
  it('topIds is the k largest, descending, ties to the smaller id', () => {
    const s = [0.1, 0.5, 0.5, 0.9, -1, 0.2];
    expect(topIds((i) => s[i], s.length, 3)).toEqual([3, 1, 2]);
    expect(topIds((i) => s[i], s.length, 10)).toEqual([3, 1, 2, 5, 0, 4]);
  });
});

describe('steer = the forward recomputed by hand with the coordinate set', () => {
  it('CRATE (1 layer, reference): before and after match a hand forward; top sorted by delta', () => {
    const m = model(new ReferenceBackend(), cfg('crate', 1)) as LanguageModel<unknown>;
    const r = steer(m, ids, { layer: 0, neuron: 5, value: 3 }, { top: 24 });
    expect(maxAbs(r.before.logits, crateByHand(m, ids, 5, null))).toBeLessThan(1e-10);
    expect(maxAbs(r.after.logits, crateByHand(m, ids, 5, 3))).toBeLessThan(1e-10);
    expect(maxAbs(r.after.probs, softmax(crateByHand(m, ids, 5, 3)))).toBeLessThan(1e-12);
    expect(maxAbs(r.before.logits, r.after.logits)).toBeGreaterThan(1e-3); // the clamp does something
    for (let k = 0; k < r.top.length; k++) {
      const e = r.top[k];
      expect(e.delta).toBeCloseTo(e.pAfter - e.pBefore, 15);
      expect(e.logitDelta).toBeCloseTo(r.after.logits[e.id] - r.before.logits[e.id], 12);
      if (k) expect(e.delta).toBeLessThanOrEqual(r.top[k - 1].delta);
    }
    expect(r.top.reduce((s, e) => s + e.delta, 0)).toBeCloseTo(0, 12); // all 24 tokens listed: deltas sum to 0
    m.free();
  });

  it('GPT-2 (1 layer, reference): the clamped MLP hidden matches a hand forward', () => {
    const m = model(new ReferenceBackend(), cfg('gpt2', 1)) as LanguageModel<unknown>;
    const r = steer(m, ids, { layer: 0, neuron: 11, value: 4 });
    expect(maxAbs(r.after.logits, gpt2ByHand(m, ids, 11, 4))).toBeLessThan(1e-10);
    m.free();
  });

  it.skipIf(!cpu)('cpu twin: CRATE and GPT-2 clamps match the hand forward and the reference to float32 tolerance', () => {
    for (const arch of ['crate', 'gpt2'] as const) {
      const c = cfg(arch, 1);
      const mc = model(cpu as Backend<unknown>, c) as LanguageModel<unknown>;
      const mr = model(new ReferenceBackend(), c) as LanguageModel<unknown>;
      mr.setParams(mc.getParams()); // the same float32-rounded parameters
      const clamp = { layer: 0, neuron: 6, value: 2.5 };
      const rc = steer(mc, ids, clamp, { top: 5 }),
        rr = steer(mr, ids, clamp, { top: 5 });
      const hand = arch === 'crate' ? crateByHand(mr, ids, 6, 2.5) : gpt2ByHand(mr, ids, 6, 2.5);
      expect(maxAbs(rc.after.logits, hand)).toBeLessThan(1e-4);
      expect(maxAbs(rc.after.probs, rr.after.probs)).toBeLessThan(1e-5);
      expect(maxAbs(rc.before.probs, rr.before.probs)).toBeLessThan(1e-5);
      expect(rc.top.map((e) => e.id)).toEqual(rr.top.map((e) => e.id));
      mc.free();
      mr.free();
    }
  });

  it('CRATE (2 layers): a clamp at layer 0 equals replacing its block output by the hand decode D·a2', () => {
    const c = cfg('crate', 2);
    const m = model(new ReferenceBackend(), c) as LanguageModel<unknown>;
    const T = ids.length,
      C = c.nEmbd,
      H = c.overcomplete * C,
      i = 9,
      v = 1.75;
    const codes = m.runWithCache(ids, 1, T, { names: ['blocks.0.hook_neurons'] }).cache.get('blocks.0.hook_neurons').data as Float64Array;
    const a2 = codes.slice();
    for (let t = 0; t < T; t++) a2[t * H + i] = v;
    const A = P(m, 'transformer.h.0.ista.weight');
    const x = new Float64Array(T * C);
    for (let t = 0; t < T; t++)
      for (let cc = 0; cc < C; cc++) {
        let s = 0;
        for (let k = 0; k < H; k++) s += a2[t * H + k] * A[k * C + cc];
        x[t * C + cc] = s;
      }
    const viaResid = nextToken(m, ids, { 'blocks.0.hook_resid_post': () => x });
    const r = steer(m, ids, { layer: 0, neuron: i, value: v });
    expect(maxAbs(r.after.logits, viaResid.logits)).toBeLessThan(1e-12);
    m.free();
  });

  it('--all-layers clamps the same index in every layer (the GPT-2 quirk), which differs from one layer', () => {
    const c = cfg('gpt2', 2);
    const m = model(new ReferenceBackend(), c) as LanguageModel<unknown>;
    const hooks = clampHooks(c, [{ layer: 1, neuron: 4, value: 3 }], { allLayers: true });
    expect(Object.keys(hooks).sort()).toEqual(['blocks.0.hook_neurons', 'blocks.1.hook_neurons']);
    const all = steer(m, ids, { layer: 1, neuron: 4, value: 3 }, { allLayers: true });
    const set = (a: { shape: number[]; set: (b: number, t: number, i: number, v: number) => unknown }) => {
      for (let t = 0; t < a.shape[1]; t++) a.set(0, t, 4, 3);
    };
    const explicit = nextToken(m, ids, { 'blocks.0.mlp.hook_post': set, 'blocks.1.mlp.hook_post': set });
    expect(maxAbs(all.after.logits, explicit.logits)).toBeLessThan(1e-12);
    const one = steer(m, ids, { layer: 1, neuron: 4, value: 3 });
    expect(maxAbs(one.after.logits, all.after.logits)).toBeGreaterThan(1e-6);
    m.free();
  });

  it('sweep runs the unclamped forward once and equals steer at each value; the effect grows with V', () => {
    const m = model(new ReferenceBackend(), cfg('crate', 1)) as LanguageModel<unknown>;
    const rs = sweep(m, ids, 0, 5, [0.5, 2, 8]);
    rs.forEach((r, k) => expect(maxAbs(r.after.probs, steer(m, ids, { layer: 0, neuron: 5, value: [0.5, 2, 8][k] }).after.probs)).toBe(0));
    expect(rs[2].kl).toBeGreaterThan(rs[0].kl);
    m.free();
  });

  it('kl is KL(after ‖ before) = Σ p_after·ln(p_after / p_before), recomputed from the two reported distributions', () => {
    // the direction documented in SteerResult.kl, `crate-ts steer --help` and the README's steering example
    const klAfterBefore = (a: Float64Array, b: Float64Array) => {
      let s = 0;
      for (let i = 0; i < a.length; i++) if (a[i] > 0) s += a[i] * Math.log(a[i] / b[i]);
      return s;
    };
    const m = model(new ReferenceBackend(), cfg('crate', 1)) as LanguageModel<unknown>;
    const rs = [steer(m, ids, { layer: 0, neuron: 5, value: 3 }), ...sweep(m, ids, 0, 9, [0.5, 6])];
    for (const r of rs) {
      const want = klAfterBefore(r.after.probs, r.before.probs),
        other = klAfterBefore(r.before.probs, r.after.probs);
      expect(r.kl).toBeGreaterThan(0);
      expect(Math.abs(r.kl - want)).toBeLessThanOrEqual(1e-12 * want);
      // the two directions differ here by far more than the tolerance, so a swap cannot pass
      expect(Math.abs(want - other)).toBeGreaterThan(1e-3 * want);
    }
    m.free();
    // and on a distribution written out by hand: KL([½, ½] ‖ [0.9, 0.1]) = ½ln(5/9) + ½ln 5; a zero in p adds nothing
    const half = { logits: new Float64Array(2), probs: Float64Array.of(0.9, 0.1) };
    const even = { logits: new Float64Array(2), probs: Float64Array.of(0.5, 0.5) };
    expect(compareDistributions(half, even, 2, 2).kl).toBeCloseTo(0.5 * Math.log(5 / 9) + 0.5 * Math.log(5), 15);
    expect(klDivergence([0, 1], [0.5, 0.5])).toBeCloseTo(Math.log(2), 15);
  });

  it('generation holds the clamp at every step: greedy decoding equals the argmax of the clamped full forward', () => {
    const m = model(new ReferenceBackend(), cfg('crate', 2)) as LanguageModel<unknown>;
    // a neuron whose clamp changes the greedy next token after the prompt (so the check has teeth)
    const argmax = (p: Float64Array) => topIds((j) => p[j], p.length, 1)[0];
    const free0 = argmax(nextToken(m, [2, 7]).probs);
    const neuron = Array.from({ length: 32 }, (_, i) => i).find(
      (i) => argmax(nextToken(m, [2, 7], clampHooks(m.config, [{ layer: 1, neuron: i, value: 20 }])).probs) !== free0,
    );
    expect(neuron).toBeDefined();
    const hooks = clampHooks(m.config, [{ layer: 1, neuron: neuron as number, value: 20 }]);
    const got = generate(m, [2, 7], { tokens: 5, temperature: 0, hooks });
    const seq = [2, 7],
      want: number[] = [];
    for (let k = 0; k < 5; k++) {
      const id = argmax(nextToken(m, seq, hooks).probs);
      want.push(id);
      seq.push(id);
    }
    expect(got).toEqual(want);
    expect(generate(m, [2, 7], { tokens: 5, temperature: 0 })).not.toEqual(want); // and the clamp changed the text
    m.free();
  });
});

// ---- the commands ----------------------------------------------------------------------------

let dir: string, ckpt: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-steer-'));
  ckpt = path.join(dir, 'ckpt.safetensors');
  const m = model(new ReferenceBackend(), cfg('crate', 2, 256));
  saveCheckpoint(ckpt, { model: m as LanguageModel<unknown>, tokenizer: 'byte' });
  m.free();
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('crate-ts steer / sample --clamp', () => {
  it('--json prints {prompt, layer, neuron, value, top} sorted by delta, equal to the library on the reference', async () => {
    const r = await capture([
      'steer',
      '--checkpoint',
      ckpt,
      '--layer',
      '1',
      '--neuron',
      '17',
      '--value',
      '-3',
      '--prompt',
      'ab cd',
      '--top',
      '5',
      '--json',
      '--backend',
      'reference',
    ]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j).toMatchObject({ prompt: 'ab cd', layer: 1, neuron: 17, value: -3 });
    expect(j.top).toHaveLength(5);
    for (const e of j.top) expect(Object.keys(e)).toEqual(['id', 'token', 'pBefore', 'pAfter', 'delta', 'logitDelta']);
    const m = model(new ReferenceBackend(), cfg('crate', 2, 256)) as LanguageModel<unknown>;
    const lib = steer(m, Array.from(Buffer.from('ab cd')), { layer: 1, neuron: 17, value: -3 }, { top: 5 });
    m.free();
    expect(j.top.map((e: { id: number }) => e.id)).toEqual(lib.top.map((e) => e.id));
    j.top.forEach((e: { delta: number; token: string; id: number }, k: number) => {
      expect(e.delta).toBeCloseTo(lib.top[k].delta, 12);
      expect(e.token).toBe(new TextDecoder().decode(Uint8Array.of(e.id)));
    });
  });

  it('the text view lists both distributions, the rising tokens and KL; --sweep tabulates the values', async () => {
    const r = await capture(['steer', '--checkpoint', ckpt, '--layer', '0', '--neuron', '3', '--value', '4', '--backend', 'reference']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/prompt "1 2 3 4 5" \(9 tokens; the last 8 fit the block size\); clamp blocks\.0\.hook_neurons\[3\] = 4/);
    expect(r.out).toMatch(/without the clamp/);
    expect(r.out).toMatch(/tokens whose probability rises most/);
    expect(r.out).toMatch(/KL\(after \|\| before\) = \d/);
    const s = await capture(['steer', '--checkpoint', ckpt, '--layer', '0', '--neuron', '3', '--sweep', '0,2,5,10', '--backend', 'reference', '--json']);
    expect(s.code).toBe(0);
    const j = JSON.parse(s.out);
    expect(j.sweep.map((x: { value: number }) => x.value)).toEqual([0, 2, 5, 10]);
    const t = await capture(['steer', '--checkpoint', ckpt, '--layer', '0', '--neuron', '3', '--sweep', '0,2,5,10', '--backend', 'reference']);
    expect(t.out).toMatch(/no clamp\s+0\s+2\s+5\s+10/);
  });

  it('bad input: one line, exit 2 for a layer/neuron out of range or a bad value, 1 for a missing checkpoint', async () => {
    const cases: [string[], number, RegExp][] = [
      [['--layer', '2', '--neuron', '0', '--value', '1'], 2, /layer 2 is out of range: the model has 2 layers/],
      [['--layer', '0', '--neuron', '32', '--value', '1'], 2, /neuron 32 is out of range: layer 0 has 32 neurons \(0\.\.31\)/],
      [['--layer', '0', '--neuron', '1', '--value', 'x'], 2, /--value must be a finite number/],
      [['--layer', '0', '--neuron', '1'], 2, /either --value V or --sweep/],
      [['--layer', '0', '--neuron', '1', '--value', '1', '--prompt', ''], 2, /--prompt is empty/],
    ];
    for (const [args, code, re] of cases) {
      const r = await capture(['steer', '--checkpoint', ckpt, '--backend', 'reference', ...args]);
      expect(r.code).toBe(code);
      expect(r.err.trim().split('\n')).toHaveLength(1);
      expect(r.err).toMatch(re);
    }
    const miss = await capture(['steer', '--checkpoint', path.join(dir, 'nope.safetensors'), '--layer', '0', '--neuron', '0', '--value', '1']);
    expect(miss.code).toBe(1);
    expect(miss.err).toMatch(/does not exist/);
  });

  it('sample --clamp holds the clamp while decoding (greedy text differs) and refuses a bad spec', async () => {
    const base = ['sample', '--checkpoint', ckpt, '--backend', 'reference', '--prompt', 'ab', '--tokens', '12', '--temperature', '0'];
    const plain = await capture(base),
      clamped = await capture([...base, '--clamp', '1:5=40']);
    expect(plain.code).toBe(0);
    expect(clamped.code).toBe(0);
    const m = model(new ReferenceBackend(), cfg('crate', 2, 256)) as LanguageModel<unknown>;
    const want = generate(m, [97, 98], { tokens: 12, temperature: 0, hooks: clampHooks(m.config, [{ layer: 1, neuron: 5, value: 40 }]) });
    m.free();
    expect(Buffer.from(clamped.out.slice(2, -1), 'utf8')).toEqual(Buffer.from(new TextDecoder().decode(new Uint8Array(want)), 'utf8'));
    expect(clamped.out).not.toBe(plain.out);
    const bad = await capture([...base, '--clamp', '9:0=1']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/layer 9 is out of range/);
    const bad2 = await capture([...base, '--clamp', 'zero']);
    expect(bad2.code).toBe(2);
    expect(bad2.err).toMatch(/L:I=V/);
  });
});

describe('steer: options, prompt window and the listed tokens', () => {
  it('lists top 10 by default; topBefore/topAfter are the most likely tokens with their probabilities; maxId bounds every list', () => {
    const m = model(new ReferenceBackend(), cfg('crate', 1)) as LanguageModel<unknown>;
    const r = steer(m, ids, { layer: 0, neuron: 5, value: 3 });
    expect(r.top).toHaveLength(10);
    expect([r.layer, r.neuron, r.value, r.allLayers]).toEqual([0, 5, 3, false]);
    expect(r.prompt).toEqual(ids);
    for (const [list, probs] of [
      [r.topBefore, r.before.probs],
      [r.topAfter, r.after.probs],
    ] as const) {
      const order = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a] || a - b);
      expect(list.map((e) => e.id)).toEqual(order.slice(0, 10));
      for (const e of list) expect(e.p).toBe(probs[e.id]);
    }
    const bounded = steer(m, ids, { layer: 0, neuron: 5, value: 3 }, { top: 30, maxId: 7 });
    for (const list of [bounded.top, bounded.topBefore, bounded.topAfter]) expect(list.map((e) => e.id).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(steer(m, ids, { layer: 0, neuron: 5, value: 3 }, { allLayers: true }).allLayers).toBe(true);
    m.free();
  });

  it('a prompt longer than the block keeps its last blockSize tokens; bad top, empty prompt and empty sweep are UsageErrors', () => {
    const m = model(new ReferenceBackend(), cfg('crate', 1)) as LanguageModel<unknown>;
    const long = [2, 7, 1, 8, 2, 8, 1, 8, 2, 8, 4]; // block 8
    const r = steer(m, long, { layer: 0, neuron: 5, value: 3 });
    expect(r.prompt).toEqual(long.slice(-8));
    expect(maxAbs(r.before.logits, nextToken(m, long.slice(-8)).logits)).toBe(0);
    expect(() => steer(m, ids, { layer: 0, neuron: 5, value: 3 }, { top: 0 })).toThrow(/top must be a positive integer, got 0/);
    expect(() => steer(m, ids, { layer: 0, neuron: 5, value: 3 }, { top: 1.5 })).toThrow(/top must be a positive integer, got 1\.5/);
    expect(() => steer(m, [], { layer: 0, neuron: 5, value: 3 })).toThrow(/the prompt must hold at least one token/);
    expect(() => sweep(m, ids, 0, 5, [])).toThrow(/the sweep needs at least one value/);
    expect(() => sweep(m, ids, 0, 99, [1, 2])).toThrow(/neuron 99 is out of range/);
    m.free();
  });

  it('topIds: a tie at the k boundary keeps the smaller id; NaN scores are skipped; k < 1 is empty', () => {
    const s = [0.1, 0.5, 0.5, 0.9, NaN, 0.2];
    expect(topIds((i) => s[i], s.length, 2)).toEqual([3, 1]);
    expect(topIds((i) => s[i], s.length, 6)).toEqual([3, 1, 2, 5, 0]);
    expect(topIds((i) => s[i], s.length, 0)).toEqual([]);
    expect(topIds(() => 1, 5, 3)).toEqual([0, 1, 2]);
  });

  it('softmax is stable for large logits and sums to 1', () => {
    const p = softmax([1000, 1000 - Math.log(3), -Infinity]);
    expect(p[0]).toBeCloseTo(0.75, 12); // 1000 − ln 3 is rounded to the ulp of 1000 (1.1e-13)
    expect(p[1]).toBeCloseTo(0.25, 12);
    expect(p[2]).toBe(0);
  });
});
