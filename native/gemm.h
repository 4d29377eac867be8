// Cache-blocked, packed SGEMM with run-time selected micro-kernels (AVX-512, AVX2+FMA, scalar).
#pragma once

#include <cstdint>

namespace crate {

/**
 * C (M x N, row stride ldc) = alpha * op(A) op(B) + (accumulate ? C : 0).
 * op(A) is M x K: A is stored M x K (lda) or, when transA, K x M (lda).
 * op(B) is K x N: B is stored K x N (ldb) or, when transB, N x K (ldb).
 * All matrices row-major. The sum over K runs in a fixed order (blocks of a fixed size), so the
 * result does not depend on the number of threads.
 */
void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, bool accumulate,
           float* C, int64_t ldc);

/** Work applied to each finished tile of C (rows [i, i + rows), columns [j, j + cols); C points at
 *  its element (i, j), row stride ldc) right after its last K slice, on the thread that computed it,
 *  while the tile is still in cache. Tiles are disjoint; fn must only touch its own tile (and read
 *  anything). */
struct SgemmEpilogue {
  void (*fn)(void* ctx, float* C, int64_t ldc, int64_t i, int64_t j, int64_t rows, int64_t cols);
  void* ctx;
};

/** sgemm followed by epi (nullable) over every element of C exactly once. */
void sgemm_ex(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, bool accumulate,
              float* C, int64_t ldc, const SgemmEpilogue* epi);

/** Name of the micro-kernel in use: "avx512", "avx2" or "scalar". */
const char* sgemm_kernel();
/** Select a micro-kernel by name ("auto" = best supported). Returns false if unsupported here. */
bool sgemm_set_kernel(const char* name);
/** True when this CPU (and OS) runs AVX2 with FMA. */
bool cpu_has_avx2_fma();

}  // namespace crate

namespace crate {
/** Measured fused-multiply-add throughput over all pool threads in GFLOP/s (about `seconds` long),
 *  with the vector width of the selected micro-kernel: the ceiling the SGEMM is compared with. */
double fma_peak_gflops(double seconds);
}  // namespace crate
