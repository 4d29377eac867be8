// Run-time backend selection (README "Backends"): an explicit choice wins; 'auto' tries CUDA
// (if the native addon exposes a CUDA backend and a device answers), then the C++ CPU backend, then
// the float64 reference. The choice, and why every skipped backend was skipped, is always reported.
import type { Backend } from './types.js';
import { ReferenceBackend } from './reference.js';
import { CpuBackend } from './cpu.js';
import { CudaBackend } from './cuda.js';
import { UsageError } from '../errors.js';

export type BackendChoice = 'reference' | 'cpu' | 'cuda' | 'auto';

/** Every backend name selectBackend accepts. */
export const BACKEND_CHOICES: readonly BackendChoice[] = ['reference', 'cpu', 'cuda', 'auto'];

export interface SelectedBackend {
  backend: Backend<unknown>;
  name: 'reference' | 'cpu' | 'cuda';
  /** One line saying which backend was chosen and why the others were skipped. */
  reason: string;
}

export interface SelectOptions {
  /** Worker threads for native backends (0 or undefined: the backend's default). */
  threads?: number;
}

type Factory = (opts: SelectOptions) => Backend<unknown>;

// The native backends are imported statically; their constructors load the addon lazily and throw
// (with the reason) when it is missing, was built without CUDA, or no device answers.
const loadCpu: Factory = (opts) => new CpuBackend(opts.threads ? { threads: opts.threads } : {});
const loadCuda: Factory = () => new CudaBackend();

function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split('\n')[0];
}

/**
 * Pick a backend. 'auto' (or the CRATE_TS_BACKEND environment variable when name is 'auto')
 * tries cuda, cpu, reference in that order; an explicit name either gives that backend or throws
 * a clear error saying why it is unavailable.
 */
export async function selectBackend(name: BackendChoice = 'auto', opts: SelectOptions = {}): Promise<SelectedBackend> {
  let choice = name;
  const env = process.env.CRATE_TS_BACKEND;
  let via = '';
  if (choice === 'auto' && env && env !== 'auto') {
    if (!(BACKEND_CHOICES as readonly string[]).includes(env)) throw new UsageError(`CRATE_TS_BACKEND must be reference, cpu, cuda or auto, got '${env}'`);
    choice = env as BackendChoice;
    via = ' (from CRATE_TS_BACKEND)';
  }
  if (!(BACKEND_CHOICES as readonly string[]).includes(choice)) throw new UsageError(`unknown backend '${choice}': one of reference, cpu, cuda, auto`);

  if (choice === 'reference') return { backend: new ReferenceBackend(), name: 'reference', reason: `reference (float64 TypeScript): requested${via}` };
  if (choice === 'cpu' || choice === 'cuda') {
    const load = choice === 'cpu' ? loadCpu : loadCuda;
    try {
      const backend = load(opts);
      return { backend, name: choice, reason: `${choice}: requested${via}` };
    } catch (e) {
      throw new Error(`backend '${choice}' was requested${via} but is unavailable: ${firstLine(e)}`);
    }
  }

  const skipped: string[] = [];
  for (const [n, load] of [
    ['cuda', loadCuda],
    ['cpu', loadCpu],
  ] as const) {
    try {
      const backend = load(opts);
      return { backend, name: n, reason: `${n}: chosen by auto${skipped.length ? `; skipped ${skipped.join('; ')}` : ''}` };
    } catch (e) {
      // A setting the user made (CRATE_TS_CPU_KERNEL naming a kernel this CPU lacks) is an error to
      // report, not a reason to fall back silently to a slower backend.
      if (e instanceof UsageError) throw e;
      skipped.push(`${n} (${firstLine(e)})`);
    }
  }
  return { backend: new ReferenceBackend(), name: 'reference', reason: `reference (float64 TypeScript): chosen by auto; skipped ${skipped.join('; ')}` };
}
