// Tolerances. Every comparison checks, element by element,
//     |got − ref| ≤ atolScale·max|ref| + rtol·|ref|
// (atol is a floor relative to the tensor's own scale, so entries that are tiny next to the
// largest one are judged against the tensor's size, as float32 rounding of the big ones is).
import type { Tolerance } from './compare.js';

// ---- end-to-end: a backend against a float64 fixture ------------------------------------------
//
// - reference (float64): the fixture was made by PyTorch in float64; the two compute the same
//   expressions in a different order, so agreement is at rounding level. Issue A asks for 1e-10.
// - cpu / cuda (float32): one rounding of float32 is 6e-8 relative; through ~20 operators, a
//   softmax and LayerNorm's 1/σ, errors of 1e-5 relative to the tensor's scale are expected; the
//   large-values fixture (weights ×50, saturated softmax) amplifies them, hence 1e-4 / 1e-3.
export const FIXTURE_TOLERANCE: Record<string, Tolerance> = {
  reference: { rtol: 1e-10, atolScale: 1e-10 },
  cpu: { rtol: 1e-3, atolScale: 1e-4 },
  cuda: { rtol: 1e-3, atolScale: 1e-4 },
};

// ---- per operator and direction: a float32 backend against the float64 reference ----------------
//
// Inputs are rounded to float32 first, so the only differences are the backend's own float32
// arithmetic. Let u = 2^-24 ≈ 6e-8 (float32 unit roundoff) and K the length of the longest
// reduction. Blocked/vectorized sums have error ≲ K·u·Σ|terms| in the worst case and ~sqrt(K)·u
// typically; the shapes drawn here have K ≤ ~200, so 2e-5 of the tensor's scale covers the worst
// case with margin while still catching any indexing or formula bug (those give O(1) errors).
//  - elementwise ops (add, relu, embedding) are exact or one rounding: 1e-6.
//  - LayerNorm divides by σ: with inputs offset by up to 1e3·σ the centred values lose
//    log2(1e3) ≈ 10 bits in float32, so the forward gets 1e-4 and the backward 2e-4.
//  - attention: exp and the softmax normalisation add a few roundings per element; 5e-5.
//  - ISTA: two iterations chain four products (K up to 4d); 5e-5, backward 1e-4 (it reverses the
//    chain and adds the A-gradient outer products).
//  - cross-entropy: log-sum-exp over V in float32 with max subtraction; 1e-5 on the loss, dlogits
//    are p − onehot, 2e-5.
//  - AdamW: a handful of roundings per element, but m/(sqrt(v)+eps) amplifies when v is tiny
//    relative to eps; 1e-5.
export type OpName =
  | 'embedding' | 'layernorm' | 'linear' | 'relu' | 'mssa' | 'attention' | 'ista' | 'istaComplete' | 'crossEntropy' | 'adamw' | 'elementwise';

export const OP_TOLERANCE: Record<OpName, { forward: Tolerance; backward: Tolerance }> = {
  embedding: { forward: { rtol: 1e-6, atolScale: 1e-6 }, backward: { rtol: 1e-5, atolScale: 1e-6 } },
  layernorm: { forward: { rtol: 1e-4, atolScale: 1e-4 }, backward: { rtol: 2e-4, atolScale: 2e-4 } },
  linear: { forward: { rtol: 2e-5, atolScale: 2e-5 }, backward: { rtol: 2e-5, atolScale: 2e-5 } },
  relu: { forward: { rtol: 0, atolScale: 0 }, backward: { rtol: 0, atolScale: 0 } },
  mssa: { forward: { rtol: 5e-5, atolScale: 5e-5 }, backward: { rtol: 1e-4, atolScale: 1e-4 } },
  attention: { forward: { rtol: 5e-5, atolScale: 5e-5 }, backward: { rtol: 1e-4, atolScale: 1e-4 } },
  ista: { forward: { rtol: 5e-5, atolScale: 5e-5 }, backward: { rtol: 1e-4, atolScale: 1e-4 } },
  istaComplete: { forward: { rtol: 5e-5, atolScale: 5e-5 }, backward: { rtol: 1e-4, atolScale: 1e-4 } },
  crossEntropy: { forward: { rtol: 1e-5, atolScale: 1e-5 }, backward: { rtol: 2e-5, atolScale: 2e-5 } },
  adamw: { forward: { rtol: 1e-5, atolScale: 1e-6 }, backward: { rtol: 1e-5, atolScale: 1e-6 } },
  elementwise: { forward: { rtol: 1e-6, atolScale: 1e-7 }, backward: { rtol: 1e-6, atolScale: 1e-7 } },
};
