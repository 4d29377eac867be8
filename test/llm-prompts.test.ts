// Prompt sets and the prompts built from them: the OpenAI structure (records, normalisation,
// zero-filtered repeat, explanation prefix, unknown targets), the no-system-role fold, the
// context budget, and clear errors for bad prompt-set files.
import { describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import {
  loadPromptSet,
  defaultPromptsFile,
  formatRecords,
  nonZeroProportion,
  explanationMessages,
  simulationPrompt,
  tokenPrompt,
  logprobFreeMessages,
  parseLogprobFree,
  fill,
} from '../src/neurons/llm/prompts.js';

const set = loadPromptSet();

describe('prompt sets', () => {
  it('the default set loads, and its provenance is the file it came from', () => {
    const file = defaultPromptsFile();
    expect(set.name).toBe('crate-ts-default-v1');
    expect(set.source).toBe(path.resolve(file));
    expect(set.sha256).toBe(createHash('sha256').update(fs.readFileSync(file)).digest('hex'));
    expect(set.few_shot.length).toBe(3);
  });

  it('bad prompt-set files get one-line errors naming the problem', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crate-prompts-'));
    const base = JSON.parse(fs.readFileSync(defaultPromptsFile(), 'utf8'));
    const write = (name: string, v: unknown) => {
      const f = path.join(dir, name);
      fs.writeFileSync(f, typeof v === 'string' ? v : JSON.stringify(v));
      return f;
    };
    const cases: [string, unknown, RegExp][] = [
      ['notjson.json', '{"format": ', /not valid JSON/],
      ['format.json', { ...base, format: 'x' }, /"format" must be "crate-ts-prompt-set"/],
      ['version.json', { ...base, format_version: 9 }, /format_version/],
      ['name.json', { ...base, name: 'has space' }, /"name" must be/],
      ['noshot.json', { ...base, few_shot: [] }, /few_shot/],
      ['mismatch.json', { ...base, few_shot: [{ explanation: 'x', records: [{ tokens: ['a', 'b'], activations: [1] }] }] }, /as many activations as tokens/],
      ['placeholder.json', { ...base, explainer: { ...base.explainer, user: 'Neuron {n} {oops}' } }, /uses \{oops\}/],
      ['missing.json', { ...base, simulator: { ...base.simulator, preface: undefined } }, /"simulator.preface" must be a string/],
      ['unknown.json', { ...base, simulator: { ...base.simulator, unknown: 'not known' } }, /simulator.unknown/],
      ['revealed.json', { ...base, few_shot: [{ ...base.few_shot[0], first_revealed: [0] }] }, /first_revealed/],
    ];
    for (const [name, v, re] of cases) expect(() => loadPromptSet(write(name, v)), name).toThrow(re);
    expect(() => loadPromptSet(path.join(dir, 'absent.json'))).toThrow(/cannot read the prompt set .*absent\.json/);
    // a set with other wording and the same structure loads and is used as given
    const mine = write('mine.json', { ...base, name: 'my-set', explanation_prefix: 'the neuron fires on' });
    const s2 = loadPromptSet(mine);
    expect(s2.name).toBe('my-set');
    expect(
      explanationMessages(s2, [{ tokens: ['a'], activations: [1] }])
        .at(-1)!
        .content.endsWith('the neuron fires on'),
    ).toBe(true);
  });

  it('fill substitutes once ({{ }} are literal braces) and refuses a placeholder without a value', () => {
    expect(fill('{a}-{{a}}-{b}', { a: '{b}', b: 2 })).toBe('{b}-{a}-2');
    expect(() => fill('{c}', {})).toThrow(/\{c\}/);
  });
});

describe('records as prompt text', () => {
  it('normalises to 0-10 against the maximum, with the OpenAI delimiters', () => {
    const recs = [
      { tokens: ['a', ' b'], activations: [-1, 2] },
      { tokens: ['c'], activations: [4] },
    ];
    expect(formatRecords(recs, 4)).toBe('\n<start>\na\t0\n b\t5\n<end>\n<start>\nc\t10\n<end>\n');
    expect(formatRecords(recs, 4, { omitZeros: true })).toBe('\n<start>\n b\t5\n<end>\n<start>\nc\t10\n<end>\n');
    expect(formatRecords(recs, 4, { startIndices: [1, 0], unknownWord: 'unknown' })).toBe('\n<start>\na\tunknown\n b\t5\n<end>\n<start>\nc\t10\n<end>\n');
    expect(formatRecords(recs, 0)).toBe('\n<start>\na\t0\n b\t0\n<end>\n<start>\nc\t0\n<end>\n');
    expect(nonZeroProportion(recs, 4)).toBeCloseTo(2 / 3, 12);
  });
});

describe('explainer prompt', () => {
  const sparse = [{ tokens: Array.from({ length: 20 }, (_, i) => ` w${i}`), activations: Array.from({ length: 20 }, (_, i) => (i === 3 ? 5 : 0)) }];
  const dense = [{ tokens: ['x', 'y', 'z'], activations: [1, 2, 3] }];

  it('system, three few-shot neurons as user/assistant turns, the target ending with the prefix; zero-filtered repeat only when sparse', () => {
    const msgs = explanationMessages(set, sparse);
    expect(msgs.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user', 'assistant', 'user', 'assistant', 'user']);
    expect(msgs[0].content).toBe(set.explainer.system);
    const last = msgs[7].content;
    expect(last.startsWith('\n\nNeuron 4\nActivations:\n<start>\n w0\t0\n')).toBe(true);
    expect(last.endsWith(`What neuron 4 does: ${set.explanation_prefix}`)).toBe(true);
    // 1 of 20 values is non-zero (< 20%): the records again with only that line
    expect(last).toContain('keeping only the lines with a non-zero activation:\n<start>\n w3\t10\n<end>\n');
    expect(msgs[2].content).toBe(` ${set.few_shot[0].explanation}.`);
    const d = explanationMessages(set, dense).at(-1)!.content;
    expect(d).not.toContain('keeping only the lines');
    expect(d).toContain('\n<start>\nx\t3\ny\t6\nz\t10\n<end>\n');
  });

  it('--no-system-role folds the system text into the first user turn', () => {
    const a = explanationMessages(set, dense),
      b = explanationMessages(set, dense, { noSystemRole: true });
    expect(b.some((m) => m.role === 'system')).toBe(false);
    expect(b[0]).toEqual({ role: 'user', content: a[0].content + a[1].content });
    expect(b.slice(1)).toEqual(a.slice(2));
  });

  it('a small context budget drops few-shot records, last record first, never the target', () => {
    const count = (msgs: { content: string }[]) =>
      msgs
        .map((m) => m.content)
        .join('')
        .split('<start>').length - 1;
    const full = explanationMessages(set, dense),
      tight = explanationMessages(set, dense, { contextTokens: 400, maxTokens: 60 });
    expect(count(tight)).toBeLessThan(count(full));
    expect(tight.at(-1)!.content).toBe(full.at(-1)!.content);
  });
});

describe('simulator prompts', () => {
  const toks = [' The', ' whale', ',', '\n', ' 1851'];

  it('all at once: the target lines after the last <start> are token<TAB>unknown; few-shot values hidden before first_revealed', () => {
    const p = simulationPrompt(set, '  whales and ships  ', toks);
    const tail = p.slice(p.lastIndexOf('<start>'));
    expect(tail).toBe('<start>\n The\tunknown\n whale\tunknown\n,\tunknown\n\n\tunknown\n 1851\tunknown\n<end>\n');
    expect(p).toContain(`What neuron 4 does: ${set.explanation_prefix} whales and ships\nActivations: `);
    // few-shot neuron 1, record 2 hides its first 6 values
    const second = p.split('<start>')[2];
    expect(
      second
        .split('\n')
        .slice(1, 7)
        .every((l) => l.endsWith('\tunknown')),
    ).toBe(true);
    expect(second.split('\n')[7].endsWith('\tunknown')).toBe(false);
  });

  it('token by token: the all-at-once prompt cut right after the tab of line t', () => {
    const full = simulationPrompt(set, 'x', toks);
    for (let t = 0; t < toks.length; t++) {
      const p = tokenPrompt(set, 'x', toks, t);
      expect(full.startsWith(p)).toBe(true);
      expect(p.endsWith(`${toks[t]}\t`)).toBe(true);
      expect(full.slice(p.length).startsWith('unknown')).toBe(true);
    }
  });

  it('logprob-free: few-shot rewrites, and the parser reads values back or gives zeros when the lines do not match', () => {
    const msgs = logprobFreeMessages(set, 'x', toks);
    expect(msgs.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user', 'assistant', 'user', 'assistant', 'user']);
    expect(msgs[2].content.split(set.logprob_free.line_end)[0]).toBe('The\t0');
    const line = (t: string, v: string) => `${t}\t${v}${set.logprob_free.line_end}`;
    const answer = 'Sure:\n' + toks.map((t, i) => line(t, String([3, 10, 0, 12, 7][i]))).join('');
    expect(parseLogprobFree(set, answer, toks)).toEqual({ values: [3, 10, 0, 0, 7], ok: true });
    expect(
      parseLogprobFree(
        set,
        toks
          .slice(0, 4)
          .map((t) => line(t, '1'))
          .join(''),
        toks,
      ),
    ).toEqual({ values: [0, 0, 0, 0, 0], ok: false });
    expect(parseLogprobFree(set, toks.map((t, i) => line(i === 2 ? ';' : t, '1')).join(''), toks).ok).toBe(false);
  });
});
