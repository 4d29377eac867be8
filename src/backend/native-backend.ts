// The part of the native backends that is the same for the CPU and the CUDA twin: memory and every
// operator of the Backend interface, one addon call per operator, after validating the arguments on
// the TypeScript side (buffer objects of this backend, integer sizes, Int32Array ids). The addon
// validates again (live handles, view bounds, exact element counts, id ranges) before touching memory.
import type { Backend } from './types.js';
import type { NativeOps } from './loader.js';
import { attentionDecode as attentionDecodeRef } from '../reference/mssa.js';

/** What a native buffer handle looks like: elements [offset, offset + length) of allocation `handle`. */
export interface BufRef {
  readonly handle: number;
  readonly offset: number;
  readonly length: number;
  /** True for views made by `view` (released with their parent, not by `free`). */
  readonly isView: boolean;
}

export function fail(kind: 'type' | 'range', fn: string, msg: string): never {
  throw kind === 'type' ? new TypeError(`${fn}: ${msg}`) : new RangeError(`${fn}: ${msg}`);
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name}`;
  if (typeof v === 'object') return `an object (${(v as object).constructor?.name ?? 'Object'})`;
  return `${typeof v} ${String(v)}`;
}

export function int(fn: string, name: string, v: unknown, min: number): number {
  if (typeof v !== 'number') fail('type', fn, `${name} must be a number, got ${describe(v)}`);
  if (!Number.isInteger(v)) fail('range', fn, `${name} must be an integer, got ${v}`);
  if (v < min) fail('range', fn, `${name} must be >= ${min}, got ${v}`);
  return v;
}

export function finite(fn: string, name: string, v: unknown): number {
  if (typeof v !== 'number') fail('type', fn, `${name} must be a number, got ${describe(v)}`);
  if (!Number.isFinite(v)) fail('range', fn, `${name} must be a finite number, got ${v}`);
  return v;
}

export function i32(fn: string, name: string, a: unknown): Int32Array {
  if (!(a instanceof Int32Array)) fail('type', fn, `${name} must be an Int32Array, got ${describe(a)}`);
  return a;
}

export abstract class NativeBackendBase<B extends BufRef> implements Backend<B> {
  abstract readonly name: 'cpu' | 'cuda';
  readonly dtype = 'f32' as const;

  /**
   * @param n the addon's functions (the CPU binding or exports.cuda)
   * @param BufClass this backend's buffer class: buffers of another backend are rejected by name
   */
  protected constructor(
    protected readonly n: NativeOps,
    private readonly BufClass: new (handle: number, offset: number, length: number, isView: boolean) => B,
    private readonly label: string,
  ) {}

  protected makeBuf(handle: number, offset: number, length: number, isView: boolean): B {
    return new this.BufClass(handle, offset, length, isView);
  }
  protected buf(fn: string, name: string, b: unknown): B {
    if (!(b instanceof this.BufClass)) fail('type', fn, `${name} must be a buffer of the ${this.label} backend, got ${describe(b)}`);
    return b as B;
  }
  protected optBuf(fn: string, name: string, b: unknown): B | null {
    return b === null || b === undefined ? null : this.buf(fn, name, b);
  }

  /** C (M,N) = alpha op(A) op(B) (+ C if accumulate), row-major; op(X) = X^T when trans. */
  sgemm(transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number, A: B, Bm: B, accumulate: boolean, C: B): void {
    const f = 'sgemm';
    this.n.sgemm(transA, transB, int(f, 'M', M, 0), int(f, 'N', N, 0), int(f, 'K', K, 0), finite(f, 'alpha', alpha), this.buf(f, 'A', A), this.buf(f, 'B', Bm), accumulate, this.buf(f, 'C', C));
  }

  // ---- memory ----------------------------------------------------------------------------------------
  alloc(n: number): B {
    const len = int('alloc', 'n', n, 0);
    return this.makeBuf(this.n.alloc(len), 0, len, false);
  }
  view(b: B, offset: number, length: number): B {
    const f = 'view';
    this.buf(f, 'buf', b);
    int(f, 'offset', offset, 0);
    int(f, 'length', length, 0);
    if (offset + length > b.length) fail('range', f, `range [${offset}, ${offset + length}) is outside a buffer of ${b.length} elements`);
    return this.makeBuf(b.handle, b.offset + offset, length, true);
  }
  size(b: B): number { return this.buf('size', 'buf', b).length; }
  upload(dst: B, src: ArrayLike<number>): void {
    const f = 'upload';
    this.buf(f, 'dst', dst);
    if (src === null || typeof src !== 'object' || typeof (src as ArrayLike<number>).length !== 'number') fail('type', f, `src must be an array of numbers, got ${describe(src)}`);
    const data = src instanceof Float64Array || src instanceof Float32Array ? src : Float64Array.from(src);
    if (data.length !== dst.length) fail('range', f, `src has ${data.length} elements, expected size(dst) = ${dst.length}`);
    this.n.upload(dst, data);
  }
  download(src: B): Float64Array { return this.n.download(this.buf('download', 'src', src)); }
  /** The buffer as float32, without widening. */
  downloadF32(src: B): Float32Array { return this.n.download_f32(this.buf('downloadF32', 'src', src)); }
  fill(b: B, value: number): void {
    if (typeof value !== 'number') fail('type', 'fill', `value must be a number, got ${describe(value)}`);
    this.n.fill(this.buf('fill', 'buf', b), value);
  }
  copy(dst: B, src: B): void { this.n.copy(this.buf('copy', 'dst', dst), this.buf('copy', 'src', src)); }
  free(b: B): void {
    this.buf('free', 'buf', b);
    if (b.isView) throw new Error('free: buf is a view; free the buffer it was made from');
    this.n.free(b.handle);
  }
  liveBuffers(): number { return this.n.live_buffers(); }

  // ---- elementwise -----------------------------------------------------------------------------------
  add(out: B, a: B, b: B): void { this.n.add(this.buf('add', 'out', out), this.buf('add', 'a', a), this.buf('add', 'b', b)); }
  scale(b: B, s: number): void { this.n.scale(this.buf('scale', 'buf', b), finite('scale', 's', s)); }
  sumSquares(b: B): number { return this.n.sum_squares(this.buf('sumSquares', 'buf', b)); }
  allFinite(b: B): boolean { return this.n.all_finite(this.buf('allFinite', 'buf', b)); }
  reluForward(out: B, inp: B): void { this.n.relu_forward(this.buf('reluForward', 'out', out), this.buf('reluForward', 'inp', inp)); }
  reluBackward(dinp: B, dout: B, out: B): void {
    const f = 'reluBackward';
    this.n.relu_backward(this.buf(f, 'dinp', dinp), this.buf(f, 'dout', dout), this.buf(f, 'out', out));
  }

  // ---- embedding -------------------------------------------------------------------------------------
  embeddingForward(out: B, idx: Int32Array, wte: B, wpe: B, B: number, T: number, C: number): void {
    const f = 'embeddingForward';
    this.n.embedding_forward(this.buf(f, 'out', out), i32(f, 'idx', idx), this.buf(f, 'wte', wte), this.buf(f, 'wpe', wpe), int(f, 'B', B, 0), int(f, 'T', T, 0), int(f, 'C', C, 1));
  }
  embeddingBackward(dwte: B, dwpe: B, dout: B, idx: Int32Array, B: number, T: number, C: number): void {
    const f = 'embeddingBackward';
    this.n.embedding_backward(this.buf(f, 'dwte', dwte), this.buf(f, 'dwpe', dwpe), this.buf(f, 'dout', dout), i32(f, 'idx', idx), int(f, 'B', B, 0), int(f, 'T', T, 0), int(f, 'C', C, 1));
  }

  // ---- layernorm -------------------------------------------------------------------------------------
  layernormForward(out: B, mean: B, rstd: B, inp: B, weight: B, bias: B | null, N: number, C: number, eps: number): void {
    const f = 'layernormForward';
    this.n.layernorm_forward(this.buf(f, 'out', out), this.buf(f, 'mean', mean), this.buf(f, 'rstd', rstd), this.buf(f, 'inp', inp), this.buf(f, 'weight', weight), this.optBuf(f, 'bias', bias),
      int(f, 'N', N, 0), int(f, 'C', C, 1), finite(f, 'eps', eps));
  }
  layernormBackward(dinp: B, dweight: B, dbias: B | null, dout: B, inp: B, weight: B, mean: B, rstd: B, N: number, C: number): void {
    const f = 'layernormBackward';
    this.n.layernorm_backward(this.buf(f, 'dinp', dinp), this.buf(f, 'dweight', dweight), this.optBuf(f, 'dbias', dbias), this.buf(f, 'dout', dout), this.buf(f, 'inp', inp), this.buf(f, 'weight', weight),
      this.buf(f, 'mean', mean), this.buf(f, 'rstd', rstd), int(f, 'N', N, 0), int(f, 'C', C, 1));
  }

  // ---- linear ----------------------------------------------------------------------------------------
  linearForward(out: B, inp: B, weight: B, bias: B | null, N: number, C: number, OC: number): void {
    const f = 'linearForward';
    this.n.linear_forward(this.buf(f, 'out', out), this.buf(f, 'inp', inp), this.buf(f, 'weight', weight), this.optBuf(f, 'bias', bias), int(f, 'N', N, 0), int(f, 'C', C, 1), int(f, 'OC', OC, 1));
  }
  linearBackward(dinp: B | null, dweight: B, dbias: B | null, dout: B, inp: B, weight: B, N: number, C: number, OC: number): void {
    const f = 'linearBackward';
    this.n.linear_backward(this.optBuf(f, 'dinp', dinp), this.buf(f, 'dweight', dweight), this.optBuf(f, 'dbias', dbias), this.buf(f, 'dout', dout), this.buf(f, 'inp', inp), this.buf(f, 'weight', weight),
      int(f, 'N', N, 0), int(f, 'C', C, 1), int(f, 'OC', OC, 1));
  }

  // ---- attention -------------------------------------------------------------------------------------
  attentionSavedSize(B: number, NH: number, T: number): number {
    const f = 'attentionSavedSize';
    return this.n.attention_saved_size(int(f, 'B', B, 0), int(f, 'NH', NH, 1), int(f, 'T', T, 0));
  }
  mssaForward(y: B, saved: B, v: B, B: number, T: number, C: number, NH: number): void {
    const f = 'mssaForward';
    this.n.mssa_forward(this.buf(f, 'y', y), this.buf(f, 'saved', saved), this.buf(f, 'v', v), int(f, 'B', B, 0), int(f, 'T', T, 0), int(f, 'C', C, 1), int(f, 'NH', NH, 1));
  }
  mssaBackward(dv: B, dy: B, v: B, y: B, saved: B, B: number, T: number, C: number, NH: number): void {
    const f = 'mssaBackward';
    this.n.mssa_backward(this.buf(f, 'dv', dv), this.buf(f, 'dy', dy), this.buf(f, 'v', v), this.buf(f, 'y', y), this.buf(f, 'saved', saved), int(f, 'B', B, 0), int(f, 'T', T, 0), int(f, 'C', C, 1), int(f, 'NH', NH, 1));
  }
  attentionForward(y: B, saved: B, qkv: B, B: number, T: number, C: number, NH: number): void {
    const f = 'attentionForward';
    this.n.attention_forward(this.buf(f, 'y', y), this.buf(f, 'saved', saved), this.buf(f, 'qkv', qkv), int(f, 'B', B, 0), int(f, 'T', T, 0), int(f, 'C', C, 1), int(f, 'NH', NH, 1));
  }
  attentionBackward(dqkv: B, dy: B, qkv: B, y: B, saved: B, B: number, T: number, C: number, NH: number): void {
    const f = 'attentionBackward';
    this.n.attention_backward(this.buf(f, 'dqkv', dqkv), this.buf(f, 'dy', dy), this.buf(f, 'qkv', qkv), this.buf(f, 'y', y), this.buf(f, 'saved', saved), int(f, 'B', B, 0), int(f, 'T', T, 0), int(f, 'C', C, 1), int(f, 'NH', NH, 1));
  }

  /**
   * Host fallback until the native kernel exists: downloads q and the cached rows, runs the float64
   * reference, uploads y (rounded to float32 once).
   */
  attentionDecode(y: B, q: B, k: B, v: B, B: number, t: number, Tmax: number, C: number, NH: number): void {
    const f = 'attentionDecode';
    int(f, 'B', B, 1); int(f, 'Tmax', Tmax, 1); int(f, 't', t, 0); int(f, 'C', C, 1); int(f, 'NH', NH, 1);
    if (t >= Tmax) fail('range', f, `t (${t}) must be < Tmax (${Tmax})`);
    const yh = new Float64Array(B * C);
    attentionDecodeRef(yh, this.download(q), this.download(k), this.download(v), B, t, Tmax, C, NH);
    this.upload(y, yh);
  }

  // ---- ISTA ------------------------------------------------------------------------------------------
  istaForward(out: B, codes: B, u: B, A: B, N: number, C: number, H: number, eta: number, lam: number, steps: number): void {
    const f = 'istaForward';
    this.n.ista_forward(this.buf(f, 'out', out), this.buf(f, 'codes', codes), this.buf(f, 'u', u), this.buf(f, 'A', A), int(f, 'N', N, 0), int(f, 'C', C, 1), int(f, 'H', H, 1),
      finite(f, 'eta', eta), finite(f, 'lam', lam), int(f, 'steps', steps, 1));
  }
  istaBackward(du: B, dA: B, dout: B, u: B, A: B, codes: B, N: number, C: number, H: number, eta: number, lam: number, steps: number): void {
    const f = 'istaBackward';
    this.n.ista_backward(this.buf(f, 'du', du), this.buf(f, 'dA', dA), this.buf(f, 'dout', dout), this.buf(f, 'u', u), this.buf(f, 'A', A), this.buf(f, 'codes', codes), int(f, 'N', N, 0), int(f, 'C', C, 1), int(f, 'H', H, 1),
      finite(f, 'eta', eta), finite(f, 'lam', lam), int(f, 'steps', steps, 1));
  }
  istaCompleteForward(out: B, x: B, W: B, N: number, C: number, eta: number, lam: number): void {
    const f = 'istaCompleteForward';
    this.n.ista_complete_forward(this.buf(f, 'out', out), this.buf(f, 'x', x), this.buf(f, 'W', W), int(f, 'N', N, 0), int(f, 'C', C, 1), finite(f, 'eta', eta), finite(f, 'lam', lam));
  }
  istaCompleteBackward(dx: B, dW: B, dout: B, x: B, W: B, out: B, N: number, C: number, eta: number, lam: number): void {
    const f = 'istaCompleteBackward';
    this.n.ista_complete_backward(this.buf(f, 'dx', dx), this.buf(f, 'dW', dW), this.buf(f, 'dout', dout), this.buf(f, 'x', x), this.buf(f, 'W', W), this.buf(f, 'out', out), int(f, 'N', N, 0), int(f, 'C', C, 1),
      finite(f, 'eta', eta), finite(f, 'lam', lam));
  }

  // ---- loss ------------------------------------------------------------------------------------------
  crossEntropyForward(dlogits: B | null, logits: B, targets: Int32Array, N: number, V: number, gradScale: number): number {
    const f = 'crossEntropyForward';
    return this.n.cross_entropy_forward(this.optBuf(f, 'dlogits', dlogits), this.buf(f, 'logits', logits), i32(f, 'targets', targets), int(f, 'N', N, 0), int(f, 'V', V, 1), finite(f, 'gradScale', gradScale));
  }

  // ---- optimizer -------------------------------------------------------------------------------------
  adamwUpdate(param: B, grad: B, m: B, v: B, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void {
    const f = 'adamwUpdate';
    this.n.adamw_update(this.buf(f, 'param', param), this.buf(f, 'grad', grad), this.buf(f, 'm', m), this.buf(f, 'v', v), finite(f, 'lr', lr), finite(f, 'beta1', beta1), finite(f, 'beta2', beta2),
      finite(f, 'eps', eps), finite(f, 'weightDecay', weightDecay), int(f, 'step', step, 1));
  }
}
