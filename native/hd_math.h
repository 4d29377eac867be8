// Per-element and per-row math that the CPU twin (native/*.cc) and the CUDA twin (native/cuda/*.cu)
// both compute, written once as inline functions that compile for the host and, under nvcc, for the
// device as well. Keeping the arithmetic here (same operations, same order, same types) means the two
// twins round the same way at these points, and the CPU tests exercise the code the GPU runs.
//
// Only plain arithmetic lives here: no memory layout, no loops over tensors, no libraries beyond
// <cmath>. Every function documents the exact expression, since reordering it changes the rounding.
#pragma once

#include <math.h>

#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define CRATE_HD __host__ __device__ __forceinline__
#else
#define CRATE_HD inline
#endif

namespace crate {
namespace hd {

// ---- ReLU and its mask ----------------------------------------------------------------------------

/** relu(x) = x > 0 ? x : 0, except that NaN stays NaN (as PyTorch and the reference); -0 maps to +0. */
CRATE_HD float relu(float x) { return (x > 0.0f || x != x) ? x : 0.0f; }

/**
 * Gradient through y = relu(z), given the saved OUTPUT y: dz = y > 0 ? dy : 0. y > 0 exactly when
 * z > 0, so the derivative at z = 0 is 0 (PyTorch's convention).
 */
CRATE_HD float relu_mask(float dy, float y) { return y > 0.0f ? dy : 0.0f; }

// ---- ISTA ------------------------------------------------------------------------------------------

/** The threshold eta*lam of the one-sided soft threshold, rounded once to float. */
CRATE_HD float ista_threshold_of(double eta, double lam) { return static_cast<float>(eta * lam); }

/**
 * One ISTA step's epilogue (spec E17/E19; E14 for complete ISTA):
 *   a = relu(prev + eta * g - thr),  thr = eta * lam (see ista_threshold_of)
 * with g the gradient-step product ((u - prev A) A^T for overcomplete ISTA, x W - x W^T W for the
 * complete one) and prev the previous iterate (0 for the first step from zero; x for complete ISTA).
 */
CRATE_HD float ista_step(float prev, float g, float eta, float thr) {
  const float z = prev + eta * g - thr;
  return (z > 0.0f || z != z) ? z : 0.0f;  // NaN propagates, as relu
}

// ---- LayerNorm -------------------------------------------------------------------------------------

/** Row mean from the row sum (accumulated in double): sum / C. */
CRATE_HD double layernorm_mean(double sum, int64_t C) { return sum / static_cast<double>(C); }

/**
 * Row reciprocal standard deviation from the centred sum of squares sum_i (x_i - mean)^2
 * (accumulated in double): 1 / sqrt(sq / C + eps)  (biased variance, eps inside the sqrt).
 */
CRATE_HD double layernorm_rstd(double centred_sq, int64_t C, double eps) { return 1.0 / sqrt(centred_sq / static_cast<double>(C) + eps); }

/** One output element: (x - mean) * rstd * weight (+ bias), in float, in that order. */
CRATE_HD float layernorm_apply(float x, float mean, float rstd, float weight, const float* bias, int64_t i) {
  const float n = (x - mean) * rstd;
  return bias ? n * weight + bias[i] : n * weight;
}

/**
 * One element of the LayerNorm input gradient, given the row means m1 = mean(dnorm) and
 * m2 = mean(dnorm * xhat) (rounded to float), dnorm = dout * weight:
 *   dinp = (dnorm - m1 - xhat * m2) * rstd
 */
CRATE_HD float layernorm_dinp(float dnorm, float xhat, float m1, float m2, float rstd) { return (dnorm - m1 - xhat * m2) * rstd; }

// ---- AdamW -----------------------------------------------------------------------------------------

/** Bias corrections 1 - beta^step, computed in double and rounded once to float. */
CRATE_HD float adamw_bias_correction(double beta, int64_t step) { return static_cast<float>(1.0 - pow(beta, static_cast<double>(step))); }

/**
 * One AdamW element (decoupled weight decay, PyTorch torch.optim.AdamW semantics), all in float:
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  mhat = m / c1;  vhat = v / c2;
 *   p -= lr (mhat / (sqrt(vhat) + eps) + wd p),      c1 = 1 - b1^t, c2 = 1 - b2^t.
 */
CRATE_HD void adamw_element(float& p, float g, float& m, float& v, float lr, float b1, float b2, float eps, float wd, float c1, float c2) {
  const float mi = b1 * m + (1.0f - b1) * g;
  const float vi = b2 * v + (1.0f - b2) * g * g;
  m = mi;
  v = vi;
  const float mhat = mi / c1;
  const float vhat = vi / c2;
  p -= lr * (mhat / (sqrtf(vhat) + eps) + wd * p);
}

}  // namespace hd
}  // namespace crate
