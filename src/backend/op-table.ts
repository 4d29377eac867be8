// The operator table at run time. native/ops.json is the one list of the operators: their names,
// arguments and the element count each buffer must have. scripts/gen-ops.mjs (npm run gen:ops)
// turns it into src/backend/ops.generated.ts (this module's data and the interfaces below) and into
// the C++ that the Node-API binding validates with, so adding an operator means editing the table,
// not a dozen hand-written lists. See the README section "Adding an operator".
import { OPERATORS, TOLERANCES } from './ops.generated.js';

export { OPERATORS, TOLERANCES };
export type { Operators, NativeHelpers, NativeFunctions } from './ops.generated.js';

/** What a native buffer handle looks like to the addon: elements [offset, offset + length) of allocation `handle`. */
export interface NativeBufRef {
  readonly handle: number;
  readonly offset: number;
  readonly length: number;
}

/** One argument of an operator, in call order (see the $comment of native/ops.json). */
export type ArgSpec =
  /** A buffer: read (in), written (out), read and written (inout) or accumulated into (acc); `shape` is its element count. */
  | { readonly name: string; readonly kind: 'in' | 'out' | 'inout' | 'acc'; readonly nullable: boolean; readonly shape: string }
  /** An integer size in [min, max]. */
  | { readonly name: string; readonly kind: 'int'; readonly min: number; readonly max: number }
  /** A size the kernel receives but the caller does not pass: it is derived from a buffer's length. */
  | { readonly name: string; readonly kind: 'derived' }
  /** A number (float or double in C++): finite, any (NaN and Inf too), >= 0, or in [0, 1). */
  | { readonly name: string; readonly kind: 'f32' | 'f64'; readonly rule: 'finite' | 'any' | 'nonNegative' | 'unitInterval' }
  /** Host ids (an Int32Array): `count` of them, each in [lo, hi). */
  | { readonly name: string; readonly kind: 'ids'; readonly count: string; readonly lo: number; readonly hi: string };

export interface OpSpec {
  /** The addon's function and the C++/CUDA kernel: linear_forward. */
  readonly name: string;
  /** The Backend method: linearForward. */
  readonly method: string;
  /** operator: in the Backend interface's operator list; helper: a memory/elementwise helper of the native backends. */
  readonly group: 'operator' | 'helper';
  /** The entry of the tolerance table (native/tolerances.json) and of the differential suite. */
  readonly family: string;
  readonly direction: 'forward' | 'backward';
  readonly returns: 'void' | 'f64' | 'bool' | 'size';
  /** An output may be exactly the same view as an input. */
  readonly alias?: 'exact';
  readonly checks?: readonly string[];
  /** Ops without a kernel: the size they return. */
  readonly value?: string;
  readonly args: readonly ArgSpec[];
}

export type Operator = (typeof OPERATORS)[number];
/** Backend method names of the table's operators and helpers. */
export type OpMethod = Operator['method'];
/** Tolerance families (native/tolerances.json "operators"). */
export type OpFamily = keyof typeof TOLERANCES.operators;

/** The arguments a caller passes (derived sizes are not passed). */
export function callArgs(op: OpSpec): readonly Exclude<ArgSpec, { kind: 'derived' }>[] {
  return op.args.filter((a): a is Exclude<ArgSpec, { kind: 'derived' }> => a.kind !== 'derived');
}

/** The table row of a Backend method, or undefined. */
export function opByMethod(method: string): OpSpec | undefined {
  return (OPERATORS as readonly OpSpec[]).find((o) => o.method === method);
}
