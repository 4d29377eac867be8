// A fuzz suite that stays: mutations of real checkpoints made by this project (and of the PyTorch
// fixtures and a format_version 1 file) through readSafetensors, loadCheckpoint, modelFromCheckpoint
// and optimizerFromCheckpoint, with a fixed seed and a bounded budget; named regressions for what
// fuzzing the earlier code found; and a table of bad checkpoints through the real command line.
// `npm run fuzz -- --cases 100000` (scripts/fuzz.mjs) runs the same generators for long runs.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MAX_MESSAGE_LENGTH, serializeSafetensors } from '../src/io/safetensors.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { LanguageModel } from '../src/model/lm.js';
import { makeConfig } from '../src/model/config.js';
import { stateDictFromModel, configToMetadata } from '../src/checkpoint/statedict.js';
import {
  MUTATION_KINDS,
  editHeader,
  editMetadata,
  joinFile,
  makeCase,
  makeSeeds,
  nestedJson,
  runCase,
  splitFile,
  type Seed,
} from '../src/testing/checkpoint-fuzz.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const EXTRA = [
  'fixtures/crate-small.safetensors',
  'fixtures/gpt2-small.safetensors',
  'fixtures/crate-t1.safetensors',
  'test/data/checkpoint-v1.safetensors',
].map((f) => path.join(root, f));

let dir: string;
let seeds: Seed[];
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-fuzz-test-'));
  seeds = makeSeeds(dir, EXTRA);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** The crate-ts checkpoint seed with optimizer moments and train_state. */
const full = () => seeds.find((s) => s.name === 'crate+optimizer+train')!.bytes;
const withConfig = (bytes: Uint8Array, edit: (c: Record<string, unknown>) => void) =>
  editMetadata(bytes, (md) => {
    const c = JSON.parse(md.config as string);
    edit(c);
    md.config = JSON.stringify(c);
  });
const withConfigField = (bytes: Uint8Array, field: string, json: string) =>
  editMetadata(bytes, (md) => {
    md.config = (md.config as string).replace(new RegExp(`"${field}":[^,}]+`), `"${field}":${json}`);
  });
const withEntryField = (bytes: Uint8Array, tensor: string, field: string, json: string) => {
  const f = splitFile(bytes)!;
  const h = { ...f.header, [tensor]: { ...(f.header[tensor] as object), [field]: '__X__' } };
  return joinFile(
    JSON.stringify(h).replace('"__X__"', () => json),
    f.data,
  );
};

// ---- the fuzz run ----------------------------------------------------------------------------------

describe('fuzz: mutated checkpoints load or are refused with a clean CheckpointError', () => {
  const SEED = 20261130,
    CASES = 2400,
    PER_CASE_MS = 10_000;

  it(
    `${CASES} cases (seed ${SEED}): no other exception, no message over ${MAX_MESSAGE_LENGTH} characters, none slower than ${PER_CASE_MS / 1000} s`,
    { timeout: 600_000 },
    () => {
      const file = path.join(dir, 'case.safetensors');
      const counts = { loaded: 0, rejected: 0, crash: 0 };
      const kinds = new Set<string>();
      const failures: string[] = [];
      let longest = 0;
      for (let i = 0; i < CASES; i++) {
        const c = makeCase(seeds, SEED, i);
        c.kind.split('+').forEach((k) => kinds.add(k));
        const t0 = performance.now();
        const r = runCase(c.bytes, file);
        const ms = performance.now() - t0;
        counts[r.outcome]++;
        longest = Math.max(longest, r.message.length);
        if (r.outcome === 'crash') failures.push(`case ${i} (${c.kind} of ${c.seedName}): ${r.detail?.split('\n').slice(0, 3).join(' | ')}`);
        if (ms > PER_CASE_MS) failures.push(`case ${i} (${c.kind} of ${c.seedName}) took ${ms.toFixed(0)} ms`);
      }
      expect(failures, failures.slice(0, 5).join('\n')).toEqual([]);
      expect(longest).toBeLessThanOrEqual(MAX_MESSAGE_LENGTH);
      // the generators reach every mutation kind, and both outcomes
      expect([...kinds].sort()).toEqual([...MUTATION_KINDS].sort());
      expect(counts.loaded).toBeGreaterThan(CASES / 50);
      expect(counts.rejected).toBeGreaterThan(CASES / 2);
    },
  );

  it('cases are a pure function of (seed, index)', () => {
    for (const i of [0, 17, 999]) expect(makeCase(seeds, 5, i).bytes).toEqual(makeCase(seeds, 5, i).bytes);
    expect(makeCase(seeds, 5, 1).bytes).not.toEqual(makeCase(seeds, 6, 1).bytes);
  });
});

// ---- regressions -----------------------------------------------------------------------------------

describe('regressions: what `npm run fuzz -- --seed 1 --cases 3000` found in the code before this change', () => {
  // 109 crashes and 4 hangs in 3,000 cases then; each class is pinned here by an explicit input.
  const expectRejected = (bytes: Uint8Array, re: RegExp) => {
    const r = runCase(bytes, path.join(dir, 'regression.safetensors'));
    expect(r.outcome, r.detail ?? r.message).toBe('rejected');
    expect(r.message.length).toBeLessThanOrEqual(MAX_MESSAGE_LENGTH);
    expect(r.message).toMatch(re);
  };

  it('case 484: n_layer 2,000,000 hung (the heap filled with layer tables)', () => {
    expectRejected(
      withConfig(full(), (c) => {
        c.n_layer = 2_000_000;
      }),
      /config field "n_layer" is 2000000, above the limit of 1024/,
    );
  });

  it('case 332: n_embd 8,000,000 threw RangeError "Invalid typed array length: 768000248000000"', () => {
    expectRejected(
      withConfig(full(), (c) => {
        c.n_embd = 8_000_000;
      }),
      /config field "n_embd" is 8000000, above the limit of 65536/,
    );
  });

  it('cases 163, 223: a config field nested 100,000 deep overflowed the stack (Number() of a nested array)', () => {
    expectRejected(withConfigField(full(), 'block_size', nestedJson(100_000)), /config field "block_size" must be a positive integer, got \[\[\.\.\.\]\]/);
    expectRejected(withConfigField(full(), 'eta', nestedJson(100_000)), /config field "eta" must be a finite number/);
  });

  it('case 35: overcomplete [[...[1]]] was read as 1 (Number() of a one-element array) and loaded a mis-shaped model', () => {
    expectRejected(withConfigField(full(), 'overcomplete', nestedJson(20)), /config field "overcomplete" must be a positive integer, got \[\[\.\.\.\]\]/);
    expectRejected(withConfigField(full(), 'n_head', '[2]'), /config field "n_head" must be a positive integer, got \[2\]/);
  });

  it('case 74: a float tensor relabelled U64 threw RangeError from the safe-integer conversion', () => {
    const bytes = editHeader(full(), (h) => {
      (h['transformer.h.0.prenorm_1.weight'] as { dtype: string }).dtype = 'U64';
    });
    expectRejected(bytes, /tensor "transformer\.h\.0\.prenorm_1\.weight" has dtype U64; parameters must be F64, F32, F16, BF16/);
  });

  it('case 55: an unknown dtype of 5,000 characters was quoted whole (a 5,098-character message)', () => {
    const bytes = editHeader(full(), (h) => {
      (h['transformer.ln_f.weight'] as { dtype: string }).dtype = 'x'.repeat(5000);
    });
    expectRejected(bytes, /tensor "transformer\.ln_f\.weight": unknown dtype "x+"…$/);
  });

  it('cases 17, 367: a shape of 10,000 dims was printed whole (a 30,166-character message)', () => {
    const bytes = editHeader(full(), (h) => {
      (h['transformer.h.0.attn.c_proj.weight'] as { shape: number[] }).shape = Array(10_000).fill(1);
    });
    expectRejected(bytes, /byte size mismatch: shape \[1, 1, 1, 1, 1, 1, … \(10000 dims\)\] of F64 needs 8 bytes/);
  });

  it('case 100: data_offsets holding a nested object were printed whole (a 20,654-character message)', () => {
    const bytes = withEntryField(full(), 'transformer.ln_f.weight', 'data_offsets', `[0, ${nestedJson(3000, '1', '{"a":', '}')}]`);
    expectRejected(bytes, /tensor "transformer\.ln_f\.weight": data_offsets \[0, \{\.\.\.\}\] must be non-negative integers/);
  });

  it('case 192: a shape dimension nested 2,000 deep was printed whole (2,134 characters); 100,000 deep overflowed the stack', () => {
    expectRejected(
      withEntryField(full(), 'transformer.wte.weight', 'shape', `[11, ${nestedJson(2000)}]`),
      /shape dimension \[\[\.\.\.\]\] is not a non-negative integer/,
    );
    expectRejected(
      withEntryField(full(), 'transformer.wte.weight', 'shape', nestedJson(100_000)),
      /shape dimension \[\[\.\.\.\]\] is not a non-negative integer/,
    );
  });

  it('loadStateDict listed every mis-shaped tensor with the path twice (365 characters and more)', () => {
    // A PyTorch-style file (no checksum) whose config and tensors agree in size but not in shape.
    const be = new ReferenceBackend();
    const m = new LanguageModel(be, makeConfig('golden', { nLayer: 4 }), { seed: 1 }) as LanguageModel<unknown>;
    const sd = stateDictFromModel(m, 'F64');
    for (const [k, t] of Object.entries(sd)) if (t.shape.length === 2 && t.shape[0] === t.shape[1]) sd[k] = { ...t, shape: [t.shape[0] * t.shape[1], 1] };
    m.free();
    expectRejected(
      serializeSafetensors(sd, configToMetadata(m.config)),
      /does not match the crate model .*tensors with the wrong shape: transformer\.wpe\.weight: \[64, 1\] in the file, \[8, 8\] in the model; also transformer\.h\.0\.attn\.c_attn\.weight and 7 more$/,
    );
  });
});

// ---- the command line --------------------------------------------------------------------------------

describe('crate-ts eval on bad checkpoints (the real CLI, child processes)', () => {
  const cli = path.join(root, 'bin', 'crate-ts.js');

  function evalCli(args: string[]): Promise<{ code: number; stderr: string; stdout: string }> {
    return new Promise((resolve) => {
      const env = { ...process.env };
      delete env.CRATE_TS_DEBUG;
      execFile(process.execPath, [cli, 'eval', ...args], { env, timeout: 60_000, encoding: 'utf8' }, (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
      });
    });
  }

  it('~35 bad checkpoints: exit code 1 or 2, one line on stderr naming the problem, no stack trace', { timeout: 300_000 }, async () => {
    // dist/ is what bin/crate-ts.js runs (built by npm install / npx tsc); refuse a stale one.
    const built = path.join(root, 'dist', 'checkpoint', 'checkpoint.js');
    expect(fs.existsSync(built), `${built} is missing: run npx tsc -p tsconfig.json`).toBe(true);
    for (const src of ['checkpoint/checkpoint.ts', 'checkpoint/validate.ts', 'checkpoint/checksum.ts', 'checkpoint/statedict.ts', 'io/safetensors.ts']) {
      const s = path.join(root, 'src', src),
        d = path.join(root, 'dist', src.replace(/\.ts$/, '.js'));
      expect(fs.statSync(d).mtimeMs, `dist/ is older than src/${src}: run npx tsc -p tsconfig.json`).toBeGreaterThanOrEqual(fs.statSync(s).mtimeMs);
    }
    const b = full();
    const f = splitFile(b)!;
    const at = (name: string) => b.length - f.data.length + (f.header[name] as { data_offsets: [number, number] }).data_offsets[0];
    const flipped = b.slice();
    flipped[at('transformer.wte.weight') + 5] ^= 0x40;
    const nan = editMetadata(b, (md) => {
      md.format_version = '1';
      delete md.checksum;
    });
    const nanAt = nan.length - f.data.length + (f.header['transformer.wpe.weight'] as { data_offsets: [number, number] }).data_offsets[0];
    new DataView(nan.buffer).setFloat64(nanAt + 16, NaN, true);
    const hugeHeader = b.slice();
    new DataView(hugeHeader.buffer).setBigUint64(0, 2n ** 63n, true);
    // a data file, so that eval reaches the model for the cases the loader lets through (dtype, NaN)
    const text = path.join(dir, 'text.txt');
    fs.writeFileSync(text, Buffer.from(Array.from({ length: 2000 }, (_, i) => 1 + ((i * 7) % 10)))); // byte ids 1..10 < V 11
    const emptyDir = path.join(dir, 'empty-run');
    fs.mkdirSync(emptyDir, { recursive: true });

    const cases: [string, Uint8Array | string, RegExp][] = [
      [
        'n_layer 1e12',
        withConfig(b, (c) => {
          c.n_layer = 1e12;
        }),
        /config field "n_layer" is 1000000000000, above the limit of 1024/,
      ],
      [
        'n_layer 1e6',
        withConfig(b, (c) => {
          c.n_layer = 1e6;
        }),
        /config field "n_layer" is 1000000, above the limit/,
      ],
      [
        'vocab_size 1e12',
        withConfig(b, (c) => {
          c.vocab_size = 1e12;
        }),
        /config field "vocab_size" is 1000000000000, above the limit/,
      ],
      [
        'n_embd 2^40',
        withConfig(b, (c) => {
          c.n_embd = 2 ** 40;
        }),
        /config field "n_embd" is 1099511627776, above the limit/,
      ],
      [
        'n_layer 3 (file has 2)',
        withConfig(b, (c) => {
          c.n_layer = 3;
        }),
        /config field "n_layer" is 3 but the file holds 2 blocks/,
      ],
      [
        'block_size 16 (file has 8)',
        withConfig(b, (c) => {
          c.block_size = 16;
        }),
        /config field "block_size" is 16 but the file holds 8 position embeddings/,
      ],
      [
        'eta null',
        withConfig(b, (c) => {
          c.eta = null;
        }),
        /config field "eta" must be a finite number, got null/,
      ],
      [
        'eta "0.1"',
        withConfig(b, (c) => {
          c.eta = '0.1';
        }),
        /config field "eta" must be a finite number, got "0\.1"/,
      ],
      [
        'lam -1',
        withConfig(b, (c) => {
          c.lam = -1;
        }),
        /config field "lam" is -1, outside \[0, 100\]/,
      ],
      [
        'ln_eps 0',
        withConfig(b, (c) => {
          c.ln_eps = 0;
        }),
        /config field "ln_eps" is 0, outside \(0, 1\]/,
      ],
      [
        'ista_steps 0',
        withConfig(b, (c) => {
          c.ista_steps = 0;
        }),
        /config field "ista_steps" must be a positive integer, got 0/,
      ],
      [
        'n_head 3',
        withConfig(b, (c) => {
          c.n_head = 3;
        }),
        /config field "n_embd" \(8\) is not divisible by "n_head" \(3\)/,
      ],
      [
        'n_head 4 (valid, edited)',
        withConfig(b, (c) => {
          c.n_head = 4;
        }),
        /checksum mismatch in metadata entry "config"/,
      ],
      [
        'arch rnn',
        withConfig(b, (c) => {
          c.arch = 'rnn';
        }),
        /config field "arch" must be one of crate, crate-complete, gpt2; got "rnn"/,
      ],
      [
        'config not JSON',
        editMetadata(b, (md) => {
          md.config = '{"n_layer":';
        }),
        /metadata "config" is not valid JSON/,
      ],
      ['config nested deep', withConfigField(b, 'n_layer', nestedJson(100_000)), /config field "n_layer" must be a positive integer, got \[\[\.\.\.\]\]/],
      [
        'format_version 3',
        editMetadata(b, (md) => {
          md.format_version = '3';
        }),
        /format_version 3 was written by a newer crate-ts; this one reads versions 1, 2/,
      ],
      [
        'format_version x',
        editMetadata(b, (md) => {
          md.format_version = 'x';
        }),
        /metadata "format_version" is "x", not a version/,
      ],
      [
        'checksum removed',
        editMetadata(b, (md) => {
          delete md.checksum;
        }),
        /metadata "checksum" is missing/,
      ],
      ['flipped data byte', flipped, /checksum mismatch in tensor "transformer\.wte\.weight"/],
      [
        'F64 relabelled I64',
        editHeader(b, (h) => {
          (h['transformer.wpe.weight'] as { dtype: string }).dtype = 'I64';
        }),
        /tensor "transformer\.wpe\.weight" has dtype I64; parameters must be F64, F32, F16, BF16/,
      ],
      ['NaN in a parameter (format 1)', nan, /tensor transformer\.wpe\.weight holds a non-finite value \(NaN\) at flat index 2/],
      [
        'tokenizer bpe',
        editMetadata(b, (md) => {
          md.tokenizer = 'bpe';
        }),
        /metadata "tokenizer" is "bpe"; known tokenizers: byte, gpt2/,
      ],
      [
        'train_state {"step":1}',
        editMetadata(b, (md) => {
          md.train_state = '{"step":1}';
        }),
        /train_state field "dataRng" must be an array of 4 unsigned 32-bit integers/,
      ],
      [
        'train_state hyper.seq "x"',
        editMetadata(b, (md) => {
          const s = JSON.parse(md.train_state as string);
          s.hyper.seq = 'x';
          md.train_state = JSON.stringify(s);
        }),
        /train_state field "hyper\.seq" must be an integer/,
      ],
      [
        'train_state nested deep',
        editMetadata(b, (md) => {
          md.train_state = nestedJson(100_000);
        }),
        /metadata "train_state" must be a JSON object, got \[\[\.\.\.\]\]/,
      ],
      [
        'shape nested deep',
        withEntryField(b, 'transformer.wte.weight', 'shape', nestedJson(100_000)),
        /tensor "transformer\.wte\.weight": shape dimension \[\[\.\.\.\]\] is not a non-negative integer/,
      ],
      [
        'data_offsets nested deep',
        withEntryField(b, 'transformer.wte.weight', 'data_offsets', nestedJson(100_000)),
        /"data_offsets" must be an array \[begin, end\]/,
      ],
      [
        'shape of 10,000 dims',
        withEntryField(b, 'transformer.wte.weight', 'shape', `[${Array(10_000).fill(1).join(',')}]`),
        /byte size mismatch: shape \[1, 1, 1, 1, 1, 1, … \(10000 dims\)\]/,
      ],
      ['truncated to half', b.slice(0, b.length >> 1), /extend past the end of the data buffer|extends past the end of the file/],
      ['empty file', new Uint8Array(0), /truncated: 0 bytes/],
      ['header length 2^63', hugeHeader, /header length 9223372036854775808 exceeds the limit of 100000000 bytes/],
      [
        'a text file',
        new TextEncoder().encode('this is not a checkpoint\n'.repeat(4)),
        /not a safetensors file \(it would start with an 8-byte header length and a JSON header '\{'; this one starts with "this is not "\)/,
      ],
      ['no config metadata', serializeSafetensors({ w: { dtype: 'F32', shape: [1], data: [1] } }), /not a crate-ts checkpoint/],
      ['missing file', path.join(dir, 'absent.safetensors'), /absent\.safetensors/],
      ['run directory without a checkpoint', emptyDir, /empty-run/],
    ];
    const results: string[] = [];
    const queue = cases.map(([name, input, re], i) => async () => {
      let file: string;
      if (typeof input === 'string') file = input;
      else {
        file = path.join(dir, `cli-${i}.safetensors`);
        fs.writeFileSync(file, input);
      }
      const r = await evalCli(['--checkpoint', file, '--backend', 'reference', '--data', text]);
      const err = r.stderr.trimEnd();
      const problems: string[] = [];
      if (r.code !== 1 && r.code !== 2) problems.push(`exit code ${r.code}`);
      if (err.includes('\n')) problems.push(`${err.split('\n').length} lines on stderr`);
      if (/\n\s+at /.test(r.stderr) || /\bat .*\.js:\d+/.test(err)) problems.push('a stack trace');
      if (!err.startsWith('crate-ts eval: ')) problems.push('no "crate-ts eval: " prefix');
      if (!re.test(err)) problems.push(`message does not match ${re}`);
      if (problems.length) results.push(`${name}: ${problems.join(', ')}: ${err.slice(0, 400)}`);
    });
    // two at a time (the machine has 2 cores)
    const workers = [0, 1].map(async () => {
      while (queue.length) await queue.shift()!();
    });
    await Promise.all(workers);
    expect(cases.length).toBeGreaterThanOrEqual(30);
    expect(results, results.join('\n')).toEqual([]);
  });
});
