// crate-ts neurons: a dispatcher over subcommands (collect, show, score, compare; the LLM explain /
// simulate subcommands register here too). Each entry is one line: a summary and a run function,
// which may import its module lazily.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError } from '../errors.js';
import { encodingFlag, parseErrorMessage } from './options.js';
import { closest } from './suggest.js';
import { selectBackend, type BackendChoice } from '../backend/select.js';
import type { Communicator } from '../distributed/communicator.js';
import { distHelp, openFromFlag, distLine, distFailure } from './dist.js';
import { collect, CollectInterrupted, type CollectOptions } from '../neurons/collect.js';
import { readLayer, readManifest, selectedOffset, VARIANTS, type Variant } from '../neurons/format.js';
import { renderNeuron } from '../neurons/heatmap.js';
import { scoreCollection, writeNeuronScores, type CollectionScores } from '../neurons/score.js';
import { SPLIT_LABELS, SPLIT_NAMES } from '../neurons/scoring.js';
import { attachInit, comparisonSvg, groupRuns, renderComparison, summarizeGroup } from '../neurons/compare.js';
import { EMBEDDED_NAME } from '../data/corpus.js';
import { writeFileAtomic } from '../util/atomic.js';

type Run = (argv: string[]) => Promise<number>;

/** The subcommands of `crate-ts neurons`. Add an entry to add a subcommand. */
export const SUBCOMMANDS: Record<string, { summary: string; run: Run }> = {
  collect: { summary: 'run a checkpoint over a corpus and store activation records per neuron (OpenAI NeuronRecord JSONL)', run: runCollect },
  show: { summary: "print one neuron's records as token heatmaps", run: runShow },
  score: {
    summary:
      'offline (token-lookup) scores per neuron, layer and model: TaR, Random-only, Anthropic, selectivity, consistency; with --api-base, LLM explain + simulate + score',
    run: async (argv) => {
      const cls = await import('./neurons-classify.js');
      if (cls.wantsClassifier(argv)) return cls.run(argv);
      const llm = await import('./neurons-llm.js');
      if (!llm.wantsLlm(argv) && argv.some((a) => a === '--help' || a === '-h')) {
        // one help for both modes: the offline score, then the LLM options the README uses with it
        console.log(`${SCORE_HELP}\n\nWith an LLM (--api-base, or --explainer-api-base and --simulator-api-base):\n\n${llm.llmHelp('score')}`);
        return 0;
      }
      return llm.wantsLlm(argv) ? llm.runScore(argv) : runScore(argv);
    },
  },
  explain: {
    summary: 'explain each neuron in one sentence with an LLM behind an OpenAI-compatible API',
    run: async (argv) => (await import('./neurons-llm.js')).runExplain(argv),
  },
  simulate: {
    summary: 'simulate and score the explanations with an LLM (OpenAI-format results per layer)',
    run: async (argv) => (await import('./neurons-llm.js')).runSimulate(argv),
  },
  compare: { summary: "compare collections' scores per layer and per model; --svg draws the chart", run: runCompare },
  view: {
    summary: 'browse collections in a browser: serve on 127.0.0.1 or --export a static site',
    run: async (argv) => (await import('./view.js')).run(argv),
  },
};

export function usage(): string {
  const rows = Object.entries(SUBCOMMANDS).map(([n, s]) => `  ${n.padEnd(9)} ${s.summary}`);
  return ['usage: crate-ts neurons <subcommand> [options]   (crate-ts neurons <subcommand> --help)', '', 'subcommands:', ...rows].join('\n');
}

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    console.log(usage());
    return sub === undefined ? 2 : 0;
  }
  const entry = Object.hasOwn(SUBCOMMANDS, sub) ? SUBCOMMANDS[sub] : undefined;
  if (!entry) {
    const guess = closest(sub, Object.keys(SUBCOMMANDS));
    throw new UsageError(`unknown subcommand '${sub}'${guess ? ` (did you mean '${guess}'?)` : ''}; subcommands: ${Object.keys(SUBCOMMANDS).join(', ')}`);
  }
  return entry.run(rest);
}

// ---- option helpers (every mistake is a one-line UsageError naming the flag) --------------------

type Spec = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;

function parse(argv: string[], options: Spec, positionals: boolean): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    const r = parseArgs({ args: argv, options, strict: true, allowPositionals: positionals });
    return { values: r.values as Record<string, string | boolean | undefined>, positionals: r.positionals };
  } catch (e) {
    throw new UsageError(parseErrorMessage(e as Error, options), { cause: e });
  }
}

function int(v: Record<string, unknown>, name: string, min: number): number | undefined {
  const raw = v[name];
  if (raw === undefined) return undefined;
  const n = Number(String(raw).trim());
  if (String(raw).trim() === '' || !Number.isSafeInteger(n)) throw new UsageError(`--${name} must be an integer, got '${String(raw)}'`);
  if (n < min) throw new UsageError(`--${name} must be >= ${min}, got ${n}`);
  return n;
}

const str = (v: Record<string, unknown>, name: string): string | undefined => (typeof v[name] === 'string' ? (v[name] as string) : undefined);

function intList(raw: string | undefined, name: string): number[] | undefined {
  if (raw === undefined) return undefined;
  const parts = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (parts.length === 0) throw new UsageError(`--${name} is empty`);
  const out: number[] = [];
  for (const p of parts) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(p);
    if (!m) throw new UsageError(`--${name} must be a comma-separated list of integers or ranges (0,1 or 0-2), got '${raw}'`);
    const a = Number(m[1]),
      b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) throw new UsageError(`--${name}: range '${p}' runs backwards`);
    for (let i = a; i <= b; i++) out.push(i);
  }
  return out;
}

/** --layers LIST, or its singular spelling --layer (the one show uses): both are accepted everywhere. */
function layersOption(v: Record<string, unknown>): number[] | undefined {
  if (v.layers !== undefined && v.layer !== undefined) throw new UsageError('give --layers or --layer, not both (they are the same option)');
  return v.layer !== undefined ? intList(str(v, 'layer'), 'layer') : intList(str(v, 'layers'), 'layers');
}

// ---- collect ----------------------------------------------------------------------------------

const COLLECT_HELP = `usage: crate-ts neurons collect --checkpoint CKPT --out DIR [options]

  --checkpoint PATH  checkpoint file (or a run directory with model.safetensors)
  --data PATH        text file, directory or token file(s) (default: the embedded corpus), tokenized
                     with the checkpoint's tokenizer
  --encoding NAME    the text's encoding: utf-8 (default; others are refused with the iconv command),
                     utf-16le, utf-16be, latin1
  --split NAME       all | train | val: which tokens of the data, in order (default all)
  --tokens N         tokens to collect, cut into contiguous windows of the block size (default: all,
                     at most the paper's 8000 x 1024)
  --layers LIST      layers, e.g. 0,1 or 0-2 (default: all); --layer is the same option
  --hook NAME        per-layer hook (hook_neurons, ista.hook_code, mlp.hook_post, hook_resid_post, ...),
                     a template with {l}, or a full name blocks.L.NAME (default hook_neurons)
  --sae DIR          collect the features of an SAE (SAELens layout, crate-ts sae train) instead:
                     hook <SAE hook>.hook_sae_acts_post, the layer the SAE reads
  --variant V        openai (64-token excerpts, top + random) | anthropic (8-token excerpts, plus
                     quantile bins) | both (64-token top/random + 8-token quantile bins) (default openai)
  --seed S           seed of the random positions (default 0)
  --backend NAME     reference | cpu | cuda | auto (default auto)
  --threads N        worker threads of native backends
  --batch B          windows per forward (default 1)
${distHelp(21)}
                     (the windows are shared; rank 0 merges exactly and writes)
  --out DIR          output directory: new, empty, or holding a collection (replaced only with
                     --force); a non-empty directory without a collection, or one inside crate-ts's
                     own folders (src/, ...), is refused. It is locked while collect runs, so a
                     second collect into it is refused.
  --force            replace the collection in --out

Ctrl-C stops after the window in progress and says so; nothing is written (a collection is
written only at the end), exit 130.`;

async function runCollect(argv: string[]): Promise<number> {
  const { values: v } = parse(
    argv,
    {
      help: { type: 'boolean', short: 'h' },
      checkpoint: { type: 'string' },
      data: { type: 'string' },
      split: { type: 'string' },
      tokens: { type: 'string' },
      layers: { type: 'string' },
      layer: { type: 'string' },
      hook: { type: 'string' },
      sae: { type: 'string' },
      variant: { type: 'string' },
      seed: { type: 'string' },
      backend: { type: 'string' },
      threads: { type: 'string' },
      batch: { type: 'string' },
      out: { type: 'string' },
      force: { type: 'boolean' },
      'cache-dir': { type: 'string' },
      dist: { type: 'string' },
      encoding: { type: 'string' },
    },
    false,
  );
  if (v.help) {
    console.log(COLLECT_HELP);
    return 0;
  }
  const checkpoint = str(v, 'checkpoint');
  if (!checkpoint) throw new UsageError('--checkpoint is required');
  const out = str(v, 'out');
  if (!out) throw new UsageError('--out is required (the collection directory)');
  const variant = str(v, 'variant') ?? 'openai';
  if (!VARIANTS.includes(variant as Variant)) throw new UsageError(`--variant must be ${VARIANTS.join(', ')}, got '${variant}'`);
  const split = str(v, 'split') ?? 'all';
  if (!['all', 'train', 'val'].includes(split)) throw new UsageError(`--split must be all, train or val, got '${split}'`);
  const backendName = str(v, 'backend') ?? 'auto';
  if (!['reference', 'cpu', 'cuda', 'auto'].includes(backendName)) throw new UsageError(`--backend must be reference, cpu, cuda or auto, got '${backendName}'`);
  const threads = int(v, 'threads', 0);
  const opts: Omit<CollectOptions, 'backend'> = {
    checkpoint,
    out,
    data: str(v, 'data'),
    split: split as 'all' | 'train' | 'val',
    tokens: int(v, 'tokens', 1),
    layers: layersOption(v),
    hook: str(v, 'hook'),
    sae: str(v, 'sae'),
    variant: variant as Variant,
    seed: int(v, 'seed', 0),
    batch: int(v, 'batch', 1),
    force: Boolean(v.force),
    cacheDir: str(v, 'cache-dir'),
    encoding: encodingFlag(v),
  };
  let sel;
  try {
    sel = await selectBackend(backendName as BackendChoice, threads ? { threads } : {});
  } catch (e) {
    throw new UsageError((e as Error).message, { cause: e });
  }
  const comm = await openFromFlag(v.dist, backendName);
  try {
    return await collectOn(comm, opts, sel);
  } catch (e) {
    return distFailure(comm, e, 'neurons collect');
  } finally {
    comm.close();
  }
}

async function collectOn(
  comm: Communicator,
  opts: Omit<CollectOptions, 'backend'>,
  sel: { backend: CollectOptions['backend']; reason: string; name: string },
): Promise<number> {
  const tty = Boolean(process.stderr.isTTY) && comm.rank === 0;
  let last = 0;
  const bar = (p: { tokens: number; total: number; tokensPerSec: number; eta: number }) => {
    const now = Date.now();
    if (!tty || (now - last < 150 && p.tokens < p.total)) return;
    last = now;
    const width = 30,
      filled = Math.round((width * p.tokens) / p.total);
    const eta = Number.isFinite(p.eta) ? `${Math.floor(p.eta / 60)}m${String(Math.round(p.eta % 60)).padStart(2, '0')}s` : '?';
    process.stderr.write(
      `\r\x1b[2K[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${p.tokens.toLocaleString('en-US')}/${p.total.toLocaleString('en-US')} tokens  ${Math.round(p.tokensPerSec).toLocaleString('en-US')} tok/s  ${eta} left`,
    );
  };
  if (tty) process.stderr.write(`backend ${sel.reason}\n`);
  // Ctrl-C / SIGTERM / SIGHUP: stop after the window in progress and say what was lost; a second
  // signal exits at once. A collection is written only at the end, so nothing is left half-written.
  const stop = new AbortController();
  const codes = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
  let caught: keyof typeof codes | null = null;
  const handlers = (Object.keys(codes) as (keyof typeof codes)[]).map((sig) => {
    const h = () => {
      if (caught) process.exit(codes[sig]);
      caught = sig;
      stop.abort();
    };
    process.on(sig, h);
    return [sig, h] as const;
  });
  try {
    const dl = distLine(comm);
    if (dl && comm.rank === 0) process.stderr.write(dl + '\n');
    const r = await collect({ ...opts, backend: sel.backend, onProgress: bar, comm, signal: stop.signal });
    if (tty) process.stderr.write('\r\x1b[2K');
    if (comm.rank !== 0) return 0;
    const m = r.manifest;
    console.log(
      `collected ${m.n_tokens.toLocaleString('en-US')} tokens (${m.n_tokens / m.window} windows of ${m.window}) x layers ${m.layers.join(',')} (${m.neurons.join('+')} neurons, ${m.hooks[0]}${m.hooks.length > 1 ? ', ...' : ''}) on ${sel.name} in ${r.elapsed.toFixed(1)} s: ${Math.round(r.tokensPerSec).toLocaleString('en-US')} tokens/s (forward + streaming; ${r.cpuSeconds.toFixed(1)} CPU s), peak RSS ${(r.peakRssBytes / 2 ** 20).toFixed(0)} MiB -> ${r.dir}`,
    );
    return 0;
  } catch (e) {
    if (!(e instanceof CollectInterrupted)) throw e;
    if (tty) process.stderr.write('\r\x1b[2K');
    const sig = caught ?? 'SIGINT';
    console.error(
      `crate-ts neurons collect: ${sig === 'SIGINT' ? 'Ctrl-C (SIGINT)' : sig}: interrupted after ${e.tokens.toLocaleString('en-US')} of ${e.total.toLocaleString('en-US')} tokens (layers ${opts.layers?.join(',') ?? 'all'} of ${opts.checkpoint}); nothing was written to '${opts.out}' (a collection is written only when every token has been seen; run the command again to collect)`,
    );
    return codes[sig];
  } finally {
    for (const [sig, h] of handlers) process.removeListener(sig, h);
    if (tty) process.stderr.write('\r\x1b[2K');
  }
}

// ---- show -------------------------------------------------------------------------------------

const SHOW_HELP = `usage: crate-ts neurons show DIR --layer L --neuron I [--max N] [--color auto|always|never]
  (--layers L is accepted too, as collect spells it)

  Prints one neuron's records (top activations, random sample, quantile bins) as token heatmaps
  on one colour scale (the neuron's maximum); plain text with the values when not a terminal.`;

async function runShow(argv: string[]): Promise<number> {
  const { values: v, positionals } = parse(
    argv,
    {
      help: { type: 'boolean', short: 'h' },
      layer: { type: 'string' },
      layers: { type: 'string' },
      neuron: { type: 'string' },
      max: { type: 'string' },
      color: { type: 'string' },
    },
    true,
  );
  if (v.help) {
    console.log(SHOW_HELP);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError('give exactly one collection directory: crate-ts neurons show DIR --layer L --neuron I');
  const dir = positionals[0];
  const m = readManifest(dir);
  const asked = layersOption(v);
  if (asked !== undefined && asked.length !== 1) throw new UsageError(`show takes one layer, got --layer ${asked.join(',')}`);
  const layer = asked?.[0] ?? (m.layers.length === 1 ? m.layers[0] : undefined);
  if (layer === undefined) throw new UsageError(`--layer is required (collected layers: ${m.layers.join(', ')})`);
  const neuron = int(v, 'neuron', 0);
  if (neuron === undefined) throw new UsageError('--neuron is required');
  const li = m.layers.indexOf(layer);
  if (li < 0) throw new UsageError(`layer ${layer} was not collected in '${dir}' (collected layers: ${m.layers.join(', ')})`);
  if (neuron >= m.neurons[li])
    throw new UsageError(`--neuron ${neuron} is out of range: layer ${layer} has ${m.neurons[li]} neurons (0..${m.neurons[li] - 1})`);
  const mode = str(v, 'color') ?? 'auto';
  if (!['auto', 'always', 'never'].includes(mode)) throw new UsageError(`--color must be auto, always or never, got '${mode}'`);
  const color = mode === 'always' || (mode === 'auto' && Boolean(process.stdout.isTTY) && !process.env.NO_COLOR);
  const ld = readLayer(dir, m, layer);
  const p = ld.positions[neuron];
  console.log(
    renderNeuron(ld.records[neuron], ld.stats[neuron], {
      max: int(v, 'max', 1) ?? 10,
      color,
      hook: ld.hook,
      positions: p,
      offsets: {
        top: p.top.map((q) => selectedOffset(q, m.excerpt.top)),
        random: p.random.map((q) => selectedOffset(q, m.excerpt.random)),
        quantile: p.quantile === null ? null : p.quantile.map((b) => b.map((q) => selectedOffset(q, m.excerpt.quantile))),
      },
    }),
  );
  return 0;
}

// ---- score ------------------------------------------------------------------------------------

const SCORE_HELP = `usage: crate-ts neurons score DIR [--simulator lookup] [--json]

  Scores every collected neuron offline with the token-lookup simulator (spec 7.8.1): Pearson
  correlation of true and simulated activations over each split's scoring records (TaR,
  Random-only, Anthropic when quantiles were collected), plus selectivity, consistency, density
  and dead neurons. Prints per-layer means (x100) and the model mean and variance over layers;
  --json prints {layers, model} and writes per-neuron scores to DIR/scores-lookup.jsonl.

  --scorer detection|fuzzing: classification scores of explanations instead (crate-ts neurons
  score --scorer detection --help); --api-base URL: LLM explain + simulate + score.`;

export function scoresJson(s: CollectionScores): { layers: unknown[]; model: unknown } {
  return {
    layers: s.layers.map((l) => ({
      layer: l.layer,
      tar: l.tar,
      randomOnly: l.randomOnly,
      anthropic: l.anthropic,
      selectivity: l.selectivity,
      consistency: l.consistency,
      density: l.density,
      dead: l.dead,
      neurons: l.neurons,
      scored: l.scored,
      se: l.se,
    })),
    model: s.model,
  };
}

async function runScore(argv: string[]): Promise<number> {
  const { values: v, positionals } = parse(argv, { help: { type: 'boolean', short: 'h' }, simulator: { type: 'string' }, json: { type: 'boolean' } }, true);
  if (v.help) {
    console.log(SCORE_HELP);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError('give exactly one collection directory: crate-ts neurons score DIR');
  const sim = str(v, 'simulator') ?? 'lookup';
  if (sim !== 'lookup') throw new UsageError(`--simulator must be lookup (the LLM simulator is a separate subcommand), got '${sim}'`);
  const dir = positionals[0];
  const s = scoreCollection(dir);
  const file = writeNeuronScores(dir, s.neurons);
  if (v.json) {
    console.log(JSON.stringify(scoresJson(s), null, 2));
    return 0;
  }
  const m = s.manifest;
  const f = (x: number | null, d = 2) => (x === null ? '-' : x.toFixed(d));
  console.log(
    `${dir}: ${m.checkpoint.arch} (${path.basename(m.checkpoint.path)}), ${m.n_tokens.toLocaleString('en-US')} tokens of ${m.data.source}, variant ${m.variant}; token-lookup simulator`,
  );
  console.log('layer  neurons  ' + SPLIT_NAMES.map((n) => SPLIT_LABELS[n].padEnd(15)).join('') + 'selectivity  consistency  density  dead');
  for (const l of s.layers) {
    console.log(
      String(l.layer).padEnd(7) +
        String(l.neurons).padEnd(9) +
        SPLIT_NAMES.map((n) => `${f(l[n])} ± ${f(l.se[n])}`.padEnd(15)).join('') +
        f(l.selectivity, 3).padEnd(13) +
        f(l.consistency, 3).padEnd(13) +
        f(l.density, 3).padEnd(9) +
        String(l.dead),
    );
  }
  const md = s.model;
  console.log(
    `model (layers ${md.layers.join(',')}): ` +
      SPLIT_NAMES.map((n) => `${SPLIT_LABELS[n]} ${f(md[n].mean)} (variance ${f(md[n].variance)})`).join(', ') +
      `; selectivity ${f(md.selectivity, 3)}, consistency ${f(md.consistency, 3)}, density ${f(md.density, 3)}, dead ${md.dead} of ${md.neurons}`,
  );
  const dropped = s.layers.map((l) => `${l.layer}: ${l.neurons - l.scored.tar}`).join(', ');
  console.log(`NaN scores dropped (TaR; constant activations or simulation) per layer: ${dropped}; per-neuron scores in ${file}`);
  return 0;
}

// ---- compare ----------------------------------------------------------------------------------

const COMPARE_HELP = `usage: crate-ts neurons compare DIR_A DIR_B ... [--labels A,B,...] [--baseline LABEL] [--baseline-init DIR,...]
                               [--svg FILE] [--json]

  Scores each collection (token-lookup simulator) and compares them per layer and per model
  (mean and population variance over layers, the paper's table), with the relative improvement
  over the baseline (default: the first GPT-2 collection, else the last). Collections with the
  same label are seeds of one model: averaged, with the seed spread; a gap is called only when it
  exceeds both 2 standard errors over neurons and the seed spread. --svg writes the per-layer chart.

  --baseline-init DIR,...  collections of random-init models (crate-ts train --steps 0, then collect
                   with the same settings): each model's score is shown beside the control of its
                   architecture and depth ([init X] in the tables, "init" in the JSON, a faint dotted
                   line in the chart), with the gap that training made. The token-lookup proxy scores
                   untrained models high (a random projection of the token embedding is a function of
                   the token), so read every score against this level.`;

async function runCompare(argv: string[]): Promise<number> {
  const { values: v, positionals } = parse(
    argv,
    {
      help: { type: 'boolean', short: 'h' },
      labels: { type: 'string' },
      baseline: { type: 'string' },
      svg: { type: 'string' },
      json: { type: 'boolean' },
      title: { type: 'string' },
      'baseline-init': { type: 'string', multiple: true },
    },
    true,
  );
  if (v.help) {
    console.log(COMPARE_HELP);
    return 0;
  }
  if (positionals.length < 1) throw new UsageError('give one or more collection directories');
  const labelArg = str(v, 'labels');
  const labels = labelArg === undefined ? null : labelArg.split(',').map((s) => s.trim());
  if (labels && labels.length !== positionals.length) throw new UsageError(`--labels has ${labels.length} labels for ${positionals.length} directories`);
  const runs = positionals.map((dir, i) => {
    const scores = scoreCollection(dir);
    const m = scores.manifest;
    return { label: labels ? labels[i] : `${m.checkpoint.arch}:${path.basename(path.dirname(m.checkpoint.path))}`, scores };
  });
  const groups = groupRuns(runs).map(summarizeGroup);
  const initDirs = ((v['baseline-init'] as unknown as string[] | undefined) ?? []).flatMap((x) =>
    x
      .split(',')
      .map((d) => d.trim())
      .filter(Boolean),
  );
  if (initDirs.length > 0) {
    const m0 = runs[0].scores.manifest;
    const inits = initDirs.map((dir) => {
      try {
        readManifest(dir);
      } catch (e) {
        // a run directory: say how to collect it the way the compared collections were
        if (fs.existsSync(path.join(dir, 'model.safetensors')) || fs.existsSync(path.join(dir, 'ckpt.safetensors')))
          throw new UsageError(
            `--baseline-init '${dir}' is a training run, not a collection: collect it as the others were, e.g. crate-ts neurons collect --checkpoint ${dir} --out ${dir.replace(/\/+$/, '')}-neurons --tokens ${m0.n_tokens} --variant ${m0.variant} --seed ${m0.seed}${m0.data.source === EMBEDDED_NAME ? '' : ` --data ${m0.data.source}`}`,
            { cause: e },
          );
        throw e;
      }
      return scoreCollection(dir);
    });
    attachInit(groups, inits);
  }
  const bArg = str(v, 'baseline');
  let baseline = bArg !== undefined ? groups.findIndex((g) => g.label === bArg) : groups.findIndex((g) => g.arch === 'gpt2');
  if (bArg !== undefined && baseline < 0) throw new UsageError(`--baseline '${bArg}' is not one of the labels (${groups.map((g) => g.label).join(', ')})`);
  if (baseline < 0) baseline = groups.length - 1;
  const svgFile = str(v, 'svg');
  if (svgFile) {
    const dir = path.dirname(path.resolve(svgFile));
    if (!fs.existsSync(dir)) throw new UsageError(`--svg: directory '${dir}' does not exist`);
    writeFileAtomic(svgFile, comparisonSvg(groups, str(v, 'title') ?? 'Interpretability per layer (token-lookup simulator)'));
  }
  if (v.json) {
    console.log(JSON.stringify({ baseline: groups[baseline]?.label ?? null, groups }, null, 2));
    return 0;
  }
  console.log(renderComparison(groups, baseline));
  if (svgFile) console.log(`\nchart: ${svgFile}`);
  return 0;
}
