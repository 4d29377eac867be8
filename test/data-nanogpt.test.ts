// nanoGPT character datasets: meta.pkl beside train.bin is read (a data-only pickle reader), the run
// uses the `char` tokenizer with that vocabulary, the checkpoint carries it, and sample/eval decode
// with it. test/data/nanogpt-char was made from test/data/nanogpt-char/input.txt (the opening of
// Moby-Dick) by `python3 scripts/make_char_dataset.py`, which does what nanoGPT's
// data/shakespeare_char/prepare.py does (pickle.dump with Python's default protocol).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { readPickle, isTuple, type PyValue } from '../src/data/pickle.js';
import { readNanoGptMeta, metaPathFor } from '../src/data/nanogpt.js';
import { loadTokenizer, CharTokenizer } from '../src/data/tokenizer.js';
import { train, resolveRun } from '../src/train/trainer.js';
import { loadCheckpoint } from '../src/checkpoint/checkpoint.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { DataError } from '../src/errors.js';
import { capture } from './helpers/capture.js';

const DATA = path.join(__dirname, 'data', 'nanogpt-char');
const INPUT = fs.readFileSync(path.join(DATA, 'input.txt'), 'utf8');
/** The vocabulary prepare.py makes: sorted(set(text)), by code point. */
const CHARS = [...new Set(Array.from(INPUT))].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);
const PYTHON = spawnSync('python3', ['-c', 'import pickle'], { encoding: 'utf8' }).status === 0 ? 'python3' : null;

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-nanogpt-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A PyValue as JSON-able data: dicts as [key, value] pairs, tuples as {tuple: [...]}, bigints as strings. */
function plain(v: PyValue): unknown {
  if (v instanceof Map) return [...v.entries()].map(([k, x]) => [plain(k as PyValue), plain(x)]);
  if (isTuple(v)) return { tuple: v.map(plain) };
  if (Array.isArray(v)) return v.map(plain);
  if (typeof v === 'bigint') return String(v);
  return v;
}

const pickleBytes = (hex: string) => Uint8Array.from(Buffer.from(hex, 'hex'));

describe('meta.pkl: the pickle reader', () => {
  it("reads the meta.pkl that nanoGPT's prepare.py writes", () => {
    const { vocab } = readNanoGptMeta(path.join(DATA, 'meta.pkl'));
    expect(vocab).toEqual(CHARS);
    const raw = readPickle(fs.readFileSync(path.join(DATA, 'meta.pkl')), 'meta.pkl') as Map<string, PyValue>;
    expect(raw.get('vocab_size')).toBe(CHARS.length);
    expect((raw.get('stoi') as Map<string, number>).get('C')).toBe(CHARS.indexOf('C'));
    // the ids in train.bin are prepare.py's encoding of the first 90% of the text
    const ids = new Uint16Array(fs.readFileSync(path.join(DATA, 'train.bin')).buffer.slice(0));
    expect(new CharTokenizer(vocab).decode(ids)).toBe(INPUT.slice(0, Math.floor(INPUT.length * 0.9)));
  });

  it.skipIf(PYTHON === null)('agrees with Python on every opcode a data pickle uses, protocols 2 to 5', () => {
    // big dicts (SETITEMS in batches of 1000, LONG_BINPUT/LONG_BINGET past 256 memo entries), ints of
    // every width (BININT1/2, BININT, LONG1 incl. negative and > 2^53), floats, long and non-ASCII
    // strings (BINUNICODE), lists, tuples, None and booleans; shared objects come back through the memo
    const script = `
import pickle, sys, json
big = {i: chr(0x4e00 + i) for i in range(1500)}
obj = {'vocab_size': 1500, 'itos': big, 'stoi': {v: k for k, v in big.items()},
       'ints': [0, 255, 256, 65535, 65536, -1, -2**31, 2**31 - 1, 2**40, -2**40, 2**70, -2**70],
       'floats': [0.5, -1e300, 3.141592653589793], 'long': 'x' * 300 + 'é\\u00ff\\U0001F600',
       'tuples': [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)], 'misc': [None, True, False, [], {}],
       (1, 'k'): 'tuple key'}
shared = ['s']
obj['shared'] = [shared, shared]
for proto in (2, 3, 4, 5):
    sys.stdout.write(pickle.dumps(obj, protocol=proto).hex() + '\\n')
`;
    const r = spawnSync(PYTHON!, ['-c', script], { encoding: 'utf8', maxBuffer: 64 << 20 });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(4);
    for (const [i, hex] of lines.entries()) {
      const v = readPickle(pickleBytes(hex), `proto ${i + 2}`) as Map<unknown, PyValue>;
      const itos = v.get('itos') as Map<number, string>;
      expect(itos.size).toBe(1500);
      expect(itos.get(1499)).toBe(String.fromCodePoint(0x4e00 + 1499));
      expect((v.get('stoi') as Map<string, number>).get(String.fromCodePoint(0x4e00 + 7))).toBe(7);
      expect(plain(v.get('ints')!)).toEqual([
        0,
        255,
        256,
        65535,
        65536,
        -1,
        -(2 ** 31),
        2 ** 31 - 1,
        2 ** 40,
        -(2 ** 40),
        String(2n ** 70n),
        String(-(2n ** 70n)),
      ]);
      expect(v.get('floats')).toEqual([0.5, -1e300, 3.141592653589793]);
      expect(v.get('long')).toBe('x'.repeat(300) + 'é\u00ff\u{1F600}');
      expect(plain(v.get('tuples')!)).toEqual([{ tuple: [] }, { tuple: [1] }, { tuple: [1, 2] }, { tuple: [1, 2, 3] }, { tuple: [1, 2, 3, 4] }]);
      expect(plain(v.get('misc')!)).toEqual([null, true, false, [], []]);
      const shared = v.get('shared') as PyValue[][];
      expect(shared[0]).toBe(shared[1]); // one object, through the memo
      const tupleKey = [...v.keys()].find((k) => isTuple(k));
      expect(tupleKey && v.get(tupleKey)).toBe('tuple key');
    }
  });

  it('refuses opcodes that import or call, naming the file, the opcode and its offset', () => {
    // pickle.dumps(os.system, protocol=4): STACK_GLOBAL of posix.system
    const global = pickleBytes('80049514000000000000008c05706f736978948c0673797374656d9493942e');
    expect(() => readPickle(global, 'evil.pkl')).toThrow(DataError);
    expect(() => readPickle(global, 'evil.pkl')).toThrow(
      /^evil\.pkl: pickle opcode 0x93 \(STACK_GLOBAL\) at byte 28 is not supported: only dicts, lists, tuples, strings, numbers, None and booleans are read/,
    );
    // protocol 0 (text) GLOBAL + REDUCE: "cos\nsystem\n(S'echo'\ntR."
    expect(() => readPickle(new TextEncoder().encode("cos\nsystem\n(S'echo'\ntR."), 'p0.pkl')).toThrow(/p0\.pkl: pickle opcode 0x63 \(GLOBAL\) at byte 0/);
    // a meta.pkl on disk that holds a class instance is refused the same way by readNanoGptMeta
    const f = path.join(dir, 'meta.pkl');
    fs.writeFileSync(f, global);
    expect(() => readNanoGptMeta(f)).toThrow(new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: pickle opcode 0x93 \\(STACK_GLOBAL\\)`));
  });

  it('truncated, empty and malformed pickles are one-line DataErrors', () => {
    const good = fs.readFileSync(path.join(DATA, 'meta.pkl'));
    expect(() => readPickle(good.subarray(0, 100), 'cut.pkl')).toThrow(/cut\.pkl: truncated/);
    expect(() => readPickle(new Uint8Array(0), 'empty.pkl')).toThrow(/empty\.pkl: truncated: no STOP opcode/);
    expect(() => readPickle(pickleBytes('80046a000100002e'), 'memo.pkl')).toThrow(
      /memo\.pkl: opcode 0x6a at byte 2 reads memo entry 256, which was never stored/,
    );
    expect(() => readPickle(pickleBytes('80042e'), 'stack.pkl')).toThrow(/stack\.pkl: opcode 0x2e at byte 2 pops an empty stack/);
    expect(() => readPickle(pickleBytes('8004584000000061'), 'len.pkl')).toThrow(/len\.pkl: truncated: opcode 0x58 at byte 2 needs 64 more bytes/);
  });

  it('checks the vocabulary: itos ids, vocab_size, stoi the inverse of itos', () => {
    const write = (py: string) => {
      const f = path.join(dir, `m${Math.random().toString(36).slice(2)}.pkl`);
      const r = spawnSync(PYTHON!, ['-c', `import pickle,sys; sys.stdout.buffer.write(pickle.dumps(${py}))`]);
      fs.writeFileSync(f, r.stdout);
      return f;
    };
    if (PYTHON === null) return;
    expect(() => readNanoGptMeta(write("{'vocab_size': 3, 'itos': {0: 'a', 1: 'b'}}"))).toThrow(/'vocab_size' is 3 but 'itos' has 2 entries/);
    expect(() => readNanoGptMeta(write("{'vocab_size': 2, 'itos': {0: 'a', 5: 'b'}}"))).toThrow(/'itos' key 5 is not an id in \[0, 2\)/);
    expect(() => readNanoGptMeta(write("{'vocab_size': 2, 'itos': {0: 'a', 1: 'b'}, 'stoi': {'a': 1, 'b': 0}}"))).toThrow(
      /'stoi' is not the inverse of 'itos'/,
    );
    expect(() => readNanoGptMeta(write("{'vocab_size': 50257}"))).toThrow(/has no 'itos' dict .*only character-level datasets carry a vocabulary/);
  });
});

describe('training on a nanoGPT character dataset', () => {
  let run: string;
  beforeAll(async () => {
    run = path.join(dir, 'run');
    await train({
      preset: 'char-tiny',
      nEmbd: 16,
      nHead: 2,
      nLayer: 1,
      seq: 16,
      batch: 4,
      steps: 30,
      warmup: 3,
      lr: 1e-2,
      evalWindows: 8,
      evalEvery: 0,
      data: DATA,
      backend: new ReferenceBackend(),
      out: run,
      quiet: true,
      sampleTokens: 0,
      cacheDir: null,
    });
  });

  it('uses the char tokenizer of meta.pkl and records its vocabulary in the checkpoint', () => {
    expect(metaPathFor(DATA)).toBe(path.join(DATA, 'meta.pkl'));
    expect(metaPathFor(path.join(DATA, 'train.bin'))).toBe(path.join(DATA, 'meta.pkl'));
    const ck = loadCheckpoint(run);
    expect(ck.tokenizer).toBe('char');
    expect(ck.tokenizerVocab).toEqual(CHARS);
    expect(ck.config.vocabSize).toBe(CHARS.length);
    // the weights file alone carries it
    expect(JSON.parse(readSafetensors(path.join(run, 'model.safetensors')).metadata.tokenizer_vocab)).toEqual(CHARS);
    expect(JSON.parse(fs.readFileSync(path.join(run, 'config.json'), 'utf8'))).toMatchObject({ tokenizer: 'char', vocab_size: CHARS.length });
  });

  it("sample decodes with that vocabulary (every character is one of the dataset's)", async () => {
    const r = await capture(['sample', '--checkpoint', run, '--prompt', 'Call me ', '--tokens', '60', '--seed', '1']);
    expect(r.code, r.err).toBe(0);
    expect(r.out.startsWith('Call me ')).toBe(true);
    const gen = Array.from(r.out.slice('Call me '.length, -1));
    expect(gen.length).toBe(60); // one character per token
    for (const ch of gen) expect(CHARS, JSON.stringify(ch)).toContain(ch);
  });

  it('a prompt character outside the vocabulary is a one-line error naming it', async () => {
    const r = await capture(['sample', '--checkpoint', run, '--prompt', 'Call me Zoë', '--tokens', '5']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^crate-ts sample: the character "[Zë]" \(U\+[0-9A-F]{4}\) at position \d+ is not in the char tokenizer's vocabulary of 55\n$/);
  });

  it("eval measures the model on the dataset's own ids: below the uniform loss ln(55)", async () => {
    const r = await capture(['eval', '--checkpoint', run, '--backend', 'reference', '--windows', '16', '--json']);
    expect(r.code, r.err).toBe(0);
    const j = JSON.parse(r.out) as { loss: number; tokenizer: string };
    expect(j.tokenizer).toBe('char');
    expect(j.loss).toBeLessThan(Math.log(CHARS.length));
    expect(j.loss).toBeGreaterThan(0.5);
  });

  it('--tokenizer char without meta.pkl, and a mismatched --tokenizer, say so', async () => {
    const bare = path.join(dir, 'bare');
    fs.mkdirSync(bare);
    for (const f of ['train.bin', 'val.bin']) fs.copyFileSync(path.join(DATA, f), path.join(bare, f));
    await expect(resolveRun({ data: bare, tokenizer: 'char', backend: new ReferenceBackend(), cacheDir: null })).rejects.toThrow(
      /char needs a vocabulary: a nanoGPT meta\.pkl beside train\.bin/,
    );
    const r = await resolveRun({ data: DATA, tokenizer: 'byte', backend: new ReferenceBackend(), cacheDir: null });
    expect(r.notices.join('\n')).toMatch(/meta\.pkl \(a nanoGPT character vocabulary\) is not used: --tokenizer byte was given/);
    expect((await loadTokenizer('byte')).name).toBe('byte');
    await expect(loadTokenizer('char')).rejects.toThrow(/the char tokenizer needs a vocabulary/);
  });
});
