// AdamW (decoupled weight decay) in one pass over a parameter range (per-element math shared with
// the CUDA twin: hd::adamw_element in hd_math.h):
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  mhat = m / (1-b1^t);  vhat = v / (1-b2^t);
//   p -= lr (mhat / (sqrt(vhat) + eps) + wd p).
#include <cmath>

#include "hd_math.h"
#include "ops.h"
#include "threadpool.h"
#include "vecmath.h"

namespace crate {
namespace {

CRATE_CLONES void adamw_range(float* p, const float* g, float* m, float* v, int64_t n, float lr, float b1, float b2, float eps, float wd, float c1, float c2) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) hd::adamw_element(p[i], g[i], m[i], v[i], lr, b1, b2, eps, wd, c1, c2);
}

}  // namespace

void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, double lr, double beta1, double beta2, double eps, double weight_decay,
                  int64_t step) {
  const float c1 = hd::adamw_bias_correction(beta1, step);
  const float c2 = hd::adamw_bias_correction(beta2, step);
  parallel_for(n, 1 << 14, [&](int64_t i0, int64_t i1) {
    adamw_range(param + i0, grad + i0, m + i0, v + i0, i1 - i0, static_cast<float>(lr), static_cast<float>(beta1), static_cast<float>(beta2),
                static_cast<float>(eps), static_cast<float>(weight_decay), c1, c2);
  });
}

}  // namespace crate
