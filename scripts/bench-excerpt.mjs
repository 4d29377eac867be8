// Excerpt token strings: the cost of decoding excerpts with the bytes of a split character kept
// together (src/neurons/excerpt.ts) against the old way, each id decoded alone and memoised.
// node scripts/bench-excerpt.mjs [--tokenizer byte|gpt2] [--excerpts N] [--runs R]
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { loadTokenizer } from '../dist/data/tokenizer.js';
import { EMBEDDED_CORPUS } from '../dist/data/corpus.js';
import { excerptDecoder } from '../dist/neurons/excerpt.js';

const { values: v } = parseArgs({
  options: { tokenizer: { type: 'string', default: 'gpt2' }, excerpts: { type: 'string', default: '20000' }, runs: { type: 'string', default: '5' } },
});
const tok = await loadTokenizer(v.tokenizer);
const text = gunzipSync(readFileSync(EMBEDDED_CORPUS)).toString('utf8');
const ids = tok.encode(text.slice(0, 1_000_000));
const n = Number(v.excerpts),
  L = 64;
let seed = 1;
const starts = Array.from({ length: n }, () => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed % (ids.length - L);
});
const oldWay = () => {
  const memo = new Map();
  return (tokens, s, len) => {
    const out = new Array(len);
    for (let j = 0; j < len; j++) {
      const id = tokens[s + j];
      let x = memo.get(id);
      if (x === undefined) memo.set(id, (x = tok.decode([id])));
      out[j] = x;
    }
    return out;
  };
};
const time = (dec) => {
  const t0 = performance.now();
  let chars = 0;
  for (const s of starts) for (const x of dec(ids, s, L)) chars += x.length;
  return [performance.now() - t0, chars];
};
const med = (xs) => xs.slice().sort((a, b) => a - b)[xs.length >> 1];
// one decoder per way for every run, as collect uses one for all layers; a first run warms both up
const oldDec = oldWay(),
  newDec = await excerptDecoder(tok);
time(oldDec);
time(newDec);
const a = [],
  b = [];
for (let r = 0; r < Number(v.runs); r++) {
  a.push(time(oldDec)[0]);
  b.push(time(newDec)[0]);
}
console.log(`${v.tokenizer}: ${n} excerpts of ${L} tokens (${ids.length} corpus tokens), ${v.runs} runs`);
console.log(`each id alone (old): median ${med(a).toFixed(1)} ms`);
console.log(`excerpt decoder:     median ${med(b).toFixed(1)} ms  (${(med(b) / med(a)).toFixed(2)}x)`);
