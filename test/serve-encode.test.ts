import { it, expect } from 'vitest';
import { loadTokenizer } from '../src/data/tokenizer.js';
import { BoundedEncoder } from '../src/serve/encode.js';
it('x', async () => {
  const tok = await loadTokenizer('gpt2');
  const be = await BoundedEncoder.create(tok);
  let seed = 1; const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const alph = ['a','b','e','t','h',' ','\u00e9','\u4e2d','1','.','\n','x','q','z'];
  for (let k = 0; k < 300; k++) {
    const len = 1 + Math.floor(rnd() * 400);
    let s = '';
    const w = alph.slice(0, 2 + Math.floor(rnd()*alph.length));
    for (let i = 0; i < len; i++) s += w[Math.floor(rnd() * w.length)];
    expect(await be.encode(s, 100000)).toEqual(tok.encode(s));
  }
  const t0 = performance.now();
  const ids = await be.encode('a'.repeat(1_000_000), 1_000_000);
  console.log('1M a ms', performance.now() - t0, ids.length);
});
