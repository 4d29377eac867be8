// Token + position embedding on the GPU (spec E20).  out, dout: (B,T,C); wte: (V,C); wpe: (maxT,C).
//
// Backward without atomics: the token ids are on the host, so the host buckets positions by token
// (counting, no sort: positions stay in increasing order inside a bucket) and one thread block per
// distinct token adds that token's rows in that order; dwpe uses one thread per (t, c) summing over b
// in order. Both orders are the CPU twin's, so the result is bitwise the CPU twin's.
#include <algorithm>
#include <unordered_map>
#include <vector>

#include "common.cuh"

namespace crate {
namespace cuda {
namespace {

__global__ void embedding_forward_kernel(float* out, const int32_t* idx, const float* wte, const float* wpe, int64_t T, int64_t C, int64_t total) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i / C, c = i % C;
    out[i] = wte[static_cast<int64_t>(idx[r]) * C + c] + wpe[(r % T) * C + c];
  }
}

// Block u owns distinct token tokens[u]; positions[starts[u] .. starts[u+1]) are its rows, ascending.
__global__ void embedding_dwte_kernel(float* dwte, const float* dout, const int32_t* tokens, const int32_t* starts, const int32_t* positions, int64_t C) {
  const int u = blockIdx.x;
  const int64_t tok = tokens[u];
  const int p0 = starts[u], p1 = starts[u + 1];
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    float acc = dwte[tok * C + c];
    for (int p = p0; p < p1; ++p) acc += dout[static_cast<int64_t>(positions[p]) * C + c];
    dwte[tok * C + c] = acc;
  }
}

__global__ void embedding_dwpe_kernel(float* dwpe, const float* dout, int64_t B, int64_t T, int64_t C) {
  const int64_t total = T * C;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    float acc = dwpe[i];
    for (int64_t b = 0; b < B; ++b) acc += dout[b * total + i];
    dwpe[i] = acc;
  }
}

}  // namespace

void embedding_forward(float* out, const int32_t* idx, const float* wte, const float* wpe, int64_t B, int64_t T, int64_t C) {
  const char* op = "embedding_forward";
  const int64_t N = B * T;
  if (N <= 0 || C <= 0) return;
  const int32_t* d_idx = stage_ints(idx, N, op);
  embedding_forward_kernel<<<grid_for(N * C), kThreads>>>(out, d_idx, wte, wpe, T, C, N * C);
  CRATE_LAUNCH_CHECK(op, "embedding_forward_kernel");
}

void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* idx, int64_t B, int64_t T, int64_t C) {
  const char* op = "embedding_backward";
  const int64_t N = B * T;
  if (N <= 0 || C <= 0) return;
  if (N > INT32_MAX - 1) throw_op(op, "too many tokens");
  // Host bucketing without a sort: distinct tokens in order of first appearance, a count per token,
  // prefix sums, then positions scattered in increasing order (so each bucket is in position order).
  std::unordered_map<int32_t, int32_t> slot;  // token -> bucket
  slot.reserve(static_cast<size_t>(N) * 2);
  std::vector<int32_t> tokens, count;
  std::vector<int32_t> bucket_of(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) {
    auto it = slot.emplace(idx[i], static_cast<int32_t>(tokens.size())).first;
    if (it->second == static_cast<int32_t>(tokens.size())) {
      tokens.push_back(idx[i]);
      count.push_back(0);
    }
    bucket_of[i] = it->second;
    ++count[it->second];
  }
  const int64_t U = static_cast<int64_t>(tokens.size());
  // packed = [tokens (U) | starts (U+1) | positions (N)]
  std::vector<int32_t> packed(static_cast<size_t>(U + U + 1 + N));
  int32_t* starts = packed.data() + U;
  int32_t* positions = starts + U + 1;
  std::copy(tokens.begin(), tokens.end(), packed.begin());
  starts[0] = 0;
  for (int64_t u = 0; u < U; ++u) starts[u + 1] = starts[u] + count[u];
  std::vector<int32_t> fillp(starts, starts + U);
  for (int64_t i = 0; i < N; ++i) positions[fillp[bucket_of[i]]++] = static_cast<int32_t>(i);
  const int32_t* d = stage_ints(packed.data(), static_cast<int64_t>(packed.size()), op);
  const int threads = C >= 256 ? 256 : (C >= 128 ? 128 : (C >= 64 ? 64 : 32));
  embedding_dwte_kernel<<<static_cast<unsigned>(U), threads>>>(dwte, dout, d, d + U, d + 2 * U + 1, C);
  CRATE_LAUNCH_CHECK(op, "embedding_dwte_kernel");
  embedding_dwpe_kernel<<<grid_for(T * C), kThreads>>>(dwpe, dout, B, T, C);
  CRATE_LAUNCH_CHECK(op, "embedding_dwpe_kernel");
}

}  // namespace cuda
}  // namespace crate
