// crate-ts steer: clamp one neuron at every position of a prompt and show how the next-token
// distribution moves (spec 8; paper A's steering figure).
import { parseArgs } from 'node:util';
import { UsageError } from '../errors.js';
import { parseErrorMessage } from './options.js';
import { selectBackend, type BackendChoice } from '../backend/select.js';
import { loadCheckpoint, modelFromCheckpoint, resolveCheckpointPath } from '../checkpoint/checkpoint.js';
import { loadTokenizer, type Tokenizer } from '../data/tokenizer.js';
import { checkClamp } from '../steer/clamp.js';
import { PAPER_PROMPT, sweep, sweepWith, type SteerResult } from '../steer/steer.js';
import { openSaeClamp, type SaeClamp } from '../sae/features.js';
import type { LanguageModel } from '../model/lm.js';
import type { Backend } from '../backend/types.js';
import { tokenText } from '../steer/tokens.js';

const HELP = `usage: crate-ts steer --checkpoint CKPT --layer L --neuron I --value V [options]
       crate-ts steer --checkpoint CKPT --sae DIR --feature J --value V [options]

  --checkpoint PATH  a checkpoint (or its run directory)
  --layer L          the block whose neuron is clamped (blocks.L.hook_neurons)
  --neuron I         the neuron (coordinate of the CRATE code a2 / GPT-2 MLP hidden)
  --value V          the constant the neuron is clamped to at every position
  --sweep V1,V2,...  several values instead of --value: how the effect grows with V
  --sae DIR          clamp a feature of this SAE (SAELens layout, crate-ts sae train) instead of a
                     neuron: its hook is encoded, feature J set to V, and the SAE's decoding added
                     back with its error term (x + (V - h_J) W_dec[J]), so a clamp that leaves h_J
                     unchanged leaves the model exactly as it is; --layer, if given, must be the SAE's
  --feature J        with --sae: the feature clamped (0..d_sae-1)
  --prompt TEXT      the prompt (default "${PAPER_PROMPT}", the paper's)
  --top K            tokens listed (default 10)
  --all-layers       clamp the same index in every layer: the authors' GPT-2 code does this
                     (spec 8, likely a bug); use it only to compare with their GPT-2 numbers
  --json             print {prompt, layer, neuron, value, top: [{id, token, pBefore, pAfter,
                     delta, logitDelta}]} (top sorted by delta = pAfter - pBefore, descending);
                     with --sweep, {prompt, layer, neuron, sweep: [{value, kl, top}]}
  --backend NAME     reference | cpu | cuda | auto (default auto)

The clamp is a constant, not a multiplication. For CRATE the clamped code is decoded exactly
(D·a2 in float64). "logit delta" is the raw logit after minus before; KL is KL(after || before).`;

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  checkpoint: { type: 'string' },
  layer: { type: 'string' },
  neuron: { type: 'string' },
  value: { type: 'string' },
  sweep: { type: 'string' },
  sae: { type: 'string' },
  feature: { type: 'string' },
  prompt: { type: 'string' },
  top: { type: 'string' },
  'all-layers': { type: 'boolean' },
  json: { type: 'boolean' },
  backend: { type: 'string' },
  threads: { type: 'string' },
} as const;

/** `--value -3` is a value, not an option: join a string option with a following negative number. */
export function joinNegatives(argv: readonly string[], stringOptions: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i],
      next = argv[i + 1];
    if (a.startsWith('--') && stringOptions.includes(a.slice(2)) && next !== undefined && /^-(\d|\.\d)/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

function intArg(v: Record<string, unknown>, name: string, min: number): number | undefined {
  const raw = v[name];
  if (raw === undefined) return undefined;
  const s = String(raw).trim(),
    n = s === '' ? NaN : Number(s);
  if (!Number.isSafeInteger(n)) throw new UsageError(`--${name} must be an integer, got '${String(raw)}'`);
  if (n < min) throw new UsageError(`--${name} must be >= ${min}, got ${n}`);
  return n;
}

function numArg(raw: string, name: string): number {
  const s = raw.trim(),
    n = s === '' ? NaN : Number(s);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a finite number, got '${raw}'`);
  return n;
}

/** A token as readable text: JSON-quoted so whitespace and control bytes show. */
export function showToken(tok: Tokenizer, id: number): string {
  return JSON.stringify(tokenText(tok, id));
}

const pct = (p: number) => p.toFixed(4);
const signed = (x: number, d: number) => (x >= 0 ? '+' : '') + x.toFixed(d);

function effectsJson(r: SteerResult, tok: Tokenizer) {
  return r.top.map((e) => ({ id: e.id, token: tok.decode([e.id]), pBefore: e.pBefore, pAfter: e.pAfter, delta: e.delta, logitDelta: e.logitDelta }));
}

function renderOne(r: SteerResult, tok: Tokenizer): string {
  const lines: string[] = [];
  const w = Math.max(12, ...r.topBefore.map((t) => showToken(tok, t.id).length), ...r.top.map((e) => showToken(tok, e.id).length)) + 2;
  lines.push(`next token ${'without the clamp'.padEnd(w + 8)}with the clamp`);
  for (let i = 0; i < r.topBefore.length; i++) {
    const b = r.topBefore[i],
      a = r.topAfter[i];
    lines.push(`  ${String(i + 1).padStart(2)}  ${showToken(tok, b.id).padEnd(w)}${pct(b.p)}    ${showToken(tok, a.id).padEnd(w)}${pct(a.p)}`);
  }
  lines.push('', `tokens whose probability rises most (logit effects):`);
  lines.push(`      ${'token'.padEnd(w)}p before  p after   delta     logit delta`);
  r.top.forEach((e, i) => {
    lines.push(
      `  ${String(i + 1).padStart(2)}  ${showToken(tok, e.id).padEnd(w)}${pct(e.pBefore)}    ${pct(e.pAfter)}   ${signed(e.delta, 4)}   ${signed(e.logitDelta, 3)}`,
    );
  });
  lines.push('', `KL(after || before) = ${r.kl.toFixed(4)} nats`);
  return lines.join('\n');
}

function renderSweep(rs: SteerResult[], tok: Tokenizer, k: number): string {
  // Track the tokens that rise most at the largest |V| across every value.
  const last = rs.reduce((a, r) => (Math.abs(r.value) > Math.abs(a.value) ? r : a), rs[0]);
  const ids = last.top.slice(0, Math.min(k, 8)).map((e) => e.id);
  const w = Math.max(10, ...ids.map((id) => showToken(tok, id).length)) + 2;
  const col = (s: string) => s.padStart(11);
  const lines = [
    `p(next token) as the clamp value V grows (the tokens that rise most at V = ${last.value}):`,
    '',
    `  ${'V'.padEnd(w)}${col('no clamp')}${rs.map((r) => col(String(r.value))).join('')}`,
  ];
  for (const id of ids) lines.push(`  ${showToken(tok, id).padEnd(w)}${col(pct(last.before.probs[id]))}${rs.map((r) => col(pct(r.after.probs[id]))).join('')}`);
  lines.push(`  ${'KL nats'.padEnd(w)}${col('0')}${rs.map((r) => col(r.kl.toFixed(4))).join('')}`);
  lines.push(`  ${'top token'.padEnd(w)}${col(showToken(tok, last.topBefore[0].id))}${rs.map((r) => col(showToken(tok, r.topAfter[0].id))).join('')}`);
  return lines.join('\n');
}

export async function run(argv: string[]): Promise<number> {
  let v: Record<string, string | boolean | undefined>;
  try {
    v = parseArgs({ args: joinNegatives(argv, ['value', 'sweep']), options: OPTIONS, strict: true, allowPositionals: false }).values;
  } catch (e) {
    throw new UsageError(parseErrorMessage(e as Error, OPTIONS), { cause: e });
  }
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  const ckArg = typeof v.checkpoint === 'string' ? v.checkpoint : undefined;
  if (!ckArg) throw new UsageError('--checkpoint is required');
  const saeDir = typeof v.sae === 'string' ? v.sae : undefined;
  const layerArg = intArg(v, 'layer', 0);
  if (layerArg === undefined && saeDir === undefined) throw new UsageError('--layer is required');
  const neuronArg = intArg(v, 'neuron', 0);
  const feature = intArg(v, 'feature', 0);
  if (saeDir !== undefined) {
    if (neuronArg !== undefined) throw new UsageError('--sae clamps a feature: give --feature J, not --neuron');
    if (feature === undefined) throw new UsageError('--sae needs --feature J (the feature clamped)');
    if (v['all-layers']) throw new UsageError('--all-layers clamps neurons in every layer; it does not apply to --sae');
  } else {
    if (feature !== undefined) throw new UsageError('--feature needs --sae DIR (a neuron is --neuron I)');
    if (neuronArg === undefined) throw new UsageError('--neuron is required');
  }
  const valueArg = typeof v.value === 'string' ? v.value : undefined,
    sweepArg = typeof v.sweep === 'string' ? v.sweep : undefined;
  if ((valueArg === undefined) === (sweepArg === undefined)) throw new UsageError('give either --value V or --sweep V1,V2,...');
  const values = sweepArg !== undefined ? sweepArg.split(',').map((s) => numArg(s, 'sweep')) : [numArg(valueArg as string, 'value')];
  const top = intArg(v, 'top', 1) ?? 10;
  const backendName = typeof v.backend === 'string' ? v.backend : 'auto';
  if (!['reference', 'cpu', 'cuda', 'auto'].includes(backendName)) throw new UsageError(`--backend must be reference, cpu, cuda or auto, got '${backendName}'`);
  const threads = intArg(v, 'threads', 0);

  const ckFile = resolveCheckpointPath(ckArg);
  const ck = loadCheckpoint(ckFile);
  if (saeDir === undefined) for (const value of values) checkClamp(ck.config, { layer: layerArg!, neuron: neuronArg!, value });
  const tok = await loadTokenizer(ck.tokenizer, ck.tokenizerVocab);
  const promptText = typeof v.prompt === 'string' ? v.prompt : PAPER_PROMPT;
  const ids = tok.encode(promptText);
  if (ids.length === 0) throw new UsageError('--prompt is empty: give at least one token of text');
  let sel;
  try {
    sel = await selectBackend(backendName as BackendChoice, threads ? { threads } : {});
  } catch (e) {
    throw new UsageError((e as Error).message, { cause: e });
  }
  const model = modelFromCheckpoint(ck, sel.backend);
  let clamp: SaeClamp | null = null;
  try {
    const opts = { top, allLayers: Boolean(v['all-layers']), maxId: tok.vocabSize };
    let rs: SteerResult[], layer: number, neuron: number;
    if (saeDir !== undefined) {
      clamp = openSaeClamp(saeDir, model as LanguageModel<unknown>, ckFile, sel.backend as Backend<unknown>);
      if (layerArg !== undefined && layerArg !== clamp.layer)
        throw new UsageError(`--layer ${layerArg}: the SAE '${saeDir}' reads layer ${clamp.layer} (${clamp.hook}); leave --layer out or give ${clamp.layer}`);
      const c = clamp;
      layer = c.layer;
      neuron = feature!;
      rs = sweepWith(model, ids, { layer, neuron }, values, (value) => c.hooks(neuron, value), opts);
    } else {
      layer = layerArg!;
      neuron = neuronArg!;
      rs = sweep(model, ids, layer, neuron, values, opts);
    }
    // JSON: a neuron's clamp has {layer, neuron}, an SAE feature's {sae, hook, layer, feature}
    const who = clamp ? { sae: saeDir, hook: `${clamp.hook}.hook_sae_acts_post`, layer, feature: neuron } : { layer, neuron };
    if (v.json) {
      if (sweepArg === undefined) {
        const r = rs[0];
        console.log(JSON.stringify({ prompt: promptText, ...who, value: r.value, top: effectsJson(r, tok), allLayers: r.allLayers, kl: r.kl }, null, 2));
      } else {
        console.log(
          JSON.stringify(
            { prompt: promptText, ...who, allLayers: opts.allLayers, sweep: rs.map((r) => ({ value: r.value, kl: r.kl, top: effectsJson(r, tok) })) },
            null,
            2,
          ),
        );
      }
      return 0;
    }
    const c = ck.config;
    const where = clamp
      ? `feature ${neuron} of the SAE ${saeDir} (${clamp.hook}.hook_sae_acts_post, decoded with its error term)`
      : opts.allLayers
        ? `blocks.*.hook_neurons[${neuron}] in all ${c.nLayer} layers (the authors' GPT-2 quirk)`
        : `blocks.${layer}.hook_neurons[${neuron}]`;
    console.log(`${ck.path}: ${c.arch}, ${c.nLayer} layer${c.nLayer === 1 ? '' : 's'}, d ${c.nEmbd}, V ${c.vocabSize}; backend ${sel.reason}`);
    const fit = rs[0].prompt.length < ids.length ? `${ids.length} tokens; the last ${rs[0].prompt.length} fit the block size` : `${ids.length} tokens`;
    console.log(
      `prompt ${JSON.stringify(promptText)} (${fit}); clamp ${where} = ${sweepArg === undefined ? values[0] : values.join(', ')} at every position\n`,
    );
    console.log(sweepArg === undefined ? renderOne(rs[0], tok) : renderSweep(rs, tok, top));
    return 0;
  } finally {
    clamp?.free();
    model.free();
  }
}
