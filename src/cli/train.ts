// crate-ts train: train a CRATE (or GPT-2 baseline) language model. With no arguments it trains a
// small byte-level CRATE on the embedded Moby-Dick corpus on the best available backend.
//
// This module owns everything a terminal user sees: option parsing and the per-backend defaults,
// the progress bar and summary, signals (SIGINT / SIGTERM / SIGHUP: finish the step, save, exit
// 128 + signal number; a second one exits at once), a closed stdout (training goes on silently to
// the end and saves), loss.svg and the final sample. The training itself is the Trainer's.
import { parseOptions, intFlag, numFlag, withFlagNames } from './options.js';
import { stdout, guardStdout } from './output.js';
import { Trainer, driveRun, type TrainRequest } from '../train/trainer.js';
import { RUN_DEFAULTS, MAX_THREADS } from '../train/defaults.js';
import { Progress } from '../train/progress.js';
import { PRESETS, type Arch } from '../model/config.js';
import { archList, isArch } from '../model/archs.js';
import type { BackendChoice } from '../backend/select.js';
import { UsageError } from '../errors.js';
import type { Communicator } from '../distributed/communicator.js';
import { checkBackendName } from './backend.js';
import { distHelp, openFromFlag, distLine, exitIfPeerLost, distFailure } from './dist.js';
import { encodingFlag } from './options.js';
import { TEXT_ENCODINGS } from '../data/corpus.js';

function describeDefault(b: 'reference' | 'cpu'): string {
  const m = RUN_DEFAULTS[b].model;
  const over = [m.nLayer !== undefined ? `${m.nLayer} layer` : '', `seq ${m.seq}`].filter(Boolean).join(', ');
  return `${m.preset} (${over})`;
}

const HELP = `usage: crate-ts train [options]

Trains a language model and writes a run directory (--out): model.safetensors (the weights under
PyTorch names, self-describing), config.json, optimizer.safetensors (AdamW state for --resume),
train.jsonl (the JSON log with the loss history) and loss.svg. With no options: a small byte-level CRATE on the embedded Moby-Dick
corpus, on the best available backend (defaults per backend below), in a few minutes.

model
  --preset NAME        ${Object.keys(PRESETS).join(', ')}
                       (default: ${describeDefault('reference')} on the reference backend,
                       ${describeDefault('cpu')} on cpu)
  --arch ARCH          crate | crate-complete | gpt2 (default crate)
  --tokenizer NAME     byte | gpt2 | char (default: char for a nanoGPT dataset with meta.pkl,
                       byte for byte-level presets, else gpt2)
  --n-layer N, --n-head N, --n-embd N   override the preset's size (default: the preset's)
data
  --data PATH          a text file (.gz ok), a directory of text files, a nanoGPT uint16 token file
                       (train.bin; a val.bin beside it is the validation split), or a directory
                       holding train.bin/val.bin and, for character-level data, meta.pkl
                       (default: the embedded Moby-Dick)
  --encoding NAME      the text files' encoding: ${TEXT_ENCODINGS.join(' | ')} (default utf-8; other
                       encodings and invalid UTF-8 are refused with the iconv command that converts)
  --val-fraction F     last fraction of tokens held out for validation (default 0.1)
  --cache-dir DIR      tokenized-data cache (default $CRATE_TS_CACHE or ~/.cache/crate-ts)
run
  --backend NAME       reference | cpu | cuda | auto (default auto: cuda, else cpu, else reference;
                       with --resume, the checkpoint's backend)
  --threads N          worker threads for native backends, 1..${MAX_THREADS} (default: all cores)
${distHelp(23)}
                       (each rank draws its own micro-batches; --grad-accum is per rank; rank 0 writes)
  --dist-reduce HOW    ordered | sum: how ranks sum gradients (default ordered: bitwise equal to one
                       process with --grad-accum ranks x A; sum: one all-reduce per step, fewer bytes
                       with many ranks, not bitwise)
  --dist-bucket-kb N   gradient bucket size: each bucket's reduction starts as soon as the backward has
                       finished it, while the layers below are still computed (default 256; 0: one
                       reduction of the whole buffer after each backward, no overlap; same result)
  --steps N            optimizer steps (default ${RUN_DEFAULTS.reference.hyper.steps} on reference, ${RUN_DEFAULTS.cpu.hyper.steps} on cpu); 0 writes the
                       seed's initial model as a normal run (evaluated, resumable): the random-init
                       control for neurons compare --baseline-init
  --batch N            sequences per micro-batch (default ${RUN_DEFAULTS.cpu.hyper.batch}, or fewer when the preset's T is longer than
                       the default model's: the same ${(RUN_DEFAULTS.cpu.hyper.batch * RUN_DEFAULTS.cpu.model.seq).toLocaleString('en-US')} tokens per step on cpu, printed);
                       a run that cannot fit in memory is refused before anything is allocated
  --seq N              tokens per sequence = the model's block size T (default: the preset's, e.g.
                       1024 for the paper's 1L/2L/3L/S/B; only a run without --preset shortens it
                       for speed, and says so); a shorter --seq is printed beside the preset's T
  --grad-accum N       micro-batches per step (default 1)
  --lr X               peak learning rate (default ${RUN_DEFAULTS.reference.hyper.lr} on reference, ${RUN_DEFAULTS.cpu.hyper.lr} on cpu);
                       --min-lr X: the end of the cosine decay (default lr/10)
  --warmup N           linear warm-up steps (default ${RUN_DEFAULTS.reference.hyper.warmup} on reference, ${RUN_DEFAULTS.cpu.hyper.warmup} on cpu;
                       at most steps/10 when --steps is given)
  --weight-decay X     AdamW weight decay on >=2-D tensors (default 0.1)
  --clip X             global gradient-norm clip (default 1.0; 0 = off)
  --seed N             seed for initialization and data order (default 1337)
output
  --out DIR            run directory (default runs/<arch>-<preset>-<time>; with --resume, the checkpoint's)
  --eval-every N       validation loss every N steps, 0 = only at the end (default ${RUN_DEFAULTS.reference.hyper.evalEvery} on
                       reference, ${RUN_DEFAULTS.cpu.hyper.evalEvery} on cpu, ${RUN_DEFAULTS.cuda.hyper.evalEvery} on cuda)
  --eval-windows N     validation windows per evaluation (default ${RUN_DEFAULTS.reference.hyper.evalWindows} on reference, ${RUN_DEFAULTS.cpu.hyper.evalWindows} on cpu)
  --save-every N       checkpoint every N steps, 0 = only at the end (default ${RUN_DEFAULTS.reference.hyper.saveEvery} on
                       reference, ${RUN_DEFAULTS.cpu.hyper.saveEvery} on cpu, ${RUN_DEFAULTS.cuda.hyper.saveEvery} on cuda)
  --log-every N        a plain log line every N steps when stdout is not a terminal
                       (default: about 20 lines per run, steps/20)
  --resume PATH        continue a run directory (or a checkpoint file, also a pre-0.2 ckpt.safetensors):
                       same hyperparameters unless given; a finished run is refused (exit 2)
                       unless --steps extends it
  --stop-at N          stop and save after step N as if interrupted (the schedule still spans
                       --steps; default: run to the end)
  --json-log FILE      a copy of the run's JSON log (always written as train.jsonl in the run
                       directory): the resolved configuration, version, backend and machine first,
                       then one object per step / evaluation / checkpoint, and a summary
  --sample-tokens N    tokens of sample text printed at the end, 0 = none (default 300 for byte and
                       char tokenizers, 80 for gpt2)
  --sample-prompt TEXT prompt for that sample (default "The ")
  --quiet              print only errors

Ctrl-C (SIGINT), SIGTERM and SIGHUP finish the current step, save the checkpoint and exit with
130, 143 and 129; a second signal exits at once (the last checkpoint saved stays intact). If
stdout is closed early (crate-ts train | head), training goes on silently to the end and saves.`;

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  preset: { type: 'string' },
  arch: { type: 'string' },
  tokenizer: { type: 'string' },
  'n-layer': { type: 'string' },
  'n-head': { type: 'string' },
  'n-embd': { type: 'string' },
  data: { type: 'string' },
  'val-fraction': { type: 'string' },
  encoding: { type: 'string' },
  'cache-dir': { type: 'string' },
  backend: { type: 'string' },
  threads: { type: 'string' },
  steps: { type: 'string' },
  batch: { type: 'string' },
  seq: { type: 'string' },
  'grad-accum': { type: 'string' },
  lr: { type: 'string' },
  'min-lr': { type: 'string' },
  warmup: { type: 'string' },
  'weight-decay': { type: 'string' },
  clip: { type: 'string' },
  seed: { type: 'string' },
  out: { type: 'string' },
  'eval-every': { type: 'string' },
  'eval-windows': { type: 'string' },
  'save-every': { type: 'string' },
  'log-every': { type: 'string' },
  resume: { type: 'string' },
  'stop-at': { type: 'string' },
  'json-log': { type: 'string' },
  'sample-tokens': { type: 'string' },
  'sample-prompt': { type: 'string' },
  quiet: { type: 'boolean' },
  dist: { type: 'string' },
  'dist-reduce': { type: 'string' },
  'dist-bucket-kb': { type: 'string' },
} as const;

/** Exit codes of the signals that stop a run: 128 + the signal number. */
const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
type StopSignal = keyof typeof SIGNAL_EXIT;

/** The TrainRequest the flags ask for (ranges the library checks are reported with the flag's name). */
export function requestFromArgs(v: Record<string, string | boolean | undefined>): TrainRequest {
  const str = (k: string) => (typeof v[k] === 'string' ? (v[k] as string) : undefined);
  const arch = str('arch');
  if (arch !== undefined && !isArch(arch)) throw new UsageError(`--arch must be ${archList()}, got '${arch}'`);
  const backend = v.backend === undefined ? undefined : checkBackendName(String(v.backend));
  const req: TrainRequest = {
    preset: str('preset'),
    arch: arch as Arch | undefined,
    tokenizer: str('tokenizer'),
    nLayer: intFlag(v, 'n-layer', 1),
    nHead: intFlag(v, 'n-head', 1),
    nEmbd: intFlag(v, 'n-embd', 1),
    data: str('data'),
    encoding: encodingFlag(v),
    valFraction: numFlag(v, 'val-fraction'),
    cacheDir: str('cache-dir'),
    backend: backend as BackendChoice | undefined,
    threads: intFlag(v, 'threads', 1, MAX_THREADS),
    steps: intFlag(v, 'steps'),
    batch: intFlag(v, 'batch'),
    seq: intFlag(v, 'seq'),
    gradAccum: intFlag(v, 'grad-accum'),
    lr: numFlag(v, 'lr'),
    minLr: numFlag(v, 'min-lr'),
    warmup: intFlag(v, 'warmup'),
    weightDecay: numFlag(v, 'weight-decay'),
    clip: numFlag(v, 'clip'),
    seed: intFlag(v, 'seed'),
    out: str('out'),
    evalEvery: intFlag(v, 'eval-every'),
    evalWindows: intFlag(v, 'eval-windows'),
    saveEvery: intFlag(v, 'save-every'),
    logEvery: intFlag(v, 'log-every'),
    resume: str('resume'),
    stopAt: intFlag(v, 'stop-at'),
    jsonLog: str('json-log'),
    defaults: RUN_DEFAULTS,
  };
  // Drop undefined keys so defaults (or the checkpoint's values) apply.
  for (const k of Object.keys(req) as (keyof TrainRequest)[]) if (req[k] === undefined) delete req[k];
  return req;
}

export async function run(argv: string[]): Promise<number> {
  const v = parseOptions(argv, OPTIONS);
  guardStdout();
  if (v.help) {
    stdout.write(HELP + '\n');
    return 0;
  }
  const req = requestFromArgs(v);
  intFlag(v, 'sample-tokens', 0); // checked before any rank starts
  const reduce = v['dist-reduce'];
  if (reduce !== undefined && reduce !== 'ordered' && reduce !== 'sum') throw new UsageError(`--dist-reduce must be ordered or sum, got '${String(reduce)}'`);
  intFlag(v, 'dist-bucket-kb', 0, 1 << 21);
  const comm = await openFromFlag(v.dist, req.backend);
  try {
    return await runOn(comm, req, v);
  } catch (e) {
    return distFailure(comm, e, 'train');
  } finally {
    comm.close();
  }
}

async function runOn(comm: Communicator, req: TrainRequest, v: Record<string, string | boolean | undefined>): Promise<number> {
  const sampleTokens = intFlag(v, 'sample-tokens', 0);
  const samplePrompt = typeof v['sample-prompt'] === 'string' ? v['sample-prompt'] : undefined;
  const quiet = Boolean(v.quiet) || comm.rank !== 0;
  const t0 = performance.now();

  const progress = new Progress(stdout);
  const say = (s: string) => {
    if (!quiet) progress.line(s);
  };
  let trainer: Trainer;
  try {
    const kb = intFlag(v, 'dist-bucket-kb', 0, 1 << 21);
    trainer = await Trainer.create({
      ...req,
      comm,
      reduce: v['dist-reduce'] as 'ordered' | 'sum' | undefined,
      bucketBytes: kb === undefined ? undefined : kb * 1024,
    });
  } catch (e) {
    throw withFlagNames(e);
  }
  const dl = distLine(comm);
  if (dl) say(dl);

  // ---- signals: the first finishes the step, saves and exits 128+n; a second exits at once --------
  let caught: StopSignal | null = null;
  const onSignal = (sig: StopSignal) => {
    exitIfPeerLost(comm, (l) => process.stderr.write(l + '\n'), 'train');
    if (caught) {
      progress.line(`second ${sig}: exiting at once without saving (the last checkpoint saved is intact)`);
      process.exit(SIGNAL_EXIT[sig]);
    }
    caught = sig;
    trainer.stop();
    progress.line(`${sig === 'SIGINT' ? 'Ctrl-C (SIGINT)' : sig}: finishing this step, saving a checkpoint and stopping (send it again to quit at once)`);
  };
  const handlers = (Object.keys(SIGNAL_EXIT) as StopSignal[]).map((sig) => [sig, () => onSignal(sig)] as const);
  for (const [sig, h] of handlers) process.on(sig, h);

  try {
    const r = await driveRun(trainer, {
      t0,
      log: say,
      onStep: quiet ? null : (s, logged) => progress.update(s, logged),
      afterRun: () => progress.done(),
      stopAt: req.stopAt,
      sampleTokens,
      samplePrompt,
      // a signal during the final evaluation and save lets them finish, and skips the sample
      wantSample: () => !caught && !quiet,
    });
    if (r.interrupted) say(`continue with: crate-ts train --resume ${trainer.out}`);
    return caught ? SIGNAL_EXIT[caught] : 0;
  } catch (e) {
    throw withFlagNames(e);
  } finally {
    for (const [sig, h] of handlers) process.removeListener(sig, h);
    trainer.free();
  }
}
