// Sparse autoencoder operators on the GPU (src/reference/sae.ts has the equations, native/sae.cc the
// CPU twin): the products through the dense matrix-product dispatcher (gemm.cuh), the top-k by rank
// counting (each entry counts the entries that beat it in the reference's order, stopping at k: the
// same strict total order, so the same entries are kept, ties included), row and column sums in a
// fixed tree order (deterministic, no atomics).
#include <cmath>
#include <vector>

#include "common.cuh"
#include "gemm.cuh"

namespace crate {
namespace cuda {
namespace {

__device__ __forceinline__ bool beats(float va, int64_t a, float vb, int64_t b) { return va > vb || (va == vb && a < b); }

// h = relu(topk_k(pre)) over the eligible features; one thread per element.
__global__ void topk_kernel(float* h, const float* pre, const float* mask, int64_t N, int64_t S, int64_t k) {
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < N * S; e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t n = e / S, j = e % S;
    const float* row = pre + n * S;
    const float v = row[j];
    bool keep = !mask || mask[j] != 0.0f;
    if (keep && k < S) {
      int64_t rank = 0;
      for (int64_t i = 0; i < S && rank < k; ++i)
        if ((!mask || mask[i] != 0.0f) && beats(row[i], i, v, j)) ++rank;
      keep = rank < k;
    }
    h[e] = keep && v > 0.0f ? v : 0.0f;
  }
}

__global__ void sub_rows_kernel(float* out, const float* x, const float* b, int64_t N, int64_t D) {
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < N * D; e += (int64_t)gridDim.x * blockDim.x) out[e] = x[e] - b[e % D];
}

__global__ void add_rows_kernel(float* out, const float* b, int64_t N, int64_t D) {
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < N * D; e += (int64_t)gridDim.x * blockDim.x) out[e] += b[e % D];
}

__global__ void mask_l1_kernel(float* dpre, const float* h, int64_t n, float l1) {
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) dpre[e] = h[e] > 0.0f ? dpre[e] + l1 : 0.0f;
}

// db_dec[i] -= sum_j W_enc[i,j] colsum[j]; one block per i.
__global__ void bdec_input_kernel(float* db_dec, const float* W_enc, const float* colsum, int64_t S) {
  __shared__ double scratch[32];
  const int64_t i = blockIdx.x;
  double s = 0.0;
  for (int64_t j = threadIdx.x; j < S; j += blockDim.x) s += (double)W_enc[i * S + j] * colsum[j];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) db_dec[i] -= (float)s;
}

// Per column i of x (N,D): sum_n (x - mean)^2, one block per column.
__global__ void column_var_kernel(double* out, const float* x, int64_t N, int64_t D) {
  __shared__ double scratch[32];
  const int64_t i = blockIdx.x;
  double m = 0.0;
  for (int64_t n = threadIdx.x; n < N; n += blockDim.x) m += x[n * D + i];
  m = block_sum(m, scratch) / (double)N;
  double s = 0.0;
  for (int64_t n = threadIdx.x; n < N; n += blockDim.x) {
    const double d = x[n * D + i] - m;
    s += d * d;
  }
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) out[i] = s;
}

// Per row n: sum_i (xhat - x)^2, one block per row.
__global__ void row_sq_kernel(double* out, const float* xhat, const float* x, int64_t D) {
  __shared__ double scratch[32];
  const int64_t n = blockIdx.x;
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
    const double d = (double)xhat[n * D + i] - x[n * D + i];
    s += d * d;
  }
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) out[n] = s;
}

__global__ void mse_grad_kernel(float* dxhat, const float* xhat, const float* x, int64_t n, double g) {
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x)
    dxhat[e] = (float)(g * ((double)xhat[e] - x[e]));
}

// One block per decoder row: project (g != null) or normalise.
__global__ void rows_kernel(float* g, float* w, const float* wc, int64_t D) {
  __shared__ double scratch[32];
  const int64_t j = blockIdx.x;
  const float* wr = (w ? w : wc) + j * D;
  double d = 0.0, nn = 0.0;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
    nn += (double)wr[i] * wr[i];
    if (g) d += (double)g[j * D + i] * wr[i];
  }
  nn = block_sum(nn, scratch);
  if (g) d = block_sum(d, scratch);
  if (!(nn > 0.0)) return;
  if (g) {
    const float c = (float)(-d / nn);
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) g[j * D + i] += c * wr[i];
  } else {
    const float r = (float)(1.0 / sqrt(nn));
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) w[j * D + i] *= r;
  }
}

// counts[j] and the column sum of h, one block per column.
__global__ void fire_kernel(float* counts, double* sums, const float* h, int64_t N, int64_t S) {
  __shared__ double scratch[32];
  const int64_t j = blockIdx.x;
  double c = 0.0, s = 0.0;
  for (int64_t n = threadIdx.x; n < N; n += blockDim.x) {
    const float a = h[n * S + j];
    c += a > 0.0f ? 1.0 : 0.0;
    s += a;
  }
  c = block_sum(c, scratch);
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) {
    counts[j] = (float)c;
    sums[j] = s;
  }
}

}  // namespace

void sae_topk(float* h, const float* pre, const float* mask, int64_t N, int64_t S, int64_t k) {
  if (N * S == 0) return;
  topk_kernel<<<grid_for(N * S), kThreads>>>(h, pre, mask, N, S, k);
  CRATE_LAUNCH_CHECK("sae_topk", "topk_kernel");
}

void sae_encode_forward(float* pre, float* h, const float* x, const float* W_enc, const float* b_enc, const float* b_dec, int64_t N, int64_t D, int64_t S,
                        int64_t k) {
  const char* op = "sae_encode_forward";
  if (N == 0) return;
  float* xc = static_cast<float*>(workspace(sizeof(float) * N * D, op, Ws::kOp));
  sub_rows_kernel<<<grid_for(N * D), kThreads>>>(xc, x, b_dec, N, D);
  CRATE_LAUNCH_CHECK(op, "sub_rows_kernel");
  gemm::run(op, false, false, N, S, D, xc, D, W_enc, S, gemm::Store{pre, S, 1.0f});
  add_rows_kernel<<<grid_for(N * S), kThreads>>>(pre, b_enc, N, S);
  CRATE_LAUNCH_CHECK(op, "add_rows_kernel");
  topk_kernel<<<grid_for(N * S), kThreads>>>(h, pre, nullptr, N, S, k);
  CRATE_LAUNCH_CHECK(op, "topk_kernel");
}

void sae_decode_forward(float* xhat, const float* h, const float* W_dec, const float* b_dec, int64_t N, int64_t D, int64_t S) {
  const char* op = "sae_decode_forward";
  if (N == 0) return;
  gemm::run(op, false, false, N, D, S, h, S, W_dec, D, gemm::Store{xhat, D, 1.0f});
  if (b_dec) {
    add_rows_kernel<<<grid_for(N * D), kThreads>>>(xhat, b_dec, N, D);
    CRATE_LAUNCH_CHECK(op, "add_rows_kernel");
  }
}

void sae_decode_backward(float* dpre, float* dW_dec, float* db_dec, const float* dxhat, const float* h, const float* W_dec, int64_t N, int64_t D, int64_t S,
                         double l1) {
  const char* op = "sae_decode_backward";
  if (N == 0) return;
  gemm::run(op, false, true, N, S, D, dxhat, D, W_dec, D, gemm::Store{dpre, S, 1.0f});
  mask_l1_kernel<<<grid_for(N * S), kThreads>>>(dpre, h, N * S, (float)l1);
  CRATE_LAUNCH_CHECK(op, "mask_l1_kernel");
  gemm::run(op, true, false, S, D, N, h, S, dxhat, D, gemm::Accumulate{dW_dec, D, 1.0f});
  if (db_dec) column_sums_accumulate(db_dec, dxhat, N, D);
}

void sae_encode_backward(float* dW_enc, float* db_enc, float* db_dec, const float* dpre, const float* x, const float* W_enc, const float* b_dec, int64_t N,
                         int64_t D, int64_t S) {
  const char* op = "sae_encode_backward";
  if (N == 0) return;
  Carve c;
  c.need(sizeof(float) * S);
  c.need(sizeof(float) * N * D);
  c.begin(workspace(c.total(), op, Ws::kOp));
  float* colsum = c.take<float>(S);
  float* xc = c.take<float>(N * D);
  CRATE_CUDA_CHECK(op, cudaMemset(colsum, 0, sizeof(float) * S));
  column_sums_accumulate(colsum, dpre, N, S);
  bdec_input_kernel<<<(unsigned)D, kThreads>>>(db_dec, W_enc, colsum, S);
  CRATE_LAUNCH_CHECK(op, "bdec_input_kernel");
  column_sums_accumulate(db_enc, dpre, N, S);
  sub_rows_kernel<<<grid_for(N * D), kThreads>>>(xc, x, b_dec, N, D);
  CRATE_LAUNCH_CHECK(op, "sub_rows_kernel");
  gemm::run(op, true, false, D, S, N, xc, D, dpre, S, gemm::Accumulate{dW_enc, S, 1.0f});
}

double sae_mse_loss(float* dxhat, const float* xhat, const float* x, int64_t N, int64_t D, double gradScale) {
  const char* op = "sae_mse_loss";
  if (N == 0) return std::nan("");
  Carve c;
  c.need(sizeof(double) * D);
  c.need(sizeof(double) * N);
  c.begin(workspace(c.total(), op, Ws::kOp));
  double* var = c.take<double>(D);
  double* rows = c.take<double>(N);
  column_var_kernel<<<(unsigned)D, kThreads>>>(var, x, N, D);
  CRATE_LAUNCH_CHECK(op, "column_var_kernel");
  row_sq_kernel<<<(unsigned)N, kThreads>>>(rows, xhat, x, D);
  CRATE_LAUNCH_CHECK(op, "row_sq_kernel");
  std::vector<double> hv(D), hr(N);
  CRATE_CUDA_CHECK(op, cudaMemcpy(hv.data(), var, sizeof(double) * D, cudaMemcpyDeviceToHost));
  CRATE_CUDA_CHECK(op, cudaMemcpy(hr.data(), rows, sizeof(double) * N, cudaMemcpyDeviceToHost));
  double den = 0.0, num = 0.0;
  for (double v : hv) den += v;
  for (double v : hr) num += v;
  if (!(den > 0.0)) den = (double)N;
  if (dxhat) {
    mse_grad_kernel<<<grid_for(N * D), kThreads>>>(dxhat, xhat, x, N * D, gradScale * 2.0 / den);
    CRATE_LAUNCH_CHECK(op, "mse_grad_kernel");
  }
  return num / den;
}

void sae_decoder_project(float* dW_dec, const float* W_dec, int64_t S, int64_t D) {
  if (S == 0) return;
  rows_kernel<<<(unsigned)S, kThreads>>>(dW_dec, nullptr, W_dec, D);
  CRATE_LAUNCH_CHECK("sae_decoder_project", "rows_kernel");
}

void sae_normalize_rows(float* W, int64_t S, int64_t D) {
  if (S == 0) return;
  rows_kernel<<<(unsigned)S, kThreads>>>(nullptr, W, W, D);
  CRATE_LAUNCH_CHECK("sae_normalize_rows", "rows_kernel");
}

double sae_fire_counts(float* counts, const float* h, int64_t N, int64_t S) {
  const char* op = "sae_fire_counts";
  double* sums = static_cast<double*>(workspace(sizeof(double) * S, op, Ws::kOp));
  fire_kernel<<<(unsigned)S, kThreads>>>(counts, sums, h, N, S);
  CRATE_LAUNCH_CHECK(op, "fire_kernel");
  std::vector<double> hs(S);
  CRATE_CUDA_CHECK(op, cudaMemcpy(hs.data(), sums, sizeof(double) * S, cudaMemcpyDeviceToHost));
  double total = 0.0;
  for (double v : hs) total += v;
  return total;
}

}  // namespace cuda
}  // namespace crate
