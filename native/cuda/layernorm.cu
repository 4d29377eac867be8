// LayerNorm on the GPU (biased variance, eps inside the sqrt), forward and backward.
// inp, out, dinp, dout: (N, C); weight, bias: (C); mean, rstd: (N).
//
// Forward: one warp per row; row statistics in double (two passes, as the CPU twin), finalized by
// crate::hd::layernorm_mean / layernorm_rstd, output by hd::layernorm_apply.
// Backward: dinp with one warp per row (row means of dnorm and dnorm*xhat in double); dweight and
// dbias by a two-stage column reduction in a fixed order (row chunks of 128 in double, then the chunk
// partials in chunk order): no atomics, bitwise reproducible.
#include "common.cuh"

namespace crate {
namespace cuda {
namespace {

constexpr int kRowsPerBlock = 8;  // one warp per row
constexpr int64_t kRowChunk = 128;

__global__ void __launch_bounds__(256)
    layernorm_forward_kernel(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias, int64_t N, int64_t C, double eps) {
  const int lane = threadIdx.x & 31;
  const int64_t row = blockIdx.x * (int64_t)kRowsPerBlock + (threadIdx.x >> 5);
  if (row >= N) return;
  const float* x = inp + row * C;
  double s = 0.0;
  for (int64_t c = lane; c < C; c += 32) s += x[c];
  s = warp_sum(s);
  const double m = hd::layernorm_mean(s, C);
  double v = 0.0;
  for (int64_t c = lane; c < C; c += 32) {
    const double d = x[c] - m;
    v += d * d;
  }
  v = warp_sum(v);
  const double rs = hd::layernorm_rstd(v, C, eps);
  const float mf = static_cast<float>(m), rf = static_cast<float>(rs);
  float* o = out + row * C;
  for (int64_t c = lane; c < C; c += 32) o[c] = hd::layernorm_apply(x[c], mf, rf, weight[c], bias, c);
  if (lane == 0) {
    mean[row] = mf;
    rstd[row] = rf;
  }
}

__global__ void __launch_bounds__(256)
    layernorm_dinp_kernel(float* dinp, const float* dout, const float* inp, const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C) {
  const int lane = threadIdx.x & 31;
  const int64_t row = blockIdx.x * (int64_t)kRowsPerBlock + (threadIdx.x >> 5);
  if (row >= N) return;
  const float* x = inp + row * C;
  const float* d = dout + row * C;
  const float mu = mean[row], rs = rstd[row];
  double s1 = 0.0, s2 = 0.0;
  for (int64_t c = lane; c < C; c += 32) {
    const float xhat = (x[c] - mu) * rs;
    const float dn = d[c] * weight[c];
    s1 += dn;
    s2 += static_cast<double>(dn) * xhat;
  }
  s1 = warp_sum(s1);
  s2 = warp_sum(s2);
  const float m1 = static_cast<float>(s1 / static_cast<double>(C));
  const float m2 = static_cast<float>(s2 / static_cast<double>(C));
  float* o = dinp + row * C;
  for (int64_t c = lane; c < C; c += 32) {
    const float xhat = (x[c] - mu) * rs;
    const float dn = d[c] * weight[c];
    o[c] = hd::layernorm_dinp(dn, xhat, m1, m2, rs);
  }
}

// Stage 1: block (column block, row chunk); one column per thread, rows of the chunk in order.
__global__ void layernorm_param_partial_kernel(const float* dout, const float* inp, const float* mean, const float* rstd, int64_t N, int64_t C, double* pw,
                                               double* pb) {
  const int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  const int64_t chunk = blockIdx.y;
  if (j >= C) return;
  const int64_t r0 = chunk * kRowChunk, r1 = r0 + kRowChunk < N ? r0 + kRowChunk : N;
  double aw = 0.0, ab = 0.0;
  for (int64_t r = r0; r < r1; ++r) {
    const float dv = dout[r * C + j];
    const float xhat = (inp[r * C + j] - mean[r]) * rstd[r];
    aw += static_cast<double>(dv) * xhat;
    ab += dv;
  }
  pw[chunk * C + j] = aw;
  pb[chunk * C + j] = ab;
}

// Stage 2: one thread per column adds the chunk partials in chunk order, then accumulates.
__global__ void layernorm_param_final_kernel(float* dweight, float* dbias, const double* pw, const double* pb, int64_t nchunks, int64_t C) {
  const int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (j >= C) return;
  double aw = 0.0, ab = 0.0;
  for (int64_t c = 0; c < nchunks; ++c) {
    aw += pw[c * C + j];
    ab += pb[c * C + j];
  }
  dweight[j] = static_cast<float>(dweight[j] + aw);
  if (dbias) dbias[j] = static_cast<float>(dbias[j] + ab);
}

}  // namespace

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias, int64_t N, int64_t C, float eps) {
  if (N <= 0 || C <= 0) return;
  const unsigned blocks = static_cast<unsigned>(ceil_div(N, kRowsPerBlock));
  layernorm_forward_kernel<<<blocks, 32 * kRowsPerBlock>>>(out, mean, rstd, inp, weight, bias, N, C, eps);
  CRATE_LAUNCH_CHECK("layernorm_forward", "layernorm_forward_kernel");
}

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight, const float* mean,
                        const float* rstd, int64_t N, int64_t C) {
  const char* op = "layernorm_backward";
  if (N <= 0 || C <= 0) return;
  const int64_t nchunks = ceil_div(N, kRowChunk);
  if (nchunks > 65535) throw_op(op, "too many rows: " + std::to_string(N));
  Carve cv;
  cv.need(sizeof(double) * nchunks * C);
  cv.need(sizeof(double) * nchunks * C);
  cv.begin(workspace(cv.total(), op, Ws::kReduce));
  double* pw = cv.take<double>(nchunks * C);
  double* pb = cv.take<double>(nchunks * C);
  const dim3 grid1(static_cast<unsigned>(ceil_div(C, 128)), static_cast<unsigned>(nchunks));
  layernorm_param_partial_kernel<<<grid1, 128>>>(dout, inp, mean, rstd, N, C, pw, pb);
  CRATE_LAUNCH_CHECK(op, "layernorm_param_partial_kernel");
  layernorm_param_final_kernel<<<static_cast<unsigned>(ceil_div(C, 128)), 128>>>(dweight, dbias, pw, pb, nchunks, C);
  CRATE_LAUNCH_CHECK(op, "layernorm_param_final_kernel");
  const unsigned blocks = static_cast<unsigned>(ceil_div(N, kRowsPerBlock));
  layernorm_dinp_kernel<<<blocks, 32 * kRowsPerBlock>>>(dinp, dout, inp, weight, mean, rstd, N, C);
  CRATE_LAUNCH_CHECK(op, "layernorm_dinp_kernel");
}

}  // namespace cuda
}  // namespace crate
