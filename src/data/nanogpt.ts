// nanoGPT's character-level datasets: data/<name>/prepare.py writes train.bin and val.bin (uint16
// ids) and meta.pkl, a pickle of {'vocab_size': int, 'itos': {int: str}, 'stoi': {str: int}}. The
// ids mean nothing without meta.pkl; with it they are the `char` tokenizer's (src/data/tokenizer.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataError } from '../errors.js';
import { readPickle, type PyKey, type PyValue } from './pickle.js';

export const META_FILE = 'meta.pkl';
/** Largest meta.pkl read (a 65,536-entry vocabulary pickles to a few MB). */
const MAX_META_BYTES = 64 << 20;

/** The meta.pkl beside a nanoGPT token file (or in a dataset directory), or null. */
export function metaPathFor(data: string): string | null {
  let dir: string;
  try {
    dir = fs.statSync(data).isDirectory() ? data : path.dirname(data);
  } catch {
    return null;
  }
  if (!fs.existsSync(path.join(dir, 'train.bin')) && !data.endsWith('.bin')) return null;
  const f = path.join(dir, META_FILE);
  return fs.existsSync(f) ? f : null;
}

/**
 * Read a nanoGPT meta.pkl and return its vocabulary in id order (itos[0], itos[1], ...). Checks that
 * itos maps 0..vocab_size-1 to distinct non-empty strings and that stoi, when present, is its
 * inverse. Throws a DataError naming the file.
 */
export function readNanoGptMeta(file: string): { vocab: string[] } {
  let bytes: Buffer;
  try {
    const st = fs.statSync(file);
    if (st.size > MAX_META_BYTES) throw new DataError(`${file}: ${st.size} bytes is larger than a nanoGPT meta.pkl can be (limit ${MAX_META_BYTES})`);
    bytes = fs.readFileSync(file);
  } catch (e) {
    if (e instanceof DataError) throw e;
    throw new DataError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
  const meta = readPickle(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), file);
  const fail = (problem: string): never => { throw new DataError(`${file}: ${problem}`); };
  if (!(meta instanceof Map)) fail(`expected a dict {'vocab_size', 'itos', 'stoi'}, got ${describe(meta)}`);
  const m = meta as Map<PyKey, PyValue>;
  const itos = m.get('itos');
  if (!(itos instanceof Map)) fail(`has no 'itos' dict (id -> string): ${m.has('itos') ? `got ${describe(itos!)}` : `keys are ${[...m.keys()].map(String).join(', ')}`}; only character-level datasets carry a vocabulary`);
  const n = (itos as Map<PyKey, PyValue>).size;
  const vs = m.get('vocab_size');
  if (vs !== undefined && vs !== n) fail(`'vocab_size' is ${String(vs)} but 'itos' has ${n} entries`);
  if (n === 0 || n > 65536) fail(`'itos' has ${n} entries; a vocabulary of uint16 ids has 1 to 65536`);
  const vocab: string[] = new Array<string>(n);
  for (const [k, v] of itos as Map<PyKey, PyValue>) {
    if (typeof k !== 'number' || !Number.isInteger(k) || k < 0 || k >= n) fail(`'itos' key ${String(k)} is not an id in [0, ${n})`);
    if (typeof v !== 'string' || v.length === 0) fail(`'itos'[${String(k)}] is ${describe(v)}, not a non-empty string`);
    vocab[k as number] = v as string;
  }
  if (new Set(vocab).size !== n) fail(`'itos' maps two ids to the same string`);
  const stoi = m.get('stoi');
  if (stoi !== undefined) {
    if (!(stoi instanceof Map)) fail(`'stoi' is ${describe(stoi)}, not a dict`);
    for (const [s, i] of stoi as Map<PyKey, PyValue>) {
      if (typeof s !== 'string' || typeof i !== 'number' || vocab[i] !== s) fail(`'stoi' is not the inverse of 'itos' (entry ${JSON.stringify(String(s))}: ${String(i)})`);
    }
  }
  return { vocab };
}

function describe(v: PyValue): string {
  if (v === null) return 'None';
  if (v instanceof Map) return `a dict of ${v.size}`;
  if (Array.isArray(v)) return `a list of ${v.length}`;
  return `${typeof v} ${JSON.stringify(typeof v === 'bigint' ? String(v) : v)}`.slice(0, 60);
}
