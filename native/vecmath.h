// Helpers shared by the operator files: per-ISA function clones and a vectorizable exp.
#pragma once

#include <cstdint>
#include <cstring>

// Hot loops are written plainly and compiled three times (AVX-512, AVX2+FMA, baseline x86-64);
// the loader picks the best clone for the CPU at run time (GNU ifunc). -march is never set globally,
// so the addon runs on any x86-64. Elsewhere the plain version is used.
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define CRATE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CRATE_CLONES
#endif

#define CRATE_INLINE inline __attribute__((always_inline))

namespace crate {

/**
 * exp(x) for x <= 0 in float32 (Cephes expf polynomial, about 1 ulp), branch-free so loops over it
 * vectorize without -ffast-math. Returns exactly 0 for x < -87 (including -inf), where the true
 * value is below 1.7e-38; callers only use it on x - max <= 0 inside softmaxes.
 */
CRATE_INLINE float exp_nonpos(float x) {
  const float xc = x < -87.0f ? -87.0f : x;
  // n = round(x / ln 2) via the 1.5 * 2^23 trick (exact for |n| < 2^22).
  const float magic = 12582912.0f;
  float fx = (xc * 1.44269504088896341f + magic) - magic;
  float r = xc - fx * 0.693359375f;
  r = r - fx * -2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * (r * r) + r + 1.0f;
  // 2^n as float bits. A NaN x makes fx NaN: cast 0 instead (a NaN cast to int is undefined), the
  // result is NaN through y anyway. The shift is done unsigned (n + 127 >= 1 here; never a shift of a
  // negative value).
  const int32_t n = static_cast<int32_t>(fx == fx ? fx : 0.0f);
  const uint32_t bits = static_cast<uint32_t>(n + 127) << 23;
  const float scale = __builtin_bit_cast(float, bits);
  const float out = y * scale;
  return x < -87.0f ? 0.0f : out;
}

/**
 * sum_{i < n} f(i) accumulated in double in 8 independent lanes (lane l takes i = l mod 8), which
 * vectorizes without reassociating anything; the lanes are combined in a fixed order. f may have
 * side effects (it is called once per i, in increasing i within each group of 8).
 */
template <class F>
CRATE_INLINE double lane_sum(int64_t n, F f) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) acc[l] += static_cast<double>(f(i + l));
  double tail = 0.0;
  for (; i < n; ++i) tail += static_cast<double>(f(i));
  return (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))) + tail;
}

}  // namespace crate
