// The CUDA backend: float32 buffers in GPU memory owned by the addon (exports.cuda, native/cuda/), one
// addon call per operator; data stays on the device for a whole training step.
//
// Available when the addon was built with CUDA (`npm run build:cuda`) and a device answers; the
// constructor throws an Error saying which of the two is missing, which src/backend/select.ts reports
// when it skips this backend. Validation happens here (buffer objects, integer sizes, Int32Array ids)
// and again in the addon (native/binding.h, shared with the CPU twin: live handles, view bounds, exact
// element counts, id ranges, overlaps) before device memory is touched. CUDA failures arrive as an Error naming the operator
// and the CUDA error; out of memory names the bytes asked for.
//
// Kernels run asynchronously: an operator returns once its kernels are queued. download, sumSquares,
// allFinite and crossEntropyForward wait for the GPU; call synchronize() before taking a time.
import * as fs from 'node:fs';
import { tryLoadAddon, type NativeOps } from './loader.js';
import { NativeBackendBase, fail, describe } from './native-backend.js';

/** A view of a device float32 allocation: elements [offset, offset + length) of buffer `handle`. */
export class CudaBuf {
  constructor(
    readonly handle: number,
    readonly offset: number,
    readonly length: number,
    /** True for views made by `view` (released with their parent, not by `free`). */
    readonly isView: boolean,
  ) {}
}

export type CudaPrecision = 'fp32' | 'tf32';

export interface CudaBackendOptions {
  /** Accepted for symmetry with the CPU backend (select.ts passes it); the GPU ignores it. */
  threads?: number;
  /**
   * Matrix-product precision: 'fp32' (default; strict float32 SIMT kernels, the tolerance tables
   * hold) or 'tf32' (tensor cores, about 1e-3 relative error per product). Default from the
   * CRATE_TS_CUDA_PRECISION environment variable, else 'fp32'.
   */
  precision?: CudaPrecision;
}

export interface CudaDeviceInfo {
  available: boolean;
  reason: string;
  device: string;
  computeCapability: string;
  smCount: number;
  totalMemoryBytes: number;
  runtimeVersion: number;
  driverVersion: number;
}

/** exports.cuda of the addon (native/cuda/binding_cuda.cc): the shared operators plus the device runtime. */
export interface CudaAddon extends NativeOps {
  available(): CudaDeviceInfo;
  synchronize(): void;
  memory_info(): { freeBytes: number; totalBytes: number };
  set_precision(p: CudaPrecision): void;
  precision(): CudaPrecision;
}

/**
 * The addon's CUDA functions, or why there are none: the addon is missing, was built without CUDA,
 * or no device answers. Never throws.
 */
/** True when an NVIDIA kernel driver is loaded (Linux: /proc/driver/nvidia or /dev/nvidia0; elsewhere assumed). */
export function hasNvidiaDriver(): boolean {
  if (process.platform !== 'linux') return true;
  return fs.existsSync('/proc/driver/nvidia') || fs.existsSync('/dev/nvidia0');
}

export function probeCuda(): { cuda: CudaAddon | null; info: CudaDeviceInfo | null; reason: string | null } {
  const { addon, reason } = tryLoadAddon();
  if (!addon)
    return { cuda: null, info: null, reason: `the native addon is not available (${reason ?? 'unknown reason'}); build it with CUDA: npm run build:cuda` };
  const cuda = (addon as unknown as { cuda?: CudaAddon }).cuda;
  if (!cuda || typeof cuda.available !== 'function')
    return {
      cuda: null,
      info: null,
      // the build hint only where a build could help: a machine with an NVIDIA driver
      reason: hasNvidiaDriver() ? 'the addon was built without CUDA: run npm run build:cuda' : 'no NVIDIA driver on this machine',
    };
  const info = cuda.available();
  if (!info.available) return { cuda, info, reason: `no CUDA device: ${info.reason}` };
  return { cuda, info, reason: null };
}

function precisionFrom(fn: string, p: unknown): CudaPrecision {
  if (p !== 'fp32' && p !== 'tf32') fail(fn, `precision must be 'fp32' or 'tf32', got ${describe(p)}`);
  return p;
}

export class CudaBackend extends NativeBackendBase<CudaBuf> {
  readonly name = 'cuda' as const;
  /** The device in use (name, compute capability, memory, runtime and driver versions). */
  readonly info: CudaDeviceInfo;
  private readonly cuda: CudaAddon;

  /**
   * Throws an Error when unavailable: "no CUDA device: <reason>" or "the addon was built without
   * CUDA: run npm run build:cuda" (or that the addon itself is missing).
   */
  constructor(opts: CudaBackendOptions = {}) {
    const { cuda, info, reason } = probeCuda();
    if (!cuda || !info || reason) throw new Error(reason ?? 'the CUDA backend is unavailable');
    super(cuda, CudaBuf, 'cuda');
    this.cuda = cuda;
    this.info = info;
    const env = process.env.CRATE_TS_CUDA_PRECISION;
    this.setPrecision(opts.precision ?? (env ? precisionFrom('CRATE_TS_CUDA_PRECISION', env) : 'fp32'));
  }

  // ---- runtime ---------------------------------------------------------------------------------------
  /** Wait for every queued kernel; throws if one of them failed. Call before reading a clock. */
  synchronize(): void {
    this.cuda.synchronize();
  }
  /** Free and total device memory in bytes. */
  memoryInfo(): { freeBytes: number; totalBytes: number } {
    return this.cuda.memory_info();
  }
  /** Matrix-product precision for this process (all CUDA backends share it). */
  setPrecision(p: CudaPrecision): void {
    this.cuda.set_precision(precisionFrom('setPrecision', p));
  }
  precision(): CudaPrecision {
    return this.cuda.precision();
  }
}

export function createCudaBackend(opts: CudaBackendOptions = {}): CudaBackend {
  return new CudaBackend(opts);
}
