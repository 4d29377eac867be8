// Run-time backend selection (DESIGN.md principle 4): an explicit choice wins; 'auto' tries CUDA
// (if the native addon exposes a CUDA backend and a device answers), then the C++ CPU backend, then
// the float64 reference. The choice, and why every skipped backend was skipped, is always reported.
import type { Backend } from './types.js';
import { ReferenceBackend } from './reference.js';

export type BackendChoice = 'reference' | 'cpu' | 'cuda' | 'auto';

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

type Factory = (opts: SelectOptions) => Promise<Backend<unknown>>;

// Module paths are held in variables so the compiler does not require the native modules to exist:
// they are built by other parts of the project and may be missing in a given checkout.
const CPU_MODULE = '../accelerated/cpu.js';
const CUDA_MODULES = ['../accelerated/cuda.js', '../accelerated/index.js'];

/** Instantiate an exported backend: a factory function or a class, whichever the module offers. */
async function instantiate(mod: Record<string, unknown>, names: string[], opts: SelectOptions): Promise<Backend<unknown> | null> {
  for (const n of names) {
    const f = mod[n];
    if (typeof f !== 'function') continue;
    const arg = opts.threads ? { threads: opts.threads } : {};
    // A class constructor can't be called without new; a factory may be async.
    const isClass = /^class\b/.test(Function.prototype.toString.call(f));
    const made = isClass ? new (f as new (o: unknown) => Backend<unknown>)(arg) : await (f as (o: unknown) => unknown)(arg);
    if (made && typeof made === 'object' && typeof (made as Backend<unknown>).alloc === 'function') return made as Backend<unknown>;
  }
  return null;
}

const loadCpu: Factory = async (opts) => {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(CPU_MODULE)) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`the native CPU backend is not available (${firstLine(e)})`);
  }
  const be = await instantiate(mod, ['createCpuBackend', 'loadCpuBackend', 'CpuBackend'], opts);
  if (!be) throw new Error('src/accelerated/cpu exports no CpuBackend');
  return be;
};

const loadCuda: Factory = async (opts) => {
  const errors: string[] = [];
  for (const spec of CUDA_MODULES) {
    let mod: Record<string, unknown>;
    try {
      mod = (await import(spec)) as Record<string, unknown>;
    } catch (e) {
      errors.push(firstLine(e));
      continue;
    }
    const be = await instantiate(mod, ['createCudaBackend', 'loadCudaBackend', 'CudaBackend'], opts);
    if (be) return be;
  }
  throw new Error(errors.length === CUDA_MODULES.length ? 'the native addon exposes no CUDA backend' : 'src/accelerated exports no CUDA backend');
};

function firstLine(e: unknown): string {
  if ((e as { code?: string })?.code === 'ERR_MODULE_NOT_FOUND') return 'not part of this build';
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
    if (!['reference', 'cpu', 'cuda'].includes(env)) throw new Error(`CRATE_TS_BACKEND must be reference, cpu, cuda or auto, got '${env}'`);
    choice = env as BackendChoice;
    via = ' (from CRATE_TS_BACKEND)';
  }
  if (!['reference', 'cpu', 'cuda', 'auto'].includes(choice)) throw new Error(`--backend must be reference, cpu, cuda or auto, got '${choice}'`);

  if (choice === 'reference') return { backend: new ReferenceBackend(), name: 'reference', reason: `reference (float64 TypeScript): requested${via}` };
  if (choice === 'cpu' || choice === 'cuda') {
    const load = choice === 'cpu' ? loadCpu : loadCuda;
    try {
      const backend = await load(opts);
      return { backend, name: choice, reason: `${choice}: requested${via}` };
    } catch (e) {
      throw new Error(`backend '${choice}' was requested${via} but is unavailable: ${firstLine(e)}`);
    }
  }

  const skipped: string[] = [];
  for (const [n, load] of [['cuda', loadCuda], ['cpu', loadCpu]] as const) {
    try {
      const backend = await load(opts);
      return { backend, name: n, reason: `${n}: chosen by auto${skipped.length ? `; skipped ${skipped.join('; ')}` : ''}` };
    } catch (e) {
      skipped.push(`${n} (${firstLine(e)})`);
    }
  }
  return { backend: new ReferenceBackend(), name: 'reference', reason: `reference (float64 TypeScript): chosen by auto; skipped ${skipped.join('; ')}` };
}
