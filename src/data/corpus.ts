// Training data: the embedded corpus (Moby-Dick, data/moby-dick.txt.gz), text files, directories of
// text files, or nanoGPT-style uint16 token files (train.bin / val.bin). Tokenized text is cached on
// disk keyed by a content hash and the tokenizer, and split into a fixed train/validation pair.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import type { Tokenizer } from './tokenizer.js';
import { writeFileAtomic } from '../util/atomic.js';
import { DataError } from '../errors.js';

/** The bundled default corpus (resolved from src/data or dist/data alike). */
export const EMBEDDED_CORPUS = fileURLToPath(new URL('../../data/moby-dick.txt.gz', import.meta.url));
export const EMBEDDED_NAME = 'embedded:moby-dick';

/** Extensions read as text inside a directory (also with a trailing .gz). */
export const TEXT_EXTENSIONS = ['.txt', '.md', '.text', '.rst'];

/** Bump when the cached token format or the document joining changes. */
const CACHE_VERSION = 1;

export interface Dataset {
  /** What was loaded, for logs and checkpoints (a path, or EMBEDDED_NAME). */
  source: string;
  /** 'text': tokenized here; 'tokens': read from nanoGPT uint16 files. */
  kind: 'text' | 'tokens';
  /** Tokenizer the ids belong to. */
  tokenizer: string;
  /** sha256 of the raw input (file names and bytes), hex. */
  contentHash: string;
  train: Uint16Array;
  val: Uint16Array;
  /** How the split was made, e.g. "last 10% of tokens" or "val.bin". */
  split: string;
  /** Where the tokenized data was cached, whether it was a cache hit, or why no cache was used. */
  cache: string;
}

export interface LoadOptions {
  /** A file, a directory, or undefined for the embedded corpus. */
  data?: string;
  tokenizer: Tokenizer;
  /** Fraction of tokens (the last ones) held out for validation when there is no val.bin. Default 0.1. */
  valFraction?: number;
  /** Cache directory; null disables the cache. Default: defaultCacheDir(). */
  cacheDir?: string | null;
  /**
   * The text files' encoding (TEXT_ENCODINGS). Default: UTF-8, checked: a byte-order mark of
   * another encoding, NUL bytes of UTF-16 without one, or invalid UTF-8 is refused with the
   * encoding found and how to convert the file.
   */
  encoding?: TextEncodingName;
}

/** Encodings text data may be read in (--encoding); anything else: convert it to UTF-8 first. */
export const TEXT_ENCODINGS = ['utf-8', 'utf-16le', 'utf-16be', 'latin1'] as const;
export type TextEncodingName = (typeof TEXT_ENCODINGS)[number];

const ICONV_NAME: Record<string, string> = { 'utf-16le': 'UTF-16LE', 'utf-16be': 'UTF-16BE', 'utf-32le': 'UTF-32LE', 'utf-32be': 'UTF-32BE', latin1: 'LATIN1' };

/** A one-line refusal of `file` found to be in `found`, with the iconv command and the encoding option. */
function encodingError(file: string, found: string, enc: string, accepted: boolean): DataError {
  const q = (f: string) => (/^[\w./-]+$/.test(f) ? f : `'${f.replace(/'/g, "'\\''")}'`);
  const out = file.replace(/(\.[^./]+)?$/, '.utf8$1');
  return new DataError(
    (n) => `data file '${file}' is ${found}: convert it to UTF-8 with iconv -f ${ICONV_NAME[enc]} -t UTF-8 ${q(file)} > ${q(out)}${accepted ? `, or pass ${n('encoding')} ${enc}` : ''}`,
    { option: 'encoding' },
  );
}

/** The offset of the first byte that is not part of valid UTF-8, or -1. */
export function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    // continuation bytes after the lead byte, and the smallest code point that needs them
    const n = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : 0;
    if (n === 0) return i;
    const min = n === 1 ? 0x80 : n === 2 ? 0x800 : 0x10000;
    let cp = c & (0x3f >> n);
    for (let k = 1; k <= n; k++) {
      const x = b[i + k];
      if (x === undefined || (x & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (x & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += n + 1;
  }
  return -1;
}

/**
 * The text of one data file. With no encoding named: UTF-8 (a UTF-8 byte-order mark is dropped),
 * refusing with one line what is evidently another encoding: a UTF-16/32 byte-order mark, the NUL
 * bytes of UTF-16 without one, or bytes that are not UTF-8 (Latin-1, Windows-1252, ...).
 */
export function decodeText(bytes: Uint8Array, file: string, encoding?: TextEncodingName): string {
  const b = bytes;
  if (encoding === 'latin1') return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
  if (encoding === 'utf-16le' || encoding === 'utf-16be') {
    if (b.length % 2 !== 0) throw new DataError((n) => `data file '${file}' has an odd number of bytes (${b.length}), so it is not ${ICONV_NAME[encoding]} (${n('encoding')} ${encoding})`, {
        option: 'encoding',
      });
    return new TextDecoder(encoding).decode(b); // drops the byte-order mark
  }
  if (encoding !== undefined && encoding !== 'utf-8') throw new Error(`unknown text encoding '${String(encoding)}'; one of ${TEXT_ENCODINGS.join(', ')}`);
  if (b[0] === 0xff && b[1] === 0xfe && b[2] === 0 && b[3] === 0) throw encodingError(file, 'UTF-32LE text (byte-order mark FF FE 00 00), not UTF-8', 'utf-32le', false);
  if (b[0] === 0 && b[1] === 0 && b[2] === 0xfe && b[3] === 0xff) throw encodingError(file, 'UTF-32BE text (byte-order mark 00 00 FE FF), not UTF-8', 'utf-32be', false);
  if (b[0] === 0xff && b[1] === 0xfe) throw encodingError(file, 'UTF-16LE text (byte-order mark FF FE), not UTF-8', 'utf-16le', true);
  if (b[0] === 0xfe && b[1] === 0xff) throw encodingError(file, 'UTF-16BE text (byte-order mark FE FF), not UTF-8', 'utf-16be', true);
  // UTF-16 without a byte-order mark: ASCII text has a NUL in every other byte
  const n = Math.min(b.length, 1 << 16);
  let even = 0,
    odd = 0;
  for (let i = 0; i < n; i++) {
    if (b[i] !== 0) continue;
    if (i % 2 === 0) even++;
    else odd++;
  }
  if (odd > n / 8 && odd > 4 * even) throw encodingError(file, `UTF-16LE text without a byte-order mark (${odd} NUL bytes at odd offsets in the first ${n})`, 'utf-16le', true);
  if (even > n / 8 && even > 4 * odd) throw encodingError(file, `UTF-16BE text without a byte-order mark (${even} NUL bytes at even offsets in the first ${n})`, 'utf-16be', true);
  const bad = firstInvalidUtf8(b);
  if (bad >= 0) {
    const before = Buffer.from(b.subarray(Math.max(0, bad - 16), bad)).toString('utf8').replace(/\s+/g, ' ');
    throw encodingError(
      file,
      `not valid UTF-8 (byte 0x${b[bad].toString(16).toUpperCase().padStart(2, '0')} at offset ${bad}, after "${before}"; Latin-1 or Windows-1252?)`,
      'latin1',
      true,
    );
  }
  return new TextDecoder('utf-8').decode(b); // drops a UTF-8 byte-order mark
}

/** $CRATE_TS_CACHE, else $XDG_CACHE_HOME/crate-ts, else ~/.cache/crate-ts. */
export function defaultCacheDir(): string {
  if (process.env.CRATE_TS_CACHE) return process.env.CRATE_TS_CACHE;
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'crate-ts');
}

interface Doc { name: string; bytes: Uint8Array; /** the file, for messages */ path?: string }

function readMaybeGz(file: string): Uint8Array {
  const raw = fs.readFileSync(file);
  if (!file.endsWith('.gz')) return raw;
  try {
    return gunzipSync(raw);
  } catch (e) {
    throw new Error(`data file '${file}' is not valid gzip: ${(e as Error).message}`);
  }
}

function isTextName(name: string): boolean {
  const n = name.endsWith('.gz') ? name.slice(0, -3) : name;
  return TEXT_EXTENSIONS.some((ext) => n.toLowerCase().endsWith(ext));
}

/** Text files under a directory, recursively, sorted by relative path; hidden entries skipped. */
function listTextFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      if (e.name.startsWith('.')) continue;
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && isTextName(e.name)) out.push(p);
    }
  };
  walk(dir);
  return out;
}

function hashDocs(docs: Doc[]): string {
  const h = createHash('sha256');
  for (const d of docs) {
    h.update(`${d.name}\0${d.bytes.length}\0`);
    h.update(d.bytes);
  }
  return h.digest('hex');
}

/** Read a nanoGPT token file: little-endian uint16 ids. */
export function readTokenFile(file: string): Uint16Array {
  const raw = fs.readFileSync(file);
  if (raw.length === 0) throw new Error(`token file '${file}' is empty`);
  if (raw.length % 2 !== 0) throw new Error(`token file '${file}' has an odd number of bytes (${raw.length}); nanoGPT token files hold uint16 ids`);
  const out = new Uint16Array(raw.length / 2);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = view.getUint16(2 * i, true);
  return out;
}


/** Tokenize documents, joining them with the tokenizer's end-of-text id (or a blank line for bytes). */
export function tokenizeDocs(docs: Doc[], tok: Tokenizer, encoding?: TextEncodingName): Uint16Array {
  return tokenizeTexts(
    docs.map((d) => decodeText(d.bytes, d.path ?? d.name, encoding)),
    tok,
  );
}

/** Tokenize decoded documents, joining them with the tokenizer's end-of-text id (or a blank line for bytes). */
function tokenizeTexts(texts: string[], tok: Tokenizer): Uint16Array {
  const parts: number[][] = [];
  texts.forEach((text, i) => {
    if (i > 0) parts.push(tok.eot !== null ? [tok.eot] : tok.encode('\n\n'));
    parts.push(tok.encode(text));
  });
  const n = parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint16Array(n);
  let o = 0;
  for (const p of parts) {
    for (const t of p) {
      if (t > 65535) throw new Error(`token id ${t} does not fit in uint16`);
      out[o++] = t;
    }
  }
  return out;
}

function splitTokens(tokens: Uint16Array, valFraction: number): { train: Uint16Array; val: Uint16Array } {
  const nVal = Math.ceil(tokens.length * valFraction);
  const cut = tokens.length - nVal;
  return { train: tokens.subarray(0, cut), val: tokens.subarray(cut) };
}

/** Load, tokenize (with the on-disk cache) and split a data source. Errors name the offending path. */
export async function loadDataset(opts: LoadOptions): Promise<Dataset> {
  const tok = opts.tokenizer;
  const valFraction = opts.valFraction ?? 0.1;
  if (!(valFraction > 0 && valFraction < 1)) throw new Error(`the validation fraction must be in (0, 1), got ${valFraction}`);
  const splitDesc = `last ${+(valFraction * 100).toFixed(2)}% of tokens`;

  let docs: Doc[];
  let source: string;
  if (opts.data === undefined) {
    if (!fs.existsSync(EMBEDDED_CORPUS)) throw new Error(`the embedded corpus ${EMBEDDED_CORPUS} is missing from this installation`);
    docs = [{ name: 'moby-dick.txt', bytes: readMaybeGz(EMBEDDED_CORPUS) }];
    source = EMBEDDED_NAME;
  } else {
    const p = opts.data;
    let st: fs.Stats;
    try {
      st = fs.statSync(p);
    } catch {
      throw new Error(`data path '${p}' does not exist`);
    }
    source = path.resolve(p);
    if (st.isDirectory()) {
      const trainBin = path.join(p, 'train.bin');
      if (fs.existsSync(trainBin)) return loadTokenFiles(trainBin, tok, valFraction, splitDesc);
      const files = listTextFiles(p);
      if (files.length === 0) throw new Error(`data directory '${p}' holds no text files (${TEXT_EXTENSIONS.join(', ')}, optionally .gz) and no train.bin`);
      docs = files.map((f) => ({ name: path.relative(p, f), bytes: readMaybeGz(f), path: f }));
    } else if (p.endsWith('.bin')) {
      return loadTokenFiles(p, tok, valFraction, splitDesc);
    } else {
      docs = [{ name: path.basename(p), bytes: readMaybeGz(p), path: p }];
    }
    const total = docs.reduce((s, d) => s + d.bytes.length, 0);
    if (total === 0) throw new Error(`data ${docs.length === 1 ? `file '${p}' is` : `files in '${p}' are`} empty`);
  }

  // refuse text in another encoding before anything is cached (a cache hit would skip decoding)
  const encoding = opts.encoding;
  const texts = docs.map((d) => decodeText(d.bytes, d.path ?? d.name, encoding));
  const contentHash = hashDocs(docs);
  let tokens: Uint16Array | null = null;
  let cache: string;
  const cacheDir = opts.cacheDir === undefined ? defaultCacheDir() : opts.cacheDir;
  if (tok.name === 'byte' || tok.name === 'char') {
    cache = `not used (${tok.name}-level tokenization is a lookup)`;
  } else if (cacheDir === null) {
    cache = 'disabled';
  } else {
    const enc = encoding === undefined || encoding === 'utf-8' ? '' : `\0${encoding}`;
    const key = createHash('sha256').update(`crate-ts-tokens v${CACHE_VERSION}\0${tok.name}\0${contentHash}${enc}`).digest('hex').slice(0, 32);
    const file = path.join(cacheDir, `tokens-${tok.name}-${key}.u16`);
    if (fs.existsSync(file)) {
      try {
        tokens = readTokenFile(file);
        cache = `hit ${file}`;
      } catch {
        cache = `unreadable ${file}; re-tokenized`;
      }
    }
    if (tokens === null) {
      tokens = tokenizeTexts(texts, tok);
      try {
        const bytes = new Uint8Array(tokens.length * 2);
        const view = new DataView(bytes.buffer);
        for (let i = 0; i < tokens.length; i++) view.setUint16(2 * i, tokens[i], true);
        writeFileAtomic(file, bytes, { mkdir: true });
        cache = `wrote ${file}`;
      } catch (e) {
        cache = `could not write ${file}: ${(e as Error).message}`;
      }
    }
    cache ??= '';
  }
  if (tokens === null) tokens = tokenizeTexts(texts, tok);
  if (tokens.length === 0) throw new Error(`data source '${source}' produced no tokens`);
  const { train, val } = splitTokens(tokens, valFraction);
  return { source, kind: 'text', tokenizer: tok.name, contentHash, train, val, split: splitDesc, cache };
}

function loadTokenFiles(trainFile: string, tok: Tokenizer, valFraction: number, splitDesc: string): Dataset {
  const tokens = readTokenFile(trainFile);
  const valFile = path.join(path.dirname(trainFile), 'val.bin');
  const h = createHash('sha256').update(fs.readFileSync(trainFile));
  let train: Uint16Array, val: Uint16Array, split: string;
  if (path.basename(trainFile) === 'train.bin' && fs.existsSync(valFile)) {
    train = tokens;
    val = readTokenFile(valFile);
    h.update(fs.readFileSync(valFile));
    split = `train.bin / val.bin`;
  } else {
    ({ train, val } = splitTokens(tokens, valFraction));
    split = splitDesc;
  }
  return {
    source: path.resolve(trainFile), kind: 'tokens', tokenizer: tok.name, contentHash: h.digest('hex'),
    train, val, split, cache: 'not needed (pre-tokenized)',
  };
}

/** Throw a clear error unless every token id is below the model's vocabulary size. */
export function checkVocab(ds: Dataset, vocabSize: number): void {
  for (const [which, arr] of [['training', ds.train], ['validation', ds.val]] as const) {
    for (let i = 0; i < arr.length; i++) {
      if (arr[i] >= vocabSize) {
        const hint = (n: (o: string) => string) =>
          ds.kind === 'tokens' ? ` (nanoGPT .bin files usually hold GPT-2 ids: use ${n('tokenizer')} gpt2 with a GPT-2-vocabulary preset)` : '';
        throw new DataError((n) => `${which} token ${i} of '${ds.source}' has id ${arr[i]}, outside the model's vocabulary of ${vocabSize}${hint(n)}`);
      }
    }
  }
}

/** Throw a clear error unless both splits hold at least one window of T+1 tokens. */
export function checkWindows(ds: Dataset, T: number): void {
  for (const [which, arr] of [['training', ds.train], ['validation', ds.val]] as const) {
    if (arr.length < T + 1) {
      throw new DataError(
        (n) => `the ${which} split of '${ds.source}' has ${arr.length} tokens, fewer than one window of ${T + 1} (${n('seq')} ${T} plus the shifted target); use more text or a smaller ${n('seq')}`,
        { option: 'seq' },
      );
    }
  }
}
