// The token strings of an excerpt of the corpus (the `tokens` of an ActivationRecord).
//
// A byte-level token need not be a whole character: a curly quote is three bytes, which the byte
// tokenizer spreads over three tokens and GPT-2's BPE often over two. Decoding each id alone turns
// every piece into U+FFFD. Records follow the convention `crate-ts serve` uses for the tokens of a
// sequence (src/serve/tokens.ts): each token carries the text it adds given the tokens before it,
// so the bytes of a character show together on the token that completes it and the earlier pieces
// are "" (the concatenation of the strings is the excerpt's text). The activations stay per token.
// The up to three tokens before an excerpt are read for context, so a character begun there shows
// whole on the excerpt's first token; one still unfinished at the excerpt's end shows as U+FFFD on
// its last token (its remaining bytes are not part of the excerpt).
import type { Tokenizer } from '../data/tokenizer.js';
import { TokenBytes } from '../serve/tokens.js';

/** The strings of tokens[start, start + length), one per token. */
export type ExcerptDecoder = (tokens: ArrayLike<number>, start: number, length: number) => string[];

/** How many bytes at the end of `b` begin a character that is not finished yet (0 when none). */
function unfinished(b: Uint8Array): number {
  for (let k = 1; k <= Math.min(3, b.length); k++) {
    const x = b[b.length - k];
    if ((x & 0xc0) === 0x80) continue; // a continuation byte: look further back for the lead
    const need = x >= 0xf0 && x <= 0xf4 ? 4 : x >= 0xe0 && x < 0xf0 ? 3 : x >= 0xc2 && x < 0xe0 ? 2 : 1;
    return need > k ? k : 0;
  }
  return 0;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** An excerpt decoder over raw token bytes (`bytes(id)`). */
export function excerptDecoderFromBytes(bytes: (id: number) => Uint8Array): ExcerptDecoder {
  const lossy = new TextDecoder('utf-8', { fatal: false }),
    strict = new TextDecoder('utf-8', { fatal: true });
  // ids whose bytes are whole characters on their own (most of them): their string, decoded once
  const whole = new Map<number, string | null>();
  const alone = (id: number): string | null => {
    let s = whole.get(id);
    if (s === undefined) {
      const b = bytes(id);
      try {
        s = unfinished(b) === 0 ? strict.decode(b) : null;
      } catch {
        s = null;
      }
      whole.set(id, s);
    }
    return s;
  };
  return (tokens, start, length) => {
    let pending = new Uint8Array(0);
    // after a token of whole characters nothing is pending: the context is needed only after a piece
    const from = start > 0 && alone(tokens[start - 1]) !== null ? start : Math.max(0, start - 3);
    for (let i = from; i < start; i++) {
      const all = concat(pending, bytes(tokens[i]));
      pending = all.slice(all.length - unfinished(all));
    }
    const out = new Array<string>(length);
    for (let j = 0; j < length; j++) {
      const id = tokens[start + j];
      const s = pending.length === 0 ? alone(id) : null;
      if (s !== null) {
        out[j] = s;
        continue;
      }
      const all = concat(pending, bytes(id));
      const keep = unfinished(all);
      out[j] = lossy.decode(all.subarray(0, all.length - keep));
      pending = all.slice(all.length - keep);
    }
    if (pending.length && length > 0) out[length - 1] += lossy.decode(pending);
    return out;
  };
}

/** The excerpt decoder of a tokenizer (its ids' raw bytes, as `serve` reads them). */
export async function excerptDecoder(tok: Tokenizer): Promise<ExcerptDecoder> {
  const tb = await TokenBytes.forTokenizer(tok);
  return excerptDecoderFromBytes((id) => tb.bytes(id));
}
