// Reading simulator responses (spec 7.5, DESIGN "Servers").
//
// All at once: the response to {prompt, echo: true, max_tokens: 0, logprobs: k} lists the prompt's
// tokens as the simulator's tokenizer cut them, with text_offset and the top-k log-probabilities at
// every position. After the last "<start>" of the text, every position i whose token begins the
// word "unknown" right after a tab holds, in top_logprobs[i], the distribution that predicted that
// line's value. Keep the keys "0".."10", renormalise exp(logprob), take the expected value.
//
// Alignment with the subject model's tokens (as the OpenAI parser does, counting each case): the
// subject token must be what precedes the tab. The simulator may have cut it into several tokens
// (merge backwards until the strings cover it), spelled some of them as raw bytes ("bytes:\xe2\x80"
// as OpenAI did, "<0xE2>" as SentencePiece pieces, or "" for an unfinished character as vLLM does),
// or folded the preceding newline into it; then the merged text ends with the subject token. A line
// whose text does not end with the subject token (a newline folded in a way that hides it) gets the
// value 0 and an empty distribution, as in the OpenAI code; so does a subject token never reached.

export interface Distribution {
  values: number[];
  probabilities: number[];
  expected: number;
}

export interface AlignmentCounts {
  /** The token before the tab was the subject token itself. */
  exact: number;
  /** The subject token spanned several simulator tokens. */
  split: number;
  /** Raw-byte spellings were merged (a subset of split or exact). */
  bytes: number;
  /** A newline was folded into the subject token's simulator token (value 0, as OpenAI). */
  newlineFolded: number;
  /** The text before the tab did not end with the subject token and held no newline (value 0). */
  mismatch: number;
  /** Subject tokens with no matching line in the response (value 0). */
  missing: number;
  /** Lines whose top log-probabilities held none of "0".."10" (value 0). */
  noDigits: number;
}

export const emptyCounts = (): AlignmentCounts => ({ exact: 0, split: 0, bytes: 0, newlineFolded: 0, mismatch: 0, missing: 0, noDigits: 0 });

export function addCounts(a: AlignmentCounts, b: AlignmentCounts): AlignmentCounts {
  const out = { ...a };
  for (const k of Object.keys(b) as (keyof AlignmentCounts)[]) out[k] += b[k];
  return out;
}

const DIGITS = new Set(Array.from({ length: 11 }, (_, i) => String(i)));

/** Keep "0".."10" of a top-logprobs dict, renormalise, and take the expected value (0 when none). */
export function distributionFromTop(top: Record<string, number> | null | undefined): Distribution {
  const values: number[] = [],
    ps: number[] = [];
  if (top) {
    for (const [tok, lp] of Object.entries(top)) {
      if (DIGITS.has(tok) && typeof lp === 'number' && Number.isFinite(lp)) {
        values.push(Number(tok));
        ps.push(Math.exp(lp));
      }
    }
  }
  const total = ps.reduce((a, b) => a + b, 0);
  if (!(total > 0)) return { values: [], probabilities: [], expected: 0 };
  const probabilities = ps.map((p) => p / total);
  return { values, probabilities, expected: values.reduce((s, v, i) => s + v * probabilities[i], 0) };
}

/** Bytes of a response token: legacy "bytes:\xNN" spelling, a SentencePiece "<0xNN>" piece, or UTF-8 text. */
export function tokenBytes(tok: string): { bytes: Uint8Array; raw: boolean } {
  if (tok.startsWith('bytes:')) {
    const out: number[] = [];
    const s = tok.slice(6);
    for (let i = 0; i < s.length;) {
      if (s[i] === '\\' && s[i + 1] === 'x' && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 2, i + 4))) {
        out.push(parseInt(s.slice(i + 2, i + 4), 16));
        i += 4;
      } else {
        for (const b of Buffer.from(s[i], 'utf8')) out.push(b);
        i++;
      }
    }
    return { bytes: Uint8Array.from(out), raw: true };
  }
  const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(tok);
  if (m) return { bytes: Uint8Array.of(parseInt(m[1], 16)), raw: true };
  return { bytes: new Uint8Array(Buffer.from(tok, 'utf8')), raw: false };
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

/** Code-point index of the last occurrence of `needle` in `text` (-1 when absent). */
function lastIndexCodePoints(text: string, needle: string): number {
  const at = text.lastIndexOf(needle);
  return at < 0 ? -1 : [...text.slice(0, at)].length;
}

export interface EchoLogprobs {
  tokens: string[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

export interface ParsedSimulation {
  expected: number[];
  distributionValues: number[][];
  distributionProbabilities: number[][];
  counts: AlignmentCounts;
}

/**
 * Parse an all-at-once response. `text` is choices[0].text (the prompt), `lp` its logprobs,
 * `subject` the subject model's token strings of the simulated record, `unknown` the marker word.
 */
export function parseAllAtOnce(text: string, lp: EchoLogprobs, subject: readonly string[], unknown = 'unknown'): ParsedSimulation {
  const counts = emptyCounts();
  const expected: number[] = [],
    dv: number[][] = [],
    dp: number[][] = [];
  const start = lastIndexCodePoints(text, '<start>');
  const toks = lp.tokens;
  if (start >= 0) {
    for (let i = 1; i < toks.length && expected.length < subject.length; i++) {
      if (lp.text_offset[i] < start) continue;
      const prev = toks[i - 1];
      if (!prev.endsWith('\t')) continue;
      const t = toks[i];
      if (t.length === 0 || !unknown.startsWith(t)) continue;
      // the word may span tokens ("unk" + "nown"): check the tokens from i spell it out
      let word = t;
      for (let k = i + 1; word.length < unknown.length && k < toks.length; k++) word += toks[k];
      if (!word.startsWith(unknown)) continue;
      const cur = subject[expected.length];
      const { kind, raw } = alignBefore(toks, i - 1, cur);
      if (kind === 'folded' || kind === 'mismatch') {
        counts[kind === 'folded' ? 'newlineFolded' : 'mismatch']++;
        expected.push(0);
        dv.push([]);
        dp.push([]);
        continue;
      }
      counts[kind]++;
      if (raw) counts.bytes++;
      const d = distributionFromTop(lp.top_logprobs[i]);
      if (d.values.length === 0) counts.noDigits++;
      expected.push(d.expected);
      dv.push(d.values);
      dp.push(d.probabilities);
    }
  }
  while (expected.length < subject.length) {
    counts.missing++;
    expected.push(0);
    dv.push([]);
    dp.push([]);
  }
  return { expected, distributionValues: dv, distributionProbabilities: dp, counts };
}

/**
 * Does the text before the tab at toks[tab] end with the subject token `cur`? Merge simulator
 * tokens backwards (bytes first, decoded once they form whole characters) until the merged text is
 * at least as long as `cur`.
 */
function alignBefore(toks: readonly string[], tab: number, cur: string): { kind: 'exact' | 'split' | 'folded' | 'mismatch'; raw: boolean } {
  // the part of the tab token before its final tab belongs to the line (a "\t\t" token, say)
  const head = toks[tab].slice(0, -1);
  let bytes = new Uint8Array(Buffer.from(head, 'utf8'));
  let merged = head.length > 0 ? 1 : 0,
    raw = false;
  let j = tab - 1;
  const decoded = () => utf8.decode(bytes);
  while (j >= 0 && (decoded().length < cur.length || startsMidCharacter(bytes)) && merged < 64) {
    const tb = tokenBytes(toks[j]);
    raw ||= tb.raw || toks[j] === '';
    const nb = new Uint8Array(tb.bytes.length + bytes.length);
    nb.set(tb.bytes);
    nb.set(bytes, tb.bytes.length);
    bytes = nb;
    merged++;
    j--;
  }
  const text = decoded();
  if (text.endsWith(cur)) return { kind: merged > 1 ? 'split' : 'exact', raw };
  return { kind: text.includes('\n') ? 'folded' : 'mismatch', raw };
}

/** True when the buffer begins with UTF-8 continuation bytes (a character cut at its start). */
function startsMidCharacter(b: Uint8Array): boolean {
  return b.length > 0 && (b[0] & 0xc0) === 0x80;
}

/** The distribution of a token-by-token response (max_tokens 1, logprobs k): top_logprobs[0]. */
export function parseTokenResponse(choice: { logprobs?: { top_logprobs?: (Record<string, number> | null)[] | null } | null }): Distribution {
  return distributionFromTop(choice.logprobs?.top_logprobs?.[0] ?? null);
}

/** What a cache keeps of an all-at-once response: the text, and the logprobs from a little before the last "<start>". */
export interface CompactEcho {
  text: string;
  logprobs: EchoLogprobs;
  usage?: unknown;
}

/**
 * Keep only what parseAllAtOnce reads: choices[0].text and the logprobs entries from 64 positions
 * before the last "<start>" on (the few-shot part of a prompt is most of its tokens).
 */
export function compactEcho(resp: unknown): CompactEcho {
  const choice = (resp as { choices?: { text?: unknown; logprobs?: Partial<EchoLogprobs> | null }[] })?.choices?.[0];
  const text = typeof choice?.text === 'string' ? choice.text : '';
  const lp = choice?.logprobs;
  if (!lp || !Array.isArray(lp.tokens) || !Array.isArray(lp.top_logprobs) || !Array.isArray(lp.text_offset)) {
    return { text, logprobs: { tokens: [], top_logprobs: [], text_offset: [] } };
  }
  const start = lastIndexCodePoints(text, '<start>');
  let from = lp.text_offset.findIndex((o) => o >= start);
  from = start < 0 || from < 0 ? 0 : Math.max(0, from - 64);
  return {
    text,
    logprobs: { tokens: lp.tokens.slice(from), top_logprobs: lp.top_logprobs.slice(from), text_offset: lp.text_offset.slice(from) },
    usage: (resp as { usage?: unknown }).usage,
  };
}
