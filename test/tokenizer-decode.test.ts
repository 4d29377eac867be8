// GPT-2 decode is a pure function of its ids: decoding a token that ends inside a character must not
// change what the next decode returns (gpt-tokenizer's own decode() keeps a streaming decoder).
import { test, expect } from 'vitest';
import { loadTokenizer } from '../src/data/tokenizer.js';

test('gpt2 decode of single tokens does not depend on the previous call; whole sequences round-trip', async () => {
  const t = await loadTokenizer('gpt2');
  const text = '“Call me Ishmael,” — naïve 日本語 text';
  const ids = t.encode(text);
  expect(t.decode(ids)).toBe(text);
  const first = ids.map((i) => t.decode([i]));
  const reversed = [...ids]
    .reverse()
    .map((i) => t.decode([i]))
    .reverse();
  expect(reversed).toEqual(first);
  // a token that is half of a curly quote decodes to U+FFFD alone, and " text" stays " text" after it
  expect(t.decode([ids[0]])).toBe('\uFFFD');
  expect(t.decode([ids[ids.length - 1]])).toBe(' text');
});

test('byteLength summed over a text’s tokens is its UTF-8 length, for every tokenizer; end-of-text and padding ids cover no bytes', async () => {
  const text = '“Call me Ishmael,” — naïve 日本語 text 🐋\n';
  const utf8 = Buffer.byteLength(text, 'utf8');
  for (const name of ['byte', 'gpt2'] as const) {
    const t = await loadTokenizer(name);
    const ids = t.encode(text);
    expect(ids.length).toBeLessThan(utf8 + 1);
    expect(
      ids.reduce((n, id) => n + t.byteLength(id), 0),
      name,
    ).toBe(utf8);
  }
  const gpt2 = await loadTokenizer('gpt2');
  expect(gpt2.byteLength(50256)).toBe(0);
  expect(gpt2.byteLength(50300)).toBe(0);
  expect(gpt2.byteLength(gpt2.encode(' whale')[0])).toBe(6);
  const chars = [...new Set(text)];
  const ct = await loadTokenizer('char', chars);
  expect(ct.encode(text).reduce((n, id) => n + ct.byteLength(id), 0)).toBe(utf8);
});

test('bitsPerByte: the summed loss in bits over the bytes, from the targets of the evaluated windows', async () => {
  const { bitsPerByte, targetBytes } = await import('../src/cli/eval.js');
  const gpt2 = await loadTokenizer('gpt2');
  const ids = gpt2.encode(' whale “ship”');
  const y = Int32Array.from([...ids, 50256]);
  const bytes = targetBytes(gpt2, [{ x: new Int32Array(y.length), y }]);
  expect(bytes).toBe(Buffer.byteLength(' whale “ship”', 'utf8'));
  // 2 nats per token over 4 tokens covering 10 bytes = 8 nats = 8 / ln 2 bits over 10 bytes
  expect(bitsPerByte(2, 4, 10)).toBeCloseTo(8 / Math.LN2 / 10, 12);
  expect(Number.isNaN(bitsPerByte(2, 4, 0))).toBe(true);
});
