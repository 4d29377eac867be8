// The operator interface every backend implements (reference, cpu, cuda).
//
// The models in src/model are written once against this interface, so choosing a backend is the
// only difference between a float64 reference run and a fast native run.
//
// Conventions (llm.c style: flat buffers, explicit shapes, forward and backward side by side):
// - Buffers are opaque handles owned by the backend. `view` makes a sub-range that shares memory.
//   The reference backend stores float64, the native backends float32; `download` always returns
//   a fresh Float64Array copy on the host.
// - All tensors are row-major and contiguous; every size is passed explicitly.
// - Forward functions write their outputs.
// - Backward functions WRITE activation gradients (d<input>) and ACCUMULATE (+=) parameter
//   gradients (d<weight>, d<bias>), so gradient accumulation over micro-batches is free.
// - Token ids and targets travel as host Int32Array; they are small and validated on the TS side.
// - A target of -1 is ignored by the loss (PyTorch's ignore_index=-1).

import type { Operators } from './ops.generated.js';

export type BackendName = 'reference' | 'cpu' | 'cuda';

export interface Backend<Buf = unknown> extends Operators<Buf> {
  readonly name: BackendName;
  /** Element type of the backend's buffers. */
  readonly dtype: 'f64' | 'f32';

  // ---- memory -------------------------------------------------------------------------------
  /** A new zero-filled buffer of n elements. */
  alloc(n: number): Buf;
  /** A view of `length` elements starting at `offset`, sharing memory with `buf`. */
  view(buf: Buf, offset: number, length: number): Buf;
  /** Number of elements in a buffer or view. */
  size(buf: Buf): number;
  /** Copy host values into the buffer (src.length must equal size(dst)). */
  upload(dst: Buf, src: ArrayLike<number>): void;
  /** Copy the buffer to the host as float64. */
  download(src: Buf): Float64Array;
  /** Set every element to `value`. */
  fill(buf: Buf, value: number): void;
  /** dst <- src (same size). */
  copy(dst: Buf, src: Buf): void;
  /** Release a buffer allocated by alloc (views are released with their parent). */
  free(buf: Buf): void;
  /** Number of live (allocated, not freed) buffers; used by leak tests. */
  liveBuffers(): number;
  /** Wait until all queued work is done (asynchronous backends such as CUDA; a no-op elsewhere). */
  synchronize?(): void;

  // ---- elementwise helpers ---------------------------------------------------------------------
  /** out = a + b, elementwise over n = size(out). out may alias a or b. */
  add(out: Buf, a: Buf, b: Buf): void;
  /** buf *= s. */
  scale(buf: Buf, s: number): void;
  /** Sum of squares of all elements (accumulated in float64 in a fixed order). */
  sumSquares(buf: Buf): number;
  /** True if every element is finite. */
  allFinite(buf: Buf): boolean;

  // ---- operators ---------------------------------------------------------------------------------
  // The operator methods (embedding, LayerNorm, linear, ReLU, attention, ISTA, loss, AdamW) come from the
  // operator table, native/ops.json: interface Operators in src/backend/ops.generated.ts, each with its
  // equation and shapes (npm run gen:ops regenerates it).
}
