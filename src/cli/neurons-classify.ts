// crate-ts neurons score DIR --scorer detection|fuzzing: classification scores of explanations
// (src/neurons/classifier.ts), judged offline from the token-lookup table or by a chat model.
import * as path from 'node:path';
import { UsageError } from '../errors.js';
import { CLASSIFIER_KINDS, type ClassifierKind } from '../neurons/classifier.js';
import { classifyCollection, LlmJudge, type ClassifySummary } from '../neurons/classify-run.js';
import { loadPromptSet } from '../neurons/llm/prompts.js';
import { readManifest } from '../neurons/format.js';
import { parseIndexList } from './neurons-llm.js';
import { LLM_OPTIONS, checkUrl, clientFromOptions, intOption, parseCollectionArgs } from './neurons-llm-options.js';

export const HELP = `usage: crate-ts neurons score DIR --scorer detection|fuzzing [--judge lookup | --api-base URL --model NAME] [options]

Detection and fuzzing scores of explanations (as EleutherAI's delphi defines them): a judge reads an
explanation and a few contexts and says for each whether the neuron fires there (detection: anywhere
in the context; fuzzing: on the tokens marked <<like this>>). Half the contexts are right answers,
half wrong; the score is the balanced accuracy (also accuracy, F1 and, with probabilities, AUC).

  --scorer KIND           detection | fuzzing
  --judge lookup          the offline judge (default without --api-base): the explanation is the
                          token-lookup table of the neuron's top records; deterministic
  --api-base URL          an OpenAI-compatible chat endpoint as the judge (llama.cpp's server,
                          Ollama, vLLM, crate-ts serve); with --model NAME, --api-key KEY
                          (default $OPENAI_API_KEY); the explanations come from \`neurons explain\`
  --explanations DIR      the explanations/ folder to judge (default DIR/llm-<prompt set>/explanations)
  --no-logprobs           do not ask the judge for top_logprobs (no AUC; for servers that refuse it)
  --per-class N           contexts of each class per neuron (default 10)
  --per-prompt N          contexts per judge request (default 5)
  --layers LIST, --max N  which layers, at most N neurons per layer (e.g. --layers 0,2 --max 50)
  --seed S                seed of the context draw (default 0)
  --out DIR               output directory (default DIR/<scorer>-lookup or DIR/<scorer>-llm)
  --concurrency N, --cache-dir DIR, --no-cache, --max-retries N, --timeout SECONDS, --dry-run
                          as for neurons explain
  --json                  print summary.json

Writes layer-{l}.jsonl (per neuron: the explanation, every context with delphi's fields str_tokens,
activations, distance, activating, prediction, probability, correct, and the scores) and summary.json.`;

/** Does `neurons score` with these arguments ask for a classification scorer? */
export function wantsClassifier(argv: readonly string[]): boolean {
  return argv.some((a) => a === '--scorer' || a.startsWith('--scorer='));
}

export async function run(argv: string[]): Promise<number> {
  const options = {
    ...LLM_OPTIONS,
    scorer: { type: 'string' },
    judge: { type: 'string' },
    explanations: { type: 'string' },
    'no-logprobs': { type: 'boolean' },
    'per-class': { type: 'string' },
    'per-prompt': { type: 'string' },
    seed: { type: 'string' },
  } as const;
  const args = parseCollectionArgs(argv, options, 'crate-ts neurons score DIR --scorer detection|fuzzing');
  if (!args) {
    console.log(HELP);
    return 0;
  }
  const { v, dir } = args;
  const kind = v.scorer as ClassifierKind;
  if (!CLASSIFIER_KINDS.includes(kind)) throw new UsageError(`--scorer must be ${CLASSIFIER_KINDS.join(' or ')}, got '${String(v.scorer)}'`);
  const int = (k: string, def: number, min: number): number => intOption(v, k, def, min, true);
  const apiBase = typeof v['api-base'] === 'string' ? v['api-base'] : undefined;
  const judgeOpt = typeof v.judge === 'string' ? v.judge : apiBase ? 'llm' : 'lookup';
  if (judgeOpt !== 'lookup' && judgeOpt !== 'llm') throw new UsageError(`--judge must be lookup (or give --api-base for an LLM judge), got '${judgeOpt}'`);
  if (judgeOpt === 'lookup' && apiBase) throw new UsageError('--judge lookup takes no --api-base (the offline judge asks no server)');
  readManifest(dir); // a missing or incomplete collection is reported first
  let judge: Parameters<typeof classifyCollection>[0]['judge'] = 'lookup';
  const dry = v['dry-run'] === true;
  if (judgeOpt === 'llm') {
    if (!apiBase) throw new UsageError('an LLM judge needs --api-base URL (and --model NAME)');
    checkUrl(apiBase, '--api-base');
    const model = typeof v.model === 'string' ? v.model : undefined;
    if (!model) throw new UsageError('an LLM judge needs --model NAME');
    const client = clientFromOptions(v, dir, {}, true);
    const explanationsDir = typeof v.explanations === 'string' ? v.explanations : path.join(dir, `llm-${loadPromptSet().name}`, 'explanations');
    judge = {
      judge: new LlmJudge(
        client,
        { baseURL: apiBase, apiKey: typeof v['api-key'] === 'string' ? v['api-key'] : (process.env.OPENAI_API_KEY ?? 'none'), model },
        { logprobs: v['no-logprobs'] !== true },
      ),
      explanationsDir,
    };
  } else if (dry) throw new UsageError('--dry-run counts LLM requests; the lookup judge makes none');
  const s = await classifyCollection({
    dir,
    kind,
    judge,
    out: typeof v.out === 'string' ? v.out : undefined,
    layers: typeof v.layers === 'string' ? parseIndexList(v.layers, '--layers') : undefined,
    max: v.max === undefined ? null : int('max', 0, 1),
    perClass: int('per-class', 10, 1),
    perPrompt: int('per-prompt', 5, 1),
    seed: int('seed', 0, 0),
  });
  if (v.json) console.log(JSON.stringify(s, null, 2));
  else printSummary(s);
  return 0;
}

const pct = (x: number | null): string => (x === null ? '  -  ' : (100 * x).toFixed(1).padStart(5));

export function printSummary(s: ClassifySummary): void {
  console.log(`${s.scorer} scores, judge ${s.judge}, ${s.per_class} contexts per class per neuron (seed ${s.seed}); ×100, chance = 50`);
  console.log('layer  neurons  scored  bal.acc (SE)   acc    F1     AUC   parse failures');
  for (const l of s.layers)
    console.log(
      `${String(l.layer).padStart(5)}  ${String(l.neurons).padStart(7)}  ${String(l.scored).padStart(6)}  ${pct(l.balanced_accuracy)} (${l.balanced_accuracy_se === null ? ' - ' : (100 * l.balanced_accuracy_se).toFixed(1)})  ${pct(l.accuracy)}  ${pct(l.f1)}  ${pct(l.auc)}  ${l.parse_failures}`,
    );
  console.log(
    `model (layers ${s.model.layers.join(', ')}): balanced accuracy ${pct(s.model.balanced_accuracy).trim()}, F1 ${pct(s.model.f1).trim()}, AUC ${pct(s.model.auc).trim()}`,
  );
  console.log(`written: ${s.out}/layer-{l}.jsonl, ${s.out}/summary.json`);
}
