// ISTA blocks (spec E17, E19, E14), built on the packed SGEMM with the thresholds fused in place.
//
// Overcomplete ISTA from zero (A = ista.weight = D^T, (H,C)):
//   a_0 = 0;  a_t = relu(a_{t-1} + eta (u - a_{t-1} A) A^T - eta lam),  t = 1..steps;  out = a_steps A.
// u: (N,C), codes: (steps,N,H) keeps a_1..a_steps, out: (N,C). Two products per step plus the
// decode; the first step skips the residual product (a_0 = 0, so r_1 = u).
// Complete ISTA (paper B): out = relu(x + eta (x W - x W^T W) - eta lam), W: (C,C).
#include <algorithm>
#include <memory>
#include <vector>

#include "gemm.h"
#include "hd_math.h"
#include "ops.h"
#include "threadpool.h"
#include "vecmath.h"

namespace crate {
namespace {

// a[i] = relu(prev[i] + eta * g[i] - thr) in place over g (prev may be null = zeros).
CRATE_CLONES void threshold_range(float* g, const float* prev, int64_t n, float eta, float thr) {
  if (prev) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) g[i] = hd::ista_step(prev[i], g[i], eta, thr);
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) g[i] = hd::ista_step(0.0f, g[i], eta, thr);
  }
}

void threshold(float* g, const float* prev, int64_t n, float eta, float thr) {
  parallel_for(n, 1 << 14, [&](int64_t i0, int64_t i1) { threshold_range(g + i0, prev ? prev + i0 : nullptr, i1 - i0, eta, thr); });
}

// dz[i] = da[i] * (a[i] > 0) in place (a = relu(z) > 0 exactly when z > 0).
CRATE_CLONES void relu_mask_range(float* da, const float* a, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) da[i] = hd::relu_mask(da[i], a[i]);
}

void relu_mask(float* da, const float* a, int64_t n) {
  parallel_for(n, 1 << 14, [&](int64_t i0, int64_t i1) { relu_mask_range(da + i0, a + i0, i1 - i0); });
}

float threshold_of(double eta, double lam) { return hd::ista_threshold_of(eta, lam); }

// GEMM epilogues: the same per-element functions as threshold() / relu_mask(), applied to each
// output tile while it is in cache instead of in a separate pass (identical results).
struct ThresholdCtx {
  const float* prev;  // (N,H) or null
  int64_t ld;
  float eta, thr;
};
void threshold_tile(void* ctx, float* C, int64_t ldc, int64_t i, int64_t j, int64_t rows, int64_t cols) {
  const auto& c = *static_cast<const ThresholdCtx*>(ctx);
  for (int64_t r = 0; r < rows; ++r) threshold_range(C + r * ldc, c.prev ? c.prev + (i + r) * c.ld + j : nullptr, cols, c.eta, c.thr);
}
struct MaskCtx {
  const float* a;  // (N,H)
  int64_t ld;
};
void mask_tile(void* ctx, float* C, int64_t ldc, int64_t i, int64_t j, int64_t rows, int64_t cols) {
  const auto& c = *static_cast<const MaskCtx*>(ctx);
  for (int64_t r = 0; r < rows; ++r) relu_mask_range(C + r * ldc, c.a + (i + r) * c.ld + j, cols);
}

// Per-thread scratch reused across calls: no zero-fill and no fresh pages on every call (every
// element is written before it is read).
struct Scratch {
  std::unique_ptr<float[]> p;
  size_t n = 0;
  float* get(size_t want) {
    if (want > n) {
      p.reset(new float[want]);
      n = want;
    }
    return p.get();
  }
};
thread_local Scratch tl_scratch[4];

}  // namespace

void ista_forward(float* out, float* codes, const float* u, const float* A, int64_t N, int64_t C, int64_t H, double eta_d, double lam_d, int64_t steps) {
  const float eta = static_cast<float>(eta_d);
  const float thr = threshold_of(eta_d, lam_d);
  const int64_t NH = N * H;
  if (steps <= 0) {
    fill(out, N * C, 0.0f);
    return;
  }
  float* r = steps > 1 ? tl_scratch[0].get(static_cast<size_t>(N * C)) : nullptr;
  for (int64_t t = 1; t <= steps; ++t) {
    float* at = codes + (t - 1) * NH;
    const float* prev = t > 1 ? codes + (t - 2) * NH : nullptr;
    const float* rt = u;
    if (prev) {  // r_t = u - a_{t-1} A
      copy(r, u, N * C);
      sgemm(false, false, N, C, H, -1.0f, prev, H, A, C, true, r, C);
      rt = r;
    }
    // g = r_t A^T, then a_t = relu(a_{t-1} + eta g - eta lam) tile by tile
    ThresholdCtx tc{prev, H, eta, thr};
    const SgemmEpilogue epi{threshold_tile, &tc};
    sgemm_ex(false, true, N, H, C, 1.0f, rt, C, A, C, false, at, H, &epi);
  }
  sgemm(false, false, N, C, H, 1.0f, codes + (steps - 1) * NH, H, A, C, false, out, C);  // out = a_S A
}

// Backward through out = a_S A and each step a_t = relu(a_{t-1} + eta r_t A^T - eta lam),
// r_t = u - a_{t-1} A:   dz_t = da_t (a_t > 0);  dr_t = eta dz_t A;  du += dr_t;
// dA += eta dz_t^T r_t - a_{t-1}^T dr_t;  da_{t-1} = dz_t - dr_t A^T.
void ista_backward(float* du, float* dA, const float* dout, const float* u, const float* A, const float* codes, int64_t N, int64_t C, int64_t H, double eta_d,
                   double lam_d, int64_t steps) {
  const float eta = static_cast<float>(eta_d);
  const float thr = threshold_of(eta_d, lam_d);
  (void)thr;  // the threshold only enters through the saved codes
  const int64_t NH = N * H;
  if (steps <= 0) {
    fill(du, N * C, 0.0f);
    return;
  }
  float* da = tl_scratch[0].get(static_cast<size_t>(NH));
  float* dr = tl_scratch[1].get(static_cast<size_t>(N * C));
  float* r = steps > 1 ? tl_scratch[2].get(static_cast<size_t>(N * C)) : nullptr;
  const float* aS = codes + (steps - 1) * NH;
  sgemm(true, false, H, C, N, 1.0f, aS, H, dout, C, true, dA, C);  // dA += a_S^T dout
  MaskCtx mS{aS, H};
  const SgemmEpilogue epiS{mask_tile, &mS};
  sgemm_ex(false, true, N, H, C, 1.0f, dout, C, A, C, false, da, H, &epiS);  // dz_S = (dout A^T) (a_S > 0)
  for (int64_t t = steps; t >= 1; --t) {
    const float* prev = t > 1 ? codes + (t - 2) * NH : nullptr;
    // da holds dz_t here (masked by the epilogue of the product that made it)
    const float* rt = u;
    if (prev) {
      copy(r, u, N * C);
      sgemm(false, false, N, C, H, -1.0f, prev, H, A, C, true, r, C);
      rt = r;
    }
    float* drt = t == steps ? du : dr;                              // the first dr_t is written straight into du
    sgemm(false, false, N, C, H, eta, da, H, A, C, false, drt, C);  // dr_t = eta dz_t A
    sgemm(true, false, H, C, N, eta, da, H, rt, C, true, dA, C);    // dA += eta dz_t^T r_t
    if (prev) {
      sgemm(true, false, H, C, N, -1.0f, prev, H, drt, C, true, dA, C);  // dA -= a_{t-1}^T dr_t
      // da_{t-1} = dz_t - dr_t A^T, accumulated in place (dz_t is not needed after this), then
      // dz_{t-1} = da_{t-1} (a_{t-1} > 0) tile by tile
      MaskCtx mp{prev, H};
      const SgemmEpilogue epiP{mask_tile, &mp};
      sgemm_ex(false, true, N, H, C, -1.0f, drt, C, A, C, true, da, H, &epiP);
    }
    if (t != steps) add(du, du, drt, N * C);
  }
}

void ista_complete_forward(float* out, const float* x, const float* W, int64_t N, int64_t C, double eta_d, double lam_d) {
  const float eta = static_cast<float>(eta_d);
  const float thr = threshold_of(eta_d, lam_d);
  std::vector<float> q(static_cast<size_t>(N * C));
  sgemm(false, false, N, C, C, 1.0f, x, C, W, C, false, out, C);         // out = x W
  sgemm(false, true, N, C, C, 1.0f, x, C, W, C, false, q.data(), C);     // q = x W^T
  sgemm(false, false, N, C, C, -1.0f, q.data(), C, W, C, true, out, C);  // out = x W - q W
  threshold(out, x, N * C, eta, thr);                                    // relu(x + eta out - eta lam)
}

// z = x + eta (x W - q W) - eta lam with q = x W^T; out = relu(z); dz = dout (out > 0); G = dz W^T:
//   dx = dz + eta G - eta G W;   dW += eta ((x - q)^T dz - G^T x).
void ista_complete_backward(float* dx, float* dW, const float* dout, const float* x, const float* W, const float* out, int64_t N, int64_t C, double eta_d,
                            double lam_d) {
  const float eta = static_cast<float>(eta_d);
  const float thr = threshold_of(eta_d, lam_d);
  (void)thr;
  const int64_t n = N * C;
  std::vector<float> dz(dout, dout + n), G(static_cast<size_t>(n)), q(static_cast<size_t>(n));
  relu_mask(dz.data(), out, n);
  sgemm(false, true, N, C, C, 1.0f, dz.data(), C, W, C, false, G.data(), C);  // G = dz W^T
  sgemm(false, false, N, C, C, 1.0f, G.data(), C, W, C, false, dx, C);        // dx = G W (for now)
  parallel_for(n, 1 << 14, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) dx[i] = dz[i] + eta * (G[i] - dx[i]);
  });
  sgemm(false, true, N, C, C, 1.0f, x, C, W, C, false, q.data(), C);  // q = x W^T
  parallel_for(n, 1 << 14, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) q[i] = x[i] - q[i];
  });
  sgemm(true, false, C, C, N, eta, q.data(), C, dz.data(), C, true, dW, C);  // dW += eta (x - q)^T dz
  sgemm(true, false, C, C, N, -eta, G.data(), C, x, C, true, dW, C);         // dW -= eta G^T x
}

}  // namespace crate
