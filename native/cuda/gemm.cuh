// The matrix-product engine of the CUDA twin (no cuBLAS): C = epilogue(op(A) op(B)) for the layouts
// NN, NT, TN (and TT), row-major, with the epilogue fused into the store.
//
//   * FP32 SIMT kernel (default): shared-memory tiles (BM x BK of A, BK x BN of B, stored k-major),
//     register blocking (each thread owns TM x TN outputs as 4-wide groups), register prefetch of the
//     next K tile while the current one is multiplied. 128x128x8 tiles with 8x8 per thread, or
//     64x64x8 with 4x4 per thread when the output has few 128x128 tiles.
//   * TF32 tensor-core kernel (WMMA m16n16k8), only when set_precision(Precision::kTf32): 128x128x16
//     tiles, 8 warps of 32x64. About 10 mantissa bits per product: not for the conformance tolerances.
//   * Deterministic split-K for outputs with few tiles and a long K (weight gradients): each split
//     writes its partial product to a workspace slab, and one kernel adds the slabs in split order
//     and applies the epilogue. The split count is a function of (M, N, K) only, so results do not
//     depend on the GPU model. No atomics anywhere.
//
// An epilogue is a functor with `__device__ void apply(int64_t m, int64_t n, float acc) const` that
// stores the output element (m, n) given the accumulated dot product; it may read other matrices at
// (m, n) (the previous C, a residual, a ReLU mask), so the ISTA thresholds, residual subtractions and
// masks cost no extra pass over memory.
#pragma once

#ifndef CRATE_CUDA_EMULATION  // the emulator (native/cuda/emu) has no tensor cores
#include <mma.h>
#endif

#include <climits>
#include <string>

#include "common.cuh"

namespace crate {
namespace cuda {
namespace gemm {

// ---- epilogues ---------------------------------------------------------------------------------------

/** C = alpha * acc */
struct Store {
  float* C;
  int64_t ldc;
  float alpha;
  __device__ __forceinline__ void apply(int64_t m, int64_t n, float acc) const { C[m * ldc + n] = alpha * acc; }
};

/** C = alpha * acc + C  (the CPU sgemm's "accumulate") */
struct Accumulate {
  float* C;
  int64_t ldc;
  float alpha;
  __device__ __forceinline__ void apply(int64_t m, int64_t n, float acc) const {
    float* c = C + m * ldc + n;
    *c = alpha * acc + *c;
  }
};

/** C = acc + bias[n] (bias nullable): linear forward */
struct Bias {
  float* C;
  int64_t ldc;
  const float* bias;
  __device__ __forceinline__ void apply(int64_t m, int64_t n, float acc) const { C[m * ldc + n] = bias ? acc + bias[n] : acc; }
};

// ---- kernel arguments ----------------------------------------------------------------------------------

struct Args {
  const float* A;
  const float* B;
  int64_t lda, ldb;
  int M, N, K;
  bool ta, tb;
  int tiles_m, tiles_n;
  int k_per_split;  // multiple of the kernel's BK
  int64_t slab;     // M * N: elements per split slab (split-K only)
};

// ---- FP32 SIMT kernel ----------------------------------------------------------------------------------

template <int BM, int BN, int BK, int TM, int TN, class Epi>
__global__ void __launch_bounds__((BM / TM) * (BN / TN)) sgemm_simt_kernel(Args g, Epi epi, float* partial) {
  constexpr int NT = (BM / TM) * (BN / TN);
  constexpr int LA = BM * BK / NT;  // A elements each thread loads per K tile
  constexpr int LB = BN * BK / NT;
  constexpr int TMG = TM / 4, TNG = TN / 4;  // 4-wide groups per thread
  constexpr int PAD = 4;
  static_assert(BM * BK % NT == 0 && BN * BK % NT == 0, "tile loads must divide evenly");
  static_assert(TM % 4 == 0 && TN % 4 == 0, "thread tiles are 4-wide groups");

  __shared__ __align__(16) float As[BK][BM + PAD];
  __shared__ __align__(16) float Bs[BK][BN + PAD];

  const int tid = threadIdx.x;
  const int tiles = g.tiles_m * g.tiles_n;
  const int split = blockIdx.x / tiles;
  const int t = blockIdx.x % tiles;
  const int m0 = (t / g.tiles_n) * BM, n0 = (t % g.tiles_n) * BN;
  const int kb = split * g.k_per_split;
  const int ke = min(g.K, kb + g.k_per_split);

  const int ty = tid / (BN / TN), tx = tid % (BN / TN);

  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

  float ra[LA], rb[LB];

  auto load = [&](int k0) {
#pragma unroll
    for (int i = 0; i < LA; ++i) {
      const int e = tid + NT * i;
      int mm, kk;
      if (g.ta) {
        mm = e % BM;
        kk = e / BM;
      } else {
        kk = e % BK;
        mm = e / BK;
      }
      const int m = m0 + mm, k = k0 + kk;
      float v = 0.0f;
      if (m < g.M && k < ke) v = g.ta ? g.A[(int64_t)k * g.lda + m] : g.A[(int64_t)m * g.lda + k];
      ra[i] = v;
    }
#pragma unroll
    for (int i = 0; i < LB; ++i) {
      const int e = tid + NT * i;
      int nn, kk;
      if (g.tb) {
        kk = e % BK;
        nn = e / BK;
      } else {
        nn = e % BN;
        kk = e / BN;
      }
      const int n = n0 + nn, k = k0 + kk;
      float v = 0.0f;
      if (n < g.N && k < ke) v = g.tb ? g.B[(int64_t)n * g.ldb + k] : g.B[(int64_t)k * g.ldb + n];
      rb[i] = v;
    }
  };
  auto store = [&]() {
#pragma unroll
    for (int i = 0; i < LA; ++i) {
      const int e = tid + NT * i;
      int mm, kk;
      if (g.ta) {
        mm = e % BM;
        kk = e / BM;
      } else {
        kk = e % BK;
        mm = e / BK;
      }
      As[kk][mm] = ra[i];
    }
#pragma unroll
    for (int i = 0; i < LB; ++i) {
      const int e = tid + NT * i;
      int nn, kk;
      if (g.tb) {
        kk = e % BK;
        nn = e / BK;
      } else {
        nn = e % BN;
        kk = e / BN;
      }
      Bs[kk][nn] = rb[i];
    }
  };

  if (kb < ke) {
    load(kb);
    store();
    __syncthreads();
    for (int k0 = kb; k0 < ke; k0 += BK) {
      const bool more = k0 + BK < ke;
      if (more) load(k0 + BK);  // in flight while this tile is multiplied
#pragma unroll
      for (int kk = 0; kk < BK; ++kk) {
        float a[TM], b[TN];
#pragma unroll
        for (int gi = 0; gi < TMG; ++gi) {
          const float4 v = *reinterpret_cast<const float4*>(&As[kk][gi * (BM / TMG) + ty * 4]);
          a[gi * 4 + 0] = v.x;
          a[gi * 4 + 1] = v.y;
          a[gi * 4 + 2] = v.z;
          a[gi * 4 + 3] = v.w;
        }
#pragma unroll
        for (int gj = 0; gj < TNG; ++gj) {
          const float4 v = *reinterpret_cast<const float4*>(&Bs[kk][gj * (BN / TNG) + tx * 4]);
          b[gj * 4 + 0] = v.x;
          b[gj * 4 + 1] = v.y;
          b[gj * 4 + 2] = v.z;
          b[gj * 4 + 3] = v.w;
        }
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
          for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
      }
      __syncthreads();
      if (more) {
        store();
        __syncthreads();
      }
    }
  }

  // Epilogue: split-K blocks write their slab; otherwise the fused epilogue stores C.
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int m = m0 + (i / 4) * (BM / TMG) + ty * 4 + (i % 4);
    if (m >= g.M) continue;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int n = n0 + (j / 4) * (BN / TNG) + tx * 4 + (j % 4);
      if (n >= g.N) continue;
      if (partial) {
        partial[split * g.slab + (int64_t)m * g.N + n] = acc[i][j];
      } else {
        epi.apply(m, n, acc[i][j]);
      }
    }
  }
}

// ---- TF32 tensor-core kernel (WMMA) ----------------------------------------------------------------------

template <class Epi>
__global__ void __launch_bounds__(256) sgemm_tf32_kernel(Args g, Epi epi, float* partial) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  using namespace nvcuda;
  constexpr int BM = 128, BN = 128, BK = 16, NT = 256;
  constexpr int LDA = BK + 4, LDB = BN + 4;
  constexpr int LA = BM * BK / NT, LB = BN * BK / NT;
  __shared__ __align__(128) float As[BM * LDA];
  __shared__ __align__(128) float Bs[BK * LDB];
  __shared__ __align__(128) float Cs[8][16 * 16];

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int wm = warp >> 1, wn = warp & 1;  // 4 x 2 warps, each 32 x 64
  const int tiles = g.tiles_m * g.tiles_n;
  const int split = blockIdx.x / tiles;
  const int t = blockIdx.x % tiles;
  const int m0 = (t / g.tiles_n) * BM, n0 = (t % g.tiles_n) * BN;
  const int kb = split * g.k_per_split;
  const int ke = min(g.K, kb + g.k_per_split);

  wmma::fragment<wmma::accumulator, 16, 16, 8, float> c[2][4];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) wmma::fill_fragment(c[i][j], 0.0f);

  for (int k0 = kb; k0 < ke; k0 += BK) {
#pragma unroll
    for (int i = 0; i < LA; ++i) {
      const int e = tid + NT * i;
      int mm, kk;
      if (g.ta) {
        mm = e % BM;
        kk = e / BM;
      } else {
        kk = e % BK;
        mm = e / BK;
      }
      const int m = m0 + mm, k = k0 + kk;
      float v = 0.0f;
      if (m < g.M && k < ke) v = g.ta ? g.A[(int64_t)k * g.lda + m] : g.A[(int64_t)m * g.lda + k];
      As[mm * LDA + kk] = v;
    }
#pragma unroll
    for (int i = 0; i < LB; ++i) {
      const int e = tid + NT * i;
      int nn, kk;
      if (g.tb) {
        kk = e % BK;
        nn = e / BK;
      } else {
        nn = e % BN;
        kk = e / BN;
      }
      const int n = n0 + nn, k = k0 + kk;
      float v = 0.0f;
      if (n < g.N && k < ke) v = g.tb ? g.B[(int64_t)n * g.ldb + k] : g.B[(int64_t)k * g.ldb + n];
      Bs[kk * LDB + nn] = v;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; kk += 8) {
      wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> a[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> b[4];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        wmma::load_matrix_sync(a[i], &As[(wm * 32 + i * 16) * LDA + kk], LDA);
#pragma unroll
        for (int x = 0; x < a[i].num_elements; ++x) a[i].x[x] = wmma::__float_to_tf32(a[i].x[x]);
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        wmma::load_matrix_sync(b[j], &Bs[kk * LDB + wn * 64 + j * 16], LDB);
#pragma unroll
        for (int x = 0; x < b[j].num_elements; ++x) b[j].x[x] = wmma::__float_to_tf32(b[j].x[x]);
      }
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) wmma::mma_sync(c[i][j], a[i], b[j], c[i][j]);
    }
    __syncthreads();
  }

  // Epilogue through a per-warp 16x16 staging tile.
#pragma unroll
  for (int i = 0; i < 2; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      wmma::store_matrix_sync(Cs[warp], c[i][j], 16, wmma::mem_row_major);
      __syncwarp();
#pragma unroll
      for (int x = 0; x < 8; ++x) {
        const int e = lane + 32 * x, r = e / 16, cc = e % 16;
        const int m = m0 + wm * 32 + i * 16 + r, n = n0 + wn * 64 + j * 16 + cc;
        if (m < g.M && n < g.N) {
          if (partial)
            partial[split * g.slab + (int64_t)m * g.N + n] = Cs[warp][e];
          else
            epi.apply(m, n, Cs[warp][e]);
        }
      }
      __syncwarp();
    }
  }
#else
  (void)g;
  (void)epi;
  (void)partial;
  __trap();  // the TF32 path needs sm_80 or newer (the build targets sm_80 and sm_90)
#endif
}

// ---- split-K reduction ---------------------------------------------------------------------------------

template <class Epi>
__global__ void splitk_reduce_kernel(const float* partial, int splits, int64_t M, int64_t N, Epi epi) {
  const int64_t total = M * N;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    float s = partial[i];
    for (int k = 1; k < splits; ++k) s += partial[k * total + i];
    epi.apply(i / N, i % N, s);
  }
}

// ---- dispatcher ------------------------------------------------------------------------------------------

/** Splits of K for an output of `tiles` tiles: a function of the shape only. */
inline int choose_splits(int64_t tiles, int64_t K, int bk) {
  if (tiles >= 64 || K < 1024) return 1;
  int64_t s = ceil_div(128, tiles);
  const int64_t cap = K / 256;  // at least 256 of K per split
  if (s > cap) s = cap;
  if (s > 32) s = 32;
  if (s < 1) s = 1;
  // round each split to whole K tiles, then recount
  const int64_t per = ceil_div(ceil_div(K, s), bk) * bk;
  return static_cast<int>(ceil_div(K, per));
}

/**
 * C = epi(op(A) op(B)): op(A) is M x K (A stored M x K with row stride lda, or K x M when ta),
 * op(B) is K x N (B stored K x N with stride ldb, or N x K when tb).
 */
template <class Epi>
void run(const char* op, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, const Epi& epi) {
  if (M <= 0 || N <= 0) return;
  if (M > INT_MAX || N > INT_MAX || K > INT_MAX) throw_op(op, "matrix product too large for the CUDA kernels (M, N, K must be < 2^31)");
  Args g{};
  g.A = A;
  g.B = B;
  g.lda = lda;
  g.ldb = ldb;
  g.M = static_cast<int>(M);
  g.N = static_cast<int>(N);
  g.K = static_cast<int>(K < 0 ? 0 : K);
  g.ta = ta;
  g.tb = tb;
  g.slab = M * N;

  const bool tf32 = precision() == Precision::kTf32;
#ifdef CRATE_CUDA_EMULATION
  if (tf32) throw_op(op, "the TF32 tensor-core kernel is not available in the CPU emulator");
#endif
  const bool big = tf32 || ceil_div(M, 128) * ceil_div(N, 128) >= 96;
  const int tile = big ? 128 : 64;
  const int bk = tf32 ? 16 : 8;
  g.tiles_m = static_cast<int>(ceil_div(M, tile));
  g.tiles_n = static_cast<int>(ceil_div(N, tile));
  const int64_t tiles = static_cast<int64_t>(g.tiles_m) * g.tiles_n;
  const int splits = choose_splits(tiles, K, bk);
  g.k_per_split = splits > 1 ? static_cast<int>(ceil_div(ceil_div(K, splits), bk) * bk) : static_cast<int>(ceil_div(g.K > 0 ? g.K : 1, bk) * bk);
  if (tiles * splits > INT_MAX) throw_op(op, "matrix product grid too large");
  const unsigned blocks = static_cast<unsigned>(tiles * splits);

  float* partial = nullptr;
  if (splits > 1) {
    partial = static_cast<float*>(workspace(sizeof(float) * static_cast<size_t>(splits) * M * N, op, Ws::kGemm));
  }
  if (tf32) {
    sgemm_tf32_kernel<Epi><<<blocks, 256>>>(g, epi, partial);
    CRATE_LAUNCH_CHECK(op, "sgemm_tf32_kernel");
  } else if (big) {
    sgemm_simt_kernel<128, 128, 8, 8, 8, Epi><<<blocks, 256>>>(g, epi, partial);
    CRATE_LAUNCH_CHECK(op, "sgemm_simt_kernel<128x128>");
  } else {
    sgemm_simt_kernel<64, 64, 8, 4, 4, Epi><<<blocks, 256>>>(g, epi, partial);
    CRATE_LAUNCH_CHECK(op, "sgemm_simt_kernel<64x64>");
  }
  if (splits > 1) {
    splitk_reduce_kernel<Epi><<<grid_for(M * N), kThreads>>>(partial, splits, M, N, epi);
    CRATE_LAUNCH_CHECK(op, "splitk_reduce_kernel");
  }
}

}  // namespace gemm
}  // namespace cuda
}  // namespace crate
