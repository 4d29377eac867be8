// Cross-entropy fused with its softmax backward.  logits, dlogits: (N,V); targets: (N), -1 = ignore.
//
// Each row is swept while it sits in cache: max, then exp(x - max) written straight into dlogits
// with its sum (double), then scaled in place; probabilities are never stored separately. Per-row losses are kept in
// double and summed in row order, so the loss does not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ops.h"
#include "threadpool.h"
#include "vecmath.h"

namespace crate {
namespace {

// Returns the row's loss (logsumexp - logit[target]); writes the dlogits row when d is not null.
CRATE_CLONES double cross_entropy_row(float* d, const float* x, int64_t target, int64_t V, float gscale) {
  float mx = -std::numeric_limits<float>::infinity();
  int nan = 0;
#pragma omp simd reduction(max : mx) reduction(| : nan)
  for (int64_t i = 0; i < V; ++i) {
    mx = x[i] > mx ? x[i] : mx;
    nan |= (x[i] != x[i]);
  }
  // NaN anywhere, or a row whose max is +-inf, has no finite softmax: the loss becomes NaN.
  if (nan || !std::isfinite(mx)) mx = std::numeric_limits<float>::quiet_NaN();
  // exp(x - max) in float (vectorized), summed in double; chunked so the forward-only call needs
  // no row-sized scratch. With dlogits, the exponentials are written straight into it.
  constexpr int64_t kChunk = 1024;
  float tmp[kChunk];
  double s = 0.0;
  for (int64_t c0 = 0; c0 < V; c0 += kChunk) {
    const int64_t len = std::min(kChunk, V - c0);
    float* e = d ? d + c0 : tmp;
    const float* xc = x + c0;
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) e[i] = exp_nonpos(xc[i] - mx);
    double cs = 0.0;
#pragma omp simd reduction(+ : cs)
    for (int64_t i = 0; i < len; ++i) cs += e[i];
    s += cs;
  }
  if (d) {
    const float scale = static_cast<float>(gscale / s);
#pragma omp simd
    for (int64_t i = 0; i < V; ++i) d[i] *= scale;
    d[target] -= gscale;
  }
  const double lse = static_cast<double>(mx) + std::log(s);
  return lse - static_cast<double>(x[target]);
}

}  // namespace

double cross_entropy_forward(float* dlogits, const float* logits, const int32_t* targets, int64_t N, int64_t V, double grad_scale) {
  int64_t count = 0;
  for (int64_t n = 0; n < N; ++n) count += targets[n] != -1;
  const float gscale = count > 0 ? static_cast<float>(grad_scale / static_cast<double>(count)) : 0.0f;
  std::vector<double> row_loss(static_cast<size_t>(N), 0.0);
  parallel_for(N, 1, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      float* d = dlogits ? dlogits + n * V : nullptr;
      if (targets[n] == -1) {
        if (d) std::fill(d, d + V, 0.0f);
        continue;
      }
      row_loss[n] = cross_entropy_row(d, logits + n * V, targets[n], V, gscale);
    }
  });
  if (count == 0) return std::numeric_limits<double>::quiet_NaN();
  double total = 0.0;
  for (int64_t n = 0; n < N; ++n) total += row_loss[n];
  return total / static_cast<double>(count);
}

}  // namespace crate
