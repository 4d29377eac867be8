// Elementwise helpers: fill, copy, add, scale, sumSquares, allFinite, relu forward/backward.
// Memory-bound loops split across the pool; the one reduction (sum_squares) uses fixed chunks.
#include <cmath>
#include <cstring>
#include <vector>

#include "hd_math.h"
#include "ops.h"
#include "threadpool.h"

namespace crate {

namespace {
constexpr int64_t kGrain = 1 << 15;  // elements per task below which splitting does not pay
}

void fill(float* buf, int64_t n, float value) {
  parallel_for(n, kGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) buf[i] = value;
  });
}

void copy(float* dst, const float* src, int64_t n) {
  if (dst == src) return;
  parallel_for(n, kGrain, [&](int64_t i0, int64_t i1) { std::memmove(dst + i0, src + i0, static_cast<size_t>(i1 - i0) * sizeof(float)); });
}

void add(float* out, const float* a, const float* b, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) out[i] = a[i] + b[i];
  });
}

void scale(float* buf, int64_t n, float s) {
  parallel_for(n, kGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) buf[i] *= s;
  });
}

double sum_squares(const float* buf, int64_t n) {
  constexpr int64_t kChunk = 4096;
  const int64_t nchunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<size_t>(nchunks), 0.0);
  parallel_for(nchunks, 8, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const float* p = buf + c * kChunk;
      const int64_t len = std::min(kChunk, n - c * kChunk);
      double s = 0.0;
#pragma omp simd reduction(+ : s)
      for (int64_t i = 0; i < len; ++i) s += static_cast<double>(p[i]) * static_cast<double>(p[i]);
      partial[c] = s;
    }
  });
  double total = 0.0;
  for (double s : partial) total += s;
  return total;
}

bool all_finite(const float* buf, int64_t n) {
  constexpr int64_t kChunk = 1 << 16;
  const int64_t nchunks = (n + kChunk - 1) / kChunk;
  std::vector<char> ok(static_cast<size_t>(nchunks), 1);
  parallel_for(nchunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const float* p = buf + c * kChunk;
      const int64_t len = std::min(kChunk, n - c * kChunk);
      float acc = 0.0f;  // x - x is 0 for finite x and NaN for inf/NaN; NaN survives the sum
#pragma omp simd reduction(+ : acc)
      for (int64_t i = 0; i < len; ++i) acc += p[i] - p[i];
      ok[c] = (acc == 0.0f);
    }
  });
  for (char c : ok)
    if (!c) return false;
  return true;
}

void relu_forward(float* out, const float* inp, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) out[i] = hd::relu(inp[i]);
  });
}

void relu_backward(float* dinp, const float* dout, const float* out, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) dinp[i] = hd::relu_mask(dout[i], out[i]);
  });
}

void column_sums_accumulate(float* dst, const float* src, int64_t rows, int64_t cols) {
  // Columns are split across tasks; each column is summed over rows in order, in double.
  parallel_for(cols, 64, [&](int64_t j0, int64_t j1) {
    constexpr int64_t kBlock = 256;
    double acc[kBlock];
    for (int64_t jb = j0; jb < j1; jb += kBlock) {
      const int64_t w = std::min(kBlock, j1 - jb);
      for (int64_t j = 0; j < w; ++j) acc[j] = 0.0;
      for (int64_t r = 0; r < rows; ++r) {
        const float* s = src + r * cols + jb;
#pragma omp simd
        for (int64_t j = 0; j < w; ++j) acc[j] += static_cast<double>(s[j]);
      }
      for (int64_t j = 0; j < w; ++j) dst[jb + j] = static_cast<float>(static_cast<double>(dst[jb + j]) + acc[j]);
    }
  });
}

}  // namespace crate
