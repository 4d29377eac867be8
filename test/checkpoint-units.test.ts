// Unit tests of src/checkpoint/ for mutants that survived `npm run mutate checkpoint` (first
// sample): config parsing with the separate "arch" entry, architecture detection rooted at
// transformer.h, and a parameter tensor whose data do not fill its shape. No training run.
import { describe, it, expect } from 'vitest';
import { parseConfigJson } from '../src/checkpoint/validate.js';
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
    sd['transformer.wte.weight'] = { ...t, data: t.data.subarray(0, t.data.length - 1) };
    expect(() => loadStateDict(m, new Map(Object.entries(sd)) as never)).toThrow(
      `tensor "transformer.wte.weight" holds ${t.data.length - 1} values but its shape [256, 16] needs ${t.data.length}`,
    );
  });
});
