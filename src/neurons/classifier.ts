// Classification scorers of explanations (detection and fuzzing, as EleutherAI's delphi defines
// them; README "Detection and fuzzing"): a judge reads an explanation and a few
// contexts and says, for each, whether the neuron is active there. Unlike simulation scoring they need
// no prompt log-probabilities, so any chat server (llama.cpp's, Ollama, crate-ts serve) can judge.
//
// "Fires" means an activation of at least a tenth of m, the neuron's largest activation over its top
// records: a normalised value of 1 or more on the 0-10 scale the explainer sees (spec 7.8.2's
// selectivity uses the same threshold). A plain > 0 would call a dense neuron active everywhere.
//
//   detection  contexts are whole records: activating ones drawn from the activation-quantile bins
//              (distance = bin number, 1 = lowest) that fire somewhere, and random records where the
//              neuron does not fire at all (distance -1). Question: does it fire anywhere here?
//   fuzzing    every context is an activating record with some tokens marked <<like this>>. In half
//              of them the marks sit on the tokens where the neuron fires (activating = true); in the
//              other half the same number of marks sit on tokens where it does not (false).
//              Question: are the marked tokens the ones it fires on?
//
// Scores per neuron: accuracy, balanced accuracy (mean of the true positive and true negative rates,
// robust to unequal classes), precision, recall, F1 of the "activating" class, and, when the judge
// gives a probability per context, the AUC (Mann-Whitney, ties counted half).
import type { ActivationRecord } from './format.js';
import type { NeuronRecords } from './scoring.js';
import { Rng } from '../util/rng.js';

export type ClassifierKind = 'detection' | 'fuzzing';
export const CLASSIFIER_KINDS: readonly ClassifierKind[] = ['detection', 'fuzzing'];

/** One judged context, with delphi's per-example fields. */
export interface ClassifierExample {
  str_tokens: string[];
  activations: number[];
  /** Detection: quantile bin (1 = lowest) of an activating record, -1 for a non-activating one, 0 for a top record (collections without quantiles). Fuzzing: the same, of the record the context came from. */
  distance: number;
  /** The right answer. */
  activating: boolean;
  /** The judge's answer; null when its reply could not be read. */
  prediction: boolean | null;
  /** The judge's probability that the answer is "activating"; null when it gave none. */
  probability: number | null;
  /** prediction === activating; null with no prediction. */
  correct: boolean | null;
}

/** A context before judging: what the judge sees is `text` (tokens joined, fuzzing marks included). */
export interface ClassifierContext {
  example: ClassifierExample;
  /** Fuzzing: indices of the marked tokens (empty for detection). */
  marked: number[];
  text: string;
}

export interface DrawOptions {
  /** Contexts per class (default 10; fewer when the neuron's records do not have that many). */
  perClass?: number;
  seed?: number;
}

export const MARK_OPEN = '<<',
  MARK_CLOSE = '>>';

/** The tokens joined into text, each marked token wrapped in << >> (runs of marked tokens share one pair). */
export function contextText(tokens: readonly string[], marked: readonly number[] = []): string {
  const m = new Set(marked);
  let s = '';
  for (let i = 0; i < tokens.length; i++) {
    if (m.has(i) && !m.has(i - 1)) s += MARK_OPEN;
    s += tokens[i];
    if (m.has(i) && !m.has(i + 1)) s += MARK_CLOSE;
  }
  return s;
}

/** The firing threshold of a neuron: a tenth of its largest activation over its top records (Infinity when that is <= 0). */
export function firingThreshold(nr: NeuronRecords): number {
  let m = -Infinity;
  for (const r of nr.top) for (const a of r.activations) if (a > m) m = a;
  return m > 0 ? m / 10 : Infinity;
}

/** Fisher-Yates with the project's seeded generator. */
function shuffle<T>(xs: T[], rng: Rng): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
}

/** Activating records with their distance: the quantile bins (1-based), or the top records (0) without quantiles. */
function activatingPool(nr: NeuronRecords, fires: (r: ActivationRecord) => boolean): { rec: ActivationRecord; distance: number }[] {
  const pool: { rec: ActivationRecord; distance: number }[] = [];
  if (nr.quantile !== null) nr.quantile.forEach((bin, b) => bin.forEach((rec) => fires(rec) && pool.push({ rec, distance: b + 1 })));
  if (pool.length === 0) nr.top.forEach((rec) => fires(rec) && pool.push({ rec, distance: 0 }));
  return pool;
}

const example = (rec: ActivationRecord, distance: number, activating: boolean): ClassifierExample => ({
  str_tokens: [...rec.tokens],
  activations: [...rec.activations],
  distance,
  activating,
  prediction: null,
  probability: null,
  correct: null,
});

/**
 * The contexts one neuron is judged on, in a seeded random order, balanced between the classes
 * (as many of each as the smaller pool allows, at most perClass). Empty when the neuron never fires
 * on its records, or (detection) no random record is silent: such a neuron cannot be scored.
 */
export function drawContexts(kind: ClassifierKind, nr: NeuronRecords, o: DrawOptions = {}): ClassifierContext[] {
  const perClass = o.perClass ?? 10;
  const rng = new Rng(o.seed ?? 0);
  const th = firingThreshold(nr);
  const on = (a: number) => a >= th;
  const fires = (r: ActivationRecord): boolean => r.activations.some(on);
  const act = shuffle(activatingPool(nr, fires), rng);
  const out: ClassifierContext[] = [];
  if (kind === 'detection') {
    const silent = shuffle(
      nr.random.filter((r) => !fires(r)),
      rng,
    );
    const n = Math.min(perClass, act.length, silent.length);
    for (let i = 0; i < n; i++) {
      const a = example(act[i].rec, act[i].distance, true);
      out.push({ example: a, marked: [], text: contextText(a.str_tokens) });
      const z = example(silent[i], -1, false);
      out.push({ example: z, marked: [], text: contextText(z.str_tokens) });
    }
  } else {
    // True contexts mark where the record fires; false ones mark as many tokens where it does not,
    // on other activating records where there are enough (else on the same ones).
    const usable = act.filter(({ rec }) => rec.activations.some((a) => !on(a)));
    const n = Math.min(perClass, Math.ceil(usable.length / 2));
    for (let i = 0; i < n; i++) {
      const t = usable[i],
        f = usable[n + i < usable.length ? n + i : i];
      const firing = t.rec.activations.flatMap((a, j) => (on(a) ? [j] : []));
      const a = example(t.rec, t.distance, true);
      out.push({ example: a, marked: firing, text: contextText(a.str_tokens, firing) });
      const off = shuffle(
        f.rec.activations.flatMap((v, j) => (on(v) ? [] : [j])),
        rng,
      )
        .slice(0, Math.max(1, firing.length))
        .sort((x, y) => x - y);
      const z = example(f.rec, f.distance, false);
      out.push({ example: z, marked: off, text: contextText(z.str_tokens, off) });
    }
  }
  return shuffle(out, rng);
}

/** What a judge returns for a batch of contexts: one prediction and probability per context. */
export interface Verdicts {
  predictions: (boolean | null)[];
  probabilities: (number | null)[];
}

export interface Judge {
  readonly name: string;
  judge(kind: ClassifierKind, explanation: string, contexts: readonly ClassifierContext[]): Promise<Verdicts>;
}

/**
 * The offline judge, deterministic, so CI can score every neuron: its "explanation" is the token
 * lookup table (spec 7.8.1: each token string's mean normalised 0-10 activation over the explanation
 * records). Detection: p = (the largest table value of the context's tokens) / 10; fuzzing: p = (the
 * mean table value of the marked tokens) / 10; the answer is p >= threshold (default 0.1: a table
 * value of 1 or more, i.e. the token fires on average, by the same tenth-of-the-maximum rule).
 */
export class LookupJudge implements Judge {
  readonly name = 'lookup';
  constructor(
    private readonly table: ReadonlyMap<string, number>,
    private readonly threshold = 0.1,
  ) {}
  judge(kind: ClassifierKind, _explanation: string, contexts: readonly ClassifierContext[]): Promise<Verdicts> {
    const probabilities = contexts.map((c) => {
      const toks = c.example.str_tokens;
      const vals = kind === 'detection' ? toks.map((t) => this.table.get(t) ?? 0) : c.marked.map((j) => this.table.get(toks[j]) ?? 0);
      if (vals.length === 0) return 0;
      const v = kind === 'detection' ? Math.max(...vals) : vals.reduce((s, x) => s + x, 0) / vals.length;
      return Math.min(1, Math.max(0, v / 10));
    });
    return Promise.resolve({ predictions: probabilities.map((p) => p >= this.threshold), probabilities });
  }
}

/** A short description of a lookup table, for result files: its strongest tokens. */
export function describeTable(table: ReadonlyMap<string, number>, n = 8): string {
  const top = [...table.entries()].filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  return top.length === 0
    ? '(no token fires)'
    : `fires on ${top
        .slice(0, n)
        .map(([t, v]) => `${JSON.stringify(t)} (${v.toFixed(1)})`)
        .join(', ')}`;
}

/** Fill in the judge's answers (and `correct`) on the contexts' examples. */
export function applyVerdicts(contexts: readonly ClassifierContext[], v: Verdicts): ClassifierExample[] {
  return contexts.map((c, i) => {
    const prediction = v.predictions[i] ?? null;
    const probability = v.probabilities[i] ?? null;
    return { ...c.example, prediction, probability, correct: prediction === null ? null : prediction === c.example.activating };
  });
}

export interface ClassifierMetrics {
  /** Examples judged (with a prediction), and those whose reply could not be read. */
  n: number;
  failed: number;
  accuracy: number;
  balancedAccuracy: number;
  precision: number;
  recall: number;
  f1: number;
  /** NaN when fewer than one example of each class has a probability. */
  auc: number;
}

/** Area under the ROC curve of `scores` for the positives vs the negatives (Mann-Whitney U / (P N), ties = 1/2). */
export function rocAuc(pos: readonly number[], neg: readonly number[]): number {
  if (pos.length === 0 || neg.length === 0) return NaN;
  let u = 0;
  for (const p of pos) for (const q of neg) u += p > q ? 1 : p === q ? 0.5 : 0;
  return u / (pos.length * neg.length);
}

export function classifierMetrics(examples: readonly ClassifierExample[]): ClassifierMetrics {
  let tp = 0,
    fp = 0,
    tn = 0,
    fn = 0,
    failed = 0;
  const posP: number[] = [],
    negP: number[] = [];
  for (const e of examples) {
    if (e.probability !== null && Number.isFinite(e.probability)) (e.activating ? posP : negP).push(e.probability);
    if (e.prediction === null) {
      failed++;
      continue;
    }
    if (e.activating && e.prediction) tp++;
    else if (e.activating) fn++;
    else if (e.prediction) fp++;
    else tn++;
  }
  const n = tp + fp + tn + fn;
  const div = (a: number, b: number) => (b > 0 ? a / b : NaN);
  const recall = div(tp, tp + fn),
    tnr = div(tn, tn + fp),
    precision = div(tp, tp + fp);
  return {
    n,
    failed,
    accuracy: div(tp + tn, n),
    balancedAccuracy: (recall + tnr) / 2,
    precision,
    recall,
    f1: div(2 * tp, 2 * tp + fp + fn),
    auc: rocAuc(posP, negP),
  };
}

// ---- the LLM judge's prompt and reply ----------------------------------------------------------------

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

const TASK: Record<ClassifierKind, string> = {
  detection:
    'You check explanations of neurons in a language model. You get an explanation of what makes one neuron fire, then numbered text excerpts. For each excerpt decide whether the neuron fires anywhere in it, according to the explanation.',
  fuzzing:
    'You check explanations of neurons in a language model. You get an explanation of what makes one neuron fire, then numbered text excerpts in which some tokens are marked <<like this>>. For each excerpt decide whether the marked tokens are the ones on which the neuron fires, according to the explanation.',
};

/** Chat messages asking the judge about a batch of contexts; the reply must be a list of 0/1, one per context. */
export function judgeMessages(kind: ClassifierKind, explanation: string, contexts: readonly ClassifierContext[]): ChatMessage[] {
  const lines = contexts.map((c, i) => `Excerpt ${i + 1}: ${c.text.replace(/\s+/g, ' ').trim()}`);
  return [
    {
      role: 'system',
      content: `${TASK[kind]} Answer with a JSON list of ${contexts.length} numbers and nothing else: 1 for yes, 0 for no, in the order of the excerpts, e.g. [${contexts.map((_, i) => i % 2).join(', ')}].`,
    },
    { role: 'user', content: `Explanation: ${explanation}\n\n${lines.join('\n')}\n\nAnswer (a list of ${contexts.length} numbers, 0 or 1):` },
  ];
}

export interface TopLogprob {
  token: string;
  logprob: number;
}
export interface ContentLogprob {
  token: string;
  top_logprobs?: TopLogprob[] | null;
}

/**
 * Read a judge's reply: the first [...] list in the text, which must hold exactly `n` values that are
 * each 0 or 1 (or true/false). With the chat response's per-token `logprobs.content`, the probability
 * of each answer is P("1") / (P("0") + P("1")) over the alternatives offered at the position of that
 * answer's digit. Returns null when the reply is not such a list (a parse failure, counted).
 */
export function parseJudgeReply(text: string, n: number, content?: readonly ContentLogprob[] | null): Verdicts | null {
  const m = /\[[^\]]*\]/.exec(text);
  if (!m) return null;
  const items = m[0]
    .slice(1, -1)
    .split(',')
    .map((s) => s.trim().toLowerCase());
  if (items.length !== n) return null;
  const predictions: boolean[] = [];
  for (const it of items) {
    if (it === '1' || it === 'true') predictions.push(true);
    else if (it === '0' || it === 'false') predictions.push(false);
    else return null;
  }
  let probabilities: (number | null)[] = predictions.map(() => null);
  if (content && content.length > 0) {
    // the digits of the list, in order: positions whose token holds a 0 or a 1 after the '['
    const start = text.indexOf('[');
    let offset = 0;
    const digitProbs: number[] = [];
    for (const c of content) {
      const at = offset;
      offset += c.token.length;
      if (at < start || !/[01]/.test(c.token)) continue;
      let p0 = 0,
        p1 = 0;
      for (const alt of c.top_logprobs ?? []) {
        const t = alt.token.trim();
        if (t === '1' || t === 'true') p1 += Math.exp(alt.logprob);
        else if (t === '0' || t === 'false') p0 += Math.exp(alt.logprob);
      }
      digitProbs.push(p0 + p1 > 0 ? p1 / (p0 + p1) : NaN);
      if (digitProbs.length === n) break;
    }
    if (digitProbs.length === n) probabilities = digitProbs.map((p) => (Number.isFinite(p) ? p : null));
  }
  return { predictions, probabilities };
}
