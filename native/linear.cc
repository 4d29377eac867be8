// The linear family (linear_forward, linear_backward; src/reference/linear.ts): out = x W^T + b and its
// backward, as calls of the SGEMM engine (native/gemm.cc), plus a streaming GEMV for the few-row
// products of decoding. Mirrors native/cuda/linear.cu over native/cuda/gemm.cuh.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "gemm.h"
#include "ops.h"
#include "threadpool.h"

namespace crate {

// ---- small-N linear forward (decoding) -----------------------------------------------------------
// One decoding step multiplies a few rows (N = the decoder's batch) by the whole (OC, C) weight: for
// the LM head that is V x d = 50304 x 128 floats (25 MB). The packed SGEMM would copy that panel
// into slivers first (as much memory traffic as the product itself, for a product that is memory
// bound anyway), so for N <= kGemvRows (8) the weight is streamed once, straight from its row-major
// storage: out[n, j] = dot(inp[n, :], weight[j, :]). (Also the server's echo path, which applies the
// head to 8 rows at a time.) Each output is one dot product in a fixed
// order (8-lane partial sums over k, then a fixed reduction), so the result does not depend on the
// thread count; it differs from the SGEMM's order by float32 rounding only. Training never takes
// this path (its N = B x T rows).

namespace {

constexpr int64_t kGemvRows = 8;

__attribute__((target("avx2,fma"))) inline float hsum256(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
  return _mm_cvtss_f32(lo);
}

template <int R>
__attribute__((target("avx2,fma"))) void gemv_rows_avx2(float* out, const float* inp, const float* weight, int64_t C, int64_t OC, int64_t j0, int64_t j1) {
  const int64_t C8 = C & ~int64_t{7};
  for (int64_t j = j0; j < j1; ++j) {
    const float* w = weight + j * C;
    __m256 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
    for (int64_t k = 0; k < C8; k += 8) {
      const __m256 wk = _mm256_loadu_ps(w + k);
      for (int r = 0; r < R; ++r) acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(inp + r * C + k), wk, acc[r]);
    }
    for (int r = 0; r < R; ++r) {
      float s = hsum256(acc[r]);
      for (int64_t k = C8; k < C; ++k) s += inp[r * C + k] * w[k];
      out[r * OC + j] = s;
    }
  }
}

void gemv_rows_scalar(float* out, const float* inp, const float* weight, int64_t N, int64_t C, int64_t OC, int64_t j0, int64_t j1) {
  for (int64_t j = j0; j < j1; ++j)
    for (int64_t r = 0; r < N; ++r) {
      float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      const int64_t C8 = C & ~int64_t{7};
      for (int64_t k = 0; k < C8; k += 8)
        for (int l = 0; l < 8; ++l) lanes[l] += inp[r * C + k + l] * weight[j * C + k + l];
      float s = ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6])) + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]));
      for (int64_t k = C8; k < C; ++k) s += inp[r * C + k] * weight[j * C + k];
      out[r * OC + j] = s;
    }
}

void gemv_forward(float* out, const float* inp, const float* weight, int64_t N, int64_t C, int64_t OC) {
  const bool avx2 = cpu_has_avx2_fma() && std::string(sgemm_kernel()) != "scalar";
  // Chunks of 512 outputs: their boundaries depend only on OC, and each output is computed alone.
  const int64_t chunk = 512, nchunks = (OC + chunk - 1) / chunk;
  pool_run(nchunks, [&](int64_t c) {
    const int64_t j0 = c * chunk, j1 = std::min(OC, j0 + chunk);
    if (!avx2) return gemv_rows_scalar(out, inp, weight, N, C, OC, j0, j1);
    switch (N) {
      case 1: return gemv_rows_avx2<1>(out, inp, weight, C, OC, j0, j1);
      case 2: return gemv_rows_avx2<2>(out, inp, weight, C, OC, j0, j1);
      case 3: return gemv_rows_avx2<3>(out, inp, weight, C, OC, j0, j1);
      case 4: return gemv_rows_avx2<4>(out, inp, weight, C, OC, j0, j1);
      case 5: return gemv_rows_avx2<5>(out, inp, weight, C, OC, j0, j1);
      case 6: return gemv_rows_avx2<6>(out, inp, weight, C, OC, j0, j1);
      case 7: return gemv_rows_avx2<7>(out, inp, weight, C, OC, j0, j1);
      default: return gemv_rows_avx2<8>(out, inp, weight, C, OC, j0, j1);
    }
  });
}

}  // namespace

// ---- linear layer ---------------------------------------------------------------------------------

// out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias (OC)
void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int64_t C, int64_t OC) {
  if (N <= kGemvRows && OC >= 1024)
    gemv_forward(out, inp, weight, N, C, OC);
  else
    sgemm(false, true, N, OC, C, 1.0f, inp, C, weight, C, false, out, OC);
  if (bias) {
    parallel_for(N, 64, [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n) {
        float* o = out + n * OC;
        for (int64_t j = 0; j < OC; ++j) o[j] += bias[j];
      }
    });
  }
}

// dinp (N,C) = dout (N,OC) @ weight (OC,C)    (written; skipped if dinp is null)
// dweight (OC,C) += dout^T @ inp              (accumulated)
// dbias (OC) += sum_n dout[n,:]               (accumulated, summed in double in row order)
void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight, int64_t N, int64_t C, int64_t OC) {
  if (dinp) sgemm(false, false, N, C, OC, 1.0f, dout, OC, weight, C, false, dinp, C);
  sgemm(true, false, OC, C, N, 1.0f, dout, OC, inp, C, true, dweight, C);
  if (dbias) column_sums_accumulate(dbias, dout, N, OC);
}

}  // namespace crate
