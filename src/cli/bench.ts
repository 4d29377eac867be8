// crate-ts bench [--backend cpu,reference,...] [--config C-char,...] [--batch N] [--seq N] [--steps N] [--warmup N] [--threads N] [--json]
import { parseOptions, intFlag, numFlag } from './options.js';
import { strOpt } from './args.js';
import { STEP_CONFIGS, GPU_CONFIGS, KERNEL_CONFIGS, benchStep, benchKernel, benchEnvironment, withShape, type BenchRow } from '../bench/bench.js';
import { resolveBackend, backendList } from './backend.js';
import { closest } from './suggest.js';
import { UsageError } from '../errors.js';

const HELP = `usage: crate-ts bench [--backend LIST] [--config LIST] [--batch N] [--seq N] [--steps N] [--warmup N]
                      [--threads N] [--peak-gflops P] [--json]

Times, per backend, the median ms per training step (forward + backward + AdamW) and tokens/s
over --steps timed steps after --warmup, with GFLOP/s from the stated FLOP formula.

  --backend LIST   backends to time, comma-separated: reference, cpu, cuda, auto (default auto:
                   the native backends that load here, cpu and cuda; reference must be asked for:
                   it is float64 TypeScript, for clarity, and takes minutes on the large configs)
  --config LIST    configs to run (default: ${[...STEP_CONFIGS.map((c) => c.name), ...KERNEL_CONFIGS].join(',')})
  --batch N        sequences per training step (default: each config's batch, listed below)
  --seq N          tokens per sequence (default: each config's T, listed below)
  --steps N        timed steps (default 10)
  --warmup N       untimed steps first (default 2)
  --threads N      worker threads of the native backends (default: all cores)
  --peak-gflops P  adds model FLOP utilization (GFLOP/s ÷ P), e.g. 67000 for an H100 SXM's
                   float32 (non-tensor-core) peak (default: none)
  --json           {environment: {date, crate_ts, git_commit, machine: {cpu, cpu_flags, cores, ...}},
                    rows: [{config, backend, threads, batch, seq, msPerStep, samples, tokensPerSec, gflops, flopFormula}]}

Training-step configs:
  ${STEP_CONFIGS.map((c) => `${c.name.padEnd(8)} V ${c.model.vocabSize}, L ${c.model.nLayer}, heads ${c.model.nHead}, d ${c.model.nEmbd}, T ${c.T}, batch ${c.B}`).join('\n  ')}
Kernels: ${KERNEL_CONFIGS.join(', ')} (MSSA block: B 8, T 256, d 512, 8 heads; ISTA block: 2048 tokens,
d 512; matmul: 1024³); --batch and --seq do not apply to them.
The paper's sizes at T = 1024 for a GPU, run only when named:
  ${GPU_CONFIGS.map((c) => `${c.name.padEnd(8)} L ${c.model.nLayer}, heads ${c.model.nHead}, d ${c.model.nEmbd}, T ${c.T}, batch ${c.B}`).join('\n  ')}`;

const COLUMNS = ['config', 'backend', 'threads', 'batch×seq', 'ms/step', 'tokens/s', 'GFLOP/s', 'MFU', 'FLOP per step'] as const;

function formatRow(r: BenchRow): string[] {
  return [
    r.config,
    r.backend,
    String(r.threads ?? '-'),
    r.batch !== undefined ? `${r.batch}×${r.seq}` : '-',
    r.msPerStep.toFixed(2),
    r.tokensPerSec > 0 ? String(Math.round(r.tokensPerSec)) : '-',
    r.gflops.toFixed(1),
    r.mfu !== undefined ? `${(100 * r.mfu).toFixed(1)}%` : '-',
    r.flopFormula,
  ];
}

/** Fixed column widths: the header sets the minimum, numbers are right-aligned. */
const WIDTHS = [12, 9, 7, 9, 10, 9, 8, 6, 0];
const RIGHT = new Set([2, 3, 4, 5, 6, 7]);
export function tableLine(cells: readonly string[]): string {
  return cells
    .map((c, i) => (RIGHT.has(i) ? c.padStart(Math.max(WIDTHS[i], COLUMNS[i].length)) : c.padEnd(Math.max(WIDTHS[i], COLUMNS[i].length))))
    .join('  ')
    .trimEnd();
}

export async function run(argv: string[]): Promise<number> {
  const v = parseOptions(argv, {
    backend: { type: 'string' },
    config: { type: 'string' },
    steps: { type: 'string' },
    warmup: { type: 'string' },
    batch: { type: 'string' },
    seq: { type: 'string' },
    threads: { type: 'string' },
    'peak-gflops': { type: 'string' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  const steps = intFlag(v, 'steps', 1) ?? 10,
    warmup = intFlag(v, 'warmup', 0) ?? 2;
  const threads = intFlag(v, 'threads', 1, 256);
  const batch = intFlag(v, 'batch', 1),
    seq = intFlag(v, 'seq', 1, 1 << 16);
  const peak = numFlag(v, 'peak-gflops');
  if (peak !== undefined && !(peak > 0)) throw new UsageError(`--peak-gflops must be positive, got ${peak}`);
  const defaults = [...STEP_CONFIGS.map((c) => c.name), ...KERNEL_CONFIGS];
  const known = [...defaults, ...GPU_CONFIGS.map((c) => c.name)];
  const configs = (strOpt(v, 'config') ?? defaults.join(','))
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const c of configs) {
    if (!known.includes(c)) {
      const guess = closest(c, known);
      throw new UsageError(`--config: unknown config '${c}'${guess ? ` (did you mean '${guess}'?)` : ''}; known: ${known.join(', ')}`);
    }
  }
  const asked = backendList(v);
  const explicit = !(asked.length === 1 && asked[0] === 'auto');
  const names = [...new Set(asked.flatMap((n) => (n === 'auto' ? ['cpu', 'cuda'] : [n])))];

  const env = benchEnvironment();
  if (!v.json) {
    const m = env.machine;
    console.log(`crate-ts ${env.crate_ts}${env.git_commit ? ` (commit ${env.git_commit.slice(0, 12)})` : ''}, ${env.date}`);
    console.log(`machine: ${m.cpu}, ${m.cores} cores, flags ${m.cpu_flags.join(' ') || 'unknown'}; ${m.os}, node ${m.node}`);
    console.log(`median of ${steps} timed steps after ${warmup} warm-up steps`);
    console.log('');
    console.log(tableLine(COLUMNS));
  }
  const rows: BenchRow[] = [];
  const skipped: { backend: string; reason: string }[] = [];
  for (const name of names) {
    let backend;
    try {
      backend = (await resolveBackend(name, { threads })).backend;
    } catch (e) {
      if (explicit && asked.includes(name as never)) throw e;
      skipped.push({ backend: name, reason: (e as Error).message });
      if (!v.json) console.log(`(skipping ${name}: ${(e as Error).message})`);
      continue;
    }
    const t = (backend as { threads?: () => number }).threads?.() ?? threads;
    for (const c of configs) {
      const sc = [...STEP_CONFIGS, ...GPU_CONFIGS].find((s) => s.name === c);
      const r = sc
        ? benchStep(backend, withShape(sc, batch, seq), { warmup, steps, threads: t })
        : benchKernel(backend, c as (typeof KERNEL_CONFIGS)[number], { warmup, steps, threads: t });
      if (peak) r.mfu = r.gflops / peak;
      rows.push(r);
      if (!v.json) console.log(tableLine(formatRow(r)));
    }
  }
  if (v.json) console.log(JSON.stringify({ environment: env, steps, warmup, skipped, rows }, null, 1));
  return 0;
}
