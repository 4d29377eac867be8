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
