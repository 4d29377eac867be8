// Reading simulator responses: expected values from top log-probabilities, and the alignment of
// the subject model's tokens with the simulator's (exact, split, raw bytes in three spellings, a
// newline folded in, "unknown" split in two, a "\t\t" token, missing lines), on hand-made
// responses and on real ones from crate-ts serve (GPT-2 BPE and byte-level simulators).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { distributionFromTop, parseAllAtOnce, compactEcho, tokenBytes, type EchoLogprobs } from '../src/neurons/llm/parse.js';
import { loadPromptSet, simulationPrompt } from '../src/neurons/llm/prompts.js';
import { LanguageModel } from '../src/model/lm.js';
import { makeConfig } from '../src/model/config.js';
import { selectBackend } from '../src/backend/select.js';
import { loadTokenizer } from '../src/data/tokenizer.js';
import { Engine } from '../src/serve/engine.js';
import { TokenBytes } from '../src/serve/tokens.js';
import { startServer, type RunningServer } from '../src/serve/server.js';

const L = Math.log;

/** A response built from simulator tokens; `dist(i)` gives top_logprobs at position i. */
function response(tokens: string[], dist: (i: number) => Record<string, number> | null): { text: string; lp: EchoLogprobs } {
  const offsets: number[] = [];
  let bytes: number[] = [],
    cps = 0;
  for (const t of tokens) {
    offsets.push(cps);
    const b = tokenBytes(t);
    if (b.raw || t === '') {
      bytes.push(...b.bytes);
      const s = Buffer.from(bytes).toString('utf8');
      if (bytes.length && !s.includes('\ufffd')) {
        cps += [...s].length;
        bytes = [];
      }
    } else cps += [...t].length;
  }
  const text = tokens
    .map((t) => {
      const b = tokenBytes(t);
      return b.raw ? '' : t;
    })
    .join('');
  return { text, lp: { tokens, top_logprobs: tokens.map((_, i) => (i === 0 ? null : dist(i))), text_offset: offsets } };
}

describe('expected values', () => {
  it('keep "0".."10", renormalise, take the mean; no digits gives 0', () => {
    const d = distributionFromTop({ '0': L(0.5), '3': L(0.25), x: L(0.2), '11': L(0.05) });
    expect(d.values).toEqual([0, 3]);
    expect(d.probabilities[0]).toBeCloseTo(2 / 3, 12);
    expect(d.expected).toBeCloseTo(1, 12);
    expect(distributionFromTop({ '10': L(0.1), '5': L(0.1) }).expected).toBeCloseTo(7.5, 12);
    expect(distributionFromTop({ the: -1 })).toEqual({ values: [], probabilities: [], expected: 0 });
    expect(distributionFromTop(null).expected).toBe(0);
  });
});

describe('alignment (hand-made responses)', () => {
  const head = [
    'Neuron',
    ' 1',
    '\n',
    '<',
    'start',
    '>',
    '\n',
    'a',
    '\t',
    'unknown',
    '\n',
    '<',
    'end',
    '>',
    '\n',
    'Activations',
    ':',
    ' ',
    '\n',
    '<',
    'start',
    '>',
    '\n',
  ];
  const d = (v: number) => ({ [String(v)]: L(0.8), '0': L(0.2) });
  const ev = (v: number) => (v * 0.8) / 1;

  it('exact tokens; lines before the last <start> are ignored; code-point offsets past an emoji', () => {
    const toks = ['\u{1F600}', ...head, ' the', '\t', 'unknown', '\n', ' cat', '\t', 'unknown', '\n', '<', 'end', '>', '\n'];
    const r = response(toks, (i) => (toks[i] === 'unknown' ? d(i % 10) : { x: -1 }));
    const p = parseAllAtOnce(r.text, r.lp, [' the', ' cat']);
    const idx = toks
      .map((t, i) => (t === 'unknown' ? i : -1))
      .filter((i) => i >= 0)
      .slice(1);
    expect(p.expected).toEqual(idx.map((i) => ev(i % 10)));
    expect(p.counts).toMatchObject({ exact: 2, split: 0, missing: 0 });
  });

  it('a subject token split in three, and in raw bytes spelled as OpenAI, SentencePiece and vLLM do', () => {
    const cases: [string[], string][] = [
      [[' bar', 'be', 'cue'], ' barbecue'],
      [['bytes:\\xe2\\x80', 'bytes:\\x99'], '\u2019'],
      [['<0xE2>', '<0x80>', '<0x99>'], '\u2019'],
      [['', '\u2019'], '\u2019'],
      [[' caf', 'bytes:\\xc3', 'bytes:\\xa9'], ' caf\u00e9'],
    ];
    for (const [pieces, subject] of cases) {
      const toks = [...head, ...pieces, '\t', 'unknown', '\n', ' x', '\t', 'unknown', '\n', '<', 'end', '>'];
      const r = response(toks, (i) => (toks[i] === 'unknown' ? d(5) : null));
      const p = parseAllAtOnce(r.text, r.lp, [subject, ' x']);
      expect(p.expected, subject).toEqual([ev(5), ev(5)]);
      expect(p.counts.split + p.counts.exact, subject).toBe(2);
      expect(p.counts.mismatch + p.counts.newlineFolded + p.counts.missing, subject).toBe(0);
      // vLLM's "" + "’" needs no merge: the character sits whole on the last token
      expect(p.counts.bytes, subject).toBe(pieces.some((x) => x.startsWith('bytes:') || x.startsWith('<0x')) ? 1 : 0);
    }
  });

  it('a newline folded into the token gives 0 with an empty distribution; "unk"+"nown" and a "\\t\\t" token still align', () => {
    // the subject token " b" never appears before its tab: the simulator folded "\n" into "\nc"
    const toks = [...head, '\nc', '\t', 'unknown', '\n', '\t\t', 'unk', 'nown', '\n', '<', 'end', '>'];
    const r = response(toks, (i) => (toks[i - 1]?.endsWith('\t') ? d(4) : null));
    const p = parseAllAtOnce(r.text, r.lp, [' b', '\t']);
    expect(p.counts.newlineFolded).toBe(1);
    expect(p.expected[0]).toBe(0);
    expect(p.distributionValues[0]).toEqual([]);
    expect(p.expected[1]).toBeCloseTo(ev(4), 12);
  });

  it('subject tokens with no line in the response are counted missing, with value 0', () => {
    const toks = [...head, ' a', '\t', 'unknown', '\n', '<', 'end', '>'];
    const r = response(toks, (i) => (toks[i] === 'unknown' ? d(2) : null));
    const p = parseAllAtOnce(r.text, r.lp, [' a', ' b', ' c']);
    expect(p.counts.missing).toBe(2);
    expect(p.expected).toEqual([ev(2), 0, 0]);
  });

  it('compactEcho keeps what the parser reads', () => {
    const toks = [...head, ' the', '\t', 'unknown', '\n', '<', 'end', '>'];
    const r = response(toks, (i) => (toks[i] === 'unknown' ? d(3) : null));
    const c = compactEcho({ choices: [{ text: r.text, logprobs: r.lp }] });
    expect(parseAllAtOnce(c.text, c.logprobs, [' the'])).toEqual(parseAllAtOnce(r.text, r.lp, [' the']));
  });
});

describe('alignment against crate-ts serve (real tokenizers)', () => {
  const servers: { srv: RunningServer; model: LanguageModel<unknown> }[] = [];
  const set = loadPromptSet();
  beforeAll(async () => {
    for (const tokName of ['gpt2', 'byte'] as const) {
      const tok = await loadTokenizer(tokName);
      const backend = (await selectBackend('auto')).backend;
      const model = new LanguageModel(backend, makeConfig(undefined, { vocabSize: tok.modelVocabSize, blockSize: 256, nLayer: 1, nHead: 2, nEmbd: 16 }), {
        seed: 3,
      });
      servers.push({ srv: await startServer(new Engine(model, tok, await TokenBytes.forTokenizer(tok)), { port: 0 }), model });
    }
  });
  afterAll(async () => {
    for (const s of servers) {
      await s.srv.close();
      s.model.free();
    }
  });

  it('every subject token is found, in GPT-2 BPE and in single bytes, and expected values lie in [0, 10]', async () => {
    // GPT-2 token strings of a text with curly quotes, an emoji, a tab and newlines
    const subject = ['The', ' whale', '\u2019', 's', ' \u{1F40B}', ' fin', '\t', '\n', '\n', ' 18', '51', '.', ' caf\u00e9', ' "', 'unknown', '"'];
    const prompt = simulationPrompt(set, 'sea creatures', subject);
    for (const [i, { srv }] of servers.entries()) {
      const r = await fetch(`${srv.url}/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'crate', prompt, max_tokens: 0, echo: true, logprobs: 20 }),
      });
      expect(r.status).toBe(200);
      const j: any = await r.json();
      const p = parseAllAtOnce(j.choices[0].text, j.choices[0].logprobs, subject);
      expect(p.counts.missing + p.counts.mismatch + p.counts.newlineFolded, i ? 'byte' : 'gpt2').toBe(0);
      expect(p.counts.exact + p.counts.split).toBe(subject.length);
      if (i === 1) expect(p.counts.split).toBeGreaterThan(5); // bytes: multi-byte tokens are split
      expect(p.expected.every((x) => x >= 0 && x <= 10)).toBe(true);
    }
  });
});
