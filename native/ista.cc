// ISTA blocks (spec E17, E19, E14), built on the packed SGEMM with the thresholds fused in place.
//
// Overcomplete ISTA from zero (A = ista.weight = D^T, (H,C)):
//   a_0 = 0;  a_t = relu(a_{t-1} + eta (u - a_{t-1} A) A^T - eta lam),  t = 1..steps;  out = a_steps A.
// u: (N,C), codes: (steps,N,H) keeps a_1..a_steps, out: (N,C). Two products per step plus the
// decode; the first step skips the residual product (a_0 = 0, so r_1 = u).
// Complete ISTA (paper B): out = relu(x + eta (x W - x W^T W) - eta lam), W: (C,C).
#include <algorithm>
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
  parallel_for(n, 1 << 14, [&](int64_t i0, int64_t i1) {
    threshold_range(g + i0, prev ? prev + i0 : nullptr, i1 - i0, eta, thr);
  });
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

}  // namespace

void ista_forward(float* out, float* codes, const float* u, const float* A, int64_t N, int64_t C, int64_t H,
                  double eta_d, double lam_d, int64_t steps) {
  const float eta = static_cast<float>(eta_d);
  const float thr = threshold_of(eta_d, lam_d);
  const int64_t NH = N * H;
  if (steps <= 0) {
    fill(out, N * C, 0.0f);
    return;
  }
  std::vector<float> r(steps > 1 ? static_cast<size_t>(N * C) : 0);
  for (int64_t t = 1; t <= steps; ++t) {
    float* at = codes + (t - 1) * NH;
    const float* prev = t > 1 ? codes + (t - 2) * NH : nullptr;
    const float* rt = u;
    if (prev) {  // r_t = u - a_{t-1} A
      copy(r.data(), u, N * C);
      sgemm(false, false, N, C, H, -1.0f, prev, H, A, C, true, r.data(), C);
      rt = r.data();
    }
    sgemm(false, true, N, H, C, 1.0f, rt, C, A, C, false, at, H);  // g = r_t A^T
    threshold(at, prev, NH, eta, thr);                                // a_t = relu(a_{t-1} + eta g - eta lam)
  }
  sgemm(false, false, N, C, H, 1.0f, codes + (steps - 1) * NH, H, A, C, false, out, C);  // out = a_S A
}

// Backward through out = a_S A and each step a_t = relu(a_{t-1} + eta r_t A^T - eta lam),
// r_t = u - a_{t-1} A:   dz_t = da_t (a_t > 0);  dr_t = eta dz_t A;  du += dr_t;
// dA += eta dz_t^T r_t - a_{t-1}^T dr_t;  da_{t-1} = dz_t - dr_t A^T.
void ista_backward(float* du, float* dA, const float* dout, const float* u, const float* A, const float* codes,
                   int64_t N, int64_t C, int64_t H, double eta_d, double lam_d, int64_t steps) {
  const float eta = static_cast<float>(eta_d);
  const float thr = threshold_of(eta_d, lam_d);
  (void)thr;  // the threshold only enters through the saved codes
  const int64_t NH = N * H;
  if (steps <= 0) {
    fill(du, N * C, 0.0f);
    return;
  }
  std::vector<float> da(static_cast<size_t>(NH)), da_prev(steps > 1 ? static_cast<size_t>(NH) : 0);
  std::vector<float> dr(static_cast<size_t>(N * C)), r(steps > 1 ? static_cast<size_t>(N * C) : 0);
  const float* aS = codes + (steps - 1) * NH;
  sgemm(true, false, H, C, N, 1.0f, aS, H, dout, C, true, dA, C);         // dA += a_S^T dout
  sgemm(false, true, N, H, C, 1.0f, dout, C, A, C, false, da.data(), H);  // da_S = dout A^T
  for (int64_t t = steps; t >= 1; --t) {
    const float* at = codes + (t - 1) * NH;
    const float* prev = t > 1 ? codes + (t - 2) * NH : nullptr;
    relu_mask(da.data(), at, NH);  // dz_t, in place
    const float* rt = u;
    if (prev) {
      copy(r.data(), u, N * C);
      sgemm(false, false, N, C, H, -1.0f, prev, H, A, C, true, r.data(), C);
      rt = r.data();
    }
    float* drt = t == steps ? du : dr.data();  // the first dr_t is written straight into du
    sgemm(false, false, N, C, H, eta, da.data(), H, A, C, false, drt, C);  // dr_t = eta dz_t A
    sgemm(true, false, H, C, N, eta, da.data(), H, rt, C, true, dA, C);    // dA += eta dz_t^T r_t
    if (prev) {
      sgemm(true, false, H, C, N, -1.0f, prev, H, drt, C, true, dA, C);  // dA -= a_{t-1}^T dr_t
      copy(da_prev.data(), da.data(), NH);
      sgemm(false, true, N, H, C, -1.0f, drt, C, A, C, true, da_prev.data(), H);  // da_{t-1} = dz_t - dr_t A^T
      std::swap(da, da_prev);
    }
    if (t != steps) add(du, du, drt, N * C);
  }
}

void ista_complete_forward(float* out, const float* x, const float* W, int64_t N, int64_t C, double eta_d, double lam_d) {
  const float eta = static_cast<float>(eta_d);
  const float thr = threshold_of(eta_d, lam_d);
  std::vector<float> q(static_cast<size_t>(N * C));
  sgemm(false, false, N, C, C, 1.0f, x, C, W, C, false, out, C);        // out = x W
  sgemm(false, true, N, C, C, 1.0f, x, C, W, C, false, q.data(), C);    // q = x W^T
  sgemm(false, false, N, C, C, -1.0f, q.data(), C, W, C, true, out, C);  // out = x W - q W
  threshold(out, x, N * C, eta, thr);                                    // relu(x + eta out - eta lam)
}

// z = x + eta (x W - q W) - eta lam with q = x W^T; out = relu(z); dz = dout (out > 0); G = dz W^T:
//   dx = dz + eta G - eta G W;   dW += eta ((x - q)^T dz - G^T x).
void ista_complete_backward(float* dx, float* dW, const float* dout, const float* x, const float* W, const float* out,
                            int64_t N, int64_t C, double eta_d, double lam_d) {
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
