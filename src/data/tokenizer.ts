// Tokenizers: byte-level (vocab 256, any UTF-8 text round-trips), GPT-2 BPE (r50k_base from the
// gpt-tokenizer package, bundled offline), and `char`: a vocabulary of strings given with it, as
// nanoGPT's character-level datasets define in meta.pkl (src/data/nanogpt.ts). The tokenizer's name
// is recorded in every checkpoint, and the char vocabulary with it.
import { DataError, UsageError } from '../errors.js';

export type TokenizerName = 'byte' | 'gpt2' | 'char';

export const TOKENIZER_NAMES: readonly TokenizerName[] = ['byte', 'gpt2', 'char'];

export interface Tokenizer {
  readonly name: TokenizerName;
  /** Number of distinct token ids the tokenizer produces (ids are in [0, vocabSize)). */
  readonly vocabSize: number;
  /** The smallest model vocabulary to use with it (GPT-2's 50257 padded to 50304, spec 5.1). */
  readonly modelVocabSize: number;
  /** The end-of-text id inserted between documents, or null (byte: documents joined by a blank line). */
  readonly eot: number | null;
  /** Encode text; special-token strings such as "<|endoftext|>" are encoded as ordinary text. */
  encode(text: string): number[];
  /** Decode ids to text (invalid UTF-8 becomes U+FFFD). */
  decode(ids: ArrayLike<number>): string;
  /**
   * How many bytes of UTF-8 text token `id` stands for: 1 for a byte, the length of a BPE rank's
   * bytes, 0 for the end-of-text token and the padding ids past the vocabulary. Summed over a text's
   * tokens it is the text's UTF-8 length (the denominator of bits per byte).
   */
  byteLength(id: number): number;
  /** The `char` tokenizer's vocabulary (id -> string); undefined for the others. */
  readonly vocab?: readonly string[];
}

class ByteTokenizer implements Tokenizer {
  readonly name = 'byte' as const;
  readonly vocabSize = 256;
  readonly modelVocabSize = 256;
  readonly eot = null;
  private readonly enc = new TextEncoder();
  encode(text: string): number[] { return Array.from(this.enc.encode(text)); }
  decode(ids: ArrayLike<number>): string {
    const bytes = new Uint8Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const t = ids[i];
      if (!Number.isInteger(t) || t < 0 || t > 255) throw new Error(`byte tokenizer: id ${t} at position ${i} is outside [0, 256)`);
      bytes[i] = t;
    }
    return new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  }
  byteLength(id: number): number {
    return Number.isInteger(id) && id >= 0 && id < 256 ? 1 : 0;
  }
}

interface R50k {
  encode(text: string, opts?: { disallowedSpecial?: Set<string>; allowedSpecial?: Set<string> | 'all' }): number[];
  decode(ids: Iterable<number>): string;
  /** gpt-tokenizer's BPE core: a rank's bytes (a string when they are valid UTF-8). */
  default?: { bytePairEncodingCoreProcessor?: { tryDecodeToken?: (id: number) => string | Uint8Array | undefined } };
}

/** GPT-2's end-of-text id. */
export const GPT2_EOT = 50256;

class Gpt2Tokenizer implements Tokenizer {
  readonly name = 'gpt2' as const;
  readonly vocabSize = 50257;
  readonly modelVocabSize = 50304;
  readonly eot = GPT2_EOT;
  private readonly tokenBytes: ((id: number) => Uint8Array) | null;
  private readonly bytesCache = new Map<number, Uint8Array>();
  constructor(private readonly bpe: R50k) {
    // gpt-tokenizer's decode() keeps one streaming TextDecoder across calls, so decoding a token that
    // ends inside a character returns "" and leaks its bytes into the next call. Decoding from each
    // rank's bytes with a fresh decoder makes decode() a pure function of its ids (a partial
    // character becomes U+FFFD, as for the byte tokenizer).
    const core = bpe.default?.bytePairEncodingCoreProcessor;
    const enc = new TextEncoder();
    this.tokenBytes = core && typeof core.tryDecodeToken === 'function'
      ? (id) => { const b = core.tryDecodeToken!(id); return b === undefined ? new Uint8Array(0) : typeof b === 'string' ? enc.encode(b) : Uint8Array.from(b); }
      : null;
  }
  encode(text: string): number[] {
    // An empty disallowed set makes "<|endoftext|>" in user text ordinary text instead of an error;
    // documents are separated by inserting GPT2_EOT explicitly.
    return this.bpe.encode(text, { disallowedSpecial: new Set() });
  }
  byteLength(id: number): number {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize || id === GPT2_EOT) return 0;
    if (this.tokenBytes === null) return new TextEncoder().encode(this.bpe.decode([id])).length;
    let b = this.bytesCache.get(id);
    if (!b) {
      b = this.tokenBytes(id);
      this.bytesCache.set(id, b);
    }
    return b.length;
  }
  decode(ids: ArrayLike<number>): string {
    const list: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const t = ids[i];
      if (!Number.isInteger(t) || t < 0) throw new Error(`gpt2 tokenizer: id ${t} at position ${i} is not a token id`);
      // The model vocabulary is padded to 50304; ids past 50256 have no text.
      if (t < this.vocabSize) list.push(t);
    }
    if (this.tokenBytes === null) return this.bpe.decode(list);
    const parts = list.map((id) => {
      let b = this.bytesCache.get(id);
      if (!b) { b = this.tokenBytes!(id); this.bytesCache.set(id, b); }
      return b;
    });
    const all = new Uint8Array(parts.reduce((n, b) => n + b.length, 0));
    let off = 0;
    for (const b of parts) { all.set(b, off); off += b.length; }
    return new TextDecoder('utf-8', { fatal: false }).decode(all);
  }
}

/**
 * A vocabulary of strings, ids in order (nanoGPT's itos). Text is encoded by longest match at each
 * position (nanoGPT's vocabularies are single characters, so: one id per character); a character
 * outside the vocabulary is an error naming it. The model vocabulary is the vocabulary's size, as
 * nanoGPT uses it.
 */
export class CharTokenizer implements Tokenizer {
  readonly name = 'char' as const;
  readonly vocabSize: number;
  readonly modelVocabSize: number;
  readonly eot = null;
  readonly vocab: readonly string[];
  private readonly ids = new Map<string, number>();
  private readonly maxLen: number;
  constructor(vocab: readonly string[]) {
    if (vocab.length === 0) throw new UsageError('the char tokenizer needs a non-empty vocabulary');
    this.vocab = Object.freeze([...vocab]);
    this.vocabSize = this.modelVocabSize = vocab.length;
    vocab.forEach((s, i) => {
      if (typeof s !== 'string' || s.length === 0) throw new UsageError(`char vocabulary entry ${i} is not a non-empty string`);
      if (this.ids.has(s)) throw new UsageError(`char vocabulary lists ${JSON.stringify(s)} twice`);
      this.ids.set(s, i);
    });
    this.maxLen = Math.max(...vocab.map((s) => s.length));
  }
  encode(text: string): number[] {
    const out: number[] = [];
    for (let i = 0; i < text.length;) {
      let id: number | undefined, len = 0;
      for (let n = Math.min(this.maxLen, text.length - i); n >= 1 && id === undefined; n--) {
        id = this.ids.get(text.slice(i, i + n));
        len = n;
      }
      if (id === undefined) {
        const cp = text.codePointAt(i)!;
        throw new DataError(`the character ${JSON.stringify(String.fromCodePoint(cp))} (U+${cp.toString(16).toUpperCase().padStart(4, '0')}) at position ${i} is not in the char tokenizer's vocabulary of ${this.vocabSize}`);
      }
      out.push(id);
      i += len;
    }
    return out;
  }
  decode(ids: ArrayLike<number>): string {
    let s = '';
    for (let i = 0; i < ids.length; i++) {
      const t = ids[i];
      if (!Number.isInteger(t) || t < 0 || t >= this.vocabSize) throw new Error(`char tokenizer: id ${t} at position ${i} is outside [0, ${this.vocabSize})`);
      s += this.vocab[t];
    }
    return s;
  }
  byteLength(id: number): number {
    return Number.isInteger(id) && id >= 0 && id < this.vocabSize ? Buffer.byteLength(this.vocab[id], 'utf8') : 0;
  }
}

const cache = new Map<TokenizerName, Tokenizer>();

/**
 * Load a tokenizer by name (the GPT-2 tables are loaded on first use). `char` needs its vocabulary
 * (a checkpoint's tokenizerVocab, or readNanoGptMeta's).
 */
export async function loadTokenizer(name: string, vocab?: readonly string[] | null): Promise<Tokenizer> {
  if (!TOKENIZER_NAMES.includes(name as TokenizerName)) throw new Error(`unknown tokenizer '${name}'; known tokenizers: ${TOKENIZER_NAMES.join(', ')}`);
  if (name === 'char') {
    if (!vocab) throw new UsageError("the char tokenizer needs a vocabulary: a nanoGPT meta.pkl beside train.bin, or a checkpoint that records one");
    return new CharTokenizer(vocab);
  }
  const key = name as TokenizerName;
  let tok = cache.get(key);
  if (tok) return tok;
  if (key === 'byte') tok = new ByteTokenizer();
  else {
    let mod: R50k;
    try {
      mod = (await import('gpt-tokenizer/encoding/r50k_base')) as unknown as R50k;
    } catch (e) {
      throw new Error(`the gpt2 tokenizer needs the 'gpt-tokenizer' package (npm install gpt-tokenizer): ${(e as Error).message}`);
    }
    tok = new Gpt2Tokenizer(mod);
  }
  cache.set(key, tok);
  return tok;
}
