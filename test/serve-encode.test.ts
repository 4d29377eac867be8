// The server's tokenizer wrapper (src/serve/encode.ts): exactly tokenizer.encode's ids (random
// texts, long runs of one letter, mixed scripts), GPT-2's longest token bounds the text before any
// work, the count stops at the limit, and a long word is merged in time slices (timers run while it
// is encoded; gpt-tokenizer's own merge loop holds the event loop for the whole word).
import { describe, it, expect, beforeAll } from 'vitest';
import { loadTokenizer, type Tokenizer } from '../src/data/tokenizer.js';
import { BoundedEncoder, TooManyTokens } from '../src/serve/encode.js';

let gpt2: Tokenizer, enc: BoundedEncoder;
beforeAll(async () => {
  gpt2 = await loadTokenizer('gpt2');
  enc = await BoundedEncoder.create(gpt2);
});

describe('BoundedEncoder', () => {
  it('gives the ids of tokenizer.encode on random texts, long runs and mixed scripts', async () => {
    let seed = 12345;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    const alphabet = ['a', 'b', 'e', 't', 'h', ' ', '  ', '\u00e9', '\u4e2d', '1', '.', '\n', "'s", 'x', '\u{1F600}', '-', '='];
    for (let k = 0; k < 300; k++) {
      const w = alphabet.slice(0, 2 + Math.floor(rnd() * (alphabet.length - 1)));
      let s = '';
      const len = 1 + Math.floor(rnd() * 300);
      for (let i = 0; i < len; i++) s += w[Math.floor(rnd() * w.length)];
      expect(await enc.encode(s, 1e6), JSON.stringify(s)).toEqual(gpt2.encode(s));
    }
    for (const s of [
      'a'.repeat(3000),
      'ab'.repeat(1500),
      '-'.repeat(2000),
      'é'.repeat(700),
      'Hello, world! '.repeat(100) + 'z'.repeat(900),
      '12345'.repeat(300),
    ])
      expect(await enc.encode(s, 1e6)).toEqual(gpt2.encode(s));
  }, 120_000);

  it('refuses text past limit × 128 characters before encoding, and stops counting at the limit', async () => {
    expect(enc.maxTokenBytes).toBe(128);
    expect(enc.maxChars(10)).toBe(1280);
    await expect(enc.encode('x'.repeat(1281), 10)).rejects.toBeInstanceOf(TooManyTokens);
    const e = await enc.encode('word '.repeat(100), 10).catch((x) => x);
    expect(e).toBeInstanceOf(TooManyTokens);
    expect(e.limit).toBe(10);
    expect(e.atLeast).toBe(11);
    expect(await enc.encode('word '.repeat(5), 10)).toEqual(gpt2.encode('word '.repeat(5)));
    const byte = await BoundedEncoder.create(await loadTokenizer('byte'));
    expect(byte.maxChars(10)).toBe(10);
    await expect(byte.encode('é'.repeat(6), 10)).rejects.toBeInstanceOf(TooManyTokens);
    expect(await byte.encode('é'.repeat(5), 10)).toEqual(Array(5).fill([0xc3, 0xa9]).flat());
  });

  it('a 300,000-letter word is encoded in slices: timers keep firing while it is merged', async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    try {
      const ids = await enc.encode('a'.repeat(300_000), 1e6);
      expect(ids.length).toBe(75_000); // "aaaa" is one GPT-2 token
      expect(new Set(ids)).toEqual(new Set(gpt2.encode('aaaa')));
    } finally {
      clearInterval(timer);
    }
    expect(ticks).toBeGreaterThan(3);
  }, 120_000);
});
