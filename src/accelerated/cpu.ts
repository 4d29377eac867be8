// The native C++ CPU backend: float32 buffers owned by the addon, one addon call per operator.
//
// Validation happens twice (DESIGN.md principle 7): here (buffer objects, integer sizes, Int32Array
// ids) so mistakes in TypeScript get TypeScript-side messages, and again in native/binding.cc
// (live handles, view bounds, exact element counts, id ranges, overlaps) before memory is touched.
import type { Backend } from '../backend/types.js';
import { loadAddon, type NativeAddon } from './loader.js';

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

function buf(fn: string, name: string, b: unknown): NativeBuf {
  if (!(b instanceof NativeBuf)) fail('type', fn, `${name} must be a buffer of the cpu backend, got ${describe(b)}`);
  return b;
}

function optBuf(fn: string, name: string, b: unknown): NativeBuf | null {
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

export class CpuBackend implements Backend<NativeBuf> {
  readonly name = 'cpu' as const;
  readonly dtype = 'f32' as const;
  private readonly n: NativeAddon;

  /** Throws (with the reason) when the addon is not built or does not load. */
  constructor(opts: CpuBackendOptions = {}) {
    this.n = loadAddon();
    if (opts.threads !== undefined && opts.threads !== 0) this.setThreads(opts.threads);
  }

  // ---- runtime ---------------------------------------------------------------------------------------
  /** Set the number of worker threads (>= 1). Results do not depend on it (see native/threadpool.h). */
  setThreads(n: number): void { this.n.set_threads(int('setThreads', 'n', n, 1)); }
  threads(): number { return this.n.threads(); }
  /** The SGEMM micro-kernel in use: 'avx512', 'avx2' or 'scalar'. */
  gemmKernel(): string { return this.n.gemm_kernel(); }
  /** Force a micro-kernel ('auto', 'avx512', 'avx2', 'scalar'); false if this CPU lacks it. */
  setGemmKernel(name: 'auto' | 'avx512' | 'avx2' | 'scalar'): boolean { return this.n.set_gemm_kernel(name); }
  /** C (M,N) = alpha op(A) op(B) (+ C if accumulate), row-major; op(X) = X^T when trans. */
  sgemm(transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number, A: NativeBuf, B: NativeBuf, accumulate: boolean, C: NativeBuf): void {
    const f = 'sgemm';
    this.n.sgemm(transA, transB, int(f, 'M', M, 0), int(f, 'N', N, 0), int(f, 'K', K, 0), finite(f, 'alpha', alpha), buf(f, 'A', A), buf(f, 'B', B), accumulate, buf(f, 'C', C));
  }
  /** Measured FMA throughput of this machine over all pool threads (GFLOP/s), for benchmarks. */
  fmaPeakGflops(seconds = 0.2): number { return this.n.fma_peak_gflops(seconds); }

  // ---- memory ----------------------------------------------------------------------------------------
  alloc(n: number): NativeBuf {
    const len = int('alloc', 'n', n, 0);
    return new NativeBuf(this.n.alloc(len), 0, len, false);
  }
  view(b: NativeBuf, offset: number, length: number): NativeBuf {
    const f = 'view';
    buf(f, 'buf', b);
    int(f, 'offset', offset, 0);
    int(f, 'length', length, 0);
    if (offset + length > b.length) fail('range', f, `range [${offset}, ${offset + length}) is outside a buffer of ${b.length} elements`);
    return new NativeBuf(b.handle, b.offset + offset, length, true);
  }
  size(b: NativeBuf): number { return buf('size', 'buf', b).length; }
  upload(dst: NativeBuf, src: ArrayLike<number>): void {
    const f = 'upload';
    buf(f, 'dst', dst);
    if (src === null || typeof src !== 'object' || typeof (src as ArrayLike<number>).length !== 'number') fail('type', f, `src must be an array of numbers, got ${describe(src)}`);
    const data = src instanceof Float64Array || src instanceof Float32Array ? src : Float64Array.from(src);
    if (data.length !== dst.length) fail('range', f, `src has ${data.length} elements, expected size(dst) = ${dst.length}`);
    this.n.upload(dst, data);
  }
  download(src: NativeBuf): Float64Array { return this.n.download(buf('download', 'src', src)); }
  /** The buffer as float32, without widening. */
  downloadF32(src: NativeBuf): Float32Array { return this.n.download_f32(buf('downloadF32', 'src', src)); }
  fill(b: NativeBuf, value: number): void {
    if (typeof value !== 'number') fail('type', 'fill', `value must be a number, got ${describe(value)}`);
    this.n.fill(buf('fill', 'buf', b), value);
  }
  copy(dst: NativeBuf, src: NativeBuf): void { this.n.copy(buf('copy', 'dst', dst), buf('copy', 'src', src)); }
  free(b: NativeBuf): void {
    buf('free', 'buf', b);
    if (b.isView) throw new Error('free: buf is a view; free the buffer it was made from');
    this.n.free(b.handle);
  }
  liveBuffers(): number { return this.n.live_buffers(); }

  // ---- elementwise -----------------------------------------------------------------------------------
  add(out: NativeBuf, a: NativeBuf, b: NativeBuf): void { this.n.add(buf('add', 'out', out), buf('add', 'a', a), buf('add', 'b', b)); }
  scale(b: NativeBuf, s: number): void { this.n.scale(buf('scale', 'buf', b), finite('scale', 's', s)); }
  sumSquares(b: NativeBuf): number { return this.n.sum_squares(buf('sumSquares', 'buf', b)); }
  allFinite(b: NativeBuf): boolean { return this.n.all_finite(buf('allFinite', 'buf', b)); }
  reluForward(out: NativeBuf, inp: NativeBuf): void { this.n.relu_forward(buf('reluForward', 'out', out), buf('reluForward', 'inp', inp)); }
  reluBackward(dinp: NativeBuf, dout: NativeBuf, out: NativeBuf): void {
    const f = 'reluBackward';
    this.n.relu_backward(buf(f, 'dinp', dinp), buf(f, 'dout', dout), buf(f, 'out', out));
  }

  // ---- embedding -------------------------------------------------------------------------------------
  embeddingForward(out: NativeBuf, idx: Int32Array, wte: NativeBuf, wpe: NativeBuf, B: number, T: number, C: number): void {
    const f = 'embeddingForward';
    this.n.embedding_forward(buf(f, 'out', out), i32(f, 'idx', idx), buf(f, 'wte', wte), buf(f, 'wpe', wpe), int(f, 'B', B, 0), int(f, 'T', T, 0), int(f, 'C', C, 1));
  }
  embeddingBackward(dwte: NativeBuf, dwpe: NativeBuf, dout: NativeBuf, idx: Int32Array, B: number, T: number, C: number): void {
    const f = 'embeddingBackward';
    this.n.embedding_backward(buf(f, 'dwte', dwte), buf(f, 'dwpe', dwpe), buf(f, 'dout', dout), i32(f, 'idx', idx), int(f, 'B', B, 0), int(f, 'T', T, 0), int(f, 'C', C, 1));
  }

  // ---- layernorm -------------------------------------------------------------------------------------
  layernormForward(out: NativeBuf, mean: NativeBuf, rstd: NativeBuf, inp: NativeBuf, weight: NativeBuf, bias: NativeBuf | null, N: number, C: number, eps: number): void {
    const f = 'layernormForward';
    this.n.layernorm_forward(buf(f, 'out', out), buf(f, 'mean', mean), buf(f, 'rstd', rstd), buf(f, 'inp', inp), buf(f, 'weight', weight), optBuf(f, 'bias', bias),
      int(f, 'N', N, 0), int(f, 'C', C, 1), finite(f, 'eps', eps));
  }
  layernormBackward(dinp: NativeBuf, dweight: NativeBuf, dbias: NativeBuf | null, dout: NativeBuf, inp: NativeBuf, weight: NativeBuf, mean: NativeBuf, rstd: NativeBuf, N: number, C: number): void {
    const f = 'layernormBackward';
    this.n.layernorm_backward(buf(f, 'dinp', dinp), buf(f, 'dweight', dweight), optBuf(f, 'dbias', dbias), buf(f, 'dout', dout), buf(f, 'inp', inp), buf(f, 'weight', weight),
      buf(f, 'mean', mean), buf(f, 'rstd', rstd), int(f, 'N', N, 0), int(f, 'C', C, 1));
  }

  // ---- linear ----------------------------------------------------------------------------------------
  linearForward(out: NativeBuf, inp: NativeBuf, weight: NativeBuf, bias: NativeBuf | null, N: number, C: number, OC: number): void {
    const f = 'linearForward';
    this.n.linear_forward(buf(f, 'out', out), buf(f, 'inp', inp), buf(f, 'weight', weight), optBuf(f, 'bias', bias), int(f, 'N', N, 0), int(f, 'C', C, 1), int(f, 'OC', OC, 1));
  }
  linearBackward(dinp: NativeBuf | null, dweight: NativeBuf, dbias: NativeBuf | null, dout: NativeBuf, inp: NativeBuf, weight: NativeBuf, N: number, C: number, OC: number): void {
    const f = 'linearBackward';
    this.n.linear_backward(optBuf(f, 'dinp', dinp), buf(f, 'dweight', dweight), optBuf(f, 'dbias', dbias), buf(f, 'dout', dout), buf(f, 'inp', inp), buf(f, 'weight', weight),
      int(f, 'N', N, 0), int(f, 'C', C, 1), int(f, 'OC', OC, 1));
  }

  // ---- attention -------------------------------------------------------------------------------------
  attentionSavedSize(B: number, NH: number, T: number): number {
    const f = 'attentionSavedSize';
    return this.n.attention_saved_size(int(f, 'B', B, 0), int(f, 'NH', NH, 1), int(f, 'T', T, 0));
  }
  mssaForward(y: NativeBuf, saved: NativeBuf, v: NativeBuf, B: number, T: number, C: number, NH: number): void {
    const f = 'mssaForward';
    this.n.mssa_forward(buf(f, 'y', y), buf(f, 'saved', saved), buf(f, 'v', v), int(f, 'B', B, 0), int(f, 'T', T, 0), int(f, 'C', C, 1), int(f, 'NH', NH, 1));
  }
  mssaBackward(dv: NativeBuf, dy: NativeBuf, v: NativeBuf, y: NativeBuf, saved: NativeBuf, B: number, T: number, C: number, NH: number): void {
    const f = 'mssaBackward';
    this.n.mssa_backward(buf(f, 'dv', dv), buf(f, 'dy', dy), buf(f, 'v', v), buf(f, 'y', y), buf(f, 'saved', saved), int(f, 'B', B, 0), int(f, 'T', T, 0), int(f, 'C', C, 1), int(f, 'NH', NH, 1));
  }
  attentionForward(y: NativeBuf, saved: NativeBuf, qkv: NativeBuf, B: number, T: number, C: number, NH: number): void {
    const f = 'attentionForward';
    this.n.attention_forward(buf(f, 'y', y), buf(f, 'saved', saved), buf(f, 'qkv', qkv), int(f, 'B', B, 0), int(f, 'T', T, 0), int(f, 'C', C, 1), int(f, 'NH', NH, 1));
  }
  attentionBackward(dqkv: NativeBuf, dy: NativeBuf, qkv: NativeBuf, y: NativeBuf, saved: NativeBuf, B: number, T: number, C: number, NH: number): void {
    const f = 'attentionBackward';
    this.n.attention_backward(buf(f, 'dqkv', dqkv), buf(f, 'dy', dy), buf(f, 'qkv', qkv), buf(f, 'y', y), buf(f, 'saved', saved), int(f, 'B', B, 0), int(f, 'T', T, 0), int(f, 'C', C, 1), int(f, 'NH', NH, 1));
  }

  // ---- ISTA ------------------------------------------------------------------------------------------
  istaForward(out: NativeBuf, codes: NativeBuf, u: NativeBuf, A: NativeBuf, N: number, C: number, H: number, eta: number, lam: number, steps: number): void {
    const f = 'istaForward';
    this.n.ista_forward(buf(f, 'out', out), buf(f, 'codes', codes), buf(f, 'u', u), buf(f, 'A', A), int(f, 'N', N, 0), int(f, 'C', C, 1), int(f, 'H', H, 1),
      finite(f, 'eta', eta), finite(f, 'lam', lam), int(f, 'steps', steps, 1));
  }
  istaBackward(du: NativeBuf, dA: NativeBuf, dout: NativeBuf, u: NativeBuf, A: NativeBuf, codes: NativeBuf, N: number, C: number, H: number, eta: number, lam: number, steps: number): void {
    const f = 'istaBackward';
    this.n.ista_backward(buf(f, 'du', du), buf(f, 'dA', dA), buf(f, 'dout', dout), buf(f, 'u', u), buf(f, 'A', A), buf(f, 'codes', codes), int(f, 'N', N, 0), int(f, 'C', C, 1), int(f, 'H', H, 1),
      finite(f, 'eta', eta), finite(f, 'lam', lam), int(f, 'steps', steps, 1));
  }
  istaCompleteForward(out: NativeBuf, x: NativeBuf, W: NativeBuf, N: number, C: number, eta: number, lam: number): void {
    const f = 'istaCompleteForward';
    this.n.ista_complete_forward(buf(f, 'out', out), buf(f, 'x', x), buf(f, 'W', W), int(f, 'N', N, 0), int(f, 'C', C, 1), finite(f, 'eta', eta), finite(f, 'lam', lam));
  }
  istaCompleteBackward(dx: NativeBuf, dW: NativeBuf, dout: NativeBuf, x: NativeBuf, W: NativeBuf, out: NativeBuf, N: number, C: number, eta: number, lam: number): void {
    const f = 'istaCompleteBackward';
    this.n.ista_complete_backward(buf(f, 'dx', dx), buf(f, 'dW', dW), buf(f, 'dout', dout), buf(f, 'x', x), buf(f, 'W', W), buf(f, 'out', out), int(f, 'N', N, 0), int(f, 'C', C, 1),
      finite(f, 'eta', eta), finite(f, 'lam', lam));
  }

  // ---- loss ------------------------------------------------------------------------------------------
  crossEntropyForward(dlogits: NativeBuf | null, logits: NativeBuf, targets: Int32Array, N: number, V: number, gradScale: number): number {
    const f = 'crossEntropyForward';
    return this.n.cross_entropy_forward(optBuf(f, 'dlogits', dlogits), buf(f, 'logits', logits), i32(f, 'targets', targets), int(f, 'N', N, 0), int(f, 'V', V, 1), finite(f, 'gradScale', gradScale));
  }

  // ---- optimizer -------------------------------------------------------------------------------------
  adamwUpdate(param: NativeBuf, grad: NativeBuf, m: NativeBuf, v: NativeBuf, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void {
    const f = 'adamwUpdate';
    this.n.adamw_update(buf(f, 'param', param), buf(f, 'grad', grad), buf(f, 'm', m), buf(f, 'v', v), finite(f, 'lr', lr), finite(f, 'beta1', beta1), finite(f, 'beta2', beta2),
      finite(f, 'eps', eps), finite(f, 'weightDecay', weightDecay), int(f, 'step', step, 1));
  }
}

/** Factory used by src/backend/select.ts. */
export function createCpuBackend(opts: CpuBackendOptions = {}): CpuBackend {
  return new CpuBackend(opts);
}
