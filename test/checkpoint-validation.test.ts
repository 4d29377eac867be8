// Checkpoints are untrusted files. Each block below is a defect a fuzzing pass found, with the
// inputs that showed it: metadata trusted without limits (n_layer 1e12 ran out of memory), files that
// loaded silently as a different model (an I32 relabelling, eta: null, an edited config, a newer
// format), an unchecked train_state, and reader messages that overflowed the stack or quoted whole
// arrays. Every refusal is a CheckpointError of one line, at most 300 characters, naming the file
// and the field or tensor.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { CheckpointError, UsageError } from '../src/errors.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { LanguageModel } from '../src/model/lm.js';
import { CONFIG_LIMITS, configParameterCount, makeConfig, validateConfig, type Arch, type ModelConfig } from '../src/model/config.js';
import { paramTable, totalSize } from '../src/model/params.js';
import {
  CHECKPOINT_VERSION,
  loadCheckpoint,
  modelFromCheckpoint,
  optimizerFromCheckpoint,
  saveCheckpoint,
  type TrainState,
} from '../src/checkpoint/checkpoint.js';
import { loadStateDict, stateDictFromModel, configToMetadata } from '../src/checkpoint/statedict.js';
import { parseSafetensors, readSafetensors, serializeSafetensors, SafetensorsError, MAX_MESSAGE_LENGTH } from '../src/io/safetensors.js';
import { editHeader, editMetadata, joinFile, nestedJson, splitFile, sampleHyper } from '../src/testing/checkpoint-fuzz.js';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-ckval-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const be = new ReferenceBackend();
const golden = (arch: Arch = 'crate', over: Partial<ModelConfig> = {}) => makeConfig('golden', { arch, ...over });

const state = (): TrainState => ({
  step: 2,
  dataRng: [1, 2, 3, 4],
  tokensSeen: 100,
  elapsed: 1.5,
  hyper: sampleHyper(),
  data: { source: 'x', contentHash: 'abc', kind: 'text', split: 'last 10%', unigramEntropy: 2 },
  history: [{ step: 1, loss: 3, lr: 1e-3 }],
  evals: [],
});

let n = 0;
/** A fresh crate-ts checkpoint (format_version 2, with checksum) of the golden model; returns its bytes and path. */
function saved(arch: Arch = 'crate', withState = true): { file: string; bytes: Uint8Array; model: LanguageModel<unknown> } {
  const model = new LanguageModel(be, golden(arch), { seed: 7 }) as LanguageModel<unknown>;
  const file = path.join(dir, `ck-${n++}.safetensors`);
  const N = model.numParameters;
  saveCheckpoint(file, {
    model,
    tokenizer: 'byte',
    optimizer: { m: new Float64Array(N).fill(1e-3), v: new Float64Array(N).fill(1e-6) },
    train: withState ? state() : null,
  });
  return { file, bytes: new Uint8Array(fs.readFileSync(file)), model };
}

/** Write bytes to a new file and return its path. */
function put(bytes: Uint8Array, name = `edit-${n++}.safetensors`): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, bytes);
  return file;
}

/** The CheckpointError `f` throws (fails the test on anything else), checked for length and one line. */
function rejection(f: () => unknown): CheckpointError {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a CheckpointError').toBeInstanceOf(CheckpointError);
  const msg = (err as Error).message;
  expect(msg.length).toBeLessThanOrEqual(MAX_MESSAGE_LENGTH);
  expect(msg).not.toMatch(/[\r\n]/);
  return err as CheckpointError;
}

const withConfig = (bytes: Uint8Array, edit: (c: Record<string, unknown>) => void) =>
  editMetadata(bytes, (md) => {
    const c = JSON.parse(md.config as string);
    edit(c);
    md.config = JSON.stringify(c);
  });
const withConfigText = (bytes: Uint8Array, text: string) =>
  editMetadata(bytes, (md) => {
    md.config = text;
  });

// ---- 1. metadata limits --------------------------------------------------------------------------

describe('1. the config is checked against limits and against the tensors before anything is allocated', () => {
  it('n_layer 1e12 / 1e6 / 1025 is refused naming the file and the field (it used to run out of memory after 74 s)', () => {
    const { bytes, model } = saved();
    for (const v of [1e12, 1e6, 1025]) {
      const file = put(
        withConfig(bytes, (c) => {
          c.n_layer = v;
        }),
      );
      const e = rejection(() => loadCheckpoint(file));
      expect(e.message).toBe(`${file}: config field "n_layer" is ${v}, above the limit of ${CONFIG_LIMITS.nLayer}`);
    }
    model.free();
  });

  it('huge vocab_size, n_embd, block_size, n_head (once "Invalid typed array length") are refused by name', () => {
    const { bytes, model } = saved();
    const cases: [string, number, RegExp][] = [
      ['vocab_size', 1e12, /config field "vocab_size" is 1000000000000, above the limit of 1048576/],
      ['n_embd', 2 ** 40, /config field "n_embd" is 1099511627776, above the limit of 65536/],
      ['block_size', 2 ** 31, /config field "block_size" is 2147483648, above the limit/],
      ['n_head', 1e9, /config field "n_head" is 1000000000, above the limit/],
      ['overcomplete', 1e6, /config field "overcomplete" is 1000000, above the limit of 64/],
      ['ista_steps', 1e9, /config field "ista_steps" is 1000000000, above the limit of 100/],
    ];
    for (const [field, v, re] of cases) {
      const file = put(
        withConfig(bytes, (c) => {
          c[field] = v;
        }),
      );
      const msg = rejection(() => loadCheckpoint(file)).message;
      expect(msg.startsWith(file + ': ')).toBe(true);
      expect(msg).toMatch(re);
    }
    model.free();
  });

  it('a config within limits that disagrees with the tensors names the field it contradicts', () => {
    const { bytes, model } = saved();
    const cases: [Record<string, unknown>, RegExp][] = [
      [
        { n_layer: 3 },
        /config field "n_layer" is 3 but the file holds 2 blocks .*the config implies [\d,]+ parameters, the file's parameter tensors hold [\d,]+/,
      ],
      [{ n_layer: 1000 }, /config field "n_layer" is 1000 but the file holds 2 blocks/],
      [{ vocab_size: 50304 }, /config field "vocab_size" is 50304 but the file holds 11 token embeddings/],
      [{ block_size: 9 }, /config field "block_size" is 9 but the file holds 8 position embeddings/],
      [{ n_embd: 16, n_head: 2 }, /config field "n_embd" is 16 but the file holds embeddings of width 8/],
      [{ overcomplete: 2 }, /config field "overcomplete" is 2 but the file holds an ISTA dictionary of width 32 = 4 x n_embd/],
      [{ arch: 'gpt2' }, /config field "arch" is gpt2 but the file holds a CRATE model/],
    ];
    for (const [edit, re] of cases) {
      const file = put(withConfig(bytes, (c) => Object.assign(c, edit)));
      expect(rejection(() => loadCheckpoint(file)).message).toMatch(re);
    }
    model.free();
  });

  it('fields must be positive integers (not 2.5, "2", 0, -1, null, true, a nested array) and n_embd divisible by n_head', () => {
    const { bytes, model } = saved();
    for (const v of ['2.5', '"2"', '0', '-1', 'null', 'true', '{}', nestedJson(100_000)]) {
      const text = (JSON.parse(JSON.stringify(configToMetadata(golden()))).config as string).replace('"n_layer":2', `"n_layer":${v}`);
      const file = put(withConfigText(bytes, text));
      expect(rejection(() => loadCheckpoint(file)).message).toMatch(/config field "n_layer" must be a positive integer, got /);
    }
    const file = put(
      withConfig(bytes, (c) => {
        c.n_head = 3;
      }),
    );
    expect(rejection(() => loadCheckpoint(file)).message).toMatch(/config field "n_embd" \(8\) is not divisible by "n_head" \(3\)/);
    for (const missing of ['vocab_size', 'n_embd']) {
      const f = put(
        withConfig(bytes, (c) => {
          delete c[missing];
        }),
      );
      expect(rejection(() => loadCheckpoint(f)).message).toMatch(new RegExp(`config field "${missing}" is missing`));
    }
    model.free();
  });

  it('configParameterCount equals the parameter table for every architecture and size', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<Arch>('crate', 'crate-complete', 'gpt2'),
        fc.integer({ min: 1, max: 300 }),
        fc.integer({ min: 1, max: 64 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 5 }),
        (arch, V, T, L, H, p, oc) => {
          const c = makeConfig(undefined, { arch, vocabSize: V, blockSize: T, nLayer: L, nHead: H, nEmbd: H * p, overcomplete: oc });
          expect(configParameterCount(c)).toBe(totalSize(paramTable(c)));
        },
      ),
    );
  });

  it('validateConfig refuses out-of-limit configs with a UsageError (so new LanguageModel never tries to allocate them)', () => {
    expect(() => validateConfig({ ...golden(), nLayer: 1e12 })).toThrow(UsageError);
    expect(() => new LanguageModel(be, { ...golden(), nLayer: 1e6 })).toThrow(/config\.nLayer is 1000000, above the limit of 1024/);
    expect(() => validateConfig({ ...golden(), eta: Number.NaN })).toThrow(/config\.eta must be a finite number, got NaN/);
    expect(() => validateConfig({ ...golden(), lnEps: 0 })).toThrow(/config\.lnEps is 0, outside \(0, 1\]/);
    // the largest sizes within the limits are refused by their total, before any allocation
    expect(() => validateConfig({ ...golden(), vocabSize: CONFIG_LIMITS.vocabSize, nEmbd: 4096, nHead: 4 })).toThrow(
      /config implies \d+ parameters, above the limit of 2147483647/,
    );
    expect(() => validateConfig(makeConfig('B'))).not.toThrow();
  });
});

// ---- 2. files that load as a different model -----------------------------------------------------

describe('2. files that would load silently as a different model', () => {
  it('a float tensor relabelled I64 or I32 is refused naming the tensor (it used to give loss 1.16e9)', () => {
    const { bytes, model } = saved();
    // F64 -> I64 keeps the byte size; the checksum covers bytes, not dtypes, so only the dtype check catches it.
    const relabelled = editHeader(bytes, (h) => {
      (h['transformer.h.0.ista.weight'] as { dtype: string }).dtype = 'I64';
    });
    const file = put(relabelled);
    const ck = loadCheckpoint(file);
    expect(rejection(() => modelFromCheckpoint(ck, be)).message).toBe(
      `${file}: tensor "transformer.h.0.ista.weight" has dtype I64; parameters must be F64, F32, F16, BF16`,
    );
    // a PyTorch-style F32 state_dict (no checksum) relabelled I32
    const sd = stateDictFromModel(model, 'F32');
    const torch = put(serializeSafetensors(sd, configToMetadata(model.config)));
    const i32 = put(
      editHeader(new Uint8Array(fs.readFileSync(torch)), (h) => {
        (h['transformer.wte.weight'] as { dtype: string }).dtype = 'I32';
      }),
    );
    expect(rejection(() => modelFromCheckpoint(loadCheckpoint(i32), be)).message).toMatch(
      /tensor "transformer\.wte\.weight" has dtype I32; parameters must be F64, F32, F16, BF16/,
    );
    // optimizer moments too
    const mom = put(
      editHeader(bytes, (h) => {
        (h['optimizer.m.transformer.wpe.weight'] as { dtype: string }).dtype = 'U64';
      }),
    );
    const ck2 = loadCheckpoint(mom);
    const m2 = modelFromCheckpoint(ck2, be);
    expect(rejection(() => optimizerFromCheckpoint(ck2, m2)).message).toMatch(/tensor "optimizer\.m\.transformer\.wpe\.weight" has dtype U64/);
    m2.free();
    model.free();
  });

  it('eta, lam, ln_eps, ista_steps of the wrong type or out of range are refused; eta: null is not the default', () => {
    const { bytes, model } = saved();
    const cases: [string, unknown, RegExp][] = [
      ['eta', null, /config field "eta" must be a finite number, got null/],
      ['eta', '0.1', /config field "eta" must be a finite number, got "0\.1"/],
      ['eta', 0, /config field "eta" is 0, outside \(0, 10\]/],
      ['eta', -0.1, /config field "eta" is -0\.1, outside/],
      ['eta', 1e3, /config field "eta" is 1000, outside \(0, 10\]/],
      ['lam', -1, /config field "lam" is -1, outside \[0, 100\]/],
      ['lam', [0.1], /config field "lam" must be a finite number, got \[0\.1\]/],
      ['ln_eps', 0, /config field "ln_eps" is 0, outside \(0, 1\]/],
      ['ln_eps', null, /config field "ln_eps" must be a finite number, got null/],
      ['ista_steps', 0, /config field "ista_steps" must be a positive integer, got 0/],
      ['ista_steps', 1.5, /config field "ista_steps" must be a positive integer, got 1\.5/],
      ['arch', 'rnn', /config field "arch" must be one of crate, crate-complete, gpt2; got "rnn"/],
      ['arch', null, /config field "arch" must be one of/],
    ];
    for (const [field, v, re] of cases) {
      const file = put(
        withConfig(bytes, (c) => {
          c[field] = v;
        }),
      );
      expect(rejection(() => loadCheckpoint(file)).message, `${field}: ${JSON.stringify(v)}`).toMatch(re);
    }
    // both spellings present and different
    const both = put(
      withConfig(bytes, (c) => {
        c.nLayer = 3;
      }),
    );
    expect(rejection(() => loadCheckpoint(both)).message).toMatch(/config fields "n_layer" \(2\) and "nLayer" \(3\) disagree/);
    model.free();
  });

  it('an absent optional field takes its default (PyTorch-made files omit ista_steps and arch)', () => {
    const { model } = saved();
    const bytes = serializeSafetensors(stateDictFromModel(model, 'F64'), configToMetadata(model.config));
    const file = put(
      withConfig(bytes, (c) => {
        delete c.eta;
        delete c.ista_steps;
        delete c.arch;
      }),
    );
    const ck = loadCheckpoint(file);
    expect(ck.config).toEqual(model.config);
    modelFromCheckpoint(ck, be).free();
    model.free();
  });

  it('an in-range edit that keeps every shape (n_head 4 -> 2, eta 0.1 -> 0.2) is caught by the checksum', () => {
    const { bytes, model } = saved();
    for (const edit of [{ n_head: 4 }, { eta: 0.2 }, { lam: 0 }]) {
      const file = put(withConfig(bytes, (c) => Object.assign(c, edit)));
      expect(rejection(() => loadCheckpoint(file)).message).toBe(
        `${file}: checksum mismatch in metadata entry "config": the file was changed or corrupted after it was written (loadCheckpoint(path, { verifyChecksum: false }) skips this check)`,
      );
      expect(loadCheckpoint(file, { verifyChecksum: false }).config).toMatchObject({ nHead: edit.n_head ?? 2 });
    }
    model.free();
  });

  it('format_version: 1 and 2 load; a newer one is refused with a message; a malformed or missing one is named', () => {
    const { bytes, model } = saved('gpt2', false);
    expect(CHECKPOINT_VERSION).toBe('2');
    expect(readSafetensors(put(bytes)).metadata.format_version).toBe('2');
    const cases: [string | undefined, RegExp][] = [
      ['3', /format_version 3 was written by a newer crate-ts; this one reads versions 1, 2 \(upgrade crate-ts\)/],
      ['100', /format_version 100 was written by a newer crate-ts/],
      ['x', /metadata "format_version" is "x", not a version this crate-ts reads \(1, 2\)/],
      ['2.0', /metadata "format_version" is "2\.0", not a version/],
      ['', /metadata "format_version" is "", not a version/],
      [undefined, /metadata "format_version" is missing/],
    ];
    for (const [v, re] of cases) {
      const file = put(
        editMetadata(bytes, (md) => {
          if (v === undefined) delete md.format_version;
          else md.format_version = v;
        }),
      );
      expect(rejection(() => loadCheckpoint(file, { verifyChecksum: false })).message).toMatch(re);
    }
    // the same file relabelled version 1 without its checksum is a valid old-format file
    const v1 = put(
      editMetadata(bytes, (md) => {
        md.format_version = '1';
        delete md.checksum;
      }),
    );
    modelFromCheckpoint(loadCheckpoint(v1), be).free();
    model.free();
  });

  it('checksum: a flipped data byte names the tensor; verifyChecksum: false skips it; a removed or extended checksum is refused', () => {
    const { bytes, model } = saved();
    const f = splitFile(bytes)!;
    const entry = f.header['transformer.h.1.attn.c_proj.weight'] as { data_offsets: [number, number] };
    const flipped = bytes.slice();
    flipped[bytes.length - f.data.length + entry.data_offsets[0] + 3] ^= 0x10;
    const file = put(flipped);
    expect(rejection(() => loadCheckpoint(file)).message).toMatch(/checksum mismatch in tensor "transformer\.h\.1\.attn\.c_proj\.weight"/);
    const m = modelFromCheckpoint(loadCheckpoint(file, { verifyChecksum: false }), be);
    expect(m.getParams()).not.toEqual(model.getParams());
    m.free();

    const noSum = put(
      editMetadata(bytes, (md) => {
        delete md.checksum;
      }),
    );
    expect(rejection(() => loadCheckpoint(noSum)).message).toMatch(/metadata "checksum" is missing; format_version 2 checkpoints always carry one/);
    expect(() => loadCheckpoint(noSum, { verifyChecksum: false })).not.toThrow();
    const extraMd = put(
      editMetadata(bytes, (md) => {
        md.note = 'hi';
      }),
    );
    expect(rejection(() => loadCheckpoint(extraMd)).message).toMatch(/metadata entry "note" is not covered by the checksum/);
    const removedMd = put(
      editMetadata(bytes, (md) => {
        delete md.backend;
      }),
    );
    expect(rejection(() => loadCheckpoint(removedMd)).message).toMatch(/metadata entry "backend" listed in the checksum is missing/);
    const renamed = put(
      editHeader(bytes, (h) => {
        h['optimizer.m.x'] = h['optimizer.m.transformer.wpe.weight'];
        delete h['optimizer.m.transformer.wpe.weight'];
      }),
    );
    expect(rejection(() => loadCheckpoint(renamed)).message).toMatch(/tensor "optimizer\.m\.x" is not covered by the checksum/);
    for (const bad of ['', '{', '[]', '{"algorithm":"md5","metadata":{},"tensors":{}}', nestedJson(100_000)]) {
      const file2 = put(
        editMetadata(bytes, (md) => {
          md.checksum = bad;
        }),
      );
      expect(rejection(() => loadCheckpoint(file2)).message).toMatch(/metadata "checksum" /);
    }
    model.free();
  });

  it('saveCheckpoint writes a sha256 of every tensor and every other metadata entry', () => {
    const { file, model } = saved();
    const st = readSafetensors(file);
    const sum = JSON.parse(st.metadata.checksum) as { algorithm: string; metadata: Record<string, string>; tensors: Record<string, string> };
    expect(sum.algorithm).toBe('sha256');
    expect(Object.keys(sum.tensors).sort()).toEqual([...st.tensors.keys()].sort());
    expect(Object.keys(sum.metadata).sort()).toEqual(
      Object.keys(st.metadata)
        .filter((k) => k !== 'checksum')
        .sort(),
    );
    for (const h of [...Object.values(sum.tensors), ...Object.values(sum.metadata)]) expect(h).toMatch(/^[0-9a-f]{64}$/);
    model.free();
  });

  it('checkpoints written before this change still load: a format_version 1 file from the old trainer and the PyTorch fixtures', () => {
    // test/data/checkpoint-v1.safetensors: written by `crate-ts train` (reference backend, char-tiny
    // with d 8, 1 layer, T 8, 3 steps) before checksums existed.
    const v1 = 'test/data/checkpoint-v1.safetensors';
    const ck = loadCheckpoint(v1);
    expect(readSafetensors(v1).metadata.format_version).toBe('1');
    expect(ck.config).toMatchObject({ arch: 'crate', vocabSize: 256, blockSize: 8, nLayer: 1, nEmbd: 8, nHead: 2 });
    expect(ck.train?.step).toBe(3);
    expect(ck.train?.hyper.seq).toBe(8);
    const m = modelFromCheckpoint(ck, be);
    expect(optimizerFromCheckpoint(ck, m)?.m.length).toBe(m.numParameters);
    m.free();
    for (const [f, arch] of [
      ['crate-small', 'crate'],
      ['crate-t1', 'crate'],
      ['crate-large-values', 'crate'],
      ['crate-ignore', 'crate'],
      ['gpt2-small', 'gpt2'],
    ] as const) {
      const fx = loadCheckpoint(`fixtures/${f}.safetensors`);
      expect(fx.config.arch).toBe(arch); // from the fixture's separate "arch" metadata entry
      const model = modelFromCheckpoint(fx, be);
      const wte = fx.file.tensors.get('transformer.wte.weight')!;
      expect(model.getParams().subarray(0, wte.data.length)).toEqual(Float64Array.from(wte.data as Float64Array));
      model.free();
    }
  });
});

// ---- 3. train_state ------------------------------------------------------------------------------

describe('3. train_state is validated, naming the field', () => {
  it('valid JSON of the wrong shape is refused (it used to fail later with "Cannot read properties of undefined (reading \'seq\')")', () => {
    const { bytes, model } = saved();
    const good = state();
    const cases: [unknown, RegExp][] = [
      [{ step: 1 }, /train_state field "dataRng" must be an array of 4 unsigned 32-bit integers, got undefined/],
      [{}, /train_state field "step" must be an integer in \[0, 2147483647\], got undefined/],
      [[], /metadata "train_state" must be a JSON object, got \[\]/],
      [{ ...good, hyper: undefined }, /train_state field "hyper" must be an object, got undefined/],
      [{ ...good, hyper: { ...good.hyper, seq: 'x' } }, /train_state field "hyper\.seq" must be an integer in \[1, 2147483647\], got "x"/],
      [{ ...good, hyper: { ...good.hyper, seq: 9 } }, /train_state field "hyper\.seq" is 9, more than the config's block_size 8/],
      [{ ...good, hyper: { ...good.hyper, lr: -1 } }, /train_state field "hyper\.lr" must be a positive number, got -1/],
      [{ ...good, hyper: { ...good.hyper, beta2: 1 } }, /train_state field "hyper\.beta2" must be a number in \[0, 1\), got 1/],
      [{ ...good, hyper: { ...good.hyper, valFraction: undefined } }, /train_state field "hyper\.valFraction" is missing/],
      [{ ...good, dataRng: [1, 2, 3] }, /train_state field "dataRng" must be an array of 4/],
      [{ ...good, dataRng: [1, 2, 3, 2 ** 32] }, /train_state field "dataRng\[3\]" must be an unsigned 32-bit integer, got 4294967296/],
      [{ ...good, data: { ...good.data, source: 5 } }, /train_state field "data\.source" must be a string, got 5/],
      [{ ...good, history: 'x' }, /train_state field "history" must be an array, got "x"/],
      [{ ...good, history: [{ step: 1, loss: 'x', lr: 1 }] }, /train_state field "history\[0\]\.loss" must be a number, got "x"/],
      [{ ...good, evals: [null] }, /train_state field "evals\[0\]" must be an object \{step, val\}, got null/],
      [{ ...good, tokensSeen: -1 }, /train_state field "tokensSeen" must be an integer/],
      [{ ...good, preset: 3 }, /train_state field "preset" must be a string, got 3/],
    ];
    for (const [st, re] of cases) {
      const file = put(
        editMetadata(bytes, (md) => {
          md.train_state = JSON.stringify(st);
        }),
      );
      const msg = rejection(() => loadCheckpoint(file, { verifyChecksum: false })).message;
      expect(msg.startsWith(file + ': '), msg).toBe(true);
      expect(msg).toMatch(re);
    }
    const deep = put(
      editMetadata(bytes, (md) => {
        md.train_state = `{"step":1,"dataRng":${nestedJson(100_000)}}`;
      }),
    );
    expect(rejection(() => loadCheckpoint(deep, { verifyChecksum: false })).message).toMatch(
      /train_state field "dataRng" must be an array of 4 unsigned 32-bit integers, got \[\[\.\.\.\]\]/,
    );
    model.free();
  });

  it('a valid train_state loads; unknown fields are kept, absent history/evals become [], a null (NaN) loss is accepted', () => {
    const { bytes, model } = saved();
    const st = { ...state(), history: [{ step: 1, loss: null, lr: 1e-3 }], future: { x: 1 } } as Record<string, unknown>;
    delete st.evals;
    const file = put(
      editMetadata(bytes, (md) => {
        md.train_state = JSON.stringify(st);
      }),
    );
    const ck = loadCheckpoint(file, { verifyChecksum: false });
    expect(ck.train).toMatchObject({ step: 2, evals: [], future: { x: 1 } });
    model.free();
  });
});

// ---- 4. reader messages --------------------------------------------------------------------------

describe('4. error messages: bounded nesting, bounded length', () => {
  const base = () => serializeSafetensors({ w: { dtype: 'F32', shape: [2], data: [1, 2] } });
  const withEntry = (field: string, json: string) => {
    const f = splitFile(base())!;
    const entry = { ...(f.header.w as Record<string, unknown>), [field]: '__X__' };
    return joinFile(JSON.stringify({ w: entry }).replace('"__X__"', json), f.data);
  };
  const expectBounded = (bytes: Uint8Array, re: RegExp) => {
    let err: unknown;
    try {
      parseSafetensors(bytes, 'model.safetensors');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SafetensorsError);
    const msg = (err as Error).message;
    expect(msg.length).toBeLessThanOrEqual(MAX_MESSAGE_LENGTH);
    expect(msg).toMatch(re);
  };

  it('a shape or data_offsets nested 100,000 deep is a SafetensorsError, not a stack overflow (102 of 12,000 fuzz cases)', () => {
    expectBounded(withEntry('shape', nestedJson(100_000)), /shape dimension \[\[\.\.\.\]\] is not a non-negative integer/);
    expectBounded(withEntry('shape', `[2, ${nestedJson(100_000)}]`), /shape dimension \[\[\.\.\.\]\] is not a non-negative integer/);
    expectBounded(withEntry('data_offsets', `[0, ${nestedJson(100_000)}]`), /data_offsets \[0, \[\.\.\.\]\] must be non-negative integers/);
    expectBounded(withEntry('data_offsets', nestedJson(100_000)), /"data_offsets" must be an array \[begin, end\]/);
    expectBounded(withEntry('dtype', nestedJson(100_000, '1', '{"a":', '}')), /"dtype" must be a string/);
  });

  it('multi-KB arrays, names and keys are quoted short', () => {
    const longShape = `[${Array.from({ length: 5000 }, () => 1).join(',')}, "x"]`;
    expectBounded(withEntry('shape', longShape), /shape dimension "x" is not a non-negative integer/);
    expectBounded(withEntry('data_offsets', `[${Array.from({ length: 5000 }, (_, i) => i).join(',')}]`), /"data_offsets" must be an array \[begin, end\]/);
    const long = 'n'.repeat(20_000);
    expectBounded(
      joinFile({ [long]: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)),
      /tensor "n+"…: byte size mismatch: shape \[3\] of F32 needs 12 bytes but data_offsets span 8/,
    );
    expectBounded(joinFile({ [long]: { dtype: 'Q'.repeat(9000), shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8)), /unknown dtype "Q+"…/);
    expectBounded(joinFile({ __metadata__: { [long]: 5 } }, new Uint8Array(0)), /value for key "n+"… is not a string/);
    const shape = Array.from({ length: 3000 }, () => 1);
    expectBounded(
      joinFile({ w: { dtype: 'F32', shape, data_offsets: [0, 8] } }, new Uint8Array(8)),
      /shape \[1, 1, 1, 1, 1, 1, … \(3000 dims\)\] of F32 needs 4 bytes/,
    );
  });

  it('a long path keeps both ends; loadStateDict lists at most a few names', () => {
    let p = dir;
    for (let i = 0; i < 3; i++) {
      p = path.join(p, String(i).repeat(200));
      fs.mkdirSync(p);
    }
    const file = path.join(p, 'missing.safetensors');
    const msg = rejection(() => loadCheckpoint(file)).message;
    expect(msg).toMatch(/^cannot read checkpoint: .*…\d+\/missing\.safetensors: file does not exist$/);
    const m = new LanguageModel(be, makeConfig('golden', { nLayer: 40 }), { seed: 1 }) as LanguageModel<unknown>;
    expect(rejection(() => loadStateDict(m, new Map(), 'x'.repeat(500))).message).toMatch(/^x+…x+ does not match the crate model/);
    const e = rejection(() => loadStateDict(m, new Map(), 'sd.safetensors'));
    expect(e.message).toMatch(/missing tensors: transformer\.wte\.weight, transformer\.wpe\.weight, transformer\.h\.0\.prenorm_1\.weight and \d+ more/);
    m.free();
  });
});
