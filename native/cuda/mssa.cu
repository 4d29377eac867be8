// Causal attention on the GPU, flash-style (spec E18): MSSA with q = k = v, and GPT-2 attention with
// separate q, k, v. Never a T x T matrix in memory: the forward computes the softmax online and saves
// one logsumexp per (batch, head, row), saved (B, NH, T), natural log, exactly the CPU twin's layout;
// the backward recomputes the probabilities from it.
//
// Work split (p = head width, padded to PD in {32, 64, 128, 256}; G = PD/16 threads share one row, each
// holding 16 of its dimensions in registers; a block is 256 threads = 256/G rows; key/query tiles of the
// same 256/G rows sit in shared memory):
//   forward      one block per (b, head, block of query rows); key tiles in shared memory; scores for
//                16 keys at a time, then one online-softmax rescale per 16 keys.
//   backward dq  query-block-major: recompute P_ij = exp(s_ij - lse_i), dS_ij = P_ij (dP_ij - D_i),
//                dq_i = scale sum_j dS_ij k_j; also stores D_i = <dy_i, y_i> for the next kernel.
//   backward dkv key-block-major: dk_j = scale sum_i dS_ij q_i, dv_j = sum_i P_ij dy_i over i >= j.
//   decode       one block per (b, head) for one new query row against cached rows 0..t (incremental
//                decoding; forward only, nothing saved).
// Each output element is owned by exactly one thread and summed in a fixed order: no atomics, bitwise
// reproducible. With q = k = v (MSSA) one shared-memory tile serves as both keys and values (forward,
// dq) or queries and keys (dkv), and dv = dq + dk + dv is formed in place (dq written first).
#include <cmath>

#include "common.cuh"

namespace crate {
namespace cuda {
namespace {

constexpr int kDPT = 16;  // head dimensions per thread
constexpr int kThreadsA = 256;
constexpr float kLn2 = 0.69314718055994530942f;
constexpr float kLog2e = 1.44269504088896340736f;

template <int PD>
struct Cfg {
  static constexpr int G = PD / kDPT;         // threads per row (a power of two, <= 16)
  static constexpr int ROWS = kThreadsA / G;  // rows per block == rows per shared-memory tile
  static constexpr int KC = 16;               // keys per online-softmax chunk (forward)
  static_assert(ROWS % KC == 0, "tiles hold whole chunks");
};

/** Sum over the G consecutive lanes that share a row. */
template <int G>
__device__ __forceinline__ float group_sum(float v) {
#pragma unroll
  for (int off = G / 2; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

/**
 * 16 bytes from shared memory, always re-read (volatile): stops the compiler from keeping whole key
 * tiles in registers across the two uses of a tile (scores, then values), which would spill.
 */
__device__ __forceinline__ float4 lds4(const float* p) {
#ifdef CRATE_CUDA_EMULATION
  return *reinterpret_cast<const float4*>(p);
#else
  float4 v;
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("ld.volatile.shared.v4.f32 {%0, %1, %2, %3}, [%4];" : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "r"(a));
  return v;
#endif
}

__device__ __forceinline__ float dot16(const float (&a)[kDPT], const float* s) {
  float acc = 0.0f;
#pragma unroll
  for (int d = 0; d < kDPT; d += 4) {
    const float4 v = lds4(s + d);
    acc = fmaf(a[d + 0], v.x, acc);
    acc = fmaf(a[d + 1], v.y, acc);
    acc = fmaf(a[d + 2], v.z, acc);
    acc = fmaf(a[d + 3], v.w, acc);
  }
  return acc;
}

/** out[d] = row[d0 + d] for d0 + d < p, else 0 (also 0 for rows outside [0, T)). */
__device__ __forceinline__ void load_row(float (&out)[kDPT], const float* rowp, bool valid, int d0, int p) {
#pragma unroll
  for (int d = 0; d < kDPT; ++d) out[d] = (valid && d0 + d < p) ? rowp[d0 + d] : 0.0f;
}

/** tile[jj * PD + d] = src[(j0 + jj) * stride + d] for jj < rows, zero outside [0, T) x [0, p). */
template <int PD>
__device__ __forceinline__ void load_tile(float* tile, const float* src, int64_t stride, int j0, int rows, int T, int p) {
  for (int e = threadIdx.x; e < rows * PD; e += blockDim.x) {
    const int jj = e / PD, d = e % PD, j = j0 + jj;
    tile[e] = (j < T && d < p) ? src[(int64_t)j * stride + d] : 0.0f;
  }
}

// ---- forward -----------------------------------------------------------------------------------------

template <int PD, bool SHARED>
__global__ void __launch_bounds__(kThreadsA) attn_forward_kernel(float* __restrict__ y, float* __restrict__ lse, const float* __restrict__ qkv, int64_t stride,
                                                                 int64_t koff, int64_t voff, int T, int C, int NH, int p, float sl2) {
  constexpr int G = Cfg<PD>::G, ROWS = Cfg<PD>::ROWS, KC = Cfg<PD>::KC;
  __shared__ __align__(16) float Ks[ROWS * PD];
  __shared__ __align__(16) float Vs[SHARED ? 4 : ROWS * PD];
  const int nqb = (T + ROWS - 1) / ROWS;
  const int bh = blockIdx.x / nqb;
  const int qb = nqb - 1 - static_cast<int>(blockIdx.x % nqb);  // the longest (last) row blocks first
  const int b = bh / NH, h = bh % NH;
  const float* base = qkv + (int64_t)b * T * stride + (int64_t)h * p;
  const int r = threadIdx.x / G, g = threadIdx.x % G, d0 = g * kDPT;
  const int i = qb * ROWS + r;
  const bool valid = i < T;

  float q[kDPT], acc[kDPT];
  load_row(q, base + (int64_t)i * stride, valid, d0, p);
#pragma unroll
  for (int d = 0; d < kDPT; ++d) acc[d] = 0.0f;
  float m = -INFINITY, l = 0.0f;  // running max (log2 units) and sum

  const int i_end = min(T, (qb + 1) * ROWS);  // keys needed by this block: [0, i_end)
  for (int j0 = 0; j0 < i_end; j0 += ROWS) {
    __syncthreads();
    load_tile<PD>(Ks, base + koff, stride, j0, ROWS, T, p);
    if (!SHARED) load_tile<PD>(Vs, base + voff, stride, j0, ROWS, T, p);
    __syncthreads();
    const float* Vt = SHARED ? Ks : Vs;
    const int nk = min(ROWS, i_end - j0);
    for (int c0 = 0; c0 < nk; c0 += KC) {
      float s[KC];
      float mx = -INFINITY;
#pragma unroll
      for (int jj = 0; jj < KC; ++jj) {
        const float dot = group_sum<G>(dot16(q, Ks + (c0 + jj) * PD + d0));
        const int j = j0 + c0 + jj;
        s[jj] = (j <= i && c0 + jj < nk) ? dot * sl2 : -INFINITY;
        mx = fmaxf(mx, s[jj]);
      }
      const float mnew = fmaxf(m, mx);
      const float msub = mnew == -INFINITY ? 0.0f : mnew;
      const float corr = exp2f(m - msub);  // 0 while nothing was seen (m = -inf)
      float sum = 0.0f;
#pragma unroll
      for (int jj = 0; jj < KC; ++jj) {
        s[jj] = exp2f(s[jj] - msub);
        sum += s[jj];
      }
      l = l * corr + sum;
      m = mnew;
#pragma unroll
      for (int d = 0; d < kDPT; ++d) acc[d] *= corr;
#pragma unroll
      for (int jj = 0; jj < KC; ++jj) {
        const float* vr = Vt + (c0 + jj) * PD + d0;
#pragma unroll
        for (int d = 0; d < kDPT; d += 4) {
          const float4 v = lds4(vr + d);
          acc[d + 0] = fmaf(s[jj], v.x, acc[d + 0]);
          acc[d + 1] = fmaf(s[jj], v.y, acc[d + 1]);
          acc[d + 2] = fmaf(s[jj], v.z, acc[d + 2]);
          acc[d + 3] = fmaf(s[jj], v.w, acc[d + 3]);
        }
      }
    }
  }
  if (valid) {
    const float inv = 1.0f / l;
    float* yr = y + ((int64_t)b * T + i) * C + (int64_t)h * p;
#pragma unroll
    for (int d = 0; d < kDPT; ++d)
      if (d0 + d < p) yr[d0 + d] = acc[d] * inv;
    if (g == 0) lse[(int64_t)bh * T + i] = (m + log2f(l)) * kLn2;  // natural-log logsumexp, as the CPU twin
  }
}

// ---- backward: dq (and D) ----------------------------------------------------------------------------

template <int PD, bool SHARED>
__global__ void __launch_bounds__(kThreadsA)
    attn_backward_dq_kernel(float* dq, int64_t dstride, float* __restrict__ Dws, const float* __restrict__ dy, const float* __restrict__ y,
                            const float* __restrict__ qkv, int64_t stride, int64_t koff, int64_t voff, const float* __restrict__ lse, int T, int C, int NH,
                            int p, float sl2, float scale) {
  constexpr int G = Cfg<PD>::G, ROWS = Cfg<PD>::ROWS;
  __shared__ __align__(16) float Ks[ROWS * PD];
  __shared__ __align__(16) float Vs[SHARED ? 4 : ROWS * PD];
  const int nqb = (T + ROWS - 1) / ROWS;
  const int bh = blockIdx.x / nqb;
  const int qb = nqb - 1 - static_cast<int>(blockIdx.x % nqb);
  const int b = bh / NH, h = bh % NH;
  const float* base = qkv + (int64_t)b * T * stride + (int64_t)h * p;
  const int64_t yoff = (int64_t)b * T * C + (int64_t)h * p;
  const int r = threadIdx.x / G, g = threadIdx.x % G, d0 = g * kDPT;
  const int i = qb * ROWS + r;
  const bool valid = i < T;

  float q[kDPT], go[kDPT], dqa[kDPT];
  load_row(q, base + (int64_t)i * stride, valid, d0, p);
  load_row(go, dy + yoff + (int64_t)i * C, valid, d0, p);
  float Di;  // D_i = <dy_i, y_i>
  {
    float yr[kDPT];
    load_row(yr, y + yoff + (int64_t)i * C, valid, d0, p);
    float s = 0.0f;
#pragma unroll
    for (int d = 0; d < kDPT; ++d) s = fmaf(go[d], yr[d], s);
    Di = group_sum<G>(s);
  }
  if (valid && g == 0) Dws[(int64_t)bh * T + i] = Di;
  const float lse2 = valid ? lse[(int64_t)bh * T + i] * kLog2e : 0.0f;
#pragma unroll
  for (int d = 0; d < kDPT; ++d) dqa[d] = 0.0f;

  const int i_end = min(T, (qb + 1) * ROWS);
  for (int j0 = 0; j0 < i_end; j0 += ROWS) {
    __syncthreads();
    load_tile<PD>(Ks, base + koff, stride, j0, ROWS, T, p);
    if (!SHARED) load_tile<PD>(Vs, base + voff, stride, j0, ROWS, T, p);
    __syncthreads();
    const float* Vt = SHARED ? Ks : Vs;
    const int nk = min(ROWS, i_end - j0);
    for (int jj = 0; jj < nk; ++jj) {
      const float* kr = Ks + jj * PD + d0;
      const float s = group_sum<G>(dot16(q, kr));
      const float dp = group_sum<G>(dot16(go, Vt + jj * PD + d0));
      const int j = j0 + jj;
      const float P = j <= i ? exp2f(s * sl2 - lse2) : 0.0f;
      const float dS = P * (dp - Di) * scale;
#pragma unroll
      for (int d = 0; d < kDPT; d += 4) {
        const float4 k4 = lds4(kr + d);
        dqa[d + 0] = fmaf(dS, k4.x, dqa[d + 0]);
        dqa[d + 1] = fmaf(dS, k4.y, dqa[d + 1]);
        dqa[d + 2] = fmaf(dS, k4.z, dqa[d + 2]);
        dqa[d + 3] = fmaf(dS, k4.w, dqa[d + 3]);
      }
    }
  }
  if (valid) {
    float* o = dq + ((int64_t)b * T + i) * dstride + (int64_t)h * p;
#pragma unroll
    for (int d = 0; d < kDPT; ++d)
      if (d0 + d < p) o[d0 + d] = dqa[d];
  }
}

// ---- backward: dk, dv ----------------------------------------------------------------------------------

template <int PD, bool SHARED>
__global__ void __launch_bounds__(kThreadsA)
    attn_backward_dkv_kernel(float* dk, float* dv, int64_t dstride, const float* __restrict__ Dws, const float* __restrict__ dy, const float* __restrict__ qkv,
                             int64_t stride, int64_t koff, int64_t voff, const float* __restrict__ lse, int T, int C, int NH, int p, float sl2, float scale) {
  constexpr int G = Cfg<PD>::G, ROWS = Cfg<PD>::ROWS;
  __shared__ __align__(16) float Qs[ROWS * PD];
  __shared__ __align__(16) float DYs[ROWS * PD];
  __shared__ float Ls[ROWS], Ds[ROWS];
  const int nkb = (T + ROWS - 1) / ROWS;
  const int bh = blockIdx.x / nkb;
  const int kb = static_cast<int>(blockIdx.x % nkb);  // the first key blocks see the most queries: first
  const int b = bh / NH, h = bh % NH;
  const float* base = qkv + (int64_t)b * T * stride + (int64_t)h * p;
  const int64_t yoff = (int64_t)b * T * C + (int64_t)h * p;
  const int r = threadIdx.x / G, g = threadIdx.x % G, d0 = g * kDPT;
  const int j = kb * ROWS + r;
  const bool valid = j < T;

  float k[kDPT], v[kDPT], dka[kDPT], dva[kDPT];
  load_row(k, base + koff + (int64_t)j * stride, valid, d0, p);
  if (SHARED) {
#pragma unroll
    for (int d = 0; d < kDPT; ++d) v[d] = k[d];
  } else {
    load_row(v, base + voff + (int64_t)j * stride, valid, d0, p);
  }
#pragma unroll
  for (int d = 0; d < kDPT; ++d) dka[d] = dva[d] = 0.0f;

  for (int i0 = kb * ROWS; i0 < T; i0 += ROWS) {
    __syncthreads();
    load_tile<PD>(Qs, base, stride, i0, ROWS, T, p);
    load_tile<PD>(DYs, dy + yoff, C, i0, ROWS, T, p);
    for (int e = threadIdx.x; e < ROWS; e += blockDim.x) {
      const int i = i0 + e;
      Ls[e] = i < T ? lse[(int64_t)bh * T + i] * kLog2e : 0.0f;
      Ds[e] = i < T ? Dws[(int64_t)bh * T + i] : 0.0f;
    }
    __syncthreads();
    const int nq = min(ROWS, T - i0);
    for (int ii = 0; ii < nq; ++ii) {
      const float* qr = Qs + ii * PD + d0;
      const float* gr = DYs + ii * PD + d0;
      const float s = group_sum<G>(dot16(k, qr));
      const float dp = group_sum<G>(dot16(v, gr));
      const int i = i0 + ii;
      const float P = i >= j ? exp2f(s * sl2 - Ls[ii]) : 0.0f;
      const float dS = P * (dp - Ds[ii]) * scale;
#pragma unroll
      for (int d = 0; d < kDPT; d += 4) {
        const float4 q4 = lds4(qr + d);
        const float4 g4 = lds4(gr + d);
        dka[d + 0] = fmaf(dS, q4.x, dka[d + 0]);
        dka[d + 1] = fmaf(dS, q4.y, dka[d + 1]);
        dka[d + 2] = fmaf(dS, q4.z, dka[d + 2]);
        dka[d + 3] = fmaf(dS, q4.w, dka[d + 3]);
        dva[d + 0] = fmaf(P, g4.x, dva[d + 0]);
        dva[d + 1] = fmaf(P, g4.y, dva[d + 1]);
        dva[d + 2] = fmaf(P, g4.z, dva[d + 2]);
        dva[d + 3] = fmaf(P, g4.w, dva[d + 3]);
      }
    }
  }
  if (valid) {
    const int64_t row = ((int64_t)b * T + j) * dstride + (int64_t)h * p;
    if (SHARED) {  // dv already holds the query path (dq kernel): add the key and value paths
      float* o = dv + row;
#pragma unroll
      for (int d = 0; d < kDPT; ++d)
        if (d0 + d < p) o[d0 + d] = o[d0 + d] + (dka[d] + dva[d]);
    } else {
#pragma unroll
      for (int d = 0; d < kDPT; ++d)
        if (d0 + d < p) {
          dk[row + d0 + d] = dka[d];
          dv[row + d0 + d] = dva[d];
        }
    }
  }
}

// ---- host side ---------------------------------------------------------------------------------------

struct Shape {
  int T, C, NH, p;
  int64_t BNH;
};

Shape check_shape(const char* op, int64_t B, int64_t T, int64_t C, int64_t NH) {
  if (NH <= 0 || C <= 0 || C % NH != 0) throw_op(op, "C = " + std::to_string(C) + " is not divisible by NH = " + std::to_string(NH));
  const int64_t p = C / NH;
  if (p > kMaxHeadWidth) throw_op(op, "head width p = C/NH = " + std::to_string(p) + " exceeds the CUDA kernels' limit of " + std::to_string(kMaxHeadWidth));
  if (T > INT32_MAX / 2 || C > INT32_MAX / 4 || B * NH > INT32_MAX) throw_op(op, "attention shape too large");
  return Shape{static_cast<int>(T), static_cast<int>(C), static_cast<int>(NH), static_cast<int>(p), B * NH};
}

unsigned grid_blocks(const char* op, const Shape& s, int rows) {
  const int64_t n = s.BNH * ceil_div(s.T, rows);
  if (n > INT32_MAX) throw_op(op, "attention grid too large");
  return static_cast<unsigned>(n);
}

template <int PD, bool SHARED>
void forward_pd(const char* op, float* y, float* saved, const float* qkv, int64_t stride, int64_t koff, int64_t voff, const Shape& s) {
  const float sl2 = static_cast<float>(1.4426950408889634 / std::sqrt(static_cast<double>(s.p)));
  attn_forward_kernel<PD, SHARED><<<grid_blocks(op, s, Cfg<PD>::ROWS), kThreadsA>>>(y, saved, qkv, stride, koff, voff, s.T, s.C, s.NH, s.p, sl2);
  CRATE_LAUNCH_CHECK(op, "attn_forward_kernel");
}

template <int PD, bool SHARED>
void backward_pd(const char* op, float* dq, float* dk, float* dv, int64_t dstride, const float* dy, const float* y, const float* qkv, int64_t stride,
                 int64_t koff, int64_t voff, const float* saved, const Shape& s) {
  const double sc = 1.0 / std::sqrt(static_cast<double>(s.p));
  const float scale = static_cast<float>(sc), sl2 = static_cast<float>(1.4426950408889634 * sc);
  float* Dws = static_cast<float*>(workspace(sizeof(float) * s.BNH * s.T, op, Ws::kOp));
  const unsigned blocks = grid_blocks(op, s, Cfg<PD>::ROWS);
  attn_backward_dq_kernel<PD, SHARED><<<blocks, kThreadsA>>>(dq, dstride, Dws, dy, y, qkv, stride, koff, voff, saved, s.T, s.C, s.NH, s.p, sl2, scale);
  CRATE_LAUNCH_CHECK(op, "attn_backward_dq_kernel");
  attn_backward_dkv_kernel<PD, SHARED><<<blocks, kThreadsA>>>(dk, dv, dstride, Dws, dy, qkv, stride, koff, voff, saved, s.T, s.C, s.NH, s.p, sl2, scale);
  CRATE_LAUNCH_CHECK(op, "attn_backward_dkv_kernel");
}

template <bool SHARED>
void forward_any(const char* op, float* y, float* saved, const float* qkv, int64_t stride, int64_t koff, int64_t voff, int64_t B, int64_t T, int64_t C,
                 int64_t NH) {
  const Shape s = check_shape(op, B, T, C, NH);
  if (B <= 0 || T <= 0) return;
  if (s.p <= 32)
    forward_pd<32, SHARED>(op, y, saved, qkv, stride, koff, voff, s);
  else if (s.p <= 64)
    forward_pd<64, SHARED>(op, y, saved, qkv, stride, koff, voff, s);
  else if (s.p <= 128)
    forward_pd<128, SHARED>(op, y, saved, qkv, stride, koff, voff, s);
  else
    forward_pd<256, SHARED>(op, y, saved, qkv, stride, koff, voff, s);
}

template <bool SHARED>
void backward_any(const char* op, float* dq, float* dk, float* dv, int64_t dstride, const float* dy, const float* y, const float* qkv, int64_t stride,
                  int64_t koff, int64_t voff, const float* saved, int64_t B, int64_t T, int64_t C, int64_t NH) {
  const Shape s = check_shape(op, B, T, C, NH);
  if (B <= 0 || T <= 0) return;
  if (s.p <= 32)
    backward_pd<32, SHARED>(op, dq, dk, dv, dstride, dy, y, qkv, stride, koff, voff, saved, s);
  else if (s.p <= 64)
    backward_pd<64, SHARED>(op, dq, dk, dv, dstride, dy, y, qkv, stride, koff, voff, saved, s);
  else if (s.p <= 128)
    backward_pd<128, SHARED>(op, dq, dk, dv, dstride, dy, y, qkv, stride, koff, voff, saved, s);
  else
    backward_pd<256, SHARED>(op, dq, dk, dv, dstride, dy, y, qkv, stride, koff, voff, saved, s);
}

// ---- incremental decoding ------------------------------------------------------------------------------
// One block per (batch, head). The scores of the cached rows 0..t go to the workspace S (row j by
// thread j mod 256, each a dot product of length p in order); the block's max and sum of exponentials
// are fixed-order tree reductions; then thread d owns output dimension d (p <= 256) and sums
// P_j v_j[d] over j in order. No atomics: bitwise reproducible.
__global__ void attn_decode_kernel(float* y, const float* q, const float* k, const float* v, float* S, int64_t n, int64_t Tmax, int64_t C, int NH, int p,
                                   float scale) {
  __shared__ float red[32];
  const int64_t bh = blockIdx.x, b = bh / NH;
  const int64_t hoff = (bh % NH) * static_cast<int64_t>(p);
  const float* qb = q + b * C + hoff;
  const float* kb = k + b * Tmax * C + hoff;
  const float* vb = v + b * Tmax * C + hoff;
  float* s = S + bh * n;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    const float* kj = kb + j * C;
    float d = 0.0f;
    for (int c = 0; c < p; ++c) d = fmaf(qb[c], kj[c], d);
    s[j] = d * scale;
    mx = fmaxf(mx, s[j]);
  }
  mx = block_max(mx, red);
  float part = 0.0f;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    const float e = expf(s[j] - mx);
    s[j] = e;
    part += e;
  }
  const float inv = 1.0f / block_sum(part, red);  // block_sum synchronizes: every s[j] is written
  for (int d = threadIdx.x; d < p; d += blockDim.x) {
    float acc = 0.0f;
    for (int64_t j = 0; j < n; ++j) acc = fmaf(s[j] * inv, vb[j * C + d], acc);
    y[b * C + hoff + d] = acc;
  }
}

}  // namespace

void mssa_forward(float* y, float* saved, const float* v, int64_t B, int64_t T, int64_t C, int64_t NH) {
  forward_any<true>("mssa_forward", y, saved, v, C, 0, 0, B, T, C, NH);
}

void attention_forward(float* y, float* saved, const float* qkv, int64_t B, int64_t T, int64_t C, int64_t NH) {
  forward_any<false>("attention_forward", y, saved, qkv, 3 * C, C, 2 * C, B, T, C, NH);
}

void mssa_backward(float* dv, const float* dy, const float* v, const float* y, const float* saved, int64_t B, int64_t T, int64_t C, int64_t NH) {
  // dq written into dv, then dk + dv added in place: dv = the sum of the three tied paths (written).
  backward_any<true>("mssa_backward", dv, dv, dv, C, dy, y, v, C, 0, 0, saved, B, T, C, NH);
}

void attention_backward(float* dqkv, const float* dy, const float* qkv, const float* y, const float* saved, int64_t B, int64_t T, int64_t C, int64_t NH) {
  backward_any<false>("attention_backward", dqkv, dqkv + C, dqkv + 2 * C, 3 * C, dy, y, qkv, 3 * C, C, 2 * C, saved, B, T, C, NH);
}

void attention_decode(float* y, const float* q, const float* k, const float* v, int64_t B, int64_t t, int64_t Tmax, int64_t C, int64_t NH) {
  const char* op = "attention_decode";
  const Shape s = check_shape(op, B, Tmax, C, NH);
  if (B <= 0) return;
  const int64_t n = t + 1;
  float* S = static_cast<float*>(workspace(sizeof(float) * static_cast<size_t>(s.BNH * n), op, Ws::kOp));
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.p)));
  attn_decode_kernel<<<static_cast<unsigned>(s.BNH), kThreadsA>>>(y, q, k, v, S, n, Tmax, C, s.NH, s.p, scale);
  CRATE_LAUNCH_CHECK(op, "attn_decode_kernel");
}

}  // namespace cuda
}  // namespace crate
