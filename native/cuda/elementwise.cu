// Elementwise helpers on the GPU: fill, copy, add, scale, sum of squares, all-finite, ReLU forward and
// backward, and the deterministic column sum used for bias gradients. The reductions are two-stage
// with a fixed assignment of elements to blocks (a function of n only), so they are bitwise
// reproducible and independent of the GPU model.
#include "common.cuh"

namespace crate {
namespace cuda {
namespace {

__global__ void fill_kernel(float* buf, int64_t n, float value) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) buf[i] = value;
}

__global__ void add_kernel(float* out, const float* a, const float* b, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) out[i] = a[i] + b[i];
}

__global__ void scale_kernel(float* buf, int64_t n, float s) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) buf[i] *= s;
}

__global__ void relu_forward_kernel(float* out, const float* inp, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) out[i] = hd::relu(inp[i]);
}

__global__ void relu_backward_kernel(float* dinp, const float* dout, const float* out, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) dinp[i] = hd::relu_mask(dout[i], out[i]);
}

// ---- reductions over a whole buffer ----------------------------------------------------------------
// Chunk c (kChunk elements) belongs to block c % nblocks; inside a chunk thread t takes elements
// t, t + 256, ...; each block's partial is a fixed tree; the final stage sums partials in a fixed tree.

constexpr int64_t kChunk = 4096;
constexpr int kMaxBlocks = 1024;

inline int reduce_blocks(int64_t n) {
  const int64_t chunks = ceil_div(n, kChunk);
  return static_cast<int>(chunks < kMaxBlocks ? (chunks < 1 ? 1 : chunks) : kMaxBlocks);
}

__global__ void __launch_bounds__(256) sumsq_partial_kernel(const float* buf, int64_t n, double* partial) {
  __shared__ double scratch[32];
  double s = 0.0;
  for (int64_t c0 = blockIdx.x * kChunk; c0 < n; c0 += (int64_t)gridDim.x * kChunk) {
    const int64_t c1 = c0 + kChunk < n ? c0 + kChunk : n;
    for (int64_t i = c0 + threadIdx.x; i < c1; i += blockDim.x) {
      const double x = buf[i];
      s += x * x;
    }
  }
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void __launch_bounds__(256) finite_partial_kernel(const float* buf, int64_t n, double* partial) {
  __shared__ int scratch[32];
  int bad = 0;
  for (int64_t c0 = blockIdx.x * kChunk; c0 < n; c0 += (int64_t)gridDim.x * kChunk) {
    const int64_t c1 = c0 + kChunk < n ? c0 + kChunk : n;
    for (int64_t i = c0 + threadIdx.x; i < c1; i += blockDim.x) bad |= !isfinite(buf[i]);
  }
  bad = block_or(bad, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = bad;
}

/** One block of 256 threads sums `count` partials in a fixed order into out[0]. */
__global__ void __launch_bounds__(256) sum_partials_kernel(const double* partial, int count, double* out) {
  __shared__ double scratch[32];
  double s = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) s += partial[i];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) out[0] = s;
}

double reduce_to_host(const float* buf, int64_t n, bool finite, const char* op) {
  const int nb = reduce_blocks(n);
  double* ws = static_cast<double*>(workspace(sizeof(double) * (nb + 1), op, Ws::kReduce));
  if (finite) {
    finite_partial_kernel<<<nb, 256>>>(buf, n, ws);
    CRATE_LAUNCH_CHECK(op, "finite_partial_kernel");
  } else {
    sumsq_partial_kernel<<<nb, 256>>>(buf, n, ws);
    CRATE_LAUNCH_CHECK(op, "sumsq_partial_kernel");
  }
  sum_partials_kernel<<<1, 256>>>(ws, nb, ws + nb);
  CRATE_LAUNCH_CHECK(op, "sum_partials_kernel");
  double h = 0.0;
  CRATE_CUDA_CHECK(op, cudaMemcpy(&h, ws + nb, sizeof(double), cudaMemcpyDeviceToHost));
  return h;
}

// ---- column sums -----------------------------------------------------------------------------------
// Stage 1: block (column block, row chunk of kRowChunk rows) sums its rows in order, one column per
// thread, in double. Stage 2: one thread per column adds the chunk partials in chunk order.

constexpr int64_t kRowChunk = 128;

__global__ void colsum_partial_kernel(const float* src, int64_t rows, int64_t cols, double* partial) {
  const int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  const int64_t chunk = blockIdx.y;
  if (j >= cols) return;
  const int64_t r0 = chunk * kRowChunk, r1 = r0 + kRowChunk < rows ? r0 + kRowChunk : rows;
  double s = 0.0;
  for (int64_t r = r0; r < r1; ++r) s += src[r * cols + j];
  partial[chunk * cols + j] = s;
}

__global__ void colsum_final_kernel(float* dst, const double* partial, int64_t nchunks, int64_t cols) {
  const int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (j >= cols) return;
  double s = 0.0;
  for (int64_t c = 0; c < nchunks; ++c) s += partial[c * cols + j];
  dst[j] = static_cast<float>(static_cast<double>(dst[j]) + s);
}

}  // namespace

void fill(float* buf, int64_t n, float value) {
  if (n <= 0) return;
  fill_kernel<<<grid_for(n), kThreads>>>(buf, n, value);
  CRATE_LAUNCH_CHECK("fill", "fill_kernel");
}

void copy(float* dst, const float* src, int64_t n) {
  if (n <= 0 || dst == src) return;
  CRATE_CUDA_CHECK("copy", cudaMemcpyAsync(dst, src, static_cast<size_t>(n) * sizeof(float), cudaMemcpyDeviceToDevice, 0));
}

void add(float* out, const float* a, const float* b, int64_t n) {
  if (n <= 0) return;
  add_kernel<<<grid_for(n), kThreads>>>(out, a, b, n);
  CRATE_LAUNCH_CHECK("add", "add_kernel");
}

void scale(float* buf, int64_t n, float s) {
  if (n <= 0) return;
  scale_kernel<<<grid_for(n), kThreads>>>(buf, n, s);
  CRATE_LAUNCH_CHECK("scale", "scale_kernel");
}

double sum_squares(const float* buf, int64_t n) {
  if (n <= 0) return 0.0;
  return reduce_to_host(buf, n, false, "sum_squares");
}

bool all_finite(const float* buf, int64_t n) {
  if (n <= 0) return true;
  return reduce_to_host(buf, n, true, "all_finite") == 0.0;
}

void relu_forward(float* out, const float* inp, int64_t n) {
  if (n <= 0) return;
  relu_forward_kernel<<<grid_for(n), kThreads>>>(out, inp, n);
  CRATE_LAUNCH_CHECK("relu_forward", "relu_forward_kernel");
}

void relu_backward(float* dinp, const float* dout, const float* out, int64_t n) {
  if (n <= 0) return;
  relu_backward_kernel<<<grid_for(n), kThreads>>>(dinp, dout, out, n);
  CRATE_LAUNCH_CHECK("relu_backward", "relu_backward_kernel");
}

void column_sums_accumulate(float* dst, const float* src, int64_t rows, int64_t cols) {
  if (cols <= 0 || rows <= 0) return;
  const char* op = "column_sums_accumulate";
  const int64_t nchunks = ceil_div(rows, kRowChunk);
  if (nchunks > 65535) throw_op(op, "too many rows: " + std::to_string(rows));
  double* partial = static_cast<double*>(workspace(sizeof(double) * nchunks * cols, op, Ws::kReduce));
  const dim3 grid1(static_cast<unsigned>(ceil_div(cols, 128)), static_cast<unsigned>(nchunks));
  colsum_partial_kernel<<<grid1, 128>>>(src, rows, cols, partial);
  CRATE_LAUNCH_CHECK(op, "colsum_partial_kernel");
  colsum_final_kernel<<<static_cast<unsigned>(ceil_div(cols, 128)), 128>>>(dst, partial, nchunks, cols);
  CRATE_LAUNCH_CHECK(op, "colsum_final_kernel");
}

}  // namespace cuda
}  // namespace crate
