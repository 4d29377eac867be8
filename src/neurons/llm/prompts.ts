// Prompt sets and the prompts built from them (spec 7.4-7.5, DESIGN "Prompts").
//
// The structure is that of the OpenAI automated-interpretability prompts: records formatted as
// "\n<start>\n" + lines "token<TAB>value" joined by "\n" + "\n<end>\n" (records joined by
// "\n<end>\n<start>\n"); values normalised to 0-10 with the maximum over the records shown; the
// explainer's few-shot neurons as user/assistant turns, the records repeated without zero lines
// when fewer than 20% of values are non-zero, and the user turn ending in the explanation prefix;
// the simulator's text prompt with the few-shot neurons (their leading values hidden as "unknown")
// and the target record with "unknown" on every line.
//
// The wording and the few-shot neurons are data: a prompt set is a JSON file (format documented in
// README "Explaining and simulating neurons with an LLM"; crate-ts's own set is prompts/default.json).
// A user who has the original OpenAI texts can write them into a prompt set to reproduce the paper.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../../errors.js';
import { maxActivation, normalizeActivations } from '../scoring.js';
import type { ActivationRecord } from '../format.js';

export const PROMPT_SET_FORMAT = 'crate-ts-prompt-set';

export interface FewShotNeuron {
  explanation: string;
  records: ActivationRecord[];
  /** Simulator prompt: per record, the index of the first value shown (earlier ones are "unknown"). */
  first_revealed: number[] | null;
}

export interface PromptSet {
  name: string;
  description: string;
  explanation_prefix: string;
  few_shot: FewShotNeuron[];
  explainer: { system: string; user: string; zero_filtered: string; assistant: string; sparse_threshold: number };
  simulator: { preface: string; neuron: string; activations: string; end_of_prompt: string; target_activations: string; unknown: string };
  logprob_free: { system: string; user: string; assistant: string; blank: string; line_end: string };
  /** Where it was loaded from, and the SHA-256 of that file's bytes (recorded in every result file). */
  source: string;
  sha256: string;
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** The placeholders each template may use. */
const PLACEHOLDERS: Record<string, string[]> = {
  'explainer.user': ['n', 'records', 'zero_filtered', 'prefix'],
  'explainer.zero_filtered': ['records'],
  'explainer.assistant': ['n', 'explanation'],
  'simulator.neuron': ['n', 'prefix', 'explanation'],
  'simulator.activations': ['n', 'records'],
  'simulator.target_activations': ['n', 'records'],
  'logprob_free.user': ['n', 'prefix', 'explanation', 'lines'],
  'logprob_free.assistant': ['n', 'lines'],
};

/** Replace {name} by vars[name] in one pass ({{ and }} are literal braces). */
export function fill(template: string, vars: Record<string, string | number>): string {
  return template.replace(/\{\{|\}\}|\{([a-z_]+)\}/g, (m, name: string | undefined) => {
    if (m === '{{') return '{';
    if (m === '}}') return '}';
    const v = vars[name as string];
    if (v === undefined) throw new UsageError(`prompt template placeholder {${name}} has no value here`);
    return String(v);
  });
}

/** The default prompt set's file: next to this module in src/, or found from dist/ via the package root. */
export function defaultPromptsFile(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.join(here, 'prompts', 'default.json'), path.resolve(here, '..', '..', '..', 'src', 'neurons', 'llm', 'prompts', 'default.json')];
  return candidates.find((f) => fs.existsSync(f)) ?? candidates[0];
}

function str(o: Record<string, unknown>, key: string, where: string, file: string): string {
  const v = o[key];
  if (typeof v !== 'string') throw new UsageError(`prompt set ${file}: "${where}.${key}" must be a string`);
  const allowed = PLACEHOLDERS[`${where}.${key}`];
  if (allowed) {
    for (const m of v.matchAll(/\{\{|\}\}|\{([a-z_]+)\}/g)) {
      if (m[1] !== undefined && !allowed.includes(m[1]))
        throw new UsageError(`prompt set ${file}: "${where}.${key}" uses {${m[1]}}; it may use ${allowed.map((a) => `{${a}}`).join(', ')}`);
    }
  }
  return v;
}

function obj(v: unknown, what: string, file: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new UsageError(`prompt set ${file}: "${what}" must be an object`);
  return v as Record<string, unknown>;
}

/** Load and check a prompt set (default: crate-ts's own, prompts/default.json). */
export function loadPromptSet(file?: string): PromptSet {
  const f = file ?? defaultPromptsFile();
  let raw: Buffer;
  try {
    raw = fs.readFileSync(f);
  } catch (e) {
    throw new UsageError(`cannot read the prompt set '${f}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let j: unknown;
  try {
    j = JSON.parse(raw.toString('utf8'));
  } catch (e) {
    throw new UsageError(`prompt set ${f} is not valid JSON: ${(e as Error).message}`);
  }
  const o = obj(j, '(top level)', f);
  if (o.format !== PROMPT_SET_FORMAT) throw new UsageError(`prompt set ${f}: "format" must be "${PROMPT_SET_FORMAT}"`);
  if (o.format_version !== 1) throw new UsageError(`prompt set ${f}: "format_version" ${String(o.format_version)} is not supported (this crate-ts reads 1)`);
  const name = str(o, 'name', '', f);
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(name))
    throw new UsageError(`prompt set ${f}: "name" must be 1-64 letters, digits, '.', '_' or '-' (it names output directories), got '${name}'`);
  if (!Array.isArray(o.few_shot) || o.few_shot.length === 0) throw new UsageError(`prompt set ${f}: "few_shot" must be a non-empty list of neurons`);
  const few_shot: FewShotNeuron[] = o.few_shot.map((x, i) => {
    const n = obj(x, `few_shot[${i}]`, f);
    if (typeof n.explanation !== 'string' || !n.explanation.trim())
      throw new UsageError(`prompt set ${f}: few_shot[${i}].explanation must be a non-empty string`);
    if (!Array.isArray(n.records) || n.records.length === 0) throw new UsageError(`prompt set ${f}: few_shot[${i}].records must be a non-empty list`);
    const records = n.records.map((r, k) => {
      const rr = obj(r, `few_shot[${i}].records[${k}]`, f);
      if (!Array.isArray(rr.tokens) || !rr.tokens.every((t) => typeof t === 'string'))
        throw new UsageError(`prompt set ${f}: few_shot[${i}].records[${k}].tokens must be a list of strings`);
      if (!Array.isArray(rr.activations) || !rr.activations.every((a) => typeof a === 'number' && Number.isFinite(a)))
        throw new UsageError(`prompt set ${f}: few_shot[${i}].records[${k}].activations must be a list of finite numbers`);
      if (rr.tokens.length !== rr.activations.length || rr.tokens.length === 0)
        throw new UsageError(`prompt set ${f}: few_shot[${i}].records[${k}] needs as many activations as tokens (at least one)`);
      return { tokens: rr.tokens as string[], activations: rr.activations as number[] };
    });
    let first: number[] | null = null;
    if (n.first_revealed !== undefined && n.first_revealed !== null) {
      const fr = n.first_revealed;
      if (!Array.isArray(fr) || fr.length !== records.length || !fr.every((v, k) => Number.isInteger(v) && v >= 0 && v <= records[k].tokens.length))
        throw new UsageError(`prompt set ${f}: few_shot[${i}].first_revealed must give one index per record, within the record`);
      first = fr as number[];
    }
    return { explanation: n.explanation, records, first_revealed: first };
  });
  const e = obj(o.explainer, 'explainer', f),
    s = obj(o.simulator, 'simulator', f),
    lf = obj(o.logprob_free, 'logprob_free', f);
  const thr = e.sparse_threshold ?? 0.2;
  if (typeof thr !== 'number' || !(thr >= 0 && thr <= 1)) throw new UsageError(`prompt set ${f}: "explainer.sparse_threshold" must be a number in [0, 1]`);
  const set: PromptSet = {
    name,
    description: typeof o.description === 'string' ? o.description : '',
    explanation_prefix: str(o, 'explanation_prefix', '', f),
    few_shot,
    explainer: {
      system: str(e, 'system', 'explainer', f),
      user: str(e, 'user', 'explainer', f),
      zero_filtered: str(e, 'zero_filtered', 'explainer', f),
      assistant: str(e, 'assistant', 'explainer', f),
      sparse_threshold: thr,
    },
    simulator: {
      preface: str(s, 'preface', 'simulator', f),
      neuron: str(s, 'neuron', 'simulator', f),
      activations: str(s, 'activations', 'simulator', f),
      end_of_prompt: str(s, 'end_of_prompt', 'simulator', f),
      target_activations: str(s, 'target_activations', 'simulator', f),
      unknown: str(s, 'unknown', 'simulator', f),
    },
    logprob_free: {
      system: str(lf, 'system', 'logprob_free', f),
      user: str(lf, 'user', 'logprob_free', f),
      assistant: str(lf, 'assistant', 'logprob_free', f),
      blank: str(lf, 'blank', 'logprob_free', f),
      line_end: str(lf, 'line_end', 'logprob_free', f),
    },
    source: path.resolve(f),
    sha256: createHash('sha256').update(raw).digest('hex'),
  };
  if (!set.simulator.unknown || /\s/.test(set.simulator.unknown))
    throw new UsageError(`prompt set ${f}: "simulator.unknown" must be a non-empty word without spaces`);
  if (!set.logprob_free.line_end.trim()) throw new UsageError(`prompt set ${f}: "logprob_free.line_end" must hold a visible marker (lines are split on it)`);
  return set;
}

// ---- records as prompt text (OpenAI's structure) -------------------------------------------------

export interface FormatOptions {
  omitZeros?: boolean;
  /** Show this string instead of every value (the simulator's target). */
  hideWith?: string;
  /** Per record: values before this index are shown as `unknownWord`. */
  startIndices?: number[] | null;
  unknownWord?: string;
}

/** One record's lines "token\tvalue" joined by "\n" (values normalised with max m). */
function recordLines(r: ActivationRecord, m: number, o: FormatOptions, start: number): string {
  let tokens = r.tokens;
  let values = normalizeActivations(r.activations, m);
  if (o.omitZeros) {
    tokens = tokens.filter((_, i) => values[i] > 0);
    values = values.filter((v) => v > 0);
  }
  return tokens.map((t, i) => `${t}\t${o.hideWith ?? (i < start ? (o.unknownWord ?? 'unknown') : String(values[i]))}`).join('\n');
}

/** "\n<start>\n" + records joined by "\n<end>\n<start>\n" + "\n<end>\n". */
export function formatRecords(records: readonly ActivationRecord[], m: number, o: FormatOptions = {}): string {
  return '\n<start>\n' + records.map((r, i) => recordLines(r, m, o, o.startIndices?.[i] ?? 0)).join('\n<end>\n<start>\n') + '\n<end>\n';
}

/** Fraction of values that normalise to a non-zero integer. */
export function nonZeroProportion(records: readonly ActivationRecord[], m: number): number {
  let n = 0,
    nz = 0;
  for (const r of records)
    for (const v of normalizeActivations(r.activations, m)) {
      n++;
      if (v !== 0) nz++;
    }
  return n === 0 ? 0 : nz / n;
}

// ---- the explainer (chat) --------------------------------------------------------------------------

function explainerTurn(set: PromptSet, records: readonly ActivationRecord[], n: number): string {
  const m = maxActivation(records);
  const zero =
    nonZeroProportion(records, m) < set.explainer.sparse_threshold
      ? fill(set.explainer.zero_filtered, { records: formatRecords(records, m, { omitZeros: true }) })
      : '';
  return fill(set.explainer.user, { n, records: formatRecords(records, m), zero_filtered: zero, prefix: set.explanation_prefix });
}

export interface ExplainOptions {
  /** Fold the system text into the first user turn (models without a system role, e.g. Mistral). */
  noSystemRole?: boolean;
  /** Context budget in tokens; few-shot records are dropped (last first) while prompt + maxTokens exceed it. */
  contextTokens?: number;
  maxTokens?: number;
  /** Token counter for the budget (default: characters / 4). */
  countTokens?: (text: string) => number;
}

/** The explainer's chat messages for a neuron whose explanation records are `records` (spec 7.4). */
export function explanationMessages(set: PromptSet, records: readonly ActivationRecord[], o: ExplainOptions = {}): ChatMessage[] {
  const count = o.countTokens ?? ((t: string) => Math.ceil(t.length / 4));
  const budget = (o.contextTokens ?? Infinity) - (o.maxTokens ?? 60);
  const build = (omit: number): ChatMessage[] => {
    const msgs: ChatMessage[] = [{ role: 'system', content: set.explainer.system }];
    let omitted = 0;
    set.few_shot.forEach((fs, i) => {
      let recs = fs.records;
      if (omitted < omit && recs.length > 1) {
        recs = recs.slice(0, -1);
        omitted++;
      }
      msgs.push({ role: 'user', content: explainerTurn(set, recs, i + 1) });
      msgs.push({ role: 'assistant', content: fill(set.explainer.assistant, { n: i + 1, explanation: fs.explanation }) });
    });
    msgs.push({ role: 'user', content: explainerTurn(set, records, set.few_shot.length + 1) });
    return msgs;
  };
  let msgs = build(0);
  for (let omit = 1; omit <= set.few_shot.length && count(msgs.map((m) => m.content).join('')) + 4 * msgs.length > budget; omit++) msgs = build(omit);
  if (o.noSystemRole) {
    const [sys, first, ...rest] = msgs;
    msgs = [{ role: 'user', content: sys.content + first.content }, ...rest];
  }
  return msgs;
}

// ---- the simulator (text prompt, "all at once") ----------------------------------------------------

/** Everything before the target record: preface, few-shot neurons, the target's explanation. */
function simulatorHead(set: PromptSet, explanation: string): string {
  const s = set.simulator;
  let out = s.preface;
  set.few_shot.forEach((fs, i) => {
    out += fill(s.neuron, { n: i + 1, prefix: set.explanation_prefix, explanation: fs.explanation });
    const m = maxActivation(fs.records);
    out += fill(s.activations, { n: i + 1, records: formatRecords(fs.records, m, { startIndices: fs.first_revealed, unknownWord: s.unknown }) });
  });
  const n = set.few_shot.length + 1;
  out += fill(s.neuron, { n, prefix: set.explanation_prefix, explanation: explanation.trim() });
  return out + s.end_of_prompt;
}

/** The all-at-once simulation prompt: every target value is "unknown" (spec 7.5). */
export function simulationPrompt(set: PromptSet, explanation: string, tokens: readonly string[]): string {
  const n = set.few_shot.length + 1;
  const records = '\n<start>\n' + tokens.map((t) => `${t}\t${set.simulator.unknown}`).join('\n') + '\n<end>\n';
  return simulatorHead(set, explanation) + fill(set.simulator.target_activations, { n, records });
}

/**
 * The token-by-token prompt for target token t: the all-at-once prompt cut right after the tab of
 * line t. For a causal language model the next-token distribution here is the one the all-at-once
 * prompt has at that line's "unknown".
 */
export function tokenPrompt(set: PromptSet, explanation: string, tokens: readonly string[], t: number): string {
  const n = set.few_shot.length + 1;
  const mark = '\u0000RECORDS\u0000';
  const [pre] = fill(set.simulator.target_activations, { n, records: mark }).split(mark);
  const before = tokens
    .slice(0, t)
    .map((x) => `${x}\t${set.simulator.unknown}\n`)
    .join('');
  return simulatorHead(set, explanation) + pre + '\n<start>\n' + before + tokens[t] + '\t';
}

// ---- the logprob-free simulator (chat; the model rewrites the lines with numbers) ------------------

function lfLines(set: PromptSet, tokens: readonly string[], values: readonly number[] | null): string {
  const lf = set.logprob_free;
  return tokens.map((t, i) => `${t}\t${values ? values[i] : lf.blank}${lf.line_end}`).join('');
}

export function logprobFreeMessages(set: PromptSet, explanation: string, tokens: readonly string[]): ChatMessage[] {
  const lf = set.logprob_free;
  const msgs: ChatMessage[] = [{ role: 'system', content: lf.system }];
  set.few_shot.forEach((fs, i) => {
    const r = fs.records[0];
    const values = normalizeActivations(r.activations, maxActivation(fs.records));
    msgs.push({
      role: 'user',
      content: fill(lf.user, { n: i + 1, prefix: set.explanation_prefix, explanation: fs.explanation, lines: lfLines(set, r.tokens, null) }),
    });
    msgs.push({ role: 'assistant', content: fill(lf.assistant, { n: i + 1, lines: lfLines(set, r.tokens, values) }) });
  });
  const n = set.few_shot.length + 1;
  msgs.push({
    role: 'user',
    content: fill(lf.user, { n, prefix: set.explanation_prefix, explanation: explanation.trim(), lines: lfLines(set, tokens, null) }),
  });
  return msgs;
}

/**
 * Parse a logprob-free completion: the lines "token\tvalue" must reproduce the tokens in order
 * (starting at the first line that begins with the first token); a value that is not 0-10 counts
 * as 0. If the lines do not reproduce the tokens, every value is 0 and ok is false (OpenAI's rule).
 */
export function parseLogprobFree(set: PromptSet, completion: string, tokens: readonly string[]): { values: number[]; ok: boolean } {
  const zeros = tokens.map(() => 0);
  if (tokens.length === 0) return { values: [], ok: true };
  const mark = set.logprob_free.line_end.trim();
  const pieces = completion.split(mark).map((p, i) => (i === 0 ? p : p.replace(/^\r?\n/, '')));
  while (pieces.length && pieces[pieces.length - 1].trim() === '') pieces.pop();
  // the first line may follow other text in its piece ("Sure:\n" + line): find it at a line start
  const first = `${tokens[0]}\t`;
  let start = -1,
    firstLine = '';
  for (let i = 0; i < pieces.length && start < 0; i++) {
    const p = pieces[i];
    for (let k = p.indexOf(first); k >= 0; k = p.indexOf(first, k + 1)) {
      if (k === 0 || p[k - 1] === '\n') {
        start = i;
        firstLine = p.slice(k);
        break;
      }
    }
  }
  if (start < 0 || pieces.length - start !== tokens.length) return { values: zeros, ok: false };
  const values: number[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const line = i === 0 ? firstLine : pieces[start + i];
    if (!line.startsWith(`${tokens[i]}\t`)) return { values: zeros, ok: false };
    const v = line.slice(tokens[i].length + 1).trim();
    values.push(/^(10|[0-9])$/.test(v) ? Number(v) : 0);
  }
  return { values, ok: true };
}
