// The SGEMM engine under the linear family (native/linear.cc) and every other matrix product of the
// CPU addon (native/gemm.h): a BLIS-style packed SGEMM, the CPU feature detection that picks its
// micro-kernel, and the FMA peak benchmark it is compared with. Its CUDA counterpart is
// native/cuda/gemm.cuh.
//
// Loop nest (per call): for each NC-wide column panel of op(B), for each KC-deep slice of K: pack
// the KC x NC panel of op(B) into NR-wide slivers (in parallel), then, in parallel over
// (MC-row block, column chunk) tasks, pack the MC x KC block of op(A) into MR-tall slivers and run
// the MR x NR micro-kernel over it. The K sum always runs in KC-sized slices in the same order,
// so results do not depend on the thread count.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "gemm.h"
#include "ops.h"
#include "threadpool.h"

namespace crate {
namespace {

using ukernel_fn = void (*)(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc, float alpha, bool acc);

struct Kernel {
  const char* name;
  int mr, nr;
  int64_t mc, kc, nc;  // cache blocking
  ukernel_fn ukr;
};

// ---- micro-kernels -------------------------------------------------------------------------------
// Each computes the full MR x NR tile acc = sum_k Ap[k*MR + i] * Bp[k*NR + j] and stores
// C = alpha * acc (+ C if acc). Edge tiles go through a scratch tile (see macro_kernel).

void ukr_scalar_4x8(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc, float alpha, bool acc) {
  float c[4][8] = {};
  for (int64_t k = 0; k < kc; ++k) {
    for (int i = 0; i < 4; ++i) {
      float a = Ap[i];
      for (int j = 0; j < 8; ++j) c[i][j] += a * Bp[j];
    }
    Ap += 4;
    Bp += 8;
  }
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 8; ++j) C[i * ldc + j] = acc ? alpha * c[i][j] + C[i * ldc + j] : alpha * c[i][j];
}

__attribute__((target("avx2,fma"))) void ukr_avx2_6x16(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc, float alpha, bool acc) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
#define CRATE_AVX2_STEP(K)                            \
  {                                                   \
    __m256 b0 = _mm256_load_ps(Bp + 16 * (K));        \
    __m256 b1 = _mm256_load_ps(Bp + 16 * (K) + 8);    \
    __m256 a = _mm256_broadcast_ss(Ap + 6 * (K) + 0); \
    c00 = _mm256_fmadd_ps(a, b0, c00);                \
    c01 = _mm256_fmadd_ps(a, b1, c01);                \
    a = _mm256_broadcast_ss(Ap + 6 * (K) + 1);        \
    c10 = _mm256_fmadd_ps(a, b0, c10);                \
    c11 = _mm256_fmadd_ps(a, b1, c11);                \
    a = _mm256_broadcast_ss(Ap + 6 * (K) + 2);        \
    c20 = _mm256_fmadd_ps(a, b0, c20);                \
    c21 = _mm256_fmadd_ps(a, b1, c21);                \
    a = _mm256_broadcast_ss(Ap + 6 * (K) + 3);        \
    c30 = _mm256_fmadd_ps(a, b0, c30);                \
    c31 = _mm256_fmadd_ps(a, b1, c31);                \
    a = _mm256_broadcast_ss(Ap + 6 * (K) + 4);        \
    c40 = _mm256_fmadd_ps(a, b0, c40);                \
    c41 = _mm256_fmadd_ps(a, b1, c41);                \
    a = _mm256_broadcast_ss(Ap + 6 * (K) + 5);        \
    c50 = _mm256_fmadd_ps(a, b0, c50);                \
    c51 = _mm256_fmadd_ps(a, b1, c51);                \
  }
  for (int i = 0; i < 6; ++i) {  // the C tile is needed at the end: start loading it now
    _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc + 15), _MM_HINT_T0);
  }
  int64_t k = 0;
  for (; k + 4 <= kc; k += 4) {
    CRATE_AVX2_STEP(0)
    CRATE_AVX2_STEP(1)
    CRATE_AVX2_STEP(2)
    CRATE_AVX2_STEP(3)
    Ap += 24;
    Bp += 64;
  }
  for (; k < kc; ++k) {
    CRATE_AVX2_STEP(0)
    Ap += 6;
    Bp += 16;
  }
#undef CRATE_AVX2_STEP
  const __m256 va = _mm256_set1_ps(alpha);
  __m256 rows[6][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  for (int i = 0; i < 6; ++i) {
    float* Ci = C + i * ldc;
    if (acc) {
      _mm256_storeu_ps(Ci, _mm256_fmadd_ps(rows[i][0], va, _mm256_loadu_ps(Ci)));
      _mm256_storeu_ps(Ci + 8, _mm256_fmadd_ps(rows[i][1], va, _mm256_loadu_ps(Ci + 8)));
    } else {
      _mm256_storeu_ps(Ci, _mm256_mul_ps(rows[i][0], va));
      _mm256_storeu_ps(Ci + 8, _mm256_mul_ps(rows[i][1], va));
    }
  }
}

// AVX-512: 12 x 32 tile, 24 zmm accumulators.
__attribute__((target("avx512f"))) void ukr_avx512_12x32(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc, float alpha, bool acc) {
  __m512 c[12][2];
#pragma GCC unroll 12
  for (int i = 0; i < 12; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc + 31), _MM_HINT_T0);
    c[i][0] = _mm512_setzero_ps();
    c[i][1] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < kc; ++k) {
    _mm_prefetch(reinterpret_cast<const char*>(Bp + 32 * 8), _MM_HINT_T0);
    __m512 b0 = _mm512_load_ps(Bp);
    __m512 b1 = _mm512_load_ps(Bp + 16);
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) {
      __m512 a = _mm512_set1_ps(Ap[i]);
      c[i][0] = _mm512_fmadd_ps(a, b0, c[i][0]);
      c[i][1] = _mm512_fmadd_ps(a, b1, c[i][1]);
    }
    Ap += 12;
    Bp += 32;
  }
  const __m512 va = _mm512_set1_ps(alpha);
#pragma GCC unroll 12
  for (int i = 0; i < 12; ++i) {
    float* Ci = C + i * ldc;
    if (acc) {
      _mm512_storeu_ps(Ci, _mm512_fmadd_ps(c[i][0], va, _mm512_loadu_ps(Ci)));
      _mm512_storeu_ps(Ci + 16, _mm512_fmadd_ps(c[i][1], va, _mm512_loadu_ps(Ci + 16)));
    } else {
      _mm512_storeu_ps(Ci, _mm512_mul_ps(c[i][0], va));
      _mm512_storeu_ps(Ci + 16, _mm512_mul_ps(c[i][1], va));
    }
  }
}

const Kernel kScalar = {"scalar", 4, 8, 128, 256, 2048, ukr_scalar_4x8};
const Kernel kAvx2 = {"avx2", 6, 16, 96, 512, 3072, ukr_avx2_6x16};          // tuned on Zen 5 (AVX2 only)
const Kernel kAvx512 = {"avx512", 12, 32, 96, 384, 3072, ukr_avx512_12x32};  // untuned

bool cpu_has(const char* what) {
  __builtin_cpu_init();
  if (std::string(what) == "avx512") return __builtin_cpu_supports("avx512f");
  if (std::string(what) == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return std::string(what) == "scalar";
}

const Kernel* best_kernel() {
  if (cpu_has("avx512")) return &kAvx512;
  if (cpu_has("avx2")) return &kAvx2;
  return &kScalar;
}

// CRATE_TS_CPU_KERNEL=scalar|avx2|avx512 forces a micro-kernel from the start (tests and the
// sanitizer run use it to reach every path on any host). A kernel this CPU lacks is ignored here;
// the TypeScript backend (src/backend/cpu.ts) reports that as an error.
const Kernel* initial_kernel() {
  const char* env = std::getenv("CRATE_TS_CPU_KERNEL");
  if (env && *env) {
    std::string e(env);
    if (e == "scalar") return &kScalar;
    if (e == "avx2" && cpu_has("avx2")) return &kAvx2;
    if (e == "avx512" && cpu_has("avx512")) return &kAvx512;
  }
  return best_kernel();
}

std::atomic<const Kernel*> g_kernel{initial_kernel()};

}  // namespace

bool cpu_has_avx2_fma() {
  static const bool has = cpu_has("avx2");
  return has;
}

namespace {

// ---- aligned scratch ---------------------------------------------------------------------------
struct AlignedScratch {
  float* p = nullptr;
  size_t n = 0;
  ~AlignedScratch() { std::free(p); }
  float* get(size_t want) {
    if (want > n) {
      std::free(p);
      p = nullptr;
      n = 0;
      size_t bytes = ((want * sizeof(float) + 63) / 64) * 64;
      p = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!p) throw std::bad_alloc();
      n = want;
    }
    return p;
  }
};

thread_local AlignedScratch tl_apack;
thread_local AlignedScratch tl_bpack;  // the calling thread's packed B panel, read by all workers
std::atomic<uint64_t> g_call_id{0};
thread_local uint64_t tl_apack_call = ~0ull;
thread_local int64_t tl_apack_block = -1;

// ---- AVX2 packing (pure data movement: the packed panels are bit-for-bit those of the scalar code) --

// 8 x 8 transpose of rows r[0..7] (8 floats each) into columns c[0..7].
__attribute__((target("avx2,fma"))) inline void transpose8(__m256 r0, __m256 r1, __m256 r2, __m256 r3, __m256 r4, __m256 r5, __m256 r6, __m256 r7, __m256* c) {
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  c[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  c[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  c[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  c[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  c[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  c[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  c[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  c[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// dst[k*W + r] = src[r*ld + k] for r < rows (<= 8), k < kc; rows r in [rows, 8) are zero-filled only
// up to W (W >= rows). When W < 8 each k's 8-float store runs W - 8 floats past its slot into the
// next k's slot (rewritten right after) and, at the end, up to 8 - W floats past dst + kc*W: the
// caller leaves that room and packs later output after.
__attribute__((target("avx2,fma"))) void pack_rows_t_avx2(float* dst, int W, const float* src, int64_t ld, int64_t rows, int64_t kc) {
  const __m256 z = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= kc; k += 8) {
    __m256 r[8];
    for (int i = 0; i < 8; ++i) r[i] = i < rows ? _mm256_loadu_ps(src + i * ld + k) : z;
    __m256 c[8];
    transpose8(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], c);
    for (int i = 0; i < 8; ++i) _mm256_storeu_ps(dst + (k + i) * W, c[i]);
  }
  for (; k < kc; ++k) {
    float* d = dst + k * W;
    for (int64_t i = 0; i < W && i < 8; ++i) d[i] = i < rows ? src[i * ld + k] : 0.0f;
  }
}

// op(A)[i][k] packed into MR-tall slivers: Ap[s][k][r] = op(A)[i0 + s*MR + r][p0 + k], zero-padded.
// Ap must have room for 8 floats past mc_padded * kc (see pack_rows_t_avx2).
__attribute__((target("avx2,fma"))) void pack_A_avx2_6(bool transA, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float* Ap) {
  constexpr int MR = 6;
  if (!transA) {
    for (int64_t s = 0; s < mc; s += MR) {
      const int64_t rows = std::min<int64_t>(MR, mc - s);
      pack_rows_t_avx2(Ap + s * kc, MR, A + (i0 + s) * lda + p0, lda, rows, kc);
    }
    return;
  }
  // op(A) = A^T: row k of A holds op(A)[:, k] contiguously. Visit rows in order (sequential reads)
  // and scatter 6-float pieces to the slivers.
  // Rows are taken 8 at a time (they stay in L1), and each sliver receives 48 contiguous floats per
  // group: writing one k at a time to every sliver would hit slivers kc*24 bytes apart, which map
  // to the same L1 sets.
  const int64_t full = mc / MR, rem = mc - full * MR;
  constexpr int64_t KB = 16;
  for (int64_t k0 = 0; k0 < kc; k0 += KB) {
    const int64_t kn = std::min(KB, kc - k0);
    const float* src0 = A + (p0 + k0) * lda + i0;
    for (int64_t s = 0; s < full; ++s) {
      float* d = Ap + s * MR * kc + k0 * MR;
      const float* src = src0 + s * MR;
      for (int64_t k = 0; k < kn; ++k) {
        _mm_storeu_ps(d + k * MR, _mm_loadu_ps(src + k * lda));
        // Floats 4 and 5: one unaligned 8-byte move. _mm_loadu_si64/_mm_storeu_si64 take any
        // address (src + 4 is only 4-byte aligned in general), where a load through a double* or
        // __m64* would claim an 8-byte alignment the data does not have.
        _mm_storeu_si64(d + k * MR + 4, _mm_loadu_si64(src + k * lda + 4));
      }
    }
    if (rem) {
      float* d = Ap + full * MR * kc + k0 * MR;
      for (int64_t k = 0; k < kn; ++k)
        for (int64_t r = 0; r < MR; ++r) d[k * MR + r] = r < rem ? src0[k * lda + full * MR + r] : 0.0f;
    }
  }
}

// op(A)[i][k] packed into MR-tall slivers: Ap[s][k][r] = op(A)[i0 + s*MR + r][p0 + k], zero-padded.
void pack_A(const Kernel& kn, bool transA, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float* Ap) {
  const int MR = kn.mr;
  if (MR == 6 && cpu_has_avx2_fma()) {
    pack_A_avx2_6(transA, A, lda, i0, mc, p0, kc, Ap);
    return;
  }
  for (int64_t s = 0; s < mc; s += MR) {
    int64_t rows = std::min<int64_t>(MR, mc - s);
    float* dst = Ap + s * kc;
    if (!transA) {
      for (int64_t r = 0; r < rows; ++r) {
        const float* src = A + (i0 + s + r) * lda + p0;
        for (int64_t k = 0; k < kc; ++k) dst[k * MR + r] = src[k];
      }
    } else {
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = A + (p0 + k) * lda + i0 + s;
        for (int64_t r = 0; r < rows; ++r) dst[k * MR + r] = src[r];
      }
    }
    if (rows < MR)
      for (int64_t k = 0; k < kc; ++k)
        for (int64_t r = rows; r < MR; ++r) dst[k * MR + r] = 0.0f;
  }
}

// op(B)[k][j] packed into NR-wide slivers: Bp[s][k][c] = op(B)[p0 + k][j0 + s*NR + c], zero-padded.
void pack_B_sliver(const Kernel& kn, bool transB, const float* B, int64_t ldb, int64_t j0, int64_t cols, int64_t p0, int64_t kc, float* dst) {
  const int NR = kn.nr;
  if (transB && NR == 16 && cpu_has_avx2_fma()) {
    // two groups of 8 columns, each an 8-row transpose of rows of B (no overrun: W = 16 >= 8)
    const float* src = B + j0 * ldb + p0;
    pack_rows_t_avx2(dst, 16, src, ldb, std::min<int64_t>(cols, 8), kc);
    if (cols > 8) {
      pack_rows_t_avx2(dst + 8, 16, src + 8 * ldb, ldb, cols - 8, kc);
    } else {
      for (int64_t k = 0; k < kc; ++k)
        for (int c = 8; c < 16; ++c) dst[k * NR + c] = 0.0f;
    }
    return;
  }
  if (!transB) {
    for (int64_t k = 0; k < kc; ++k) {
      const float* src = B + (p0 + k) * ldb + j0;
      float* d = dst + k * NR;
      int64_t c = 0;
      for (; c < cols; ++c) d[c] = src[c];
      for (; c < NR; ++c) d[c] = 0.0f;
    }
  } else {
    for (int64_t c = 0; c < cols; ++c) {
      const float* src = B + (j0 + c) * ldb + p0;
      for (int64_t k = 0; k < kc; ++k) dst[k * NR + c] = src[k];
    }
    for (int64_t c = cols; c < NR; ++c)
      for (int64_t k = 0; k < kc; ++k) dst[k * NR + c] = 0.0f;
  }
}

}  // namespace

const char* sgemm_kernel() { return g_kernel.load()->name; }

bool sgemm_set_kernel(const char* name) {
  std::string n(name);
  if (n == "auto") {
    g_kernel.store(best_kernel());
    return true;
  }
  if (n == "scalar") {
    g_kernel.store(&kScalar);
    return true;
  }
  if (n == "avx2" && cpu_has("avx2")) {
    g_kernel.store(&kAvx2);
    return true;
  }
  if (n == "avx512" && cpu_has("avx512")) {
    g_kernel.store(&kAvx512);
    return true;
  }
  return false;
}

void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, bool accumulate,
           float* C, int64_t ldc) {
  sgemm_ex(transA, transB, M, N, K, alpha, A, lda, B, ldb, accumulate, C, ldc, nullptr);
}

void sgemm_ex(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, bool accumulate,
              float* C, int64_t ldc, const SgemmEpilogue* epi) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    parallel_for(M, 64, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i)
        if (!accumulate) std::fill(C + i * ldc, C + i * ldc + N, 0.0f);
      if (epi) epi->fn(epi->ctx, C + i0 * ldc, ldc, i0, 0, i1 - i0, N);
    });
    return;
  }
  const Kernel& kn = *g_kernel.load();
  const int MR = kn.mr, NR = kn.nr;
  const int nthreads = pool_threads();

  // Row blocks: about kn.mc rows each, a multiple of MR, and a multiple of the thread count in
  // number when there are several (load balance). The split never affects the K order.
  int64_t nbm = (M + kn.mc - 1) / kn.mc;
  if (nbm > 1) nbm = ((nbm + nthreads - 1) / nthreads) * nthreads;
  int64_t mc = (M + nbm - 1) / nbm;
  mc = ((mc + MR - 1) / MR) * MR;
  nbm = (M + mc - 1) / mc;

  const int64_t NC = std::min<int64_t>(kn.nc, ((N + NR - 1) / NR) * NR);
  const int64_t KC = kn.kc;
  float* Bp = tl_bpack.get(static_cast<size_t>(KC) * NC);

  for (int64_t jc = 0; jc < N; jc += NC) {
    const int64_t nc = std::min(NC, N - jc);
    const int64_t nslivers = (nc + NR - 1) / NR;
    // Column chunks per row block so that there are at least ~2 tasks per thread.
    int64_t nbn = 1;
    if (nbm < 2 * nthreads) nbn = std::min<int64_t>(nslivers, (2 * nthreads + nbm - 1) / nbm);
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = std::min(KC, K - pc);
      const bool acc = accumulate || pc > 0;
      const bool last_slice = pc + kc >= K;
      // Pack B (parallel over slivers).
      parallel_for(nslivers, 4, [&](int64_t s0, int64_t s1) {
        for (int64_t s = s0; s < s1; ++s) {
          int64_t cols = std::min<int64_t>(NR, nc - s * NR);
          pack_B_sliver(kn, transB, B, ldb, jc + s * NR, cols, pc, kc, Bp + s * NR * kc);
        }
      });
      const uint64_t call = g_call_id.fetch_add(1) + 1;
      pool_run(nbm * nbn, [&](int64_t task) {
        const int64_t bi = task / nbn, bj = task % nbn;
        const int64_t i0 = bi * mc, mcur = std::min(mc, M - i0);
        float* Ap = tl_apack.get(static_cast<size_t>(mc) * kc + 16);  // + room for the packers' overrun
        if (tl_apack_call != call || tl_apack_block != bi) {
          pack_A(kn, transA, A, lda, i0, mcur, pc, kc, Ap);
          tl_apack_call = call;
          tl_apack_block = bi;
        }
        const int64_t s0 = nslivers * bj / nbn, s1 = nslivers * (bj + 1) / nbn;
        alignas(64) float tile[16 * 32];
        for (int64_t s = s0; s < s1; ++s) {
          const int64_t j = jc + s * NR;
          const int64_t ncur = std::min<int64_t>(NR, N - j);
          const float* Bs = Bp + s * NR * kc;
          for (int64_t ir = 0; ir < mcur; ir += MR) {
            const int64_t mr = std::min<int64_t>(MR, mcur - ir);
            float* Cij = C + (i0 + ir) * ldc + j;
            if (mr == MR && ncur == NR) {
              kn.ukr(kc, Ap + ir * kc, Bs, Cij, ldc, alpha, acc);
            } else {
              // Edge tile: run the same kernel on a padded copy, so the arithmetic is identical.
              if (acc)
                for (int64_t r = 0; r < mr; ++r)
                  for (int64_t c = 0; c < ncur; ++c) tile[r * NR + c] = Cij[r * ldc + c];
              kn.ukr(kc, Ap + ir * kc, Bs, tile, NR, alpha, acc);
              for (int64_t r = 0; r < mr; ++r)
                for (int64_t c = 0; c < ncur; ++c) Cij[r * ldc + c] = tile[r * NR + c];
            }
            if (epi && last_slice) epi->fn(epi->ctx, Cij, ldc, i0 + ir, j, mr, ncur);
          }
        }
      });
    }
  }
}

// ---- peak FMA throughput (for benchmarks) ----------------------------------------------------------

namespace {

__attribute__((target("avx2,fma"))) float fma_chains_avx2(int64_t n) {
  __m256 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_ps(1e-3f * i);
  const __m256 b = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(1e-4f);
  for (int64_t k = 0; k < n; ++k) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_ps(a[i], b, c);
  }
  __m256 s = a[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, a[i]);
  return _mm256_cvtss_f32(s);
}

__attribute__((target("avx512f"))) float fma_chains_avx512(int64_t n) {
  __m512 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm512_set1_ps(1e-3f * i);
  const __m512 b = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(1e-4f);
  for (int64_t k = 0; k < n; ++k) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) a[i] = _mm512_fmadd_ps(a[i], b, c);
  }
  __m512 s = a[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, a[i]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, s);
  return lanes[0];
}

}  // namespace

double fma_peak_gflops(double seconds) {
  const std::string k = sgemm_kernel();
  if (k == "scalar") return 0.0;
  const bool wide = k == "avx512";
  const double flops_per_iter = 12.0 * (wide ? 16 : 8) * 2;
  auto chains = [&](int64_t n) { return wide ? fma_chains_avx512(n) : fma_chains_avx2(n); };
  // Calibrate on one thread, then run every thread for about `seconds`.
  int64_t n = 1 << 16;
  volatile float sink = 0;
  auto t0 = std::chrono::steady_clock::now();
  sink = sink + chains(n);
  double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  n = std::max<int64_t>(n, static_cast<int64_t>(n * std::max(seconds, 0.01) / std::max(dt, 1e-6)));
  const int nt = pool_threads();
  std::vector<float> out(static_cast<size_t>(nt));
  t0 = std::chrono::steady_clock::now();
  pool_run(nt, [&](int64_t t) { out[t] = chains(n); });
  dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  sink = sink + out[0];
  return nt * static_cast<double>(n) * flops_per_iter / dt / 1e9;
}

}  // namespace crate
