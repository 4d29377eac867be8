// The run directory: model.safetensors (weights, self-describing), config.json (nanoGPT/PyTorch
// field names), optimizer.safetensors (AdamW moments + train_state, tied to the weights it was saved
// with) and train.jsonl (the loss history). Pre-0.2 single-file checkpoints (ckpt.safetensors, with
// optimizer.m.* tensors and the history in train_state) keep loading and resuming bitwise: the one in
// test/data/legacy-run was made by crate-ts 0.1.0 (commit 35b9a6d, in a git worktree) with
// test/data/legacy-run/make-legacy.mjs, which also recorded the losses and final weights of the
// uninterrupted run in expected.json.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { train, Trainer, type TrainRequest } from '../src/train/trainer.js';
import { readRunHistory } from '../src/train/jsonlog.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { loadCheckpoint, resolveCheckpointPath, optimizerFromCheckpoint, modelFromCheckpoint } from '../src/checkpoint/checkpoint.js';
import { readSafetensors, toFloat64, writeSafetensors, type TensorInput } from '../src/io/safetensors.js';
import { CheckpointError } from '../src/errors.js';

const LEGACY = path.join(__dirname, 'data', 'legacy-run');
let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-layout-'));
  const words = ['the', 'whale', 'sea', 'ship', 'Ahab', 'white', 'boat', 'harpoon', 'and', 'of'];
  fs.writeFileSync(path.join(dir, 'corpus.txt'), Array.from({ length: 3000 }, (_, i) => words[(i * 7 + (i >> 3)) % words.length]).join(' '));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const tiny = (over: Partial<TrainRequest> = {}): TrainRequest => ({
  preset: 'char-tiny',
  nEmbd: 16,
  nHead: 2,
  nLayer: 1,
  seq: 16,
  batch: 2,
  steps: 6,
  warmup: 2,
  lr: 1e-2,
  evalEvery: 2,
  evalWindows: 4,
  saveEvery: 2,
  sampleTokens: 0,
  quiet: true,
  cacheDir: null,
  data: path.join(dir, 'corpus.txt'),
  backend: new ReferenceBackend(),
  ...over,
});

/** sha256 over the parameter tensors (sorted names, float64 bytes), as hash-legacy.mjs computes it. */
function paramsSha(file: string): string {
  const st = readSafetensors(file);
  const h = createHash('sha256');
  for (const name of [...st.tensors.keys()].sort()) {
    if (name.startsWith('optimizer.')) continue;
    const x = toFloat64(st.tensors.get(name)!, name);
    h.update(name).update(Buffer.from(x.buffer, x.byteOffset, x.byteLength));
  }
  return h.digest('hex');
}

describe('run directory layout', () => {
  it('model.safetensors holds only the weights and describes them; config.json; optimizer.safetensors; train.jsonl', async () => {
    const out = path.join(dir, 'fresh');
    const r = await train(tiny({ out }));
    expect(r.checkpoint).toBe(path.join(out, 'model.safetensors'));
    expect(fs.readdirSync(out).sort()).toEqual(['config.json', 'loss.svg', 'model.safetensors', 'optimizer.safetensors', 'train.jsonl']);

    const w = readSafetensors(path.join(out, 'model.safetensors'));
    expect([...w.tensors.keys()].every((k) => k.startsWith('transformer.'))).toBe(true);
    expect(Object.keys(w.metadata).sort()).toEqual(['backend', 'checksum', 'config', 'dtype', 'format', 'format_version', 'tokenizer']);
    const cfg = JSON.parse(w.metadata.config) as Record<string, unknown>;

    const cj = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    for (const k of ['vocab_size', 'block_size', 'n_layer', 'n_head', 'n_embd', 'overcomplete', 'eta', 'lam', 'ln_eps', 'arch'])
      expect(cj[k], k).toEqual(cfg[k]);
    expect(cj).toMatchObject({
      vocab_size: 256,
      block_size: 16,
      n_layer: 1,
      n_head: 2,
      n_embd: 16,
      dropout: 0,
      bias: true,
      tokenizer: 'byte',
      torch_dtype: 'float64',
    });

    const o = readSafetensors(path.join(out, 'optimizer.safetensors'));
    expect(o.tensors.size).toBe(2 * w.tensors.size);
    for (const k of w.tensors.keys()) expect(o.tensors.has(`optimizer.m.${k}`) && o.tensors.has(`optimizer.v.${k}`), k).toBe(true);
    const ts = JSON.parse(o.metadata.train_state) as Record<string, unknown>;
    expect(ts.step).toBe(6);
    expect(ts).not.toHaveProperty('history'); // the history lives in train.jsonl
    expect(o.metadata.format).toBe('crate-ts-optimizer');

    const hist = readRunHistory(path.join(out, 'train.jsonl'));
    expect(hist.steps.map((p) => p.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(hist.steps.map((p) => p.loss)).toEqual(r.losses);
    expect(hist.evals.map((e) => e.step)).toEqual([2, 4, 6]);

    // the run directory, its weights file, and the pre-0.2 name all load the same checkpoint
    const a = loadCheckpoint(out),
      b = loadCheckpoint(path.join(out, 'model.safetensors')),
      c = loadCheckpoint(path.join(out, 'ckpt.safetensors'));
    expect(a.path).toBe(b.path);
    expect(c.path).toBe(b.path);
    expect(resolveCheckpointPath(path.join(out, 'ckpt.safetensors'))).toBe(path.join(out, 'model.safetensors'));
    expect(a.train?.step).toBe(6);
    expect(a.optimizerPath).toBe(path.join(out, 'optimizer.safetensors'));
  });

  it('a directory without a checkpoint and a missing file are one-line CheckpointErrors', () => {
    const empty = path.join(dir, 'empty');
    fs.mkdirSync(empty);
    expect(() => resolveCheckpointPath(empty)).toThrow(
      /empty' is a directory without a checkpoint \(model\.safetensors, or ckpt\.safetensors of crate-ts before 0\.2\)/,
    );
    expect(() => loadCheckpoint(empty)).toThrow(CheckpointError);
    expect(() => resolveCheckpointPath(path.join(dir, 'nope', 'ckpt.safetensors'))).toThrow(/does not exist/);
  });

  it('stopped at 3, resumed to 6: bitwise the uninterrupted run, one history without duplicates', async () => {
    const straight = await train(tiny({ out: path.join(dir, 'straight') }));
    const out = path.join(dir, 'split');
    await train(tiny({ out, stopAt: 3 }));
    // a killed attempt logged steps 4-5 after the last save; the resume must not count them
    fs.appendFileSync(path.join(out, 'train.jsonl'), '{"type":"step","step":4,"loss":99,"lr":0}\n{"type":"step","step":5,"loss":99,"lr":0}\n{"type":"st');
    const second = await train({ resume: out, backend: new ReferenceBackend(), quiet: true, cacheDir: null, sampleTokens: 0 });
    expect(second.losses).toHaveLength(3);
    for (let i = 0; i < 3; i++) expect(Object.is(second.losses[i], straight.losses[3 + i])).toBe(true);
    expect(paramsSha(second.checkpoint)).toBe(paramsSha(straight.checkpoint));
    const hist = readRunHistory(path.join(out, 'train.jsonl'));
    expect(hist.steps.map((p) => p.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(hist.steps.map((p) => p.loss)).toEqual(straight.losses);
  });

  it('an optimizer.safetensors from another save is refused for resuming; the weights still load', async () => {
    const a = path.join(dir, 'mix-a'),
      b = path.join(dir, 'mix-b');
    await train(tiny({ out: a, steps: 2, saveEvery: 0, evalEvery: 0 }));
    await train(tiny({ out: b, steps: 2, saveEvery: 0, evalEvery: 0, seed: 99 }));
    fs.copyFileSync(path.join(b, 'optimizer.safetensors'), path.join(a, 'optimizer.safetensors'));
    const ck = loadCheckpoint(a);
    expect(ck.train).toBeNull();
    expect(ck.trainProblem).toMatch(/optimizer\.safetensors belongs to another save than model\.safetensors/);
    modelFromCheckpoint(ck, new ReferenceBackend()).free();
    await expect(Trainer.create({ resume: a, backend: new ReferenceBackend(), cacheDir: null })).rejects.toThrow(/belongs to another save/);
  });

  it("a byte flipped inside a run directory's optimizer.safetensors moments is refused on resume, by its checksum", async () => {
    const out = path.join(dir, 'flip-opt');
    await train(tiny({ out, steps: 2, saveEvery: 0, evalEvery: 0 }));
    const file = path.join(out, 'optimizer.safetensors');
    const bytes = fs.readFileSync(file);
    const headerEnd = 8 + Number(bytes.readBigUInt64LE(0));
    // One bit in the middle of the tensor data: the header, its metadata (weights_sha256, the
    // train_state) and every shape are untouched, so only the checksum can tell.
    const at = headerEnd + ((bytes.length - headerEnd) >> 1);
    bytes[at] ^= 0x10;
    fs.writeFileSync(file, bytes);
    const ck = loadCheckpoint(out);
    expect(ck.trainProblem).toBeNull(); // the pair still belongs together by metadata
    expect(ck.optimizerPath).toBe(file);
    const m = modelFromCheckpoint(ck, new ReferenceBackend());
    expect(() => optimizerFromCheckpoint(ck, m as never)).toThrow(
      /optimizer\.safetensors.*checksum mismatch in tensor "optimizer\.[mv]\.transformer\.[^"]+": the file was changed or corrupted/,
    );
    m.free();
    await expect(Trainer.create({ resume: out, steps: 4, backend: new ReferenceBackend(), cacheDir: null, quiet: true })).rejects.toThrow(
      /optimizer\.safetensors.*checksum mismatch in tensor "optimizer\.[mv]\./,
    );
  });

  it('save(file) writes a self-contained single file that resumes', async () => {
    const t = await Trainer.create(tiny({ out: path.join(dir, 'snap-run'), steps: 4, saveEvery: 0, evalEvery: 0 }));
    t.step();
    t.step();
    const snap = t.save(path.join(dir, 'snapshot.safetensors'));
    t.free();
    const ck = loadCheckpoint(snap);
    expect(ck.optimizerPath).toBe(snap);
    expect(ck.train?.step).toBe(2);
    const m = modelFromCheckpoint(ck, new ReferenceBackend());
    expect(optimizerFromCheckpoint(ck, m as never)?.m.length).toBe(m.numParameters);
    m.free();
  });
});

describe('pre-0.2 single-file checkpoints (made by crate-ts 0.1.0)', () => {
  const expected = JSON.parse(fs.readFileSync(path.join(LEGACY, 'expected.json'), 'utf8')) as {
    straightLosses: number[];
    splitLosses: number[];
    valLoss: number;
    straightParamsSha256: string;
  };

  it('loads: weights, moments and train_state in one file', () => {
    const ck = loadCheckpoint(path.join(LEGACY, 'ckpt.safetensors'));
    expect(ck.train?.step).toBe(3);
    expect(ck.train?.history.map((p) => p.loss)).toEqual(expected.splitLosses);
    expect(ck.optimizerPath).toBe(ck.path);
    expect([...ck.file.tensors.keys()].some((k) => k.startsWith('optimizer.m.'))).toBe(true);
  });

  it("resumes to the end bitwise equal to the old code's uninterrupted run, in the new layout", async () => {
    const run = path.join(dir, 'legacy-copy');
    fs.mkdirSync(run);
    fs.copyFileSync(path.join(LEGACY, 'ckpt.safetensors'), path.join(run, 'ckpt.safetensors'));
    const r = await train({ resume: run, backend: new ReferenceBackend(), quiet: true, cacheDir: null, sampleTokens: 0 });
    expect(r.step).toBe(6);
    for (let i = 0; i < 3; i++) expect(Object.is(r.losses[i], expected.straightLosses[3 + i]), `loss ${4 + i}`).toBe(true);
    expect(Object.is(r.valLoss, expected.valLoss)).toBe(true);
    expect(r.checkpoint).toBe(path.join(run, 'model.safetensors'));
    expect(paramsSha(r.checkpoint)).toBe(expected.straightParamsSha256);
    // the legacy history went into train.jsonl, so the chart and the next resume have all 6 steps
    expect(readRunHistory(path.join(run, 'train.jsonl')).steps.map((p) => p.loss)).toEqual(expected.straightLosses);
    // the directory now holds both; the new files win
    expect(loadCheckpoint(run).path).toBe(path.join(run, 'model.safetensors'));
  });
});

describe('GPT-2 weights from Hugging Face or nanoGPT', () => {
  it("are refused by name: another model than the paper's bias-free ReLU baseline", () => {
    const d = 8,
      t: Record<string, TensorInput> = {};
    const add = (n: string, shape: number[]) => {
      t[n] = { dtype: 'F32', shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) };
    };
    add('transformer.wte.weight', [16, d]);
    add('transformer.wpe.weight', [4, d]);
    for (const [n, shape] of [
      ['ln_1.weight', [d]],
      ['ln_1.bias', [d]],
      ['attn.c_attn.weight', [3 * d, d]],
      ['attn.c_attn.bias', [3 * d]],
      ['attn.c_proj.weight', [d, d]],
      ['attn.c_proj.bias', [d]],
      ['ln_2.weight', [d]],
      ['ln_2.bias', [d]],
      ['mlp.c_fc.weight', [4 * d, d]],
      ['mlp.c_fc.bias', [4 * d]],
      ['mlp.c_proj.weight', [d, 4 * d]],
      ['mlp.c_proj.bias', [d]],
    ] as [string, number[]][])
      add(`transformer.h.0.${n}`, shape);
    const cfg = { vocab_size: 16, block_size: 4, n_layer: 1, n_head: 2, n_embd: d, arch: 'gpt2' };
    const nano = path.join(dir, 'nanogpt-gpt2.safetensors');
    writeSafetensors(nano, t, { config: JSON.stringify(cfg) });
    expect(() => loadCheckpoint(nano)).toThrow(
      /holds a GPT-2 with biases \(transformer\.h\.0\.attn\.c_attn\.bias\): Hugging Face\/nanoGPT GPT-2 weights \(GELU, biases\) are another model than the paper's baseline \(ReLU, bias=False\) and cannot be loaded/,
    );
    // Hugging Face's own files: no "transformer." prefix, no crate-ts config
    const hf = Object.fromEntries(Object.entries(t).map(([k, v]) => [k.replace(/^transformer\./, ''), v]));
    const hfFile = path.join(dir, 'hf-model.safetensors');
    writeSafetensors(hfFile, hf);
    expect(() => loadCheckpoint(hfFile)).toThrow(/holds a GPT-2 with biases \(h\.0\.attn\.c_attn\.bias\)/);
  });
});
