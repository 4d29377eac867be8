// AdamW (decoupled weight decay) on the GPU: one kernel, one pass over a flat parameter range.
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  mhat = m/(1-b1^t);  vhat = v/(1-b2^t);
//   p -= lr (mhat / (sqrt(vhat) + eps) + wd p)
// The per-element update is crate::hd::adamw_element (native/hd_math.h), the same code as the CPU's;
// the bias corrections are computed once on the host in double (hd::adamw_bias_correction).
#include "common.cuh"

namespace crate {
namespace cuda {
namespace {

__global__ void adamw_kernel(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float b1, float b2, float eps, float wd, float c1,
                             float c2) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float p = param[i], mi = m[i], vi = v[i];
    hd::adamw_element(p, grad[i], mi, vi, lr, b1, b2, eps, wd, c1, c2);
    param[i] = p;
    m[i] = mi;
    v[i] = vi;
  }
}

}  // namespace

void adamw_update(float* param, const float* grad, float* m, float* v, int64_t n, double lr, double beta1, double beta2, double eps, double weight_decay,
                  int64_t step) {
  if (n <= 0) return;
  const float c1 = hd::adamw_bias_correction(beta1, step);
  const float c2 = hd::adamw_bias_correction(beta2, step);
  adamw_kernel<<<grid_for(n), kThreads>>>(param, grad, m, v, n, static_cast<float>(lr), static_cast<float>(beta1), static_cast<float>(beta2),
                                          static_cast<float>(eps), static_cast<float>(weight_decay), c1, c2);
  CRATE_LAUNCH_CHECK("adamw_update", "adamw_kernel");
}

}  // namespace cuda
}  // namespace crate
