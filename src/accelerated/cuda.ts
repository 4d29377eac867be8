// The CUDA backend: float32 buffers in GPU memory owned by the addon (exports.cuda, native/cuda/), one
// addon call per operator; data stays on the device for a whole training step.
//
// Available when the addon was built with CUDA (`npm run build:cuda`) and a device answers; the
// constructor throws an Error saying which of the two is missing, which src/backend/select.ts reports
// when it skips this backend. Validation happens here (buffer objects, integer sizes, Int32Array ids)
// and again in native/cuda/binding_cuda.cc (live handles, view bounds, exact element counts, id ranges,
// overlaps) before device memory is touched. CUDA failures arrive as an Error naming the operator
// and the CUDA error; out of memory names the bytes asked for.
//
// Kernels run asynchronously: an operator returns once its kernels are queued. download, sumSquares,
// allFinite and crossEntropyForward wait for the GPU; call synchronize() before taking a time.
import type { Backend } from '../backend/types.js';
import { tryLoadAddon } from './loader.js';

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

interface Ref { readonly handle: number; readonly offset: number; readonly length: number }
type OptRef = Ref | null;

/** exports.cuda of the addon (native/cuda/binding_cuda.cc). */
export interface CudaAddon {
  available(): CudaDeviceInfo;
  alloc(n: number): number;
  free(handle: number): void;
  live_buffers(): number;
  upload(dst: Ref, src: Float64Array | Float32Array): void;
  download(src: Ref): Float64Array;
  download_f32(src: Ref): Float32Array;
  synchronize(): void;
  memory_info(): { freeBytes: number; totalBytes: number };
  set_precision(p: CudaPrecision): void;
  precision(): CudaPrecision;
  fill(buf: Ref, value: number): void;
  copy(dst: Ref, src: Ref): void;
  add(out: Ref, a: Ref, b: Ref): void;
  scale(buf: Ref, s: number): void;
  sum_squares(buf: Ref): number;
  all_finite(buf: Ref): boolean;
  relu_forward(out: Ref, inp: Ref): void;
  relu_backward(dinp: Ref, dout: Ref, out: Ref): void;
  embedding_forward(out: Ref, idx: Int32Array, wte: Ref, wpe: Ref, B: number, T: number, C: number): void;
  embedding_backward(dwte: Ref, dwpe: Ref, dout: Ref, idx: Int32Array, B: number, T: number, C: number): void;
  layernorm_forward(out: Ref, mean: Ref, rstd: Ref, inp: Ref, weight: Ref, bias: OptRef, N: number, C: number, eps: number): void;
  layernorm_backward(dinp: Ref, dweight: Ref, dbias: OptRef, dout: Ref, inp: Ref, weight: Ref, mean: Ref, rstd: Ref, N: number, C: number): void;
  linear_forward(out: Ref, inp: Ref, weight: Ref, bias: OptRef, N: number, C: number, OC: number): void;
  linear_backward(dinp: OptRef, dweight: Ref, dbias: OptRef, dout: Ref, inp: Ref, weight: Ref, N: number, C: number, OC: number): void;
  sgemm(transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number, A: Ref, B: Ref, accumulate: boolean, C: Ref): void;
  attention_saved_size(B: number, NH: number, T: number): number;
  mssa_forward(y: Ref, saved: Ref, v: Ref, B: number, T: number, C: number, NH: number): void;
  mssa_backward(dv: Ref, dy: Ref, v: Ref, y: Ref, saved: Ref, B: number, T: number, C: number, NH: number): void;
  attention_forward(y: Ref, saved: Ref, qkv: Ref, B: number, T: number, C: number, NH: number): void;
  attention_backward(dqkv: Ref, dy: Ref, qkv: Ref, y: Ref, saved: Ref, B: number, T: number, C: number, NH: number): void;
  ista_forward(out: Ref, codes: Ref, u: Ref, A: Ref, N: number, C: number, H: number, eta: number, lam: number, steps: number): void;
  ista_backward(du: Ref, dA: Ref, dout: Ref, u: Ref, A: Ref, codes: Ref, N: number, C: number, H: number, eta: number, lam: number, steps: number): void;
  ista_complete_forward(out: Ref, x: Ref, W: Ref, N: number, C: number, eta: number, lam: number): void;
  ista_complete_backward(dx: Ref, dW: Ref, dout: Ref, x: Ref, W: Ref, out: Ref, N: number, C: number, eta: number, lam: number): void;
  cross_entropy_forward(dlogits: OptRef, logits: Ref, targets: Int32Array, N: number, V: number, gradScale: number): number;
  adamw_update(param: Ref, grad: Ref, m: Ref, v: Ref, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void;
}

/**
 * The addon's CUDA functions, or why there are none: the addon is missing, was built without CUDA,
 * or no device answers. Never throws.
 */
export function probeCuda(): { cuda: CudaAddon | null; info: CudaDeviceInfo | null; reason: string | null } {
  const { addon, reason } = tryLoadAddon();
  if (!addon) return { cuda: null, info: null, reason: `the native addon is not available (${reason ?? 'unknown reason'}); build it with CUDA: npm run build:cuda` };
  const cuda = (addon as unknown as { cuda?: CudaAddon }).cuda;
  if (!cuda || typeof cuda.available !== 'function') return { cuda: null, info: null, reason: 'the addon was built without CUDA: run npm run build:cuda' };
  const info = cuda.available();
  if (!info.available) return { cuda, info, reason: `no CUDA device: ${info.reason}` };
  return { cuda, info, reason: null };
}

function fail(kind: 'type' | 'range', fn: string, msg: string): never {
  throw kind === 'type' ? new TypeError(`${fn}: ${msg}`) : new RangeError(`${fn}: ${msg}`);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name}`;
  if (typeof v === 'object') return `an object (${(v as object).constructor?.name ?? 'Object'})`;
  return `${typeof v} ${String(v)}`;
}

function buf(fn: string, name: string, b: unknown): CudaBuf {
  if (!(b instanceof CudaBuf)) fail('type', fn, `${name} must be a buffer of the cuda backend, got ${describe(b)}`);
  return b;
}

function optBuf(fn: string, name: string, b: unknown): CudaBuf | null {
  return b === null || b === undefined ? null : buf(fn, name, b);
}

function int(fn: string, name: string, v: unknown, min: number): number {
  if (typeof v !== 'number') fail('type', fn, `${name} must be a number, got ${describe(v)}`);
  if (!Number.isInteger(v)) fail('range', fn, `${name} must be an integer, got ${v}`);
  if (v < min) fail('range', fn, `${name} must be >= ${min}, got ${v}`);
  return v;
}

function finite(fn: string, name: string, v: unknown): number {
  if (typeof v !== 'number') fail('type', fn, `${name} must be a number, got ${describe(v)}`);
  if (!Number.isFinite(v)) fail('range', fn, `${name} must be a finite number, got ${v}`);
  return v;
}

function i32(fn: string, name: string, a: unknown): Int32Array {
  if (!(a instanceof Int32Array)) fail('type', fn, `${name} must be an Int32Array, got ${describe(a)}`);
  return a;
}

function precisionFrom(fn: string, p: unknown): CudaPrecision {
  if (p !== 'fp32' && p !== 'tf32') fail('range', fn, `precision must be 'fp32' or 'tf32', got ${describe(p)}`);
  return p;
}

export class CudaBackend implements Backend<CudaBuf> {
  readonly name = 'cuda' as const;
  readonly dtype = 'f32' as const;
  /** The device in use (name, compute capability, memory, runtime and driver versions). */
  readonly info: CudaDeviceInfo;
  private readonly n: CudaAddon;

  /**
   * Throws an Error when unavailable: "no CUDA device: <reason>" or "the addon was built without
   * CUDA: run npm run build:cuda" (or that the addon itself is missing).
   */
  constructor(opts: CudaBackendOptions = {}) {
    const { cuda, info, reason } = probeCuda();
    if (!cuda || !info || reason) throw new Error(reason ?? 'the CUDA backend is unavailable');
    this.n = cuda;
    this.info = info;
    const env = process.env.CRATE_TS_CUDA_PRECISION;
    this.setPrecision(opts.precision ?? (env ? precisionFrom('CRATE_TS_CUDA_PRECISION', env) : 'fp32'));
  }

  // ---- runtime ---------------------------------------------------------------------------------------
  /** Wait for every queued kernel; throws if one of them failed. Call before reading a clock. */
  synchronize(): void { this.n.synchronize(); }
  /** Free and total device memory in bytes. */
  memoryInfo(): { freeBytes: number; totalBytes: number } { return this.n.memory_info(); }
  /** Matrix-product precision for this process (all CUDA backends share it). */
  setPrecision(p: CudaPrecision): void { this.n.set_precision(precisionFrom('setPrecision', p)); }
  precision(): CudaPrecision { return this.n.precision(); }
  /** C (M,N) = alpha op(A) op(B) (+ C if accumulate), row-major; op(X) = X^T when trans. */
  sgemm(transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number, A: CudaBuf, B: CudaBuf, accumulate: boolean, C: CudaBuf): void {
    const f = 'sgemm';
    this.n.sgemm(transA, transB, int(f, 'M', M, 0), int(f, 'N', N, 0), int(f, 'K', K, 0), finite(f, 'alpha', alpha), buf(f, 'A', A), buf(f, 'B', B), accumulate, buf(f, 'C', C));
  }

  // ---- memory ----------------------------------------------------------------------------------------
  alloc(n: number): CudaBuf {
    const len = int('alloc', 'n', n, 0);
    return new CudaBuf(this.n.alloc(len), 0, len, false);
  }
  view(b: CudaBuf, offset: number, length: number): CudaBuf {
    const f = 'view';
    buf(f, 'buf', b);
    int(f, 'offset', offset, 0);
    int(f, 'length', length, 0);
    if (offset + length > b.length) fail('range', f, `range [${offset}, ${offset + length}) is outside a buffer of ${b.length} elements`);
    return new CudaBuf(b.handle, b.offset + offset, length, true);
  }
  size(b: CudaBuf): number { return buf('size', 'buf', b).length; }
  upload(dst: CudaBuf, src: ArrayLike<number>): void {
    const f = 'upload';
    buf(f, 'dst', dst);
    if (src === null || typeof src !== 'object' || typeof (src as ArrayLike<number>).length !== 'number') fail('type', f, `src must be an array of numbers, got ${describe(src)}`);
    const data = src instanceof Float64Array || src instanceof Float32Array ? src : Float64Array.from(src);
    if (data.length !== dst.length) fail('range', f, `src has ${data.length} elements, expected size(dst) = ${dst.length}`);
    this.n.upload(dst, data);
  }
  download(src: CudaBuf): Float64Array { return this.n.download(buf('download', 'src', src)); }
  /** The buffer as float32, without widening. */
  downloadF32(src: CudaBuf): Float32Array { return this.n.download_f32(buf('downloadF32', 'src', src)); }
  fill(b: CudaBuf, value: number): void {
    if (typeof value !== 'number') fail('type', 'fill', `value must be a number, got ${describe(value)}`);
    this.n.fill(buf('fill', 'buf', b), value);
  }
  copy(dst: CudaBuf, src: CudaBuf): void { this.n.copy(buf('copy', 'dst', dst), buf('copy', 'src', src)); }
  free(b: CudaBuf): void {
    buf('free', 'buf', b);
    if (b.isView) throw new Error('free: buf is a view; free the buffer it was made from');
    this.n.free(b.handle);
  }
  liveBuffers(): number { return this.n.live_buffers(); }

  // ---- elementwise -----------------------------------------------------------------------------------
  add(out: CudaBuf, a: CudaBuf, b: CudaBuf): void { this.n.add(buf('add', 'out', out), buf('add', 'a', a), buf('add', 'b', b)); }
  scale(b: CudaBuf, s: number): void { this.n.scale(buf('scale', 'buf', b), finite('scale', 's', s)); }
  sumSquares(b: CudaBuf): number { return this.n.sum_squares(buf('sumSquares', 'buf', b)); }
  allFinite(b: CudaBuf): boolean { return this.n.all_finite(buf('allFinite', 'buf', b)); }
  reluForward(out: CudaBuf, inp: CudaBuf): void { this.n.relu_forward(buf('reluForward', 'out', out), buf('reluForward', 'inp', inp)); }
  reluBackward(dinp: CudaBuf, dout: CudaBuf, out: CudaBuf): void {
    const f = 'reluBackward';
    this.n.relu_backward(buf(f, 'dinp', dinp), buf(f, 'dout', dout), buf(f, 'out', out));
  }

  // ---- embedding -------------------------------------------------------------------------------------
  embeddingForward(out: CudaBuf, idx: Int32Array, wte: CudaBuf, wpe: CudaBuf, B: number, T: number, C: number): void {
    const f = 'embeddingForward';
    this.n.embedding_forward(buf(f, 'out', out), i32(f, 'idx', idx), buf(f, 'wte', wte), buf(f, 'wpe', wpe), int(f, 'B', B, 0), int(f, 'T', T, 0), int(f, 'C', C, 1));
  }
  embeddingBackward(dwte: CudaBuf, dwpe: CudaBuf, dout: CudaBuf, idx: Int32Array, B: number, T: number, C: number): void {
    const f = 'embeddingBackward';
    this.n.embedding_backward(buf(f, 'dwte', dwte), buf(f, 'dwpe', dwpe), buf(f, 'dout', dout), i32(f, 'idx', idx), int(f, 'B', B, 0), int(f, 'T', T, 0), int(f, 'C', C, 1));
  }

  // ---- layernorm -------------------------------------------------------------------------------------
  layernormForward(out: CudaBuf, mean: CudaBuf, rstd: CudaBuf, inp: CudaBuf, weight: CudaBuf, bias: CudaBuf | null, N: number, C: number, eps: number): void {
    const f = 'layernormForward';
    this.n.layernorm_forward(buf(f, 'out', out), buf(f, 'mean', mean), buf(f, 'rstd', rstd), buf(f, 'inp', inp), buf(f, 'weight', weight), optBuf(f, 'bias', bias),
      int(f, 'N', N, 0), int(f, 'C', C, 1), finite(f, 'eps', eps));
  }
  layernormBackward(dinp: CudaBuf, dweight: CudaBuf, dbias: CudaBuf | null, dout: CudaBuf, inp: CudaBuf, weight: CudaBuf, mean: CudaBuf, rstd: CudaBuf, N: number, C: number): void {
    const f = 'layernormBackward';
    this.n.layernorm_backward(buf(f, 'dinp', dinp), buf(f, 'dweight', dweight), optBuf(f, 'dbias', dbias), buf(f, 'dout', dout), buf(f, 'inp', inp), buf(f, 'weight', weight),
      buf(f, 'mean', mean), buf(f, 'rstd', rstd), int(f, 'N', N, 0), int(f, 'C', C, 1));
  }

  // ---- linear ----------------------------------------------------------------------------------------
  linearForward(out: CudaBuf, inp: CudaBuf, weight: CudaBuf, bias: CudaBuf | null, N: number, C: number, OC: number): void {
    const f = 'linearForward';
    this.n.linear_forward(buf(f, 'out', out), buf(f, 'inp', inp), buf(f, 'weight', weight), optBuf(f, 'bias', bias), int(f, 'N', N, 0), int(f, 'C', C, 1), int(f, 'OC', OC, 1));
  }
  linearBackward(dinp: CudaBuf | null, dweight: CudaBuf, dbias: CudaBuf | null, dout: CudaBuf, inp: CudaBuf, weight: CudaBuf, N: number, C: number, OC: number): void {
    const f = 'linearBackward';
    this.n.linear_backward(optBuf(f, 'dinp', dinp), buf(f, 'dweight', dweight), optBuf(f, 'dbias', dbias), buf(f, 'dout', dout), buf(f, 'inp', inp), buf(f, 'weight', weight),
      int(f, 'N', N, 0), int(f, 'C', C, 1), int(f, 'OC', OC, 1));
  }

  // ---- attention -------------------------------------------------------------------------------------
  attentionSavedSize(B: number, NH: number, T: number): number {
    const f = 'attentionSavedSize';
    return this.n.attention_saved_size(int(f, 'B', B, 0), int(f, 'NH', NH, 1), int(f, 'T', T, 0));
  }
  mssaForward(y: CudaBuf, saved: CudaBuf, v: CudaBuf, B: number, T: number, C: number, NH: number): void {
    const f = 'mssaForward';
    this.n.mssa_forward(buf(f, 'y', y), buf(f, 'saved', saved), buf(f, 'v', v), int(f, 'B', B, 0), int(f, 'T', T, 0), int(f, 'C', C, 1), int(f, 'NH', NH, 1));
  }
  mssaBackward(dv: CudaBuf, dy: CudaBuf, v: CudaBuf, y: CudaBuf, saved: CudaBuf, B: number, T: number, C: number, NH: number): void {
    const f = 'mssaBackward';
    this.n.mssa_backward(buf(f, 'dv', dv), buf(f, 'dy', dy), buf(f, 'v', v), buf(f, 'y', y), buf(f, 'saved', saved), int(f, 'B', B, 0), int(f, 'T', T, 0), int(f, 'C', C, 1), int(f, 'NH', NH, 1));
  }
  attentionForward(y: CudaBuf, saved: CudaBuf, qkv: CudaBuf, B: number, T: number, C: number, NH: number): void {
    const f = 'attentionForward';
    this.n.attention_forward(buf(f, 'y', y), buf(f, 'saved', saved), buf(f, 'qkv', qkv), int(f, 'B', B, 0), int(f, 'T', T, 0), int(f, 'C', C, 1), int(f, 'NH', NH, 1));
  }
  attentionBackward(dqkv: CudaBuf, dy: CudaBuf, qkv: CudaBuf, y: CudaBuf, saved: CudaBuf, B: number, T: number, C: number, NH: number): void {
    const f = 'attentionBackward';
    this.n.attention_backward(buf(f, 'dqkv', dqkv), buf(f, 'dy', dy), buf(f, 'qkv', qkv), buf(f, 'y', y), buf(f, 'saved', saved), int(f, 'B', B, 0), int(f, 'T', T, 0), int(f, 'C', C, 1), int(f, 'NH', NH, 1));
  }

  // ---- ISTA ------------------------------------------------------------------------------------------
  istaForward(out: CudaBuf, codes: CudaBuf, u: CudaBuf, A: CudaBuf, N: number, C: number, H: number, eta: number, lam: number, steps: number): void {
    const f = 'istaForward';
    this.n.ista_forward(buf(f, 'out', out), buf(f, 'codes', codes), buf(f, 'u', u), buf(f, 'A', A), int(f, 'N', N, 0), int(f, 'C', C, 1), int(f, 'H', H, 1),
      finite(f, 'eta', eta), finite(f, 'lam', lam), int(f, 'steps', steps, 1));
  }
  istaBackward(du: CudaBuf, dA: CudaBuf, dout: CudaBuf, u: CudaBuf, A: CudaBuf, codes: CudaBuf, N: number, C: number, H: number, eta: number, lam: number, steps: number): void {
    const f = 'istaBackward';
    this.n.ista_backward(buf(f, 'du', du), buf(f, 'dA', dA), buf(f, 'dout', dout), buf(f, 'u', u), buf(f, 'A', A), buf(f, 'codes', codes), int(f, 'N', N, 0), int(f, 'C', C, 1), int(f, 'H', H, 1),
      finite(f, 'eta', eta), finite(f, 'lam', lam), int(f, 'steps', steps, 1));
  }
  istaCompleteForward(out: CudaBuf, x: CudaBuf, W: CudaBuf, N: number, C: number, eta: number, lam: number): void {
    const f = 'istaCompleteForward';
    this.n.ista_complete_forward(buf(f, 'out', out), buf(f, 'x', x), buf(f, 'W', W), int(f, 'N', N, 0), int(f, 'C', C, 1), finite(f, 'eta', eta), finite(f, 'lam', lam));
  }
  istaCompleteBackward(dx: CudaBuf, dW: CudaBuf, dout: CudaBuf, x: CudaBuf, W: CudaBuf, out: CudaBuf, N: number, C: number, eta: number, lam: number): void {
    const f = 'istaCompleteBackward';
    this.n.ista_complete_backward(buf(f, 'dx', dx), buf(f, 'dW', dW), buf(f, 'dout', dout), buf(f, 'x', x), buf(f, 'W', W), buf(f, 'out', out), int(f, 'N', N, 0), int(f, 'C', C, 1),
      finite(f, 'eta', eta), finite(f, 'lam', lam));
  }

  // ---- loss ------------------------------------------------------------------------------------------
  crossEntropyForward(dlogits: CudaBuf | null, logits: CudaBuf, targets: Int32Array, N: number, V: number, gradScale: number): number {
    const f = 'crossEntropyForward';
    return this.n.cross_entropy_forward(optBuf(f, 'dlogits', dlogits), buf(f, 'logits', logits), i32(f, 'targets', targets), int(f, 'N', N, 0), int(f, 'V', V, 1), finite(f, 'gradScale', gradScale));
  }

  // ---- optimizer -------------------------------------------------------------------------------------
  adamwUpdate(param: CudaBuf, grad: CudaBuf, m: CudaBuf, v: CudaBuf, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void {
    const f = 'adamwUpdate';
    this.n.adamw_update(buf(f, 'param', param), buf(f, 'grad', grad), buf(f, 'm', m), buf(f, 'v', v), finite(f, 'lr', lr), finite(f, 'beta1', beta1), finite(f, 'beta2', beta2),
      finite(f, 'eps', eps), finite(f, 'weightDecay', weightDecay), int(f, 'step', step, 1));
  }
}

/** Factory used by src/backend/select.ts. */
export function createCudaBackend(opts: CudaBackendOptions = {}): CudaBackend {
  return new CudaBackend(opts);
}
