// Test support, not part of the library: nothing outside src/testing/ imports it and src/index.ts
// exports none of it (test/layering.test.ts). It is compiled to dist/testing/ for scripts/fuzz.mjs.
//
// Mutation fuzzing of checkpoint loading, shared by test/fuzz-safetensors.test.ts (a fixed seed and
// a bounded budget, in CI) and scripts/fuzz.mjs (long runs). Each case mutates a real checkpoint
// made by this project (or a PyTorch-made fixture): byte flips, truncations, header edits (dtype,
// shape, offsets, deep nesting, huge numbers), metadata edits (format, config, train_state,
// checksum), data edits and splices. Cases are a pure function of (seed, case index), so any
// failure is reproduced by its number. runCase() pushes the bytes through readSafetensors,
// loadCheckpoint (with and without checksum verification), modelFromCheckpoint and
// optimizerFromCheckpoint; the contract is that each case loads or throws a CheckpointError of one
// line of at most MAX_MESSAGE_LENGTH characters, and nothing else.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CheckpointError } from '../errors.js';
import { Rng } from '../util/rng.js';
import { MAX_MESSAGE_LENGTH, readSafetensors } from '../io/safetensors.js';
import type { Backend } from '../backend/types.js';
import { ReferenceBackend } from '../backend/reference.js';
import { LanguageModel } from '../model/lm.js';
import { makeConfig, type Arch } from '../model/config.js';
import { loadCheckpoint, modelFromCheckpoint, optimizerFromCheckpoint, saveCheckpoint, type TrainState } from '../checkpoint/checkpoint.js';

// ---- file surgery ----------------------------------------------------------------------------------

/** A safetensors file split into its parsed JSON header and its data bytes (null if it does not parse). */
export function splitFile(bytes: Uint8Array): { header: Record<string, unknown>; data: Uint8Array } | null {
  if (bytes.length < 8) return null;
  const n = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(0, true);
  if (n > BigInt(bytes.length - 8)) return null;
  try {
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + Number(n)))) as unknown;
    if (typeof header !== 'object' || header === null || Array.isArray(header)) return null;
    return { header: header as Record<string, unknown>, data: bytes.subarray(8 + Number(n)) };
  } catch {
    return null;
  }
}

/** Assemble a file from a header (object or raw JSON text) and data bytes. */
export function joinFile(header: object | string, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** Rewrite one metadata entry (undefined deletes it) keeping every tensor byte. */
export function editMetadata(bytes: Uint8Array, edit: (md: Record<string, unknown>) => void): Uint8Array {
  const f = splitFile(bytes);
  if (!f) throw new Error('editMetadata: not a parsable safetensors file');
  const md = { ...((f.header.__metadata__ as Record<string, unknown> | undefined) ?? {}) };
  edit(md);
  return joinFile({ ...f.header, __metadata__: md }, f.data);
}

/** Rewrite the header object keeping every tensor byte. */
export function editHeader(bytes: Uint8Array, edit: (header: Record<string, unknown>) => void): Uint8Array {
  const f = splitFile(bytes);
  if (!f) throw new Error('editHeader: not a parsable safetensors file');
  const h = structuredClone(f.header);
  edit(h);
  return joinFile(h, f.data);
}

/** JSON text of an array nested `depth` deep around `inner` (built as text: no recursion anywhere). */
export function nestedJson(depth: number, inner = '1', open = '[', close = ']'): string {
  return open.repeat(depth) + inner + close.repeat(depth);
}

// ---- seeds -----------------------------------------------------------------------------------------

export interface Seed {
  name: string;
  bytes: Uint8Array;
}

/** Training hyper-parameters of a small checkpointed run, for tests that need a train state. */
export const sampleHyper = (seq = 8): TrainState['hyper'] => ({
  steps: 10,
  batch: 2,
  seq,
  gradAccum: 1,
  lr: 1e-3,
  minLr: 1e-4,
  warmup: 2,
  weightDecay: 0.1,
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  clip: 1,
  seed: 1,
  evalEvery: 0,
  evalWindows: 4,
  saveEvery: 0,
  logEvery: 1,
  valFraction: 0.1,
});

const trainState = (step: number, seq: number): TrainState => ({
  step,
  dataRng: [1, 2, 3, 4],
  tokensSeen: 100 * step,
  elapsed: 1.5,
  hyper: sampleHyper(seq),
  data: { source: 'embedded', contentHash: 'abc', kind: 'text', split: 'last 10%', unigramEntropy: 2 },
  history: [
    { step: 1, loss: 3, lr: 1e-3 },
    { step: 2, loss: 2.5, lr: 1e-3 },
  ],
  evals: [{ step: 2, val: 2.6 }],
  preset: 'golden',
});

/**
 * Real checkpoints made by this project's saveCheckpoint (tiny models of each architecture, with and
 * without optimizer moments and train_state), plus any extra files given (PyTorch-made fixtures, an
 * old-format checkpoint). `dir` receives the temporary files.
 */
export function makeSeeds(dir: string, extraFiles: string[] = []): Seed[] {
  const be = new ReferenceBackend();
  const seeds: Seed[] = [];
  const specs: [string, Arch, boolean, Record<string, number>][] = [
    ['crate+optimizer+train', 'crate', true, {}],
    ['crate-complete', 'crate-complete', false, { nLayer: 1 }],
    ['gpt2+optimizer+train', 'gpt2', true, { nLayer: 1, vocabSize: 7 }],
  ];
  for (const [name, arch, full, over] of specs) {
    const m = new LanguageModel(be, makeConfig('golden', { arch, ...over }), { seed: seeds.length + 1 }) as LanguageModel<unknown>;
    const file = path.join(dir, `seed-${seeds.length}.safetensors`);
    const n = m.numParameters;
    const moments = full
      ? { m: Float64Array.from({ length: n }, (_, i) => Math.sin(i) * 1e-3), v: Float64Array.from({ length: n }, (_, i) => 1e-6 * (1 + Math.cos(i))) }
      : null;
    saveCheckpoint(file, { model: m, tokenizer: 'byte', optimizer: moments, train: full ? trainState(2, m.config.blockSize) : null });
    seeds.push({ name, bytes: new Uint8Array(fs.readFileSync(file)) });
    m.free();
  }
  for (const f of extraFiles) seeds.push({ name: path.basename(f), bytes: new Uint8Array(fs.readFileSync(f)) });
  return seeds;
}

// ---- mutations -------------------------------------------------------------------------------------

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(xs.length)];

/** Hostile JSON values, as JSON text (so nesting depth costs no recursion to build). */
function hostileJson(rng: Rng): string {
  const simple = [
    'null',
    'true',
    'false',
    '0',
    '-1',
    '1.5',
    '0.5',
    '2',
    '3',
    '7',
    '-0',
    '1e-300',
    '2147483648',
    '4294967296',
    '9007199254740993',
    '1e12',
    '1e300',
    '-1e300',
    '1e400',
    '""',
    '"2"',
    '"0.1"',
    '"NaN"',
    '"crate"',
    '[]',
    '{}',
    '[1, 2]',
    '{"a": 1}',
    `"${'x'.repeat(5000)}"`,
    `[${Array.from({ length: 3000 }, (_, i) => i).join(',')}]`,
  ];
  switch (rng.int(4)) {
    case 0:
      return nestedJson(1 + rng.int(20));
    case 1:
      return nestedJson(pick(rng, [1000, 20000, 100000]), pick(rng, ['1', '"x"', '{}']));
    case 2:
      return nestedJson(1 + rng.int(5000), '1', '{"a":', '}');
    default:
      return pick(rng, simple);
  }
}

/** Set `obj[key]` to a hostile value given as JSON text, by text substitution of a placeholder. */
function withHostile(obj: unknown, set: (placeholder: string) => void, rng: Rng): string {
  const ph = `__HOSTILE_${rng.nextU32()}__`;
  set(ph);
  return JSON.stringify(obj).replace(JSON.stringify(ph), () => hostileJson(rng));
}

/** Walk into a random nested key of a JSON value; returns [container, key] or null. */
function randomSlot(root: unknown, rng: Rng): [Record<string, unknown> | unknown[], string | number] | null {
  let cur: unknown = root;
  let slot: [Record<string, unknown> | unknown[], string | number] | null = null;
  for (let depth = 0; depth < 4; depth++) {
    if (Array.isArray(cur)) {
      if (cur.length === 0) break;
      const i = rng.int(cur.length);
      slot = [cur, i];
      cur = cur[i];
    } else if (typeof cur === 'object' && cur !== null) {
      const keys = Object.keys(cur);
      if (keys.length === 0) break;
      const k = pick(rng, keys);
      slot = [cur as Record<string, unknown>, k];
      cur = (cur as Record<string, unknown>)[k];
    } else break;
    if (rng.int(3) === 0) break;
  }
  return slot;
}

/** Edit a JSON-text metadata entry: set or delete a random (nested) field, or replace the whole text. */
function mutateJsonText(text: string | undefined, rng: Rng, fields: readonly string[]): string | undefined {
  if (text === undefined || rng.int(8) === 0) {
    return pick(rng, ['', '{', 'null', '[]', '"x"', '42', '{}', nestedJson(50000), nestedJson(3000, '1', '{"a":', '}'), '{"vocab_size": 1e12}', text ?? '{}']);
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch {
    return text;
  }
  if (typeof obj !== 'object' || obj === null) return text;
  const o = obj as Record<string, unknown>;
  const top = rng.int(2) === 0;
  if (top) {
    const k = rng.int(6) === 0 ? `unknown_${rng.int(3)}` : pick(rng, fields);
    if (rng.int(5) === 0) {
      delete o[k];
      return JSON.stringify(o);
    }
    const cur = o[k];
    if (typeof cur === 'number' && rng.int(2) === 0) {
      o[k] = pick(rng, [cur + 1, cur - 1, cur * 2, cur / 2, -cur, cur * 1e6]);
      return JSON.stringify(o);
    }
    return withHostile(
      o,
      (ph) => {
        o[k] = ph;
      },
      rng,
    );
  }
  const slot = randomSlot(o, rng);
  if (!slot) return text;
  const [c, k] = slot;
  if (rng.int(5) === 0) {
    if (Array.isArray(c)) c.splice(k as number, 1);
    else delete c[k as string];
    return JSON.stringify(o);
  }
  return withHostile(
    o,
    (ph) => {
      (c as Record<string | number, unknown>)[k] = ph;
    },
    rng,
  );
}

const CONFIG_FIELDS = [
  'arch',
  'vocab_size',
  'block_size',
  'n_layer',
  'n_head',
  'n_embd',
  'overcomplete',
  'eta',
  'lam',
  'ista_steps',
  'ln_eps',
  'vocabSize',
  'nLayer',
];
const TRAIN_FIELDS = ['step', 'dataRng', 'tokensSeen', 'elapsed', 'hyper', 'data', 'history', 'evals', 'preset'];

/** The mutation kinds, each a function of (seed bytes, rng). */
export const MUTATIONS: Record<string, (bytes: Uint8Array, rng: Rng, seeds: Seed[]) => Uint8Array> = {
  'flip-bytes': (b, rng) => {
    const out = b.slice();
    for (let k = 1 + rng.int(8); k > 0; k--) out[rng.int(out.length)] ^= 1 + rng.int(255);
    return out;
  },
  'flip-header-bytes': (b, rng) => {
    const out = b.slice();
    const n = Math.min(out.length, 8 + Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true) & 0xffffffn));
    for (let k = 1 + rng.int(4); k > 0; k--) out[rng.int(n)] ^= 1 << rng.int(8);
    return out;
  },
  truncate: (b, rng) => b.slice(0, pick(rng, [rng.int(b.length), rng.int(16), b.length - 1 - rng.int(16)])),
  append: (b, rng) => {
    const out = new Uint8Array(b.length + 1 + rng.int(64));
    out.set(b);
    for (let i = b.length; i < out.length; i++) out[i] = rng.int(256);
    return out;
  },
  'header-length': (b, rng) => {
    const out = b.slice();
    const dv = new DataView(out.buffer);
    const n = dv.getBigUint64(0, true);
    dv.setBigUint64(
      0,
      pick(rng, [
        0n,
        n + 1n,
        n - 1n,
        n + BigInt(1 + rng.int(64)),
        n > 64n ? n - BigInt(1 + rng.int(64)) : 0n,
        2n ** 64n - 1n,
        2n ** 63n,
        100_000_001n,
        BigInt(b.length),
      ]),
      true,
    );
    return out;
  },
  dtype: (b, rng) =>
    tensorEdit(b, rng, (t) =>
      withHostileOr(t, 'dtype', rng, [
        'F64',
        'F32',
        'F16',
        'BF16',
        'I64',
        'I32',
        'I16',
        'I8',
        'U64',
        'U32',
        'U16',
        'U8',
        'BOOL',
        'F8_E4M3',
        'f32',
        '',
        'toString',
        '__proto__',
      ]),
    ),
  shape: (b, rng) =>
    tensorEdit(b, rng, (t) => {
      const s = Array.isArray(t.shape) ? [...t.shape] : [];
      switch (rng.int(6)) {
        case 0:
          s.push(pick(rng, [1, 2, 0]));
          t.shape = s;
          return JSON.stringify(t);
        case 1:
          s.pop();
          t.shape = s;
          return JSON.stringify(t);
        case 2:
          t.shape = s.reverse();
          return JSON.stringify(t);
        case 3:
          if (s.length) s[rng.int(s.length)] = pick(rng, [0, 1, 3, 2 ** 26, 2 ** 31, 2 ** 53, 2 ** 40]);
          t.shape = s;
          return JSON.stringify(t);
        case 4:
          t.shape = Array.from({ length: pick(rng, [100, 10000]) }, () => 1);
          return JSON.stringify(t);
        default:
          return withHostile(
            t,
            (ph) => {
              if (s.length && rng.int(2)) {
                s[rng.int(s.length)] = ph;
                t.shape = s;
              } else t.shape = ph;
            },
            rng,
          );
      }
    }),
  offsets: (b, rng) =>
    tensorEdit(b, rng, (t) => {
      const o = Array.isArray(t.data_offsets) ? ([...t.data_offsets] as number[]) : [0, 0];
      switch (rng.int(4)) {
        case 0:
          t.data_offsets = [o[1], o[0]];
          return JSON.stringify(t);
        case 1: {
          const d = pick(rng, [1, -1, 8, -8, 2 ** 32, 2 ** 53]);
          t.data_offsets = [o[0] + d, o[1] + d];
          return JSON.stringify(t);
        }
        case 2:
          t.data_offsets = pick(rng, [[o[0]], [o[0], o[1], o[1]], [], [o[0], 1e300]]);
          return JSON.stringify(t);
        default:
          return withHostile(
            t,
            (ph) => {
              if (rng.int(2)) {
                o[rng.int(2)] = ph as unknown as number;
                t.data_offsets = o;
              } else t.data_offsets = ph;
            },
            rng,
          );
      }
    }),
  'tensor-names': (b, rng) => {
    const f = splitFile(b);
    if (!f) return b;
    const names = Object.keys(f.header).filter((k) => k !== '__metadata__');
    if (!names.length) return b;
    const name = pick(rng, names);
    const h: Record<string, unknown> = {};
    const choice = rng.int(5);
    for (const [k, v] of Object.entries(f.header)) {
      if (k !== name) {
        h[k] = v;
        continue;
      }
      if (choice === 0) continue; // delete
      if (choice === 1) h['_orig_mod.' + k] = v;
      else if (choice === 2) h[k.replace(/\.h\.(\d+)\./, (_, i) => `.h.${Number(i) + 1}.`)] = v;
      else if (choice === 3) {
        h[k] = v;
        h['lm_head.weight'] = v;
      } // duplicate offsets: overlap
      else h[k.replace('transformer.', 'foo.')] = v;
    }
    return joinFile(h, f.data);
  },
  config: (b, rng) => metadataJsonEdit(b, rng, 'config', CONFIG_FIELDS),
  'train-state': (b, rng) => metadataJsonEdit(b, rng, 'train_state', TRAIN_FIELDS),
  metadata: (b, rng) => {
    const f = splitFile(b);
    if (!f) return b;
    const md = { ...((f.header.__metadata__ as Record<string, unknown>) ?? {}) };
    switch (rng.int(9)) {
      case 0:
        md.format_version = pick(rng, ['0', '1', '2', '3', '99', '999999999999', 'x', '', '1.0', ' 2', '02']);
        break;
      case 1:
        delete md[pick(rng, ['format_version', 'format', 'checksum', 'config', 'tokenizer', 'train_state', 'dtype', 'backend'])];
        break;
      case 2:
        md.format = pick(rng, ['pt', 'crate-ts-checkpoint', '', 'x'.repeat(4000)]);
        break;
      case 3:
        md.tokenizer = pick(rng, ['byte', 'gpt2', 'bpe', '', 'x'.repeat(4000)]);
        break;
      case 4:
        md.checksum = mutateJsonText(md.checksum as string | undefined, rng, ['algorithm', 'metadata', 'tensors']);
        break;
      case 5:
        md[pick(rng, ['extra', 'x'.repeat(3000), '__proto__', 'arch'])] = pick(rng, ['gpt2', 'crate', 'v', 'x'.repeat(3000)]);
        break;
      case 6:
        return joinFile(
          withHostile(
            f.header,
            (ph) => {
              f.header.__metadata__ = md;
              md[pick(rng, Object.keys(md).concat('k'))] = ph;
            },
            rng,
          ),
          f.data,
        );
      case 7:
        return joinFile(
          withHostile(
            f.header,
            (ph) => {
              f.header.__metadata__ = ph;
            },
            rng,
          ),
          f.data,
        );
      default:
        md.arch = pick(rng, ['gpt2', 'crate', 'crate-complete', 'rnn', '']);
        break;
    }
    return joinFile({ ...f.header, __metadata__: md }, f.data);
  },
  data: (b, rng) => {
    const f = splitFile(b);
    if (!f || f.data.length === 0) return b;
    const out = b.slice();
    const base = b.length - f.data.length;
    const pos = base + rng.int(f.data.length);
    if (rng.int(2) === 0) out[pos] ^= 1 + rng.int(255);
    else {
      // a NaN, Inf or huge float64 pattern at an 8-aligned spot of the data
      const at = base + 8 * rng.int(Math.floor(f.data.length / 8));
      new DataView(out.buffer).setFloat64(at, pick(rng, [NaN, Infinity, -Infinity, 1e300, -0, 5e-324]), true);
    }
    return out;
  },
  splice: (b, rng, seeds) => {
    const fa = splitFile(b),
      fb = splitFile(pick(rng, seeds).bytes);
    if (!fa || !fb) return b;
    return joinFile(fa.header, fb.data);
  },
};

function withHostileOr(t: Record<string, unknown>, key: string, rng: Rng, choices: readonly string[]): string {
  if (rng.int(3) === 0)
    return withHostile(
      t,
      (ph) => {
        t[key] = ph;
      },
      rng,
    );
  t[key] = pick(rng, choices);
  return JSON.stringify(t);
}

/** Replace one tensor's header entry by `edit`'s JSON text. */
function tensorEdit(b: Uint8Array, rng: Rng, edit: (t: Record<string, unknown>) => string): Uint8Array {
  const f = splitFile(b);
  if (!f) return b;
  const names = Object.keys(f.header).filter((k) => k !== '__metadata__');
  if (!names.length) return b;
  const name = pick(rng, names);
  const ph = `__ENTRY_${rng.nextU32()}__`;
  const entryText = edit(structuredClone(f.header[name]) as Record<string, unknown>);
  const h = { ...f.header, [name]: ph };
  return joinFile(
    JSON.stringify(h).replace(JSON.stringify(ph), () => entryText),
    f.data,
  );
}

function metadataJsonEdit(b: Uint8Array, rng: Rng, key: string, fields: readonly string[]): Uint8Array {
  const f = splitFile(b);
  if (!f) return b;
  const md = { ...((f.header.__metadata__ as Record<string, unknown>) ?? {}) };
  const v = mutateJsonText(md[key] as string | undefined, rng, fields);
  if (v === undefined) delete md[key];
  else md[key] = v;
  return joinFile({ ...f.header, __metadata__: md }, f.data);
}

export const MUTATION_KINDS: readonly string[] = Object.keys(MUTATIONS);

/** Case `index` of a run with `seed`: which seed file, which mutation(s), and the bytes. */
export function makeCase(seeds: Seed[], seed: number, index: number): { kind: string; seedName: string; bytes: Uint8Array } {
  const rng = new Rng((seed * 1_000_003 + index) >>> 0);
  const s = seeds[rng.int(seeds.length)];
  let bytes = s.bytes;
  const kinds: string[] = [];
  // Mostly one mutation; sometimes two or three stacked.
  for (let k = rng.int(5) === 0 ? 2 + rng.int(2) : 1; k > 0; k--) {
    const kind = MUTATION_KINDS[rng.int(MUTATION_KINDS.length)];
    kinds.push(kind);
    try {
      bytes = MUTATIONS[kind](bytes, rng, seeds);
    } catch {
      // An earlier mutation nested the header too deep to re-serialize: keep the bytes as they are.
    }
  }
  return { kind: kinds.join('+'), seedName: s.name, bytes };
}

// ---- running a case --------------------------------------------------------------------------------

export type Outcome = 'loaded' | 'rejected' | 'crash';

export interface CaseResult {
  outcome: Outcome;
  /** The error message (rejected or crash), or '' when it loaded. */
  message: string;
  /** For a crash: the error's class name and stack. */
  detail?: string;
}

/** Is this error an acceptable rejection: a CheckpointError of one line within the length bound? */
export function isCleanRejection(e: unknown): boolean {
  return e instanceof CheckpointError && e.message.length > 0 && e.message.length <= MAX_MESSAGE_LENGTH && !/[\r\n]/.test(e.message);
}

/**
 * Write `bytes` to `file` and load it every way a command does. Loaded: every step succeeded (and
 * the model was freed). Rejected: the first failure was a clean CheckpointError. Crash: anything else.
 */
export function runCase(bytes: Uint8Array, file: string, backend: Backend<unknown> = new ReferenceBackend()): CaseResult {
  fs.writeFileSync(file, bytes);
  try {
    readSafetensors(file);
    // Everything behind the checksum too: a file whose checksum fails is also loaded without it.
    let verified = true;
    try {
      exercise(loadCheckpoint(file), backend);
    } catch (e) {
      if (!isCleanRejection(e)) throw e;
      verified = false;
    }
    exercise(loadCheckpoint(file, { verifyChecksum: false }), backend);
    if (!verified) loadCheckpoint(file); // rethrow the verified path's rejection
    return { outcome: 'loaded', message: '' };
  } catch (e) {
    const err = e as Error;
    if (isCleanRejection(e)) return { outcome: 'rejected', message: err.message };
    return { outcome: 'crash', message: String(err?.message ?? err), detail: `${err?.constructor?.name ?? typeof e}: ${err?.stack ?? String(e)}` };
  }
}

function exercise(ck: ReturnType<typeof loadCheckpoint>, backend: Backend<unknown>): void {
  const model = modelFromCheckpoint(ck, backend);
  try {
    optimizerFromCheckpoint(ck, model);
  } finally {
    model.free();
  }
}
