// The CUDA twin of native/serve_rows.cc: what `crate-ts serve` needs of logit rows.
//
// logits_stats: one thread block per row. Pass 1 finds the max, pass 2 sums exp(x - max) in double
// (fixed tree, as cross_entropy_forward), and the top K come in K rounds: in round i each thread
// takes the best of its strided entries that come strictly after pick i-1 in the order (larger value
// first, equal values by lower id), and a fixed tree over the block picks the best of those. K is
// small in serving (at most 20 alternatives a position), so K passes over the row cost little next to
// the head product that made it.
//
// sample_logits: the draw is sequential by definition (an inverse-CDF walk in a fixed order over up
// to V candidates, after a sort for top-p), and one row a token is what a server draws from, so the
// twin copies the row (V floats) to the host and draws there with the CPU twin's code: the same id for
// the same u on either backend, and no device sort to keep in step with the host's.
#include <limits>
#include <vector>

#include "../ops.h"
#include "common.cuh"

namespace crate {
namespace cuda {
namespace {

constexpr int kStatsThreads = 256;

__device__ __forceinline__ bool before(float a, int64_t ia, float b, int64_t ib) { return a > b || (a == b && ia < ib); }

__global__ void __launch_bounds__(kStatsThreads)
    logits_stats_kernel(float* stats, float* top, const float* logits, const int32_t* targets, int64_t V, int64_t M, int64_t K) {
  __shared__ float fscratch[32];
  __shared__ double dscratch[32];
  __shared__ float sv[kStatsThreads];
  __shared__ int64_t si[kStatsThreads];
  const int64_t r = blockIdx.x;
  const float* x = logits + r * V;
  float mx = -INFINITY;
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) mx = fmaxf(mx, x[i]);
  mx = block_max(mx, fscratch);
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) s += static_cast<double>(expf(x[i] - mx));
  s = block_sum(s, dscratch);
  if (threadIdx.x == 0) {
    const double lse = static_cast<double>(mx) + log(s);
    const float hi = static_cast<float>(lse);
    stats[3 * r] = hi;
    stats[3 * r + 1] = static_cast<float>(lse - static_cast<double>(hi));
    stats[3 * r + 2] = x[targets[r]];
  }
  const int64_t n = M < V ? M : V;
  float pv = INFINITY;  // the previous pick; every entry comes after (+inf, -1)
  int64_t pi = -1;
  for (int64_t k = 0; k < K; ++k) {
    float bv = -INFINITY;
    int64_t bi = -1;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const float v = x[j];
      if (before(pv, pi, v, j) && (bi < 0 || before(v, j, bv, bi))) {
        bv = v;
        bi = j;
      }
    }
    __syncthreads();  // sv/si may still be read from the previous round
    sv[threadIdx.x] = bv;
    si[threadIdx.x] = bi;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
      if (static_cast<int>(threadIdx.x) < w) {
        const float ov = sv[threadIdx.x + w];
        const int64_t oi = si[threadIdx.x + w];
        if (oi >= 0 && (si[threadIdx.x] < 0 || before(ov, oi, sv[threadIdx.x], si[threadIdx.x]))) {
          sv[threadIdx.x] = ov;
          si[threadIdx.x] = oi;
        }
      }
      __syncthreads();
    }
    pv = sv[0];
    pi = si[0];
    if (threadIdx.x == 0) {
      top[(r * K + k) * 2] = pi >= 0 ? static_cast<float>(pi) : -1.0f;
      top[(r * K + k) * 2 + 1] = pi >= 0 ? pv : -INFINITY;
    }
    if (pi < 0) pv = -INFINITY;  // nothing left: the later places stay empty too
  }
}

}  // namespace

void logits_stats(float* stats, float* top, const float* logits, const int32_t* targets, int64_t N, int64_t V, int64_t M, int64_t K) {
  const char* op = "logits_stats";
  if (N <= 0) return;
  if (N > INT32_MAX) throw_op(op, "too many rows");
  const int32_t* d_targets = stage_ints(targets, N, op);
  logits_stats_kernel<<<static_cast<unsigned>(N), kStatsThreads>>>(stats, top, logits, d_targets, V, M, K);
  CRATE_LAUNCH_CHECK(op, "logits_stats_kernel");
}

double sample_logits(const float* logits, int64_t V, int64_t n, double temperature, int64_t topK, double topP, double u) {
  const char* op = "sample_logits";
  std::vector<float> row(static_cast<size_t>(V));
  CRATE_CUDA_CHECK(op, cudaMemcpy(row.data(), logits, sizeof(float) * static_cast<size_t>(V), cudaMemcpyDeviceToHost));
  return crate::sample_logits(row.data(), V, n, temperature, topK, topP, u);
}

}  // namespace cuda
}  // namespace crate
