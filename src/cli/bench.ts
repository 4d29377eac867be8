// crate-ts bench [--backend cpu,reference,...] [--config C-char,...] [--steps N] [--warmup N] [--threads N] [--json]
import { parse, intOpt, numOpt, strOpt } from './args.js';
import { STEP_CONFIGS, GPU_CONFIGS, KERNEL_CONFIGS, benchStep, benchKernel, type BenchRow } from '../bench/bench.js';
import { resolveBackend } from './backend.js';

const HELP = `usage: crate-ts bench [--backend LIST] [--config LIST] [--steps N] [--warmup N] [--threads N] [--json]

Times, per backend, the median ms per training step (forward + backward + AdamW) and tokens/s
over --steps timed steps (default 10) after --warmup (default 2), with GFLOP/s from the stated
FLOP formula, for the configs
  ${STEP_CONFIGS.map((c) => `${c.name} (V ${c.model.vocabSize}, L ${c.model.nLayer}, heads ${c.model.nHead}, d ${c.model.nEmbd}, T ${c.T}, batch ${c.B})`).join('\n  ')}
and the kernels ${KERNEL_CONFIGS.join(', ')} (MSSA block: B 8, T 256, d 512, 8 heads;
ISTA block: 2048 tokens, d 512; matmul: 1024³). The paper's sizes at T = 1024 for a GPU run only
when named: ${GPU_CONFIGS.map((c) => c.name).join(', ')} (1L/2L/3L: d 128, 4 heads, batch 16; S/B: d 768,
12 heads, 6/12 layers, batch 8). --peak-gflops P adds model FLOP utilization (GFLOP/s ÷ P), e.g.
67000 for an H100 SXM's float32 (non-tensor-core) peak.
--backend defaults to the native backends that load here (cpu, cuda); 'reference' must be asked
for (it is float64 TypeScript, for clarity, and takes minutes on the large configs).`;

export async function run(argv: string[]): Promise<number> {
  const v = parse(argv, {
    backend: { type: 'string' }, config: { type: 'string' }, steps: { type: 'string' }, warmup: { type: 'string' },
    threads: { type: 'string' }, 'peak-gflops': { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  });
  if (v.help) { console.log(HELP); return 0; }
  const steps = intOpt(v, 'steps', 10, 1), warmup = intOpt(v, 'warmup', 2, 0);
  const threads = v.threads !== undefined ? intOpt(v, 'threads', 0, 1) : undefined;
  const peak = v['peak-gflops'] !== undefined ? numOpt(v, 'peak-gflops', 0) : undefined;
  const defaults = [...STEP_CONFIGS.map((c) => c.name), ...KERNEL_CONFIGS];
  const known = [...defaults, ...GPU_CONFIGS.map((c) => c.name)];
  const configs = (strOpt(v, 'config') ?? defaults.join(',')).split(',').map((s) => s.trim()).filter(Boolean);
  for (const c of configs) if (!known.includes(c)) throw new Error(`unknown --config '${c}'; known: ${known.join(', ')}`);
  const explicit = strOpt(v, 'backend');
  const names = explicit ? explicit.split(',').map((s) => s.trim()) : ['cpu', 'cuda'];

  const rows: BenchRow[] = [];
  for (const name of names) {
    let backend;
    try {
      backend = (await resolveBackend(name, { threads })).backend;
    } catch (e) {
      if (explicit) throw e;
      if (!v.json) console.log(`(skipping ${name}: ${(e as Error).message})`);
      continue;
    }
    const t = (backend as { threads?: () => number }).threads?.() ?? threads;
    for (const c of configs) {
      const sc = [...STEP_CONFIGS, ...GPU_CONFIGS].find((s) => s.name === c);
      const r = sc ? benchStep(backend, sc, { warmup, steps, threads: t }) : benchKernel(backend, c as (typeof KERNEL_CONFIGS)[number], { warmup, steps, threads: t });
      if (peak) r.mfu = r.gflops / peak;
      rows.push(r);
      if (!v.json) {
        console.log(`${r.config.padEnd(12)} ${r.backend.padEnd(9)} threads ${String(r.threads ?? '-').padEnd(3)} ${r.msPerStep.toFixed(2).padStart(10)} ms  ${r.tokensPerSec > 0 ? `${Math.round(r.tokensPerSec).toString().padStart(8)} tok/s` : '            '}  ${r.gflops.toFixed(1).padStart(7)} GFLOP/s${r.mfu !== undefined ? `  MFU ${(100 * r.mfu).toFixed(1)}%` : ''}   [FLOP = ${r.flopFormula}]`);
      }
    }
  }
  if (v.json) console.log(JSON.stringify({ rows }, null, 1));
  return 0;
}
