// The part of the native backends that is the same for the CPU and the CUDA twin: memory, and every
// operator of the table (native/ops.json) through ONE generic method: the table says which arguments
// are buffers (of this backend; nullable or not), integer sizes (and their bounds), numbers and id
// lists, so each call is checked here first (TypeScript-side messages for TypeScript mistakes) and
// then again by the addon, which also checks live handles, view bounds, exact element counts, id
// ranges and overlaps before it touches memory (native/binding.h).
import { UsageError } from '../errors.js';
import type { Backend } from './types.js';
import type { NativeOps } from './loader.js';
import { OPERATORS, callArgs, type NativeHelpers, type OpSpec, type Operators } from './op-table.js';

/** What a native buffer handle looks like: elements [offset, offset + length) of allocation `handle`. */
export interface BufRef {
  readonly handle: number;
  readonly offset: number;
  readonly length: number;
  /** True for views made by `view` (released with their parent, not by `free`). */
  readonly isView: boolean;
}

export function fail(fn: string, msg: string): never {
  throw new UsageError(`${fn}: ${msg}`);
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name}`;
  if (typeof v === 'object') return `an object (${(v as object).constructor?.name ?? 'Object'})`;
  return `${typeof v} ${String(v)}`;
}

export function int(fn: string, name: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number') fail(fn, `${name} must be a number, got ${describe(v)}`);
  if (!Number.isInteger(v)) fail(fn, `${name} must be an integer, got ${v}`);
  if (v < min) fail(fn, `${name} must be >= ${min}, got ${v}`);
  if (v > max) fail(fn, `${name} must be <= ${max}, got ${v}`);
  return v;
}

export function finite(fn: string, name: string, v: unknown): number {
  if (typeof v !== 'number') fail(fn, `${name} must be a number, got ${describe(v)}`);
  if (!Number.isFinite(v)) fail(fn, `${name} must be a finite number, got ${v}`);
  return v;
}

export function i32(fn: string, name: string, a: unknown): Int32Array {
  if (!(a instanceof Int32Array)) fail(fn, `${name} must be an Int32Array, got ${describe(a)}`);
  return a;
}

/** Calls the addon; its argument errors (TypeError / RangeError naming the function) are usage errors here too. */
function addon<T>(call: () => T): T {
  try {
    return call();
  } catch (e) {
    if (e instanceof TypeError || e instanceof RangeError) throw new UsageError(e.message, { cause: e });
    throw e;
  }
}

// The operator and helper methods are installed on the prototype from the table (the static block at
// the end of the class); this interface, merged into the class, declares them. The merge is what lets
// one generic method serve every row; test/optable.test.ts checks that every row is installed.
export interface NativeBackendBase<B extends BufRef> extends Operators<B>, NativeHelpers<B> {}

// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
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
    if (!(b instanceof this.BufClass)) fail(fn, `${name} must be a buffer of the ${this.label} backend, got ${describe(b)}`);
    return b as B;
  }

  /** One table operator: the arguments checked by kind, then the addon's function of the same row. */
  protected callOp(op: OpSpec, values: readonly unknown[]): unknown {
    const fn = op.method,
      spec = callArgs(op);
    if (values.length !== spec.length) fail(fn, `expected ${spec.length} arguments, got ${values.length}`);
    const args = new Array<unknown>(spec.length);
    for (let i = 0; i < spec.length; i++) {
      const a = spec[i],
        v = values[i];
      switch (a.kind) {
        case 'int':
          args[i] = int(fn, a.name, v, a.min, a.max);
          break;
        case 'f32':
        case 'f64':
          if (a.rule === 'any') {
            if (typeof v !== 'number') fail(fn, `${a.name} must be a number, got ${describe(v)}`);
            args[i] = v;
          } else args[i] = finite(fn, a.name, v);
          break;
        case 'ids':
          args[i] = i32(fn, a.name, v);
          break;
        default:
          args[i] = a.nullable && (v === null || v === undefined) ? null : this.buf(fn, a.name, v);
      }
    }
    return addon(() => (this.n as unknown as Record<string, (...a: unknown[]) => unknown>)[op.name](...args));
  }

  /** C (M,N) = alpha op(A) op(B) (+ C if accumulate), row-major; op(X) = X^T when trans. */
  sgemm(transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number, A: B, Bm: B, accumulate: boolean, C: B): void {
    const f = 'sgemm';
    const args = [
      transA,
      transB,
      int(f, 'M', M, 0),
      int(f, 'N', N, 0),
      int(f, 'K', K, 0),
      finite(f, 'alpha', alpha),
      this.buf(f, 'A', A),
      this.buf(f, 'B', Bm),
      accumulate,
      this.buf(f, 'C', C),
    ] as const;
    addon(() => this.n.sgemm(...args));
  }

  // ---- memory ----------------------------------------------------------------------------------------
  alloc(n: number): B {
    const len = int('alloc', 'n', n, 0);
    return this.makeBuf(
      addon(() => this.n.alloc(len)),
      0,
      len,
      false,
    );
  }
  view(b: B, offset: number, length: number): B {
    const f = 'view';
    this.buf(f, 'buf', b);
    int(f, 'offset', offset, 0);
    int(f, 'length', length, 0);
    if (offset + length > b.length) fail(f, `range [${offset}, ${offset + length}) is outside a buffer of ${b.length} elements`);
    return this.makeBuf(b.handle, b.offset + offset, length, true);
  }
  size(b: B): number {
    return this.buf('size', 'buf', b).length;
  }
  upload(dst: B, src: ArrayLike<number>): void {
    const f = 'upload';
    this.buf(f, 'dst', dst);
    if (src === null || typeof src !== 'object' || typeof (src as ArrayLike<number>).length !== 'number')
      fail(f, `src must be an array of numbers, got ${describe(src)}`);
    const data = src instanceof Float64Array || src instanceof Float32Array ? src : Float64Array.from(src);
    if (data.length !== dst.length) fail(f, `src has ${data.length} elements, expected size(dst) = ${dst.length}`);
    addon(() => this.n.upload(dst, data));
  }
  download(src: B): Float64Array {
    const b = this.buf('download', 'src', src);
    return addon(() => this.n.download(b));
  }
  /** The buffer as float32, without widening. */
  downloadF32(src: B): Float32Array {
    const b = this.buf('downloadF32', 'src', src);
    return addon(() => this.n.download_f32(b));
  }
  free(b: B): void {
    this.buf('free', 'buf', b);
    if (b.isView) fail('free', 'buf is a view; free the buffer it was made from');
    addon(() => this.n.free(b.handle));
  }
  liveBuffers(): number {
    return this.n.live_buffers();
  }

  // Every row of the table becomes a method: reluForward(...) calls callOp(<its row>, arguments).
  static {
    for (const op of OPERATORS as readonly OpSpec[]) {
      Object.defineProperty(NativeBackendBase.prototype, op.method, {
        value: function (this: NativeBackendBase<BufRef>, ...values: unknown[]) {
          return this.callOp(op, values);
        },
        writable: true,
        configurable: true,
      });
    }
  }
}
