// crate-ts sae: sparse autoencoders on a hook of a checkpoint (README "Sparse autoencoders"). Subcommands train, eval.
import { parseOptions, intFlag, numFlag } from './options.js';
import { strOpt } from './args.js';
import { guardStdout, stdout } from './output.js';
import { backendOption, resolveBackend } from './backend.js';
import { UsageError } from '../errors.js';
import type { Communicator } from '../distributed/communicator.js';
import { distHelp, openFromFlag, distLine, exitIfPeerLost, distFailure } from './dist.js';
import { trainSae, type SaeProgress } from '../sae/train.js';
import { evalSae } from '../sae/eval.js';
import { fmtDuration } from '../train/progress.js';

const HELP = `usage: crate-ts sae train --checkpoint RUN --layer L [options]
       crate-ts sae train --resume DIR [--tokens N]
       crate-ts sae eval DIR --checkpoint RUN [--data PATH] [--split all|train|val] [--tokens N] [--json]

Sparse autoencoders (the paper's dictionary-learning baseline, spec 7.6) on any hook, saved in
SAELens' layout (cfg.json, sae_weights.safetensors, sparsity.safetensors) plus train.jsonl and
optimizer_state.safetensors for --resume. See README "Sparse autoencoders" for the loss and defaults.

train:
  --checkpoint RUN       run directory or checkpoint file
  --layer L              block whose hook is read
  --hook NAME            per-layer hook (default hook_neurons: GPT-2's mlp.hook_post, CRATE's ista.hook_code)
  --expansion E          features per hook dimension (default 16)
  --arch relu|topk       relu + L1 (the paper's, default) or top-k + AuxK
  --l1 X                 relu: L1 coefficient λ (default 0.328 = 8e-5 × 4096)
  --k K                  topk: active features per token (default min(32, d_sae))
  --dead-tokens N        topk: a feature is dead after N tokens without firing (default min(10M, tokens/10))
  --lr X                 Adam learning rate (default 4e-4 · sqrt(8192 / d_sae))
  --warmup-steps N       linear warm-up, then cosine decay to 0 (default min(1000, steps/20))
  --tokens N             training tokens (default 1000000)
  --batch-tokens N       rows per step (default 4096)
  --buffer-tokens N      shuffled activation buffer (default min(131072, 32 × batch))
  --grad-accum A         micro-batches per step on each rank (default 1): a step's --batch-tokens rows
                         are A × ranks micro-batches, each from its own shard of the buffer and its own
                         share of the windows; their gradients are added in order (1 rank × A·N is
                         bitwise N ranks × A)
  --resample-at S,S,...  relu: steps where dead features are resampled (default 10000,20000,50000,75000,100000)
  --data PATH            text, directory or token file (default: the embedded corpus); the training split is used
  --seed S               (default 0)
  --out DIR              (default sae-L<layer>)
  --resume DIR           continue the run in DIR bitwise (same backend and thread count)
  --save-every N         steps between saves (default 500)
  --stop-at S            save and stop after step S, as a signal would (--resume continues)
  --backend B, --threads N, --cache-dir DIR, --quiet
${distHelp(25)}
                         (each rank reads its own shards of windows; rank 0 writes)

Ctrl-C (SIGINT), SIGTERM and SIGHUP finish the step, save and exit 130, 143 and 129.`;

const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
type StopSignal = keyof typeof SIGNAL_EXIT;

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    console.log(HELP);
    return sub === undefined ? 2 : 0;
  }
  if (sub === 'train') return train(rest);
  if (sub === 'eval') return evaluate(rest);
  throw new UsageError(`unknown subcommand '${sub}' (train, eval)`);
}

function fmtProgress(p: SaeProgress): string {
  const pct = ((100 * p.step) / p.steps).toFixed(1);
  return `step ${p.step}/${p.steps} (${pct}%)  loss ${p.loss.toFixed(4)}  FVU ${p.fvu.toFixed(4)}  L0 ${p.l0.toFixed(1)}  dead ${(100 * p.deadFraction).toFixed(1)}%  lr ${p.lr.toExponential(2)}  ${Math.round(p.tokensPerSec)} tok/s  eta ${fmtDuration(p.eta)}`;
}

async function train(argv: string[]): Promise<number> {
  const v = parseOptions(argv, {
    help: { type: 'boolean', short: 'h' },
    checkpoint: { type: 'string' },
    layer: { type: 'string' },
    hook: { type: 'string' },
    expansion: { type: 'string' },
    arch: { type: 'string' },
    l1: { type: 'string' },
    k: { type: 'string' },
    'dead-tokens': { type: 'string' },
    lr: { type: 'string' },
    'warmup-steps': { type: 'string' },
    tokens: { type: 'string' },
    'batch-tokens': { type: 'string' },
    'buffer-tokens': { type: 'string' },
    'grad-accum': { type: 'string' },
    dist: { type: 'string' },
    'resample-at': { type: 'string' },
    data: { type: 'string' },
    seed: { type: 'string' },
    out: { type: 'string' },
    resume: { type: 'string' },
    'save-every': { type: 'string' },
    'stop-at': { type: 'string' },
    'log-every': { type: 'string' },
    backend: { type: 'string' },
    threads: { type: 'string' },
    'cache-dir': { type: 'string' },
    quiet: { type: 'boolean' },
  });
  guardStdout();
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  const resume = strOpt(v, 'resume');
  const arch = strOpt(v, 'arch');
  if (arch !== undefined && arch !== 'relu' && arch !== 'topk') throw new UsageError(`--arch must be relu or topk, got '${arch}'`);
  const layer = intFlag(v, 'layer', 0);
  if (!resume) {
    if (!strOpt(v, 'checkpoint')) throw new UsageError('--checkpoint is required (or --resume DIR)');
    if (layer === undefined) throw new UsageError('--layer is required');
  }
  const l1 = numFlag(v, 'l1');
  if (l1 !== undefined && l1 < 0) throw new UsageError(`--l1 must be >= 0, got ${l1}`);
  const k = intFlag(v, 'k');
  if (k !== undefined && k <= 0) throw new UsageError(`--k must be a positive integer, got ${k}`);
  const lr = numFlag(v, 'lr');
  if (lr !== undefined && lr <= 0) throw new UsageError(`--lr must be > 0, got ${lr}`);
  const ra = strOpt(v, 'resample-at');
  let resampleAt: number[] | undefined;
  if (ra !== undefined) {
    resampleAt = ra === '' || ra === 'none' ? [] : ra.split(',').map((s) => Number(s.trim()));
    for (const r of resampleAt)
      if (!Number.isInteger(r) || r < 1) throw new UsageError(`--resample-at takes comma-separated positive step numbers, got '${ra}'`);
  }
  const backendName = backendOption(v);
  const { backend, report } = await resolveBackend(backendName, { threads: intFlag(v, 'threads', 1, 256) });
  intFlag(v, 'grad-accum', 1); // checked before any rank starts
  const comm = await openFromFlag(v.dist, backendName);
  try {
    return await trainOn(comm, v, { backend, report, layer, resume, arch, l1, k, lr, resampleAt });
  } catch (e) {
    return distFailure(comm, e, 'sae train');
  } finally {
    comm.close();
  }
}

async function trainOn(
  comm: Communicator,
  v: ReturnType<typeof parseOptions>,
  a: {
    backend: Awaited<ReturnType<typeof resolveBackend>>['backend'];
    report: string;
    layer: number | undefined;
    resume: string | undefined;
    arch: string | undefined;
    l1: number | undefined;
    k: number | undefined;
    lr: number | undefined;
    resampleAt: number[] | undefined;
  },
): Promise<number> {
  const { backend, report, layer, resume, arch, l1, k, lr, resampleAt } = a;
  const quiet = Boolean(v.quiet) || comm.rank !== 0;
  const say = (s: string) => {
    if (!quiet) stdout.write(s + '\n');
  };
  say(report);
  const dl = distLine(comm);
  if (dl) say(dl);
  let caught: StopSignal | null = null;
  const onSignal = (sig: StopSignal) => {
    exitIfPeerLost(comm, (l) => process.stderr.write(l + '\n'), 'sae train');
    if (caught) process.exit(SIGNAL_EXIT[sig]);
    caught = sig;
    say(`${sig}: finishing this step, saving and stopping (send it again to quit at once)`);
  };
  const handlers = (Object.keys(SIGNAL_EXIT) as StopSignal[]).map((sig) => [sig, () => onSignal(sig)] as const);
  for (const [sig, h] of handlers) process.on(sig, h);
  const out = resume ?? strOpt(v, 'out') ?? `sae-L${layer}`;
  try {
    const r = await trainSae({
      checkpoint: strOpt(v, 'checkpoint'),
      layer,
      hook: strOpt(v, 'hook'),
      expansion: intFlag(v, 'expansion', 1),
      arch: arch as 'relu' | 'topk' | undefined,
      l1,
      k,
      deadTokens: intFlag(v, 'dead-tokens', 1),
      lr,
      warmupSteps: intFlag(v, 'warmup-steps', 0),
      tokens: intFlag(v, 'tokens', 1),
      batchTokens: intFlag(v, 'batch-tokens', 1),
      bufferTokens: intFlag(v, 'buffer-tokens', 2),
      gradAccum: intFlag(v, 'grad-accum', 1),
      stopAt: intFlag(v, 'stop-at', 1),
      comm,
      resampleAt,
      data: strOpt(v, 'data'),
      seed: intFlag(v, 'seed', 0),
      out,
      resume: resume !== undefined,
      backend,
      cacheDir: strOpt(v, 'cache-dir'),
      saveEvery: intFlag(v, 'save-every', 0),
      logEvery: intFlag(v, 'log-every', 1),
      onProgress: (p) => say(fmtProgress(p)),
      shouldStop: () => caught !== null,
    });
    if (r.stopped) {
      say(`stopped at step ${r.steps}; saved to ${r.dir}; continue with: crate-ts sae train --resume ${r.dir}`);
      return caught ? SIGNAL_EXIT[caught] : 0;
    }
    say(
      `trained ${r.steps} steps (${r.tokens} tokens) at ${Math.round(r.tokensPerSec)} tokens/s, peak RSS ${(r.peakRssBytes / 2 ** 20).toFixed(0)} MiB; SAE in ${r.dir}`,
    );
    return caught ? SIGNAL_EXIT[caught] : 0;
  } finally {
    for (const [sig, h] of handlers) process.removeListener(sig, h);
  }
}

async function evaluate(args: string[]): Promise<number> {
  const dir = args[0] !== undefined && !args[0].startsWith('-') ? args[0] : undefined;
  const argv = dir === undefined ? args : args.slice(1);
  const v = parseOptions(argv, {
    help: { type: 'boolean', short: 'h' },
    checkpoint: { type: 'string' },
    data: { type: 'string' },
    split: { type: 'string' },
    tokens: { type: 'string' },
    batch: { type: 'string' },
    backend: { type: 'string' },
    threads: { type: 'string' },
    'cache-dir': { type: 'string' },
    json: { type: 'boolean' },
  });
  guardStdout();
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  if (!dir) throw new UsageError('sae eval needs the SAE directory: crate-ts sae eval DIR --checkpoint RUN');
  const ck = strOpt(v, 'checkpoint');
  if (!ck) throw new UsageError('--checkpoint is required');
  const split = strOpt(v, 'split') ?? 'all';
  if (!['all', 'train', 'val'].includes(split)) throw new UsageError(`--split must be all, train or val, got '${split}'`);
  const { backend } = await resolveBackend(backendOption(v), { threads: intFlag(v, 'threads', 1, 256) });
  const r = await evalSae({
    dir,
    checkpoint: ck,
    data: strOpt(v, 'data'),
    split: split as 'all' | 'train' | 'val',
    tokens: intFlag(v, 'tokens', 1),
    batch: intFlag(v, 'batch', 1),
    backend,
    cacheDir: strOpt(v, 'cache-dir'),
  });
  if (v.json) {
    stdout.write(JSON.stringify(r) + '\n');
    return 0;
  }
  const f = (x: number) => (Number.isFinite(x) ? x.toFixed(4) : String(x));
  stdout.write(
    [
      `SAE ${r.sae} (${r.architecture}, d_in ${r.d_in}, d_sae ${r.d_sae}) on ${r.hook}, ${r.tokens} tokens (${r.windows} windows), backend ${r.backend}`,
      `  L0 ${r.l0.toFixed(2)}  FVU ${f(r.fvu)}  MSE ${r.mse.toExponential(3)}  cosine ${f(r.cosine)}  dead ${(100 * r.deadFraction).toFixed(1)}%  dense ${(100 * r.denseFraction).toFixed(1)}%`,
      `  CE clean ${f(r.ceLossClean)}  spliced ${f(r.ceLossSpliced)}  zero-ablated ${f(r.ceLossZeroAbl)}  loss recovered ${f(r.lossRecovered)}`,
    ].join('\n') + '\n',
  );
  return 0;
}
