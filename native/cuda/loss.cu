// Cross-entropy fused with its softmax backward, one thread block per row.  logits, dlogits: (N,V);
// targets: (N) on the host, -1 = ignore.
//
// Per row: pass 1 finds the max (and any NaN), pass 2 sums exp(x - max) in double, pass 3 writes
// dlogits = gscale * softmax - gscale * onehot straight from the logits (probabilities are never
// stored). The row loss lse - x[target] is kept in double; one block then adds the row losses in a
// fixed tree, so the loss is bitwise reproducible, and identical whether or not dlogits is asked for.
#include <limits>

#include "common.cuh"

namespace crate {
namespace cuda {
namespace {

constexpr int kXentThreads = 512;

__global__ void __launch_bounds__(kXentThreads)
    cross_entropy_kernel(float* dlogits, const float* logits, const int32_t* targets, int64_t V, float gscale, double* row_loss) {
  __shared__ float fscratch[32];
  __shared__ double dscratch[32];
  __shared__ int iscratch[32];
  const int64_t n = blockIdx.x;
  const int target = targets[n];
  float* d = dlogits ? dlogits + n * V : nullptr;
  if (target == -1) {
    if (d)
      for (int64_t i = threadIdx.x; i < V; i += blockDim.x) d[i] = 0.0f;
    if (threadIdx.x == 0) row_loss[n] = 0.0;
    return;
  }
  const float* x = logits + n * V;
  float mx = -INFINITY;
  int nan = 0;
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
    const float xi = x[i];
    mx = xi > mx ? xi : mx;
    nan |= (xi != xi);
  }
  mx = block_max(mx, fscratch);
  nan = block_or(nan, iscratch);
  // NaN anywhere, or a row whose max is +-inf, has no finite softmax: the loss becomes NaN (CPU twin).
  if (nan || !isfinite(mx)) mx = __int_as_float(0x7fc00000);
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) s += static_cast<double>(expf(x[i] - mx));
  s = block_sum(s, dscratch);
  if (d) {
    const float scale = static_cast<float>(static_cast<double>(gscale) / s);
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
      float v = expf(x[i] - mx) * scale;
      if (i == target) v -= gscale;
      d[i] = v;
    }
  }
  if (threadIdx.x == 0) row_loss[n] = static_cast<double>(mx) + log(s) - static_cast<double>(x[target]);
}

__global__ void __launch_bounds__(256) sum_rows_kernel(const double* row_loss, int64_t N, double* out) {
  __shared__ double scratch[32];
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < N; i += blockDim.x) s += row_loss[i];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) out[0] = s;
}

}  // namespace

double cross_entropy_forward(float* dlogits, const float* logits, const int32_t* targets, int64_t N, int64_t V, double grad_scale) {
  const char* op = "cross_entropy_forward";
  if (N <= 0) return std::numeric_limits<double>::quiet_NaN();
  int64_t count = 0;
  for (int64_t n = 0; n < N; ++n) count += targets[n] != -1;
  const float gscale = count > 0 ? static_cast<float>(grad_scale / static_cast<double>(count)) : 0.0f;
  if (N > INT32_MAX) throw_op(op, "too many rows");
  const int32_t* d_targets = stage_ints(targets, N, op);
  double* ws = static_cast<double*>(workspace(sizeof(double) * (N + 1), op, Ws::kOp));
  cross_entropy_kernel<<<static_cast<unsigned>(N), kXentThreads>>>(dlogits, logits, d_targets, V, gscale, ws);
  CRATE_LAUNCH_CHECK(op, "cross_entropy_kernel");
  sum_rows_kernel<<<1, 256>>>(ws, N, ws + N);
  CRATE_LAUNCH_CHECK(op, "sum_rows_kernel");
  double total = 0.0;
  CRATE_CUDA_CHECK(op, cudaMemcpy(&total, ws + N, sizeof(double), cudaMemcpyDeviceToHost));
  if (count == 0) return std::numeric_limits<double>::quiet_NaN();
  return total / static_cast<double>(count);
}

}  // namespace cuda
}  // namespace crate
