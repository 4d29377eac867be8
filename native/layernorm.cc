// LayerNorm over the last dimension (biased variance, eps inside the sqrt), forward and backward.
// inp, out, dinp, dout: (N, C); weight, bias: (C); mean, rstd: (N).
#include <cmath>
#include <vector>

#include "hd_math.h"
#include "ops.h"
#include "threadpool.h"
#include "vecmath.h"

namespace crate {
namespace {

// One row: statistics in double (two passes), output in float.
CRATE_CLONES void layernorm_forward_row(float* out, float* mean_out, float* rstd_out, const float* x, const float* weight, const float* bias, int64_t C,
                                        double eps) {
  const double s = lane_sum(C, [&](int64_t i) { return x[i]; });
  const double m = hd::layernorm_mean(s, C);
  const double v = lane_sum(C, [&](int64_t i) {
    const double d = x[i] - m;
    return d * d;
  });
  const double rs = hd::layernorm_rstd(v, C, eps);
  const float mf = static_cast<float>(m), rf = static_cast<float>(rs);
  for (int64_t i = 0; i < C; ++i) out[i] = hd::layernorm_apply(x[i], mf, rf, weight[i], bias, i);
  *mean_out = mf;
  *rstd_out = rf;
}

// One row of dinp = rstd * (dnorm - mean(dnorm) - xhat * mean(dnorm * xhat)), dnorm = dout * weight.
CRATE_CLONES void layernorm_backward_row(float* dinp, const float* dout, const float* x, const float* weight, float mean, float rstd, int64_t C) {
  const double s1 = lane_sum(C, [&](int64_t i) { return dout[i] * weight[i]; });
  const double s2 = lane_sum(C, [&](int64_t i) {
    const float xhat = (x[i] - mean) * rstd;
    return static_cast<double>(dout[i] * weight[i]) * xhat;
  });
  const float m1 = static_cast<float>(s1 / static_cast<double>(C));
  const float m2 = static_cast<float>(s2 / static_cast<double>(C));
  for (int64_t i = 0; i < C; ++i) {
    const float xhat = (x[i] - mean) * rstd;
    const float dn = dout[i] * weight[i];
    dinp[i] = hd::layernorm_dinp(dn, xhat, m1, m2, rstd);
  }
}

// Columns [j0, j1) of dweight += sum_n dout * xhat and dbias += sum_n dout, rows in order, double.
CRATE_CLONES void layernorm_param_grads(float* dweight, float* dbias, const float* dout, const float* inp, const float* mean, const float* rstd, int64_t N,
                                        int64_t C, int64_t j0, int64_t j1, double* accw, double* accb) {
  const int64_t w = j1 - j0;
  for (int64_t j = 0; j < w; ++j) accw[j] = accb[j] = 0.0;
  for (int64_t n = 0; n < N; ++n) {
    const float* d = dout + n * C + j0;
    const float* x = inp + n * C + j0;
    const float m = mean[n], r = rstd[n];
#pragma omp simd
    for (int64_t j = 0; j < w; ++j) {
      const float xhat = (x[j] - m) * r;
      accw[j] += static_cast<double>(d[j]) * xhat;
      accb[j] += d[j];
    }
  }
  for (int64_t j = 0; j < w; ++j) dweight[j0 + j] = static_cast<float>(dweight[j0 + j] + accw[j]);
  if (dbias)
    for (int64_t j = 0; j < w; ++j) dbias[j0 + j] = static_cast<float>(dbias[j0 + j] + accb[j]);
}

}  // namespace

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias, int64_t N, int64_t C, float eps) {
  parallel_for(N, 16, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) layernorm_forward_row(out + n * C, mean + n, rstd + n, inp + n * C, weight, bias, C, eps);
  });
}

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight, const float* mean,
                        const float* rstd, int64_t N, int64_t C) {
  // Parameter gradients first (column blocks of a fixed width, each summed over all rows in order),
  // then dinp row by row; dinp may not alias dout or inp (checked by the binding).
  constexpr int64_t kCols = 128;
  const int64_t nblocks = (C + kCols - 1) / kCols;
  pool_run(nblocks, [&](int64_t b) {
    double accw[kCols], accb[kCols];
    const int64_t j0 = b * kCols, j1 = std::min(C, j0 + kCols);
    layernorm_param_grads(dweight, dbias, dout, inp, mean, rstd, N, C, j0, j1, accw, accb);
  });
  parallel_for(N, 16, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) layernorm_backward_row(dinp + n * C, dout + n * C, inp + n * C, weight, mean[n], rstd[n], C);
  });
}

}  // namespace crate
