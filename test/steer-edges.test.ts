// The edges of src/steer/ that test/steer.test.ts leaves open: every range check of a clamp with its
// message, the clamp syntax's anchors, and how a token id is shown in listings. (Written for the
// mutants StrykerJS found surviving in src/steer/: README, Tests.)
import { describe, it, expect, vi } from 'vitest';
import { makeConfig } from '../src/model/config.js';
import { checkClamp, parseClamp } from '../src/steer/clamp.js';
import { steer, sweep, sweepWith, topIds } from '../src/steer/steer.js';
import { clampHooks } from '../src/steer/clamp.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { LanguageModel } from '../src/model/lm.js';
import { tokenText } from '../src/steer/tokens.js';
import { loadTokenizer, type Tokenizer } from '../src/data/tokenizer.js';
import { UsageError } from '../src/errors.js';

const cfg = (nLayer: number) => makeConfig('golden', { arch: 'crate', vocabSize: 16, blockSize: 8, nLayer, nHead: 2, nEmbd: 8 });

describe('checkClamp: every bound, with its message', () => {
  it('a layer below 0, not an integer or past the last is refused, naming the range (1 layer: singular)', () => {
    const c2 = cfg(2);
    expect(() => checkClamp(c2, { layer: -1, neuron: 0, value: 1 })).toThrow('layer -1 is out of range: the model has 2 layers (0..1)');
    expect(() => checkClamp(c2, { layer: 0.5, neuron: 0, value: 1 })).toThrow('layer 0.5 is out of range');
    expect(() => checkClamp(c2, { layer: 2, neuron: 0, value: 1 })).toThrow(UsageError);
    expect(() => checkClamp(cfg(1), { layer: 1, neuron: 0, value: 1 })).toThrow('layer 1 is out of range: the model has 1 layer (0..0)');
    // the last layer and neuron are in range
    expect(() => checkClamp(c2, { layer: 1, neuron: 31, value: -3 })).not.toThrow();
    expect(() => checkClamp(c2, { layer: 0, neuron: 0, value: 0 })).not.toThrow();
  });

  it('a neuron below 0, not an integer or past the width is refused, naming the layer and the range', () => {
    const c2 = cfg(2);
    expect(() => checkClamp(c2, { layer: 1, neuron: -1, value: 1 })).toThrow('neuron -1 is out of range: layer 1 has 32 neurons (0..31)');
    expect(() => checkClamp(c2, { layer: 1, neuron: 2.5, value: 1 })).toThrow('neuron 2.5 is out of range');
    expect(() => checkClamp(c2, { layer: 1, neuron: 32, value: 1 })).toThrow(UsageError);
  });

  it('a value that is not finite is refused, naming it', () => {
    expect(() => checkClamp(cfg(1), { layer: 0, neuron: 0, value: NaN })).toThrow('the clamp value must be a finite number, got NaN');
    expect(() => checkClamp(cfg(1), { layer: 0, neuron: 0, value: -Infinity })).toThrow('got -Infinity');
  });
});

describe('parseClamp: the whole spec, nothing before or after', () => {
  it('reads multi-digit layers and neurons and signed, fractional or exponent values', () => {
    expect(parseClamp('12:345=6.5')).toEqual({ layer: 12, neuron: 345, value: 6.5 });
    expect(parseClamp('0:7=-1e3')).toEqual({ layer: 0, neuron: 7, value: -1000 });
    expect(parseClamp('\t3:4=5\n')).toEqual({ layer: 3, neuron: 4, value: 5 });
  });

  it('refuses text before or after the spec, a missing part, or a value with a space inside, quoting the spec', () => {
    for (const bad of ['x0:12=5', '0:12=5 x', ':12=5', '0:=5', '0:12=', '0:12=5 5', '-1:2=3', '0:12']) {
      expect(() => parseClamp(bad), bad).toThrow(UsageError);
      expect(() => parseClamp(bad), bad).toThrow(`got '${bad}'`);
    }
    expect(() => parseClamp('0:12=abc')).toThrow("clamp '0:12=abc': the value 'abc' is not a finite number");
    expect(() => parseClamp('0:12=Infinity')).toThrow("the value 'Infinity' is not a finite number");
  });
});

describe('steer and topIds: the smallest list', () => {
  it('top 1 lists one token; topIds of a negative k is empty, not every id', () => {
    const m = new LanguageModel(new ReferenceBackend(), cfg(1), { seed: 5 });
    const r = steer(m, [1, 2, 3], { layer: 0, neuron: 3, value: 4 }, { top: 1 });
    expect([r.top.length, r.topBefore.length, r.topAfter.length]).toEqual([1, 1, 1]);
    m.free();
    expect(topIds((i) => i, 5, -1)).toEqual([]);
    expect(topIds((i) => i, 5, 1)).toEqual([4]);
  });
});

describe('sweepWith: steering with any hooks', () => {
  it('with the clamp hooks it equals sweep, labelled; every value is checked before any forward; bad input is a UsageError', () => {
    const m = new LanguageModel(new ReferenceBackend(), cfg(2), { seed: 5 });
    const ids = [1, 2, 3, 4];
    const hooksFor = (value: number) => clampHooks(m.config, [{ layer: 1, neuron: 3, value }]);
    const a = sweepWith(m, ids, { layer: 1, neuron: 3 }, [1, 4], hooksFor, { top: 3, maxId: 12 });
    const b = sweep(m, ids, 1, 3, [1, 4], { top: 3, maxId: 12 });
    expect(a).toEqual(b);
    expect(a.map((r) => [r.layer, r.neuron, r.value, r.allLayers, r.top.length])).toEqual([
      [1, 3, 1, false, 3],
      [1, 3, 4, false, 3],
    ]);
    expect(sweepWith(m, ids, { layer: 0, neuron: 0 }, [2], hooksFor)[0].top).toHaveLength(10);
    expect(sweepWith(m, ids, { layer: 0, neuron: 0 }, [2], hooksFor, { top: 1 })[0].top).toHaveLength(1);
    const forward = vi.spyOn(m, 'forward');
    const bad = (v: number) => {
      if (v > 1) throw new UsageError(`value ${v} refused`);
      return hooksFor(v);
    };
    expect(() => sweepWith(m, ids, { layer: 1, neuron: 3 }, [1, 2], bad)).toThrow('value 2 refused');
    expect(forward).not.toHaveBeenCalled();
    expect(() => sweepWith(m, ids, { layer: 1, neuron: 3 }, [], hooksFor)).toThrow('the sweep needs at least one value');
    expect(() => sweepWith(m, ids, { layer: 1, neuron: 3 }, [1], hooksFor, { top: 0 })).toThrow('top must be a positive integer, got 0');
    expect(() => sweepWith(m, ids, { layer: 1, neuron: 3 }, [1], hooksFor, { top: 2.5 })).toThrow(UsageError);
    forward.mockRestore();
    m.free();
  });
});

describe('tokenText: a token id as readable text', () => {
  it('byte tokenizer: a whole character as itself, a piece of a multi-byte character by its byte in hex, padded to two digits', async () => {
    const tok = await loadTokenizer('byte');
    expect(tokenText(tok, 65)).toBe('A');
    expect(tokenText(tok, 0xc3)).toBe('<0xc3>');
    expect(tokenText(tok, 0x80)).toBe('<0x80>');
    // an id the tokenizer refuses to decode is shown by its number
    expect(tokenText(tok, 300)).toBe('<300>');
  });

  it('another tokenizer: a piece of a character keeps its text and adds the id; a decode error shows the id', () => {
    const bpe = {
      name: 'gpt2',
      decode: (ids: ArrayLike<number>) => {
        if (ids[0] === 9) throw new Error('no such id');
        return ids[0] === 5 ? 'a\uFFFD' : 'ok';
      },
    } as unknown as Tokenizer;
    expect(tokenText(bpe, 1)).toBe('ok');
    expect(tokenText(bpe, 5)).toBe('a\uFFFD <5>');
    expect(tokenText(bpe, 9)).toBe('<9>');
    // a byte tokenizer is the only one named by hex
    const byteLike = { ...bpe, name: 'byte', decode: () => '\uFFFD' } as unknown as Tokenizer;
    expect(tokenText(byteLike, 10)).toBe('<0x0a>');
  });
});
