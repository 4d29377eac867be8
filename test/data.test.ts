// Data: tokenizers, the embedded corpus, text files / directories / nanoGPT token files, the split,
// the on-disk token cache, batch sampling and its saved position, and clear errors.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadTokenizer, GPT2_EOT } from '../src/data/tokenizer.js';
import { loadDataset, checkWindows, checkVocab, readTokenFile, EMBEDDED_NAME } from '../src/data/corpus.js';
import { BatchSampler, evalBatches, unigramEntropy, windowsAt } from '../src/data/batches.js';
import { DataError, type CrateError } from '../src/errors.js';
import { cliMessage } from '../src/cli/flags.js';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-data-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const u16file = (file: string, ids: number[]) => {
  const b = Buffer.alloc(ids.length * 2);
  ids.forEach((t, i) => b.writeUInt16LE(t, 2 * i));
  fs.writeFileSync(file, b);
};

describe('tokenizers', () => {
  it('byte: any UTF-8 round-trips, vocab 256', async () => {
    const t = await loadTokenizer('byte');
    const s = 'Call me Ishmael — “whale” 🐋\n';
    const ids = t.encode(s);
    expect(ids.every((x) => x >= 0 && x < 256)).toBe(true);
    expect(t.decode(ids)).toBe(s);
    expect(t.vocabSize).toBe(256);
    expect(() => t.decode([300])).toThrow(/outside \[0, 256\)/);
  });

  it('gpt2: r50k_base ids, <|endoftext|> in text is ordinary text, padded model vocab 50304', async () => {
    const t = await loadTokenizer('gpt2');
    expect(t.encode('Hello world')).toEqual([15496, 995]);
    const ids = t.encode('a<|endoftext|>b');
    expect(ids).not.toContain(GPT2_EOT);
    expect(t.decode(ids)).toBe('a<|endoftext|>b');
    expect(t.decode([GPT2_EOT])).toBe('<|endoftext|>');
    expect(t.decode([15496, 50300])).toBe('Hello'); // padding ids have no text
    expect(t.modelVocabSize).toBe(50304);
    await expect(loadTokenizer('sentencepiece')).rejects.toThrow(/unknown tokenizer 'sentencepiece'; known tokenizers: byte, gpt2/);
  });
});

describe('datasets', () => {
  it('the embedded Moby-Dick corpus loads offline, split 90/10', async () => {
    const ds = await loadDataset({ tokenizer: await loadTokenizer('byte'), cacheDir: null });
    expect(ds.source).toBe(EMBEDDED_NAME);
    const n = ds.train.length + ds.val.length;
    expect(n).toBeGreaterThan(1_000_000);
    expect(ds.val.length).toBe(Math.ceil(n * 0.1));
    expect(Buffer.from(Uint8Array.from(ds.train.subarray(0, 29))).toString('utf8')).toBe('CHAPTER 1. Loomings.\n\nCall me');
    const h = unigramEntropy(ds.val);
    expect(h).toBeGreaterThan(2.5);
    expect(h).toBeLessThan(3.5);
  });

  it('gpt2 tokens are cached on disk keyed by content and tokenizer; a cache hit gives the same ids', async () => {
    const tok = await loadTokenizer('gpt2');
    const file = path.join(dir, 'a.txt');
    fs.writeFileSync(file, 'It was the best of times, it was the worst of times. '.repeat(20));
    const cacheDir = path.join(dir, 'cache');
    const a = await loadDataset({ data: file, tokenizer: tok, cacheDir });
    expect(a.cache).toMatch(/^wrote /);
    const b = await loadDataset({ data: file, tokenizer: tok, cacheDir });
    expect(b.cache).toMatch(/^hit /);
    expect(Array.from(b.train)).toEqual(Array.from(a.train));
    expect(Array.from(b.val)).toEqual(Array.from(a.val));
    fs.appendFileSync(file, 'More.');
    const c = await loadDataset({ data: file, tokenizer: tok, cacheDir });
    expect(c.cache).toMatch(/^wrote /);
    expect(c.contentHash).not.toBe(a.contentHash);
  });

  it('a directory of text files is read in name order and joined with <|endoftext|> (gpt2) or a blank line (byte)', async () => {
    const d = path.join(dir, 'docs');
    fs.mkdirSync(path.join(d, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(d, 'b.txt'), 'second');
    fs.writeFileSync(path.join(d, 'a.md'), 'first');
    fs.writeFileSync(path.join(d, 'sub', 'c.txt'), 'third');
    fs.writeFileSync(path.join(d, 'skip.json'), '{}');
    fs.writeFileSync(path.join(d, '.hidden.txt'), 'hidden');
    const byte = await loadDataset({ data: d, tokenizer: await loadTokenizer('byte'), cacheDir: null, valFraction: 0.05 });
    const all = Buffer.from(Uint8Array.from([...byte.train, ...byte.val])).toString('utf8');
    expect(all).toBe('first\n\nsecond\n\nthird');
    const g = await loadTokenizer('gpt2');
    const gpt = await loadDataset({ data: d, tokenizer: g, cacheDir: null, valFraction: 0.05 });
    const ids = [...gpt.train, ...gpt.val];
    expect(ids.filter((t) => t === GPT2_EOT)).toHaveLength(2);
    expect(g.decode(ids)).toBe('first<|endoftext|>second<|endoftext|>third');
  });

  it('nanoGPT token files: train.bin + val.bin in a directory or given directly; a lone .bin is split', async () => {
    const d = path.join(dir, 'nano');
    fs.mkdirSync(d, { recursive: true });
    u16file(
      path.join(d, 'train.bin'),
      Array.from({ length: 100 }, (_, i) => (i * 37) % 50257),
    );
    u16file(path.join(d, 'val.bin'), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const tok = await loadTokenizer('gpt2');
    for (const p of [d, path.join(d, 'train.bin')]) {
      const ds = await loadDataset({ data: p, tokenizer: tok });
      expect(ds.kind).toBe('tokens');
      expect(ds.train.length).toBe(100);
      expect(Array.from(ds.val)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect(ds.split).toBe('train.bin / val.bin');
    }
    const lone = path.join(dir, 'tokens.bin');
    u16file(
      lone,
      Array.from({ length: 50 }, (_, i) => i),
    );
    const ds = await loadDataset({ data: lone, tokenizer: tok });
    expect(ds.train.length).toBe(45);
    expect(ds.val[0]).toBe(45);
    expect(() => checkVocab(ds, 40)).toThrow(/token 40 of '.*tokens\.bin' has id 40, outside the model's vocabulary of 40/);
    fs.writeFileSync(path.join(dir, 'odd.bin'), Buffer.alloc(3));
    await expect(loadDataset({ data: path.join(dir, 'odd.bin'), tokenizer: tok })).rejects.toThrow(/odd number of bytes/);
    expect(readTokenFile(lone).length).toBe(50);
  });

  it('clear errors: missing path, empty file, empty directory, text shorter than one window', async () => {
    const tok = await loadTokenizer('byte');
    await expect(loadDataset({ data: path.join(dir, 'missing.txt'), tokenizer: tok })).rejects.toThrow(/data path '.*missing\.txt' does not exist/);
    fs.writeFileSync(path.join(dir, 'empty.txt'), '');
    await expect(loadDataset({ data: path.join(dir, 'empty.txt'), tokenizer: tok })).rejects.toThrow(/data file '.*empty\.txt' is empty/);
    fs.mkdirSync(path.join(dir, 'nothing'), { recursive: true });
    await expect(loadDataset({ data: path.join(dir, 'nothing'), tokenizer: tok })).rejects.toThrow(/holds no text files/);
    fs.writeFileSync(path.join(dir, 'short.txt'), 'x'.repeat(100));
    const ds = await loadDataset({ data: path.join(dir, 'short.txt'), tokenizer: tok });
    expect(() => checkWindows(ds, 8)).not.toThrow();
    // the library names the option `seq`; the command line prints it as --seq
    expect(() => checkWindows(ds, 10)).toThrow(/validation split of '.*short\.txt' has 10 tokens, fewer than one window of 11 \(seq 10/);
    const short = (() => {
      try {
        checkWindows(ds, 10);
      } catch (e) {
        return e as CrateError;
      }
    })();
    expect(short).toBeInstanceOf(DataError);
    expect(cliMessage(short!)).toMatch(/validation split of '.*short\.txt' has 10 tokens, fewer than one window of 11 \(--seq 10 .*a smaller --seq$/);
    expect(() => checkWindows(ds, 95)).toThrow(/training split .* has 90 tokens/);
  });
});

describe('batches', () => {
  const tokens = Uint16Array.from({ length: 1000 }, (_, i) => i % 251);

  it('windows: y is x shifted by one', () => {
    const b = windowsAt(tokens, [0, 10], 4);
    expect(Array.from(b.x)).toEqual([0, 1, 2, 3, 10, 11, 12, 13]);
    expect(Array.from(b.y)).toEqual([1, 2, 3, 4, 11, 12, 13, 14]);
    expect(() => windowsAt(tokens, [996], 4)).toThrow(/outside/);
  });

  it('the sampler is seeded, stays in bounds, and its saved state resumes the same stream', () => {
    const a = new BatchSampler(tokens, 5),
      b = new BatchSampler(tokens, 5);
    for (let i = 0; i < 3; i++) expect(a.next(4, 16)).toEqual(b.next(4, 16));
    const saved = a.getState();
    const next = [a.next(4, 16), a.next(4, 16)];
    const c = new BatchSampler(tokens, 999);
    c.setState(saved);
    expect([c.next(4, 16), c.next(4, 16)]).toEqual(next);
    const small = Uint16Array.from([1, 2, 3, 4, 5]);
    const s = new BatchSampler(small, 1);
    for (let i = 0; i < 20; i++) expect(Array.from(s.next(1, 4).y)).toEqual([2, 3, 4, 5]);
  });

  it('evaluation windows are fixed, non-overlapping when possible, and cover the split', () => {
    const bs = evalBatches(tokens, 4, 9, 10);
    expect(bs.map((b) => b.x.length / 9)).toEqual([4, 4, 2]);
    expect(bs[0].x[0]).toBe(0);
    expect(bs[2].y[bs[2].y.length - 1]).toBe(tokens[tokens.length - 1]);
    expect(evalBatches(tokens, 4, 9, 10)).toEqual(bs);
    expect(evalBatches(tokens.subarray(0, 25), 4, 9, 10).reduce((s, b) => s + b.x.length / 9, 0)).toBe(2);
  });

  it('unigram entropy: log(n) for n equally frequent tokens, 0 for one token', () => {
    expect(unigramEntropy([1, 2, 3, 4, 1, 2, 3, 4])).toBeCloseTo(Math.log(4), 14);
    expect(unigramEntropy([7, 7, 7])).toBe(0);
  });
});
