// Unit tests of src/checkpoint/ for mutants that survived `npm run mutate checkpoint` (first
// sample): config parsing with the separate "arch" entry, architecture detection rooted at
// transformer.h, and a parameter tensor whose data do not fill its shape. No training run.
import { describe, it, expect, beforeAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseConfigJson, parseTrainState, checkParameterCount } from '../src/checkpoint/validate.js';
import { loadCheckpoint, saveCheckpoint } from '../src/checkpoint/checkpoint.js';
import { resolveRun, Trainer } from '../src/train/trainer.js';
import type { TensorEntry } from '../src/io/safetensors.js';
import { detectArch, loadStateDict, stateDictFromModel } from '../src/checkpoint/statedict.js';
import { LanguageModel } from '../src/model/lm.js';
import { makeConfig } from '../src/model/config.js';
import { ReferenceBackend } from '../src/backend/reference.js';

const snake = { vocab_size: 256, block_size: 16, n_layer: 1, n_head: 2, n_embd: 16 };

describe('parseConfigJson', () => {
  it('takes the architecture from the metadata "arch" entry when the config has none', () => {
    expect(parseConfigJson(JSON.stringify(snake), 'f.safetensors', 'gpt2').arch).toBe('gpt2');
    expect(parseConfigJson(JSON.stringify(snake), 'f.safetensors').arch).toBe('crate');
    expect(() => parseConfigJson(JSON.stringify(snake), 'f.safetensors', 'lstm')).toThrow(/metadata "arch" must be .*got "lstm"/);
  });
});

describe('detectArch', () => {
  it('reads only names rooted at transformer.h.<i>', () => {
    const gpt2 = new LanguageModel(new ReferenceBackend(), makeConfig('char-tiny', { arch: 'gpt2', nLayer: 1, nEmbd: 16, nHead: 2, blockSize: 16 }), {
      seed: 1,
    });
    const names = Object.keys(stateDictFromModel(gpt2 as LanguageModel<unknown>));
    const rooted = new Map(names.map((n) => [n, { shape: [1] }]));
    expect(detectArch(rooted)?.arch).toBe('gpt2');
    const nested = new Map(names.map((n) => [`model.${n}`, { shape: [1] }]));
    expect(detectArch(nested)).toBeNull();
  });
});

describe('loadStateDict', () => {
  it('refuses a tensor whose data do not fill its shape, naming both', () => {
    const m = new LanguageModel(new ReferenceBackend(), makeConfig('char-tiny', { nLayer: 1, nEmbd: 16, nHead: 2, blockSize: 16 }), {
      seed: 1,
    }) as LanguageModel<unknown>;
    const sd = stateDictFromModel(m);
    const t = sd['transformer.wte.weight'] as { data: Float64Array; shape: number[]; dtype: string };
    expect(t.dtype).toBe('F64'); // the reference backend stores f64
    sd['transformer.wte.weight'] = { ...t, data: t.data.subarray(0, t.data.length - 1) } as (typeof sd)[string];
    expect(() => loadStateDict(m, new Map(Object.entries(sd)) as never)).toThrow(
      `tensor "transformer.wte.weight" holds ${t.data.length - 1} values but its shape [256, 16] needs ${t.data.length}`,
    );
  });
});

describe('parseTrainState', () => {
  const config = makeConfig('char-tiny', { nLayer: 1, nEmbd: 16, nHead: 2, blockSize: 16 });
  let base: Record<string, unknown>;
  beforeAll(async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-ck-units-'));
    try {
      const corpus = path.join(dir, 'c.txt');
      fs.writeFileSync(corpus, 'the whale and the sea and the ship '.repeat(200));
      const run = await resolveRun({
        backend: new ReferenceBackend(),
        data: corpus,
        cacheDir: null,
        preset: 'char-tiny',
        nLayer: 1,
        nEmbd: 16,
        nHead: 2,
        seq: 16,
        batch: 2,
        steps: 2,
        out: path.join(dir, 'r'),
      });
      const tr = new Trainer(run);
      const file = tr.save();
      tr.free();
      const train = loadCheckpoint(file).train;
      expect(train).not.toBeNull();
      base = JSON.parse(JSON.stringify(train)) as Record<string, unknown>;
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
  const parse = (over: Record<string, unknown>) => parseTrainState(JSON.stringify({ ...base, ...over }), 'f.safetensors', config);

  it('accepts 0 in the data RNG state and a preset name', () => {
    expect(parse({ dataRng: [0, 1, 2, 3] }).dataRng).toEqual([0, 1, 2, 3]);
    expect(parse({ preset: 'char-tiny' }).preset).toBe('char-tiny');
    expect(() => parse({ preset: 7 })).toThrow('train_state field "preset" must be a string, got 7');
  });

  it('names the field of a bad unigram entropy and a history entry that is not an object', () => {
    const data = base.data as Record<string, unknown>;
    expect(() => parse({ data: { ...data, unigramEntropy: -1 } })).toThrow('train_state field "data.unigramEntropy" must be a non-negative number, got -1');
    expect(() => parse({ history: [5] })).toThrow('train_state field "history[0]" must be an object {step, loss, lr}, got 5');
  });
});

describe('checkParameterCount', () => {
  it('leaves PyTorch mask buffers and optimizer tensors out of the count', () => {
    const config = makeConfig('char-tiny', { nLayer: 1, nEmbd: 16, nHead: 2, blockSize: 16 });
    const m = new LanguageModel(new ReferenceBackend(), config, { seed: 1 }) as LanguageModel<unknown>;
    const entries = new Map(Object.entries(stateDictFromModel(m)).map(([k, t]) => [k, t as unknown as TensorEntry]));
    entries.set('transformer.h.0.attn.bias', { dtype: 'F64', shape: [1, 1, 16, 16] } as unknown as TensorEntry);
    expect(() => checkParameterCount(config, entries, 'f.safetensors')).not.toThrow();
  });

  it('counts lm_head.weight in place of a missing transformer.wte.weight (tied)', () => {
    const config = makeConfig('char-tiny', { nLayer: 1, nEmbd: 16, nHead: 2, blockSize: 16 });
    const m = new LanguageModel(new ReferenceBackend(), config, { seed: 1 }) as LanguageModel<unknown>;
    const entries = new Map(Object.entries(stateDictFromModel(m)).map(([k, t]) => [k, t as unknown as TensorEntry]));
    const wte = entries.get('transformer.wte.weight')!;
    entries.delete('transformer.wte.weight');
    entries.set('lm_head.weight', wte);
    expect(() => checkParameterCount(config, entries, 'f.safetensors')).not.toThrow();
    entries.delete('lm_head.weight');
    expect(() => checkParameterCount(config, entries, 'f.safetensors')).toThrow(/f\.safetensors/);
  });
});

describe('format_version', () => {
  /** Save a tiny model, then rewrite its metadata "format_version" (the header is rebuilt, the data kept). */
  function withVersion(v: string): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-ck-version-'));
    const file = path.join(dir, 'model.safetensors');
    const m = new LanguageModel(new ReferenceBackend(), makeConfig('char-tiny', { nLayer: 1, nEmbd: 16, nHead: 2, blockSize: 16 }), { seed: 1 });
    saveCheckpoint(file, { model: m as LanguageModel<unknown>, tokenizer: 'byte' });
    const buf = fs.readFileSync(file);
    const n = Number(buf.readBigUInt64LE(0));
    const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
    header.__metadata__.format_version = v;
    const json = Buffer.from(JSON.stringify(header), 'utf8');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    fs.writeFileSync(file, Buffer.concat([len, json, buf.subarray(8 + n)]));
    return file;
  }

  it('a larger plain number is "written by a newer crate-ts"; a zero-padded one is not a version at all', () => {
    expect(() => loadCheckpoint(withVersion('99'), { verifyChecksum: false })).toThrow(/format_version 99 was written by a newer crate-ts/);
    const padded = withVersion('007');
    expect(() => loadCheckpoint(padded, { verifyChecksum: false })).toThrow(/metadata "format_version" is "007", not a version this crate-ts reads/);
    expect(() => loadCheckpoint(padded, { verifyChecksum: false })).not.toThrow(/newer/);
  });
});
