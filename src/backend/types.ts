// The operator interface every backend implements (reference, cpu, cuda).
//
// The models in src/model are written once against this interface, so choosing a backend is the
// only difference between a float64 reference run and a fast native run.
//
// Conventions (llm.c style, see DESIGN.md "Principles"):
// - Buffers are opaque handles owned by the backend. `view` makes a sub-range that shares memory.
//   The reference backend stores float64, the native backends float32; `download` always returns
//   a fresh Float64Array copy on the host.
// - All tensors are row-major and contiguous; every size is passed explicitly.
// - Forward functions write their outputs.
// - Backward functions WRITE activation gradients (d<input>) and ACCUMULATE (+=) parameter
//   gradients (d<weight>, d<bias>), so gradient accumulation over micro-batches is free.
// - Token ids and targets travel as host Int32Array; they are small and validated on the TS side.
// - A target of -1 is ignored by the loss (PyTorch's ignore_index=-1).

export type BackendName = 'reference' | 'cpu' | 'cuda';

export interface Backend<Buf = unknown> {
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

  // ---- embedding (spec E20) ----------------------------------------------------------------------
  /** out[b,t,:] = wte[idx[b,t],:] + wpe[t,:].  out: (B,T,C), wte: (V,C), wpe: (maxT,C). */
  embeddingForward(out: Buf, idx: Int32Array, wte: Buf, wpe: Buf, B: number, T: number, C: number): void;
  /** dwte[idx[b,t],:] += dout[b,t,:]; dwpe[t,:] += sum_b dout[b,t,:]. */
  embeddingBackward(dwte: Buf, dwpe: Buf, dout: Buf, idx: Int32Array, B: number, T: number, C: number): void;

  // ---- layernorm -----------------------------------------------------------------------------------
  /** out = (inp - mean) * rstd * weight + bias over the last dim. inp,out: (N,C); mean,rstd: (N). */
  layernormForward(out: Buf, mean: Buf, rstd: Buf, inp: Buf, weight: Buf, bias: Buf | null, N: number, C: number, eps: number): void;
  /** dinp written; dweight, dbias accumulated. */
  layernormBackward(dinp: Buf, dweight: Buf, dbias: Buf | null, dout: Buf, inp: Buf, weight: Buf, mean: Buf, rstd: Buf, N: number, C: number): void;

  // ---- linear / matmul -------------------------------------------------------------------------------
  /** out = inp @ weight^T + bias.  inp: (N,C), weight: (OC,C), bias: (OC) or null, out: (N,OC). */
  linearForward(out: Buf, inp: Buf, weight: Buf, bias: Buf | null, N: number, C: number, OC: number): void;
  /** dinp = dout @ weight (written, skipped if null); dweight += dout^T @ inp; dbias += sum_n dout. */
  linearBackward(dinp: Buf | null, dweight: Buf, dbias: Buf | null, dout: Buf, inp: Buf, weight: Buf, N: number, C: number, OC: number): void;

  // ---- elementwise ReLU (GPT-2 baseline MLP) ---------------------------------------------------------
  reluForward(out: Buf, inp: Buf): void;
  /** dinp = dout * (out > 0). */
  reluBackward(dinp: Buf, dout: Buf, out: Buf): void;

  // ---- causal attention ------------------------------------------------------------------------------
  /** Elements of the per-forward state the backend keeps for attention backward (B,NH,T). */
  attentionSavedSize(B: number, NH: number, T: number): number;
  /**
   * MSSA core (spec E18): q = k = v = the shared projection `v` (B,T,C), heads of width p = C/NH,
   * scores <v_i, v_j>/sqrt(p) for j <= i, row softmax, y = P v.  y: (B,T,C).
   */
  mssaForward(y: Buf, saved: Buf, v: Buf, B: number, T: number, C: number, NH: number): void;
  /** dv written (the sum of the query, key and value paths). */
  mssaBackward(dv: Buf, dy: Buf, v: Buf, y: Buf, saved: Buf, B: number, T: number, C: number, NH: number): void;
  /** GPT-2 attention with separate q,k,v: qkv (B,T,3C) = [q | k | v] per token; y (B,T,C). */
  attentionForward(y: Buf, saved: Buf, qkv: Buf, B: number, T: number, C: number, NH: number): void;
  /** dqkv written. */
  attentionBackward(dqkv: Buf, dy: Buf, qkv: Buf, y: Buf, saved: Buf, B: number, T: number, C: number, NH: number): void;

  /**
   * Incremental decoding: one new position per sequence attends to cached keys/values. For each
   * sequence b and head h: s_j = <q[b,h], k[b,j,h]>/sqrt(p) for j = 0..t, P = softmax(s),
   * y[b,h] = sum_j P_j v[b,j,h].  q, y: (B,C); k, v: (B,Tmax,C), rows 0..t read; q may alias k.
   */
  attentionDecode(y: Buf, q: Buf, k: Buf, v: Buf, B: number, t: number, Tmax: number, C: number, NH: number): void;

  // ---- ISTA (spec E17, E19, E14) --------------------------------------------------------------------
  /**
   * Overcomplete ISTA from zero: a_0 = 0, a_t = relu(a_{t-1} + eta (u - a_{t-1} A) A^T - eta lam),
   * t = 1..steps, out = a_steps A (no residual).  u: (N,C), A = ista.weight = D^T: (H,C),
   * codes: (steps, N, H) keeps every iterate a_1..a_steps, out: (N,C).
   */
  istaForward(out: Buf, codes: Buf, u: Buf, A: Buf, N: number, C: number, H: number, eta: number, lam: number, steps: number): void;
  /** du written, dA accumulated. */
  istaBackward(du: Buf, dA: Buf, dout: Buf, u: Buf, A: Buf, codes: Buf, N: number, C: number, H: number, eta: number, lam: number, steps: number): void;
  /** Complete ISTA (paper B, spec E14): out = relu(x + eta (x W - x W^T W) - eta lam). x,out: (N,C), W: (C,C). */
  istaCompleteForward(out: Buf, x: Buf, W: Buf, N: number, C: number, eta: number, lam: number): void;
  /** dx written, dW accumulated. */
  istaCompleteBackward(dx: Buf, dW: Buf, dout: Buf, x: Buf, W: Buf, out: Buf, N: number, C: number, eta: number, lam: number): void;

  // ---- loss ------------------------------------------------------------------------------------------
  /**
   * Mean cross-entropy over rows whose target is not -1, fused with its softmax backward:
   * dlogits = gradScale * (softmax(logits) - onehot(target)) / count (rows with target -1 get 0).
   * logits, dlogits: (N,V). dlogits may be null (forward only). Returns the mean loss
   * (NaN if every target is ignored).
   */
  crossEntropyForward(dlogits: Buf | null, logits: Buf, targets: Int32Array, N: number, V: number, gradScale: number): number;

  // ---- optimizer -------------------------------------------------------------------------------------
  /**
   * AdamW (decoupled weight decay), one pass over a parameter range:
   * m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  mhat = m/(1-b1^t);  vhat = v/(1-b2^t);
   * p -= lr (mhat/(sqrt(vhat)+eps) + wd p).   t = step (1-based).
   */
  adamwUpdate(param: Buf, grad: Buf, m: Buf, v: Buf, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void;
}
