// Shared plumbing of the CUDA twin: error checks that turn every failure into crate::cuda::Error
// naming the operator, a growable device workspace, the host->device staging of small int arrays,
// launch-size helpers and warp/block reductions in a fixed order.
#pragma once

#ifndef CRATE_CUDA_EMULATION  // scripts/check-cuda.sh --emulate compiles this with g++ (native/cuda/emu)
#include <cuda_runtime.h>
#endif

#include <cstdint>
#include <string>

#include "../hd_math.h"
#include "ops_cuda.h"

namespace crate {
namespace cuda {

// ---- errors ----------------------------------------------------------------------------------------

/** Throws Error("<op>: CUDA error <name> (<string>) in <what>"). Clears a non-sticky error first. */
[[noreturn]] void throw_cuda(const char* op, cudaError_t err, const char* what);
/** Throws Error("<op>: <msg>"). */
[[noreturn]] void throw_op(const char* op, const std::string& msg);

/** True when CRATE_CUDA_SYNC=1: synchronize after every launch so errors name the right operator. */
bool sync_after_launch();

#define CRATE_CUDA_CHECK(op, call)                                                   \
  do {                                                                               \
    const cudaError_t crate_err_ = (call);                                           \
    if (crate_err_ != cudaSuccess) ::crate::cuda::throw_cuda(op, crate_err_, #call); \
  } while (0)

/** After every <<<...>>>: launch-configuration errors now, execution errors when CRATE_CUDA_SYNC=1. */
#define CRATE_LAUNCH_CHECK(op, kernel_name)                                                              \
  do {                                                                                                   \
    const cudaError_t crate_err_ = cudaGetLastError();                                                   \
    if (crate_err_ != cudaSuccess) ::crate::cuda::throw_cuda(op, crate_err_, "launch of " kernel_name);  \
    if (::crate::cuda::sync_after_launch()) {                                                            \
      const cudaError_t crate_err2_ = cudaDeviceSynchronize();                                           \
      if (crate_err2_ != cudaSuccess) ::crate::cuda::throw_cuda(op, crate_err2_, "kernel " kernel_name); \
    }                                                                                                    \
  } while (0)

// ---- workspace ---------------------------------------------------------------------------------------

/**
 * Growable device scratch areas shared by all operators (they run one at a time on one stream).
 * workspace() returns at least `bytes` bytes of the named area, reallocating it (cudaFree
 * synchronizes, so no kernel still uses the old area) when too small. A caller that holds pointers
 * into one area may call helpers that use the OTHER areas only:
 *   kOp     operator-level scratch (ISTA intermediates, per-row losses)
 *   kGemm   split-K partial products inside the matrix-product dispatcher
 *   kReduce partials of the column sums, LayerNorm parameter gradients, whole-buffer reductions
 */
enum class Ws { kOp = 0, kGemm = 1, kReduce = 2 };
void* workspace(size_t bytes, const char* op, Ws area);

/** Sub-allocates 256-byte aligned pieces of a workspace, in order. */
class Carve {
 public:
  Carve() = default;
  /** Bytes needed for a sequence of pieces: add each piece's bytes with need(). */
  size_t need(size_t bytes) {
    total_ = align(total_) + bytes;
    return total_;
  }
  void begin(void* base) {
    base_ = static_cast<char*>(base);
    used_ = 0;
  }
  template <class T>
  T* take(size_t count) {
    used_ = align(used_);
    T* p = reinterpret_cast<T*>(base_ + used_);
    used_ += count * sizeof(T);
    return p;
  }
  size_t total() const { return total_; }

 private:
  static size_t align(size_t x) { return (x + 255) & ~static_cast<size_t>(255); }
  char* base_ = nullptr;
  size_t used_ = 0, total_ = 0;
};

/** Copies n host int32 values into a dedicated device staging buffer (separate from workspace()). */
int32_t* stage_ints(const int32_t* host, int64_t n, const char* op, int slot = 0);

// ---- launch helpers ----------------------------------------------------------------------------------

constexpr int kThreads = 256;

/** Blocks for a grid-stride loop over n elements (capped; the loops stride over the rest). */
inline unsigned grid_for(int64_t n, int threads = kThreads) {
  int64_t b = (n + threads - 1) / threads;
  if (b > 65536) b = 65536;
  if (b < 1) b = 1;
  return static_cast<unsigned>(b);
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// ---- device reductions (fixed order) -----------------------------------------------------------------

template <class T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

__device__ __forceinline__ int warp_or(int v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v |= __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

/**
 * Sum over the block in a fixed tree (warp shuffles, then warp 0 over the warp partials); every
 * thread gets the result. `scratch` holds >= 32 values. blockDim.x must be a multiple of 32.
 */
template <class T>
__device__ T block_sum(T v, T* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read from a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T r = lane < nwarps ? scratch[lane] : T(0);
  r = warp_sum(r);
  return r;
}

/** Max over the block (NaN-ignoring fmaxf; callers track NaN separately). */
__device__ inline float block_max(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float r = lane < nwarps ? scratch[lane] : -INFINITY;
  return warp_max(r);
}

__device__ inline int block_or(int v, int* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_or(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  int r = lane < nwarps ? scratch[lane] : 0;
  return warp_or(r);
}

}  // namespace cuda
}  // namespace crate
