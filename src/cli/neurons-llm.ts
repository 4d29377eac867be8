// crate-ts neurons explain | simulate | score --api-base ...: explanations and simulations of a
// collection's neurons by LLMs behind OpenAI-compatible APIs (src/neurons/llm/).
import { UsageError } from '../errors.js';
import type { Endpoint } from '../neurons/llm/client.js';
import { LLM_OPTIONS, checkUrl, clientFromOptions, intOption, parseCollectionArgs } from './neurons-llm-options.js';
import { loadPromptSet } from '../neurons/llm/prompts.js';
import { LlmRun, SIMULATOR_KINDS, type RunSummary, type SimulatorKind } from '../neurons/llm/run.js';
import { SPLIT_LABELS, SPLIT_NAMES, type SplitName } from '../neurons/scoring.js';
import { readManifest } from '../neurons/format.js';
import { fmtDuration, fmtInt } from '../train/progress.js';

type Mode = 'explain' | 'simulate' | 'score';

const COMMON = `  --api-base URL          OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (default $OPENAI_BASE_URL)
  --api-key KEY           (default $OPENAI_API_KEY; none needed by local servers)
  --model NAME            the model name to send
  --explainer-api-base URL, --explainer-api-key KEY, --explainer-model NAME
  --simulator-api-base URL, --simulator-api-key KEY, --simulator-model NAME
                          separate endpoints/models for the two roles (default: the ones above)
  --layers 0,1            layers (default: every collected layer)
  --neurons 0-63,70       neuron indices in each layer (default: all)
  --max N                 at most N neurons per layer
  --splits tar,randomOnly,anthropic   scoring sets (default: TaR and Random-only, plus Anthropic
                          when the collection has quantile records)
  --prompts FILE          a prompt set (default: crate-ts's own, src/neurons/llm/prompts/default.json)
  --out DIR               results directory (default DIR/llm-<prompt set name>)
  --concurrency N         requests in flight (default 8)
  --cache-dir DIR         request/response cache (default DIR/llm-cache); --no-cache to disable
  --max-retries N         retries on 429/5xx/timeouts, with exponential backoff (default 6)
  --timeout S             seconds per request (default 300)
  --dry-run               print the number of calls and prompt tokens, send nothing
  --json                  print the summary as JSON`;

const EXPLAIN_OPTS = `  --no-system-role        fold the system text into the first user turn (Mistral-Instruct has no system role)
  --max-tokens N          explanation length in tokens (default 60); temperature 1, top-p 1, one sample
  --context N             explainer context budget in tokens (default 4096)`;

const SIM_OPTS = `  --simulator KIND        all-at-once (default; /v1/completions with echo, max_tokens 0, logprobs),
                          token-by-token (one request per token, for servers that cannot echo prompt
                          log-probabilities), logprob-free (the model rewrites the lines with numbers;
                          its scores are marked NOT comparable)
  --logprobs K            alternatives per position (default 5, as the paper's fork; OpenAI used 15)`;

const HELP: Record<Mode, string> = {
  explain: `usage: crate-ts neurons explain DIR --api-base URL --model NAME [options]\n\nExplain each neuron of a collection in one sentence (spec 7.4) and write DIR/llm-<prompts>/explanations/.\n\n${COMMON}\n${EXPLAIN_OPTS}`,
  simulate: `usage: crate-ts neurons simulate DIR --api-base URL --model NAME [options]\n\nSimulate and score the explanations written by \`neurons explain\` (spec 7.5); OpenAI-format results per layer.\n\n${COMMON}\n${SIM_OPTS}`,
  score: `usage: crate-ts neurons score DIR --api-base URL --model NAME [options]\n\nExplain, then simulate and score (spec 7.3-7.5): one explainer call and one simulator call per\nscoring record per neuron (TaR: 1 + 10). Without --api-base and --simulator, \`neurons score\` is the\noffline token-lookup score.\n\n${COMMON}\n${EXPLAIN_OPTS}\n${SIM_OPTS}`,
};

/** "0-63,70" → [0..63, 70]. */
export function parseIndexList(s: string, flag: string): number[] {
  const out: number[] = [];
  for (const part of s
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new UsageError(`${flag}: '${part}' is not an index or a range a-b`);
    const a = Number(m[1]),
      b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) throw new UsageError(`${flag}: range '${part}' runs backwards`);
    if (b - a > 1_000_000) throw new UsageError(`${flag}: range '${part}' is too long`);
    for (let i = a; i <= b; i++) out.push(i);
  }
  if (out.length === 0) throw new UsageError(`${flag} is empty`);
  return [...new Set(out)];
}

/** Does `neurons score` with these arguments mean the LLM scorer (rather than the token-lookup one)? */
/** The help text of an LLM subcommand (neurons score --help appends it to the offline score's). */
export function llmHelp(mode: Mode): string {
  return HELP[mode];
}

export function wantsLlm(argv: readonly string[]): boolean {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (/^--(explainer-|simulator-)?api-base(=|$)/.test(a) || a === '--dry-run') return true;
    if (a === '--simulator' && argv[i + 1] !== undefined && argv[i + 1] !== 'lookup') return true;
    if (a.startsWith('--simulator=') && a !== '--simulator=lookup') return true;
  }
  return false;
}

/** A GPT-2 BPE token counter: exact on the first texts, then characters × the measured ratio. */
async function calibratedCounter(): Promise<(text: string) => number> {
  const mod = (await import('gpt-tokenizer/encoding/r50k_base')) as unknown as { countTokens?: (t: string) => number; encode: (t: string) => number[] };
  const exact = (t: string) => (mod.countTokens ? mod.countTokens(t) : mod.encode(t).length);
  let chars = 0,
    toks = 0,
    seen = 0;
  return (t: string) => {
    if (seen < 64) {
      const n = exact(t);
      seen++;
      chars += t.length;
      toks += n;
      return n;
    }
    return Math.round((t.length * toks) / Math.max(1, chars));
  };
}

function renderProgress(done: number, total: number, calls: number, cached: number, failed: number, t0: number, cols: number): string {
  const el = (Date.now() - t0) / 1000;
  const rate = calls / Math.max(el, 1e-9);
  const eta = done > 0 ? (el * (total - done)) / done : NaN;
  const text = `${done}/${total} neurons  ${rate.toFixed(1)} calls/s  ${fmtDuration(eta)} left  (calls ${calls}, cached ${cached}, failed ${failed})`;
  const width = Math.min(30, cols - text.length - 4);
  if (width < 5) return text.slice(0, cols - 1);
  const filled = Math.round((width * done) / Math.max(1, total));
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}`;
}

function printSummary(mode: Mode, s: RunSummary): void {
  const f = (x: number | null | undefined) => (x === null || x === undefined ? '-' : x.toFixed(1));
  const c = s.calls;
  if (s.dry_run) {
    console.log(
      `dry run (${mode}): ${fmtInt(c.planned)} calls would be sent, ≈ ${fmtInt(c.planned_prompt_tokens)} prompt tokens (GPT-2 BPE count, extrapolated past the first 64 prompts); ${fmtInt(c.cached)} more repeat an earlier request or are in the cache`,
    );
    if (mode !== 'explain' && c.planned > 0)
      console.log('  (simulator prompts of neurons not yet explained are counted with a 120-character stand-in explanation)');
    return;
  }
  console.log(
    `prompt set ${s.prompt_set.name} (sha256 ${s.prompt_set.sha256.slice(0, 12)}…); explainer ${s.explainer.model} at ${s.explainer.base_url}${mode !== 'explain' ? `; simulator ${s.simulator.model} at ${s.simulator.base_url}, ${s.simulator.kind}, top-${s.simulator.logprobs}` : ''}`,
  );
  if (!s.comparable) console.log(s.note);
  if (mode !== 'explain') {
    const splits = SPLIT_NAMES.filter((n) => s.layers.some((l) => l.splits[n]));
    console.log('layer  neurons  failed  ' + splits.map((n) => `${SPLIT_LABELS[n]} ×100 (n, NaN)`.padEnd(24)).join(''));
    for (const l of s.layers) {
      console.log(
        `${String(l.layer).padEnd(7)}${String(l.neurons).padEnd(9)}${String(l.failed).padEnd(8)}` +
          splits
            .map((n) => {
              const x = l.splits[n];
              return (x ? `${f(x.mean100)} (${x.n}, ${x.dropped})` : '-').padEnd(24);
            })
            .join(''),
      );
    }
    const model = SPLIT_NAMES.filter((n) => s.model[n]).map((n) => `${SPLIT_LABELS[n]} ${f(s.model[n]!.mean100)} (variance ${f(s.model[n]!.variance100)})`);
    if (model.length) console.log(`model mean over layers ${s.model[splits[0]]?.layers.join(',')}: ${model.join(', ')}`);
    const a = s.alignment;
    console.log(
      `alignment: ${a.exact} exact, ${a.split} split (${a.bytes} with raw bytes), ${a.newlineFolded} newline folded, ${a.mismatch} mismatched, ${a.missing} missing, ${a.noDigits} without digit log-probabilities${s.simulator.kind === 'logprob-free' ? `; ${s.parse_failures} unparsable completions` : ''}`,
    );
  } else {
    console.log(`explained ${s.layers.reduce((t, l) => t + l.neurons - l.failed, 0)} neurons, ${s.layers.reduce((t, l) => t + l.failed, 0)} failed`);
  }
  console.log(
    `calls: ${fmtInt(c.made)} made, ${fmtInt(c.cached)} cached, ${fmtInt(c.failed)} failed, ${fmtInt(c.retries)} retries; tokens sent: ${fmtInt(c.prompt_tokens)} prompt, ${fmtInt(c.completion_tokens)} completion${s.simulator.kind === 'logprob-free' ? `; parse failures ${s.parse_failures}` : ''}`,
  );
  console.log(`results: ${s.out}`);
}

function endpoint(v: Record<string, unknown>, role: 'explainer' | 'simulator'): Endpoint {
  const get = (k: string) => (typeof v[`${role}-${k}`] === 'string' ? (v[`${role}-${k}`] as string) : typeof v[k] === 'string' ? (v[k] as string) : undefined);
  const baseURL = get('api-base') ?? process.env.OPENAI_BASE_URL;
  if (!baseURL) throw new UsageError(`no ${role} endpoint: give --api-base URL (or --${role}-api-base, or set OPENAI_BASE_URL)`);
  checkUrl(baseURL, `--${role}-api-base`);
  const model = get('model');
  if (!model) throw new UsageError(`no ${role} model: give --model NAME (or --${role}-model)`);
  return { baseURL: baseURL.replace(/\/+$/, ''), apiKey: get('api-key') ?? process.env.OPENAI_API_KEY ?? '', model };
}

export async function runLlm(mode: Mode, argv: string[]): Promise<number> {
  const options = {
    ...LLM_OPTIONS,
    'explainer-api-base': { type: 'string' },
    'explainer-api-key': { type: 'string' },
    'explainer-model': { type: 'string' },
    'simulator-api-base': { type: 'string' },
    'simulator-api-key': { type: 'string' },
    'simulator-model': { type: 'string' },
    neurons: { type: 'string' },
    splits: { type: 'string' },
    prompts: { type: 'string' },
    'no-system-role': { type: 'boolean' },
    'max-tokens': { type: 'string' },
    context: { type: 'string' },
    simulator: { type: 'string' },
    logprobs: { type: 'string' },
  } as const;
  const args = parseCollectionArgs(argv, options, `crate-ts neurons ${mode} DIR --api-base URL --model NAME`);
  if (!args) {
    console.log(HELP[mode]);
    return 0;
  }
  const { v, dir } = args;
  const int = (k: string, def: number, min: number): number => intOption(v, k, def, min);
  const kind = (typeof v.simulator === 'string' ? v.simulator : 'all-at-once') as SimulatorKind;
  if (!SIMULATOR_KINDS.includes(kind))
    throw new UsageError(`--simulator must be one of ${SIMULATOR_KINDS.join(', ')}${mode === 'score' ? ' (or lookup, the offline score)' : ''}, got '${kind}'`);
  const splits = typeof v.splits === 'string' ? (v.splits.split(',').map((s) => s.trim()) as SplitName[]) : undefined;
  readManifest(dir); // a missing or incomplete collection is reported before anything else happens
  const prompts = loadPromptSet(typeof v.prompts === 'string' ? v.prompts : undefined);
  const countTokens = await calibratedCounter();
  const dry = v['dry-run'] === true;
  const quiet = v.json === true;
  const client = clientFromOptions(v, dir, {
    countTokens,
    onRetry: quiet ? undefined : (r) => process.stderr.write(`\nretry ${r.attempt} in ${(r.delayMs / 1000).toFixed(1)}s: ${r.reason}\n`),
  });
  const explainer = mode === 'simulate' ? { baseURL: '(see explanations/)', apiKey: '', model: '(see explanations/)' } : endpoint(v, 'explainer');
  const simulator = mode === 'explain' ? explainer : endpoint(v, 'simulator');
  const tty = process.stderr.isTTY === true && !quiet;
  const t0 = Date.now();
  let lastDraw = 0;
  const run = new LlmRun({
    dir,
    out: typeof v.out === 'string' ? v.out : undefined,
    layers: typeof v.layers === 'string' ? parseIndexList(v.layers, '--layers') : undefined,
    neurons: typeof v.neurons === 'string' ? parseIndexList(v.neurons, '--neurons') : null,
    max: v.max === undefined ? null : int('max', 0, 1),
    splits,
    prompts,
    explainer,
    simulator,
    client,
    simulatorKind: kind,
    logprobs: int('logprobs', 5, 1),
    noSystemRole: v['no-system-role'] === true,
    explainerContext: int('context', 4096, 256),
    explainMaxTokens: int('max-tokens', 60, 1),
    countTokens,
    onProgress:
      tty && !dry
        ? ({ done, total }) => {
            const now = Date.now();
            if (now - lastDraw < 200 && done < total) return;
            lastDraw = now;
            const st = client.stats;
            process.stderr.write(`\r${renderProgress(done, total, st.calls, st.cached, st.failed, t0, process.stderr.columns ?? 100)}\x1b[K`);
          }
        : undefined,
  });
  const summary = mode === 'explain' ? await run.explainAll() : await run.simulateAll(mode === 'score');
  if (tty && !dry) process.stderr.write('\n');
  if (quiet) console.log(JSON.stringify(summary, null, 2));
  else {
    printSummary(mode, summary);
    if (!dry) console.log(`(${fmtDuration((Date.now() - t0) / 1000)} wall)`);
  }
  return summary.calls.failed > 0 && !dry ? 1 : 0;
}

export const runExplain = (argv: string[]) => runLlm('explain', argv);
export const runSimulate = (argv: string[]) => runLlm('simulate', argv);
export const runScore = (argv: string[]) => runLlm('score', argv);
