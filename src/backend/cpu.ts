// The native C++ CPU backend: float32 buffers owned by the addon, one addon call per operator.
//
// Validation happens twice: in NativeBackendBase (buffer objects, integer
// sizes, Int32Array ids) so mistakes in TypeScript get TypeScript-side messages, and again in the
// addon (native/binding.h: live handles, view bounds, exact element counts, id ranges, overlaps)
// before memory is touched. Both follow the operator table, native/ops.json.
import { loadAddon, type NativeAddon } from './loader.js';
import { NativeBackendBase, int } from './native-backend.js';
import { UsageError } from '../errors.js';

/** The SGEMM micro-kernels the addon has, slowest first. */
export const GEMM_KERNELS = ['scalar', 'avx2', 'avx512'] as const;
export type GemmKernel = (typeof GEMM_KERNELS)[number];

/** A view of a native float32 allocation: elements [offset, offset + length) of buffer `handle`. */
export class NativeBuf {
  constructor(
    readonly handle: number,
    readonly offset: number,
    readonly length: number,
    /** True for views made by `view` (they are released with their parent, not by `free`). */
    readonly isView: boolean,
  ) {}
}

export interface CpuBackendOptions {
  /** Worker threads (default: the hardware concurrency). */
  threads?: number;
}

export class CpuBackend extends NativeBackendBase<NativeBuf> {
  readonly name = 'cpu' as const;
  private readonly addon: NativeAddon;

  /** Throws (with the reason) when the addon is not built or does not load. */
  constructor(opts: CpuBackendOptions = {}) {
    const addon = loadAddon();
    super(addon, NativeBuf, 'cpu');
    this.addon = addon;
    if (opts.threads !== undefined && opts.threads !== 0) this.setThreads(opts.threads);
    checkForcedKernel(this, process.env.CRATE_TS_CPU_KERNEL);
  }

  // ---- runtime ---------------------------------------------------------------------------------------
  /** Set the number of worker threads (>= 1). Results do not depend on it (see native/threadpool.h). */
  setThreads(n: number): void {
    this.addon.set_threads(int('setThreads', 'n', n, 1));
  }
  threads(): number {
    return this.addon.threads();
  }
  /** The SGEMM micro-kernel in use: 'avx512', 'avx2' or 'scalar'. */
  gemmKernel(): string {
    return this.addon.gemm_kernel();
  }
  /** Force a micro-kernel ('auto', 'avx512', 'avx2', 'scalar'); false if this CPU lacks it. */
  setGemmKernel(name: 'auto' | GemmKernel): boolean {
    return this.addon.set_gemm_kernel(name);
  }
  /** The micro-kernels this CPU can run, slowest first (the current choice is left as it was). */
  supportedGemmKernels(): GemmKernel[] {
    const current = this.gemmKernel();
    const out = GEMM_KERNELS.filter((k) => this.addon.set_gemm_kernel(k));
    this.addon.set_gemm_kernel(current);
    return out;
  }
  /** Measured FMA throughput of this machine over all pool threads (GFLOP/s), for benchmarks. */
  fmaPeakGflops(seconds = 0.2): number {
    return this.addon.fma_peak_gflops(seconds);
  }
}

/**
 * CRATE_TS_CPU_KERNEL forces one SGEMM micro-kernel (the addon reads it when it loads). Results are
 * bitwise reproducible for a given kernel and differ across kernels by float32 rounding, so a user
 * who sets it must get the kernel asked for or an error, never a silent fallback.
 */
function checkForcedKernel(be: CpuBackend, wanted: string | undefined): void {
  if (wanted === undefined || wanted === '' || wanted === 'auto') return;
  if (!(GEMM_KERNELS as readonly string[]).includes(wanted))
    throw new UsageError(`CRATE_TS_CPU_KERNEL=${wanted} is not a kernel name (use auto, ${GEMM_KERNELS.join(', ')})`);
  if (be.gemmKernel() !== wanted && !be.setGemmKernel(wanted as GemmKernel))
    throw new UsageError(`CRATE_TS_CPU_KERNEL=${wanted}: this CPU cannot run the ${wanted} kernel (it can run: ${be.supportedGemmKernels().join(', ')})`);
}

/**
 * The SGEMM micro-kernel a backend multiplies with ('avx512', 'avx2' or 'scalar') when it is the cpu
 * backend, else null. Results are bitwise reproducible for a given kernel and differ across them.
 */
export function cpuKernelOf(backend: { name: string }): string | null {
  const k = (backend as { gemmKernel?: () => string }).gemmKernel;
  return backend.name === 'cpu' && typeof k === 'function' ? k.call(backend) : null;
}

/** Factory used by src/backend/select.ts. */
export function createCpuBackend(opts: CpuBackendOptions = {}): CpuBackend {
  return new CpuBackend(opts);
}
