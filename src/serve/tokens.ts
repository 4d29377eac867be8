// Token strings as OpenAI-compatible servers report them in `logprobs`.
//
// A byte-level BPE token need not be valid UTF-8 on its own (a curly quote is two GPT-2 tokens).
// The strings reported here follow vLLM's current convention for tokens of the sequence: each token
// carries the text it *adds* given the tokens before it, so a character split over several tokens
// appears on the token that completes it and the earlier ones are "" (the concatenation of
// `tokens` is then exactly `text`, and `text_offset` is the running length). Alternatives in
// `top_logprobs` are decoded in the same context; one that leaves an incomplete character is shown
// in the legacy OpenAI form `bytes:\xe2\x80` so that distinct alternatives keep distinct keys.
//
// Offsets count Unicode code points, as Python's str (vLLM, OpenAI) does, not UTF-16 units.
import type { Tokenizer } from '../data/tokenizer.js';

/** The raw bytes of each token id of a tokenizer (empty for ids with no text, e.g. vocabulary padding). */
export class TokenBytes {
  private readonly cache = new Map<number, Uint8Array>();
  private readonly fromId: (id: number) => Uint8Array;

  private constructor(
    readonly vocabSize: number,
    fromId: (id: number) => Uint8Array,
  ) {
    this.fromId = fromId;
  }

  static async forTokenizer(tok: Tokenizer): Promise<TokenBytes> {
    if (tok.name === 'byte') return new TokenBytes(256, (id) => Uint8Array.of(id));
    // gpt-tokenizer's BPE core gives each rank's bytes (a string when the token is valid UTF-8,
    // bytes otherwise). Its decode() shares one streaming TextDecoder between calls, so decoding
    // a partial token alone is not reliable; the bytes are.
    const mod = (await import('gpt-tokenizer/encoding/r50k_base')) as unknown as {
      default?: { bytePairEncodingCoreProcessor?: { tryDecodeToken?: (id: number) => string | Uint8Array | undefined } };
    };
    const core = mod.default?.bytePairEncodingCoreProcessor;
    const enc = new TextEncoder();
    if (core && typeof core.tryDecodeToken === 'function') {
      const get = core.tryDecodeToken.bind(core);
      return new TokenBytes(tok.vocabSize, (id) => {
        if (id >= tok.vocabSize) return new Uint8Array(0);
        const b = get(id);
        if (b === undefined) return new Uint8Array(0);
        return typeof b === 'string' ? enc.encode(b) : Uint8Array.from(b);
      });
    }
    // Fallback for another version of the package: decode alone (lossy for partial tokens).
    return new TokenBytes(tok.vocabSize, (id) => (id >= tok.vocabSize ? new Uint8Array(0) : enc.encode(tok.decode([id]))));
  }

  bytes(id: number): Uint8Array {
    let b = this.cache.get(id);
    if (!b) {
      b = this.fromId(id);
      this.cache.set(id, b);
    }
    return b;
  }
}

/** Legacy OpenAI spelling of raw bytes: `bytes:` then printable ASCII as is, other bytes as \xNN. */
export function bytesLiteral(b: Uint8Array): string {
  let s = 'bytes:';
  for (const x of b) s += x >= 0x20 && x < 0x7f && x !== 0x5c ? String.fromCharCode(x) : '\\x' + x.toString(16).padStart(2, '0');
  return s;
}

/** Number of Unicode code points of a string. */
export function codePoints(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdbff || i + 1 >= s.length) n++;
    else {
      const d = s.charCodeAt(i + 1);
      n++;
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
  }
  return n;
}

/** A UTF-8 byte count at which `buf` ends with an incomplete (but so far valid) character, or 0. */
function incompleteTail(buf: Uint8Array): number {
  // Look back at most 3 bytes for a lead byte whose sequence is not finished.
  for (let k = 1; k <= Math.min(3, buf.length); k++) {
    const b = buf[buf.length - k];
    if ((b & 0xc0) === 0x80) continue; // continuation byte: keep looking
    const need = b >= 0xf0 && b <= 0xf4 ? 4 : b >= 0xe0 ? 3 : b >= 0xc2 && b < 0xe0 ? 2 : 1;
    return need > k ? k : 0;
  }
  return 0;
}

/**
 * Incremental detokenizer: push token ids one at a time; each push returns the text that token
 * adds. Bytes of an unfinished character are held back until a later token completes them (or
 * flush() emits them as U+FFFD).
 */
export class TextStream {
  private pending = new Uint8Array(0);
  private readonly dec = new TextDecoder('utf-8', { fatal: false });
  /** Code points emitted so far (the text_offset of the next token). */
  offset = 0;
  /** All text emitted so far. */
  text = '';

  constructor(private readonly tb: TokenBytes) {}

  /** The text token `id` would add now, without consuming it (for alternatives). */
  peek(id: number): { text: string; complete: boolean } {
    const add = this.tb.bytes(id);
    const all = concat(this.pending, add);
    const tail = incompleteTail(all);
    const text = this.dec.decode(all.subarray(0, all.length - tail));
    return { text, complete: tail === 0 || add.length === 0 };
  }

  push(id: number): string {
    const all = concat(this.pending, this.tb.bytes(id));
    const tail = incompleteTail(all);
    const text = this.dec.decode(all.subarray(0, all.length - tail));
    this.pending = all.slice(all.length - tail);
    this.offset += codePoints(text);
    this.text += text;
    return text;
  }

  /** Emit held-back bytes (an incomplete character at the end becomes U+FFFD). */
  flush(): string {
    if (this.pending.length === 0) return '';
    const text = this.dec.decode(this.pending);
    this.pending = new Uint8Array(0);
    this.offset += codePoints(text);
    this.text += text;
    return text;
  }

  /** The display string of alternative `id` at this point (see the file comment). */
  alternative(id: number): string {
    const p = this.peek(id);
    if (p.text.length > 0 || this.tb.bytes(id).length === 0) return p.text;
    return bytesLiteral(this.tb.bytes(id));
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
