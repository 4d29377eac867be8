// Token + position embedding (spec E20).  out, dout: (B,T,C); wte: (V,C); wpe: (maxT,C); idx: (B,T).
#include <algorithm>

#include "ops.h"
#include "threadpool.h"

namespace crate {

void embedding_forward(float* out, const int32_t* idx, const float* wte, const float* wpe, int64_t B, int64_t T, int64_t C) {
  parallel_for(B * T, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* w = wte + static_cast<int64_t>(idx[r]) * C;
      const float* p = wpe + (r % T) * C;
      float* o = out + r * C;
      for (int64_t c = 0; c < C; ++c) o[c] = w[c] + p[c];
    }
  });
}

// dwte[idx[b,t],:] += dout[b,t,:] and dwpe[t,:] += sum_b dout[b,t,:]. Tokens repeat, so tasks own
// column blocks (fixed width) and visit the tokens in order: no races, a fixed summation order.
void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* idx, int64_t B, int64_t T, int64_t C) {
  constexpr int64_t kCols = 64;
  const int64_t nblocks = (C + kCols - 1) / kCols;
  pool_run(nblocks, [&](int64_t blk) {
    const int64_t c0 = blk * kCols, c1 = std::min(C, c0 + kCols);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t) {
        const int64_t r = b * T + t;
        const float* d = dout + r * C;
        float* w = dwte + static_cast<int64_t>(idx[r]) * C;
        float* p = dwpe + t * C;
        for (int64_t c = c0; c < c1; ++c) {
          w[c] += d[c];
          p[c] += d[c];
        }
      }
  });
}

}  // namespace crate
