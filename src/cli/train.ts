// crate-ts train: train a CRATE (or GPT-2 baseline) language model. With no arguments it trains a
// small byte-level CRATE on the embedded Moby-Dick corpus on the best available backend.
import { parse, intOpt, numOpt, strOpt } from './args.js';
import { train, RUN_DEFAULTS, type TrainRequest } from '../train/trainer.js';
import { PRESETS, type Arch } from '../model/config.js';
import type { BackendChoice } from '../backend/select.js';

function describeDefault(b: 'reference' | 'cpu'): string {
  const m = RUN_DEFAULTS[b].model;
  const over = [m.nLayer !== undefined ? `${m.nLayer} layer` : '', `seq ${m.seq}`].filter(Boolean).join(', ');
  return `${m.preset} (${over})`;
}

const HELP = `usage: crate-ts train [options]

Trains a language model and saves checkpoints (safetensors, PyTorch parameter names) and a loss
chart (loss.svg) in --out. With no options: a small byte-level CRATE on the embedded Moby-Dick
corpus, on the best available backend (defaults per backend below), in a few minutes.

model
  --preset NAME        ${Object.keys(PRESETS).join(', ')}
                       (default: ${describeDefault('reference')} on the reference backend,
                       ${describeDefault('cpu')} on cpu)
  --arch ARCH          crate | crate-complete | gpt2 (default crate)
  --tokenizer NAME     byte | gpt2 (default: byte for byte-level presets, else gpt2)
  --n-layer N, --n-head N, --n-embd N   override the preset's size
data
  --data PATH          a text file (.gz ok), a directory of text files, a nanoGPT uint16 token file
                       (train.bin; a val.bin beside it is the validation split), or a directory
                       holding train.bin/val.bin (default: the embedded Moby-Dick)
  --val-fraction F     last fraction of tokens held out for validation (default 0.1)
  --cache-dir DIR      tokenized-data cache (default $CRATE_TS_CACHE or ~/.cache/crate-ts)
run
  --backend NAME       reference | cpu | cuda | auto (default auto: cuda, else cpu, else reference)
  --threads N          worker threads for native backends
  --steps N            optimizer steps (default ${RUN_DEFAULTS.reference.hyper.steps} on reference, ${RUN_DEFAULTS.cpu.hyper.steps} on cpu)
  --batch N            sequences per micro-batch (default ${RUN_DEFAULTS.reference.hyper.batch})
  --seq N              tokens per sequence = the model's block size (default: the preset's)
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
  --eval-every N       validation loss every N steps (0 = only at the end)
  --eval-windows N     validation windows per evaluation (default ${RUN_DEFAULTS.reference.hyper.evalWindows} on reference, ${RUN_DEFAULTS.cpu.hyper.evalWindows} on cpu)
  --save-every N       checkpoint every N steps (0 = only at the end); Ctrl-C also saves
  --log-every N        a plain log line every N steps when stdout is not a terminal
  --resume PATH        continue from a checkpoint (or a run directory): same hyperparameters unless given
  --stop-at N          stop and save after step N as if interrupted (the schedule still spans --steps)
  --json-log FILE      one JSON object per step / evaluation / summary
  --sample-tokens N    tokens of sample text printed at the end (0 = none)
  --sample-prompt TEXT prompt for that sample (default "The ")
  --quiet              print only errors
`;

export async function run(argv: string[]): Promise<number> {
  const v = parse(argv, {
    help: { type: 'boolean', short: 'h' },
    preset: { type: 'string' }, arch: { type: 'string' }, tokenizer: { type: 'string' },
    'n-layer': { type: 'string' }, 'n-head': { type: 'string' }, 'n-embd': { type: 'string' },
    data: { type: 'string' }, 'val-fraction': { type: 'string' }, 'cache-dir': { type: 'string' },
    backend: { type: 'string' }, threads: { type: 'string' },
    steps: { type: 'string' }, batch: { type: 'string' }, seq: { type: 'string' }, 'grad-accum': { type: 'string' },
    lr: { type: 'string' }, 'min-lr': { type: 'string' }, warmup: { type: 'string' }, 'weight-decay': { type: 'string' },
    clip: { type: 'string' }, seed: { type: 'string' },
    out: { type: 'string' }, 'eval-every': { type: 'string' }, 'eval-windows': { type: 'string' }, 'save-every': { type: 'string' },
    'log-every': { type: 'string' }, resume: { type: 'string' }, 'stop-at': { type: 'string' }, 'json-log': { type: 'string' },
    'sample-tokens': { type: 'string' }, 'sample-prompt': { type: 'string' }, quiet: { type: 'boolean' },
  });
  if (v.help) { console.log(HELP); return 0; }
  const optInt = (name: string, min: number): number | undefined => (v[name] === undefined ? undefined : intOpt(v, name, 0, min));
  const optNum = (name: string): number | undefined => (v[name] === undefined ? undefined : numOpt(v, name, 0));
  const arch = strOpt(v, 'arch');
  if (arch !== undefined && !['crate', 'crate-complete', 'gpt2'].includes(arch)) throw new Error(`--arch must be crate, crate-complete or gpt2, got '${arch}'`);
  const backend = strOpt(v, 'backend');
  if (backend !== undefined && !['reference', 'cpu', 'cuda', 'auto'].includes(backend)) throw new Error(`--backend must be reference, cpu, cuda or auto, got '${backend}'`);

  const req: TrainRequest = {
    preset: strOpt(v, 'preset'), arch: arch as Arch | undefined, tokenizer: strOpt(v, 'tokenizer'),
    nLayer: optInt('n-layer', 1), nHead: optInt('n-head', 1), nEmbd: optInt('n-embd', 1),
    data: strOpt(v, 'data'), valFraction: optNum('val-fraction'), cacheDir: strOpt(v, 'cache-dir'),
    backend: backend as BackendChoice | undefined, threads: optInt('threads', 0),
    steps: optInt('steps', 1), batch: optInt('batch', 1), seq: optInt('seq', 1), gradAccum: optInt('grad-accum', 1),
    lr: optNum('lr'), minLr: optNum('min-lr'), warmup: optInt('warmup', 0), weightDecay: optNum('weight-decay'),
    clip: optNum('clip'), seed: optInt('seed', 0),
    out: strOpt(v, 'out'), evalEvery: optInt('eval-every', 0), evalWindows: optInt('eval-windows', 1), saveEvery: optInt('save-every', 0),
    logEvery: optInt('log-every', 0), resume: strOpt(v, 'resume'), stopAt: optInt('stop-at', 1), jsonLog: strOpt(v, 'json-log'),
    sampleTokens: optInt('sample-tokens', 0), samplePrompt: strOpt(v, 'sample-prompt'), quiet: Boolean(v.quiet),
    handleSigint: true,
  };
  // Drop undefined keys so defaults (or the checkpoint's values) apply.
  for (const k of Object.keys(req) as (keyof TrainRequest)[]) if (req[k] === undefined) delete req[k];
  const r = await train(req);
  return r.interrupted && req.stopAt === undefined ? 130 : 0;
}
