// Checkpoints: round trip of parameters, optimizer moments and training state; PyTorch state_dict
// import rules (tied lm_head, attn.bias mask buffers, _orig_mod. prefix); clear errors for missing,
// mis-shaped and non-finite tensors, another architecture, and corrupt files.
import { sampleHyper } from '../src/testing/checkpoint-fuzz.js';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ReferenceBackend } from '../src/backend/reference.js';
import { LanguageModel } from '../src/model/lm.js';
import { makeConfig, type Arch } from '../src/model/config.js';
import {
  saveCheckpoint,
  saveRunCheckpoint,
  loadCheckpoint,
  modelFromCheckpoint,
  optimizerFromCheckpoint,
  type TrainState,
} from '../src/checkpoint/checkpoint.js';
import { loadStateDict, stateDictFromModel, detectArch, normalizeStateDict, configFromMetadata, configToMetadata } from '../src/checkpoint/statedict.js';
import { serializeSafetensors, writeSafetensors, type TensorInput } from '../src/io/safetensors.js';
import { AdamW } from '../src/train/optimizer.js';
import { ARCHS_UNDER_TEST } from './helpers/archs.js';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-ckpt-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const be = new ReferenceBackend();
const tiny = (arch: Arch = 'crate', over = {}) => makeConfig('golden', { arch, ...over });
const model = (arch: Arch = 'crate', seed = 1, over = {}) => new LanguageModel(be, tiny(arch, over), { seed }) as LanguageModel<unknown>;

function sameBits(a: Float64Array, b: Float64Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

const state = (step: number): TrainState => ({
  step,
  dataRng: [1, 2, 3, 4],
  tokensSeen: 100,
  elapsed: 1.5,
  hyper: sampleHyper(),
  data: { source: 'x', contentHash: 'abc', kind: 'text', split: 'last 10%', unigramEntropy: 2 },
  history: [{ step: 1, loss: 3, lr: 1e-3 }],
  evals: [],
});

describe('checkpoint round trip', () => {
  for (const arch of ARCHS_UNDER_TEST) {
    it(`${arch}: parameters, moments, config, tokenizer and train state come back bitwise`, () => {
      const m = model(arch, 5);
      const opt = new AdamW(m as LanguageModel<Float64Array>);
      // make the moments non-trivial with one real step
      m.forward([1, 2, 3, 4, 5, 6, 7, 8], 1, 8, [2, 3, 4, 5, 6, 7, 8, 9]);
      m.backward();
      opt.step(1e-2);
      const file = path.join(dir, `${arch}.safetensors`);
      const o = opt.getState();
      saveCheckpoint(file, { model: m, tokenizer: 'byte', optimizer: o, train: state(1) });
      const ck = loadCheckpoint(file);
      expect(ck.config).toEqual(m.config);
      expect(ck.tokenizer).toBe('byte');
      expect(ck.dtype).toBe('F64');
      expect(ck.train).toEqual(state(1));
      expect(ck.file.tensors.has('lm_head.weight')).toBe(false);
      const m2 = modelFromCheckpoint(ck, be);
      expect(sameBits(m2.getParams(), m.getParams())).toBe(true);
      const mom = optimizerFromCheckpoint(ck, m2 as LanguageModel<unknown>)!;
      expect(sameBits(mom.m, o.m)).toBe(true);
      expect(sameBits(mom.v, o.v)).toBe(true);
      expect(fs.readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
      m.free();
      m2.free();
      opt.free();
    });
  }

  // Every preset and fixture has η = λ = 0.1, where a checkpoint that wrote λ in η's place (or a
  // reader that swapped them) would round-trip unnoticed. η = 0.3, λ = 0.05 keeps the threshold
  // η·λ the same under a swap (0.015) but not the step η, so a swapped model computes other logits.
  for (const arch of ['crate', 'crate-complete'] as const) {
    it(`${arch} with η 0.3 ≠ λ 0.05: single file and run directory give back η, λ and the logits bitwise`, () => {
      const m = model(arch, 4, { eta: 0.3, lam: 0.05 });
      const ids = [1, 2, 3, 4, 5, 6, 7, 8];
      const logits = (mm: LanguageModel<unknown>) => Float64Array.from(mm.forward(ids, 1, 8, null, { grad: false }).logits as Float64Array);
      const want = logits(m);
      // the model is sensitive to the order: the same weights with η and λ swapped give other logits
      const swapped = new LanguageModel(be, { ...m.config, eta: 0.05, lam: 0.3 }, { params: m.getParams() }) as LanguageModel<unknown>;
      expect(sameBits(logits(swapped), want)).toBe(false);
      swapped.free();

      const single = path.join(dir, `etalam-${arch}.safetensors`);
      saveCheckpoint(single, { model: m, tokenizer: 'byte' });
      const run = path.join(dir, `etalam-run-${arch}`);
      fs.mkdirSync(run);
      saveRunCheckpoint(run, { model: m, tokenizer: 'byte' });
      const cj = JSON.parse(fs.readFileSync(path.join(run, 'config.json'), 'utf8')) as { eta: number; lam: number };
      expect([cj.eta, cj.lam]).toEqual([0.3, 0.05]);
      for (const file of [single, run]) {
        const ck = loadCheckpoint(file);
        expect([ck.config.eta, ck.config.lam], file).toEqual([0.3, 0.05]);
        expect(JSON.parse(ck.file.metadata.config)).toMatchObject({ eta: 0.3, lam: 0.05 });
        const m2 = modelFromCheckpoint(ck, be);
        expect(sameBits(logits(m2), want), file).toBe(true);
        m2.free();
      }
      m.free();
    });
  }

  it('F32 state_dicts load (values rounded to float32)', () => {
    const m = model();
    const sd = stateDictFromModel(m, 'F32');
    expect(sd['transformer.wte.weight'].dtype).toBe('F32');
    const m2 = model('crate', 99);
    loadStateDict(m2, sd);
    const a = m.getParams(),
      b = m2.getParams();
    for (let i = 0; i < a.length; i++) expect(b[i]).toBe(Math.fround(a[i]));
    m.free();
    m2.free();
  });

  it('config metadata is the fixture format (snake_case) and parses back, also camelCase', () => {
    const c = tiny('gpt2');
    const md = configToMetadata(c);
    expect(JSON.parse(md.config)).toMatchObject({ arch: 'gpt2', vocab_size: 11, n_layer: 2, n_embd: 8, ln_eps: 1e-5 });
    expect(configFromMetadata(md)).toEqual(c);
    expect(configFromMetadata(JSON.stringify(c))).toEqual(c);
  });
});

describe('loading a PyTorch state_dict', () => {
  it('accepts the tied lm_head.weight, attn.bias mask buffers and the _orig_mod. prefix', () => {
    const m = model('crate', 3);
    const sd = stateDictFromModel(m, 'F64');
    const torchLike: Record<string, TensorInput> = {};
    for (const [k, v] of Object.entries(sd)) torchLike['_orig_mod.' + k] = v;
    torchLike['_orig_mod.lm_head.weight'] = sd['transformer.wte.weight'];
    torchLike['_orig_mod.transformer.h.0.attn.bias'] = { dtype: 'F32', shape: [1, 1, 8, 8], data: new Float32Array(64).fill(1) };
    const file = path.join(dir, 'torch.safetensors');
    writeSafetensors(file, torchLike);
    const parsed = new Map(Object.entries(torchLike).map(([k, v]) => [k, { shape: v.shape, data: v.data as ArrayLike<number> }]));
    const m2 = model('crate', 4);
    const { ignored } = loadStateDict(m2, parsed);
    expect(ignored.join('\n')).toMatch(/attn\.bias \(causal-mask buffer\)/);
    expect(ignored.join('\n')).toMatch(/lm_head\.weight \(tied/);
    expect(sameBits(m2.getParams(), m.getParams())).toBe(true);
    // a state_dict holding only lm_head (no wte) loads it as the tied embedding
    const onlyHead: Record<string, TensorInput> = { ...sd, 'lm_head.weight': sd['transformer.wte.weight'] };
    delete onlyHead['transformer.wte.weight'];
    const m3 = model('crate', 5);
    loadStateDict(m3, new Map(Object.entries(onlyHead).map(([k, v]) => [k, { shape: v.shape, data: v.data as ArrayLike<number> }])));
    expect(sameBits(m3.getParams(), m.getParams())).toBe(true);
    m.free();
    m2.free();
    m3.free();
  });

  const asMap = (sd: Record<string, TensorInput>) => new Map(Object.entries(sd).map(([k, v]) => [k, { shape: v.shape, data: v.data as ArrayLike<number> }]));

  it('names missing and mis-shaped tensors', () => {
    const m = model();
    const sd = stateDictFromModel(m, 'F64');
    delete sd['transformer.h.1.ista.weight'];
    sd['transformer.wpe.weight'] = { dtype: 'F64', shape: [4, 8], data: new Float64Array(32) };
    expect(() => loadStateDict(m, asMap(sd), 'my.ckpt')).toThrow(
      /my\.ckpt does not match the crate model .*missing tensors: transformer\.h\.1\.ista\.weight.*transformer\.wpe\.weight: \[4, 8\] in the file, \[8, 8\] in the model/,
    );
    m.free();
  });

  it('rejects NaN / Inf naming the tensor, and a lm_head that differs from wte', () => {
    const m = model();
    const sd = stateDictFromModel(m, 'F64');
    const bad = Float64Array.from(sd['transformer.h.0.attn.c_proj.bias'].data as Float64Array);
    bad[3] = NaN;
    expect(() => loadStateDict(m, asMap({ ...sd, 'transformer.h.0.attn.c_proj.bias': { ...sd['transformer.h.0.attn.c_proj.bias'], data: bad } }))).toThrow(
      /tensor transformer\.h\.0\.attn\.c_proj\.bias holds a non-finite value \(NaN\) at flat index 3/,
    );
    bad[3] = Infinity;
    expect(() => loadStateDict(m, asMap({ ...sd, 'transformer.h.0.attn.c_proj.bias': { ...sd['transformer.h.0.attn.c_proj.bias'], data: bad } }))).toThrow(
      /non-finite value \(Infinity\)/,
    );
    const head = Float64Array.from(sd['transformer.wte.weight'].data as Float64Array);
    head[0] += 1;
    expect(() => loadStateDict(m, asMap({ ...sd, 'lm_head.weight': { dtype: 'F64', shape: [11, 8], data: head } }))).toThrow(
      /lm_head\.weight differs from transformer\.wte\.weight/,
    );
    m.free();
  });

  it('rejects a checkpoint of another architecture with a clear message', () => {
    const g = model('gpt2');
    const file = path.join(dir, 'gpt2.safetensors');
    saveCheckpoint(file, { model: g, tokenizer: 'byte' });
    const ck = loadCheckpoint(file);
    const c = model('crate');
    expect(() => loadStateDict(c, ck.file.tensors, file)).toThrow(
      /holds a gpt2 model \(transformer\.h\.0\.mlp\.c_fc\.weight\), but the model being loaded is crate/,
    );
    const cc = model('crate-complete');
    expect(() => loadStateDict(cc, asMap(stateDictFromModel(c, 'F64')))).toThrow(
      /holds a crate model \(transformer\.h\.0\.ista\.weight of shape \[32, 8\]\), but the model being loaded is crate-complete/,
    );
    expect(detectArch(normalizeStateDict(asMap(stateDictFromModel(cc, 'F64'))).params)?.arch).toBe('crate-complete');
    g.free();
    c.free();
    cc.free();
  });

  it('rejects a truncated or corrupt checkpoint file, and a file without config metadata', () => {
    const m = model();
    const file = path.join(dir, 'full.safetensors');
    saveCheckpoint(file, { model: m, tokenizer: 'byte', train: state(2) });
    const bytes = fs.readFileSync(file);
    const cut = path.join(dir, 'cut.safetensors');
    fs.writeFileSync(cut, bytes.subarray(0, bytes.length - 100));
    expect(() => loadCheckpoint(cut)).toThrow(/cannot read checkpoint: .*cut\.safetensors/);
    fs.writeFileSync(cut, bytes.subarray(0, 5));
    expect(() => loadCheckpoint(cut)).toThrow(/truncated/);
    expect(() => loadCheckpoint(path.join(dir, 'absent.safetensors'))).toThrow(/absent\.safetensors: file does not exist/);
    const bare = path.join(dir, 'bare.safetensors');
    fs.writeFileSync(bare, serializeSafetensors(stateDictFromModel(m, 'F64')));
    expect(() => loadCheckpoint(bare)).toThrow(/not a crate-ts checkpoint/);
    m.free();
  });
});
