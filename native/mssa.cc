// Causal softmax attention, flash-style (spec E18): MSSA with q = k = v, and GPT-2 attention with
// separate q, k, v.
//
// Forward: one task per (batch, head, block of 64 query rows); keys are visited in blocks of 64,
// the softmax is computed online (running max and sum), so no more than one 64 x 64 block of
// scores exists at a time; the only saved state is the logsumexp of every row: saved (B, NH, T).
// Backward: one task per (batch, head), (key block, query block) pairs in a fixed order: P is
// recomputed from the saved logsumexp, dS = P (dP - D) with D_i = <dy_i, y_i>; dq, dk, dv
// accumulate in that fixed order. No atomics. The block products use the packed SGEMM.
//
// Decode (attention_decode): one new query row per sequence against cached rows 0..t, one task per
// (batch, head), no saved state (forward only).
//
// Layout: head h of token t reads columns [h*p, (h+1)*p) of its row (p = C/NH); row strides are
// C for MSSA's v and y, 3C for qkv (q at +0, k at +C, v at +2C).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "gemm.h"
#include "ops.h"
#include "threadpool.h"
#include "vecmath.h"

namespace crate {
namespace {

constexpr int64_t kBlock = 64;  // keys per block, and query rows per block

struct Heads {
  const float* q;
  const float* k;
  const float* v;
  int64_t stride;  // row stride of q, k, v
};

// Online-softmax update of one block of scores, rows [0, br) of S (row stride kBlock): row r is the
// query i0 + r, column j the key j0 + j; keys after the query are masked. S is overwritten with the
// unnormalised probabilities P = exp(S - m_new); acc rows (width p) are rescaled by exp(m - m_new).
CRATE_CLONES void online_softmax_block(float* S, float* m, float* l, float* acc, int64_t br, int64_t bc, int64_t i0, int64_t j0, int64_t p) {
  for (int64_t r = 0; r < br; ++r) {
    float* sr = S + r * kBlock;
    const int64_t n = std::min(bc, i0 + r + 1 - j0);  // >= 1: blocks are aligned, j0 <= i0
    float mx = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : mx)
    for (int64_t j = 0; j < n; ++j) mx = std::max(mx, sr[j]);
    const float mnew = std::max(m[r], mx);
    const float corr = exp_nonpos(m[r] - mnew);  // 0 on the first block (m = -inf)
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < n; ++j) {
      sr[j] = exp_nonpos(sr[j] - mnew);
      sum += sr[j];
    }
    for (int64_t j = n; j < bc; ++j) sr[j] = 0.0f;
    l[r] = l[r] * corr + sum;
    m[r] = mnew;
    float* ar = acc + r * p;
#pragma omp simd
    for (int64_t d = 0; d < p; ++d) ar[d] *= corr;
  }
}

// Rows [i0, i0 + br) of one (batch, head): q/k/v/y point at row 0 of this head, lse at row 0.
// Scores and P V go through the packed SGEMM (run serially inside this task).
void attn_forward_rows(float* y, int64_t ystride, float* lse, Heads h, int64_t i0, int64_t br, int64_t p, float scale) {
  std::vector<float> S(static_cast<size_t>(kBlock * kBlock)), acc(static_cast<size_t>(br * p), 0.0f);
  std::vector<float> m(static_cast<size_t>(br), -std::numeric_limits<float>::infinity()), l(static_cast<size_t>(br), 0.0f);
  const int64_t i1 = i0 + br;
  for (int64_t j0 = 0; j0 < i1; j0 += kBlock) {
    const int64_t bc = std::min(kBlock, i1 - j0);
    // S = scale * Q_i K_j^T   (br x bc)
    sgemm(false, true, br, bc, p, scale, h.q + i0 * h.stride, h.stride, h.k + j0 * h.stride, h.stride, false, S.data(), kBlock);
    online_softmax_block(S.data(), m.data(), l.data(), acc.data(), br, bc, i0, j0, p);
    // acc += P V_j   (br x p)
    sgemm(false, false, br, p, bc, 1.0f, S.data(), kBlock, h.v + j0 * h.stride, h.stride, true, acc.data(), p);
  }
  for (int64_t r = 0; r < br; ++r) {
    const float inv = 1.0f / l[r];
    float* yi = y + (i0 + r) * ystride;
    const float* ar = acc.data() + r * p;
    for (int64_t d = 0; d < p; ++d) yi[d] = ar[d] * inv;
    lse[i0 + r] = m[r] + std::log(l[r]);
  }
}

// dS = P (dP - D) * scale with P = exp(S - lse) recomputed; masked entries (key after query) get
// P = dS = 0. S holds scale * Q K^T on entry and P on exit; dP holds dY V^T on entry and dS on exit.
CRATE_CLONES void attn_backward_block(float* S, float* dP, const float* lse, const float* D, int64_t br, int64_t bc, int64_t i0, int64_t j0, float scale) {
  for (int64_t r = 0; r < br; ++r) {
    float* sr = S + r * kBlock;
    float* dr = dP + r * kBlock;
    const int64_t n = std::max<int64_t>(0, std::min(bc, i0 + r + 1 - j0));
    const float li = lse[i0 + r], Di = D[i0 + r];
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      const float pj = exp_nonpos(sr[j] - li);
      sr[j] = pj;
      dr[j] = pj * (dr[j] - Di) * scale;
    }
    for (int64_t j = n; j < bc; ++j) sr[j] = dr[j] = 0.0f;
  }
}

// One (batch, head): dq (row stride dstride) receives the query path, dk and dv the key and value
// paths; for MSSA all three point at the same rows and the contributions add up. The caller zeroes
// them first. Every product is a small packed SGEMM, accumulated in a fixed block order.
void attn_backward_head(float* dq, float* dk, float* dv, int64_t dstride, const float* dy, const float* y, int64_t ystride, const float* lse, Heads h,
                        int64_t T, int64_t p, float scale) {
  std::vector<float> D(static_cast<size_t>(T)), S(static_cast<size_t>(kBlock * kBlock)), dP(static_cast<size_t>(kBlock * kBlock));
  for (int64_t i = 0; i < T; ++i) {  // D_i = <dy_i, y_i>
    const float* a = dy + i * ystride;
    const float* b = y + i * ystride;
    double s = 0.0;
    for (int64_t d = 0; d < p; ++d) s += static_cast<double>(a[d]) * b[d];
    D[i] = static_cast<float>(s);
  }
  for (int64_t j0 = 0; j0 < T; j0 += kBlock) {
    const int64_t bc = std::min(kBlock, T - j0);
    const float* kj = h.k + j0 * h.stride;
    const float* vj = h.v + j0 * h.stride;
    for (int64_t i0 = j0; i0 < T; i0 += kBlock) {
      const int64_t br = std::min(kBlock, T - i0);
      const float* qi = h.q + i0 * h.stride;
      const float* dyi = dy + i0 * ystride;
      sgemm(false, true, br, bc, p, scale, qi, h.stride, kj, h.stride, false, S.data(), kBlock);  // S = scale Q K^T
      sgemm(false, true, br, bc, p, 1.0f, dyi, ystride, vj, h.stride, false, dP.data(), kBlock);  // dP = dY V^T
      attn_backward_block(S.data(), dP.data(), lse, D.data(), br, bc, i0, j0, scale);
      sgemm(true, false, bc, p, br, 1.0f, S.data(), kBlock, dyi, ystride, true, dv + j0 * dstride,
            dstride);  // dV += P^T dY
      sgemm(true, false, bc, p, br, 1.0f, dP.data(), kBlock, qi, h.stride, true, dk + j0 * dstride,
            dstride);  // dK += dS^T Q
      sgemm(false, false, br, p, bc, 1.0f, dP.data(), kBlock, kj, h.stride, true, dq + i0 * dstride,
            dstride);  // dQ += dS K
    }
  }
}

float head_scale(int64_t p) { return static_cast<float>(1.0 / std::sqrt(static_cast<double>(p))); }

void forward_all(float* y, float* saved, const float* qbase, int64_t qkv_stride, int64_t koff, int64_t voff, int64_t B, int64_t T, int64_t C, int64_t NH) {
  const int64_t p = C / NH;
  const int64_t nrb = (T + kBlock - 1) / kBlock;
  const float scale = head_scale(p);
  // Later row blocks cost more (causal): hand them out first.
  pool_run(B * NH * nrb, [&](int64_t task) {
    const int64_t rb = nrb - 1 - task % nrb, bh = task / nrb, b = bh / NH, hh = bh % NH;
    const float* q = qbase + b * T * qkv_stride + hh * p;
    Heads h{q, q + koff, q + voff, qkv_stride};
    const int64_t i0 = rb * kBlock, br = std::min(T, i0 + kBlock) - i0;
    attn_forward_rows(y + b * T * C + hh * p, C, saved + bh * T, h, i0, br, p, scale);
  });
}

}  // namespace

void mssa_forward(float* y, float* saved, const float* v, int64_t B, int64_t T, int64_t C, int64_t NH) { forward_all(y, saved, v, C, 0, 0, B, T, C, NH); }

void attention_forward(float* y, float* saved, const float* qkv, int64_t B, int64_t T, int64_t C, int64_t NH) {
  forward_all(y, saved, qkv, 3 * C, C, 2 * C, B, T, C, NH);
}

void mssa_backward(float* dv, const float* dy, const float* v, const float* y, const float* saved, int64_t B, int64_t T, int64_t C, int64_t NH) {
  const int64_t p = C / NH;
  const float scale = head_scale(p);
  pool_run(B * NH, [&](int64_t bh) {
    const int64_t b = bh / NH, hh = bh % NH;
    const int64_t off = b * T * C + hh * p;
    float* d = dv + off;
    for (int64_t t = 0; t < T; ++t) std::fill(d + t * C, d + t * C + p, 0.0f);
    Heads h{v + off, v + off, v + off, C};
    attn_backward_head(d, d, d, C, dy + off, y + off, C, saved + bh * T, h, T, p, scale);
  });
}

void attention_backward(float* dqkv, const float* dy, const float* qkv, const float* y, const float* saved, int64_t B, int64_t T, int64_t C, int64_t NH) {
  const int64_t p = C / NH;
  const float scale = head_scale(p);
  const int64_t S = 3 * C;
  pool_run(B * NH, [&](int64_t bh) {
    const int64_t b = bh / NH, hh = bh % NH;
    float* dq = dqkv + b * T * S + hh * p;
    for (int64_t t = 0; t < T; ++t)
      for (int64_t part = 0; part < 3; ++part) std::fill(dq + t * S + part * C, dq + t * S + part * C + p, 0.0f);
    const float* q = qkv + b * T * S + hh * p;
    Heads h{q, q + C, q + 2 * C, S};
    const int64_t yoff = b * T * C + hh * p;
    attn_backward_head(dq, dq + C, dq + 2 * C, S, dy + yoff, y + yoff, C, saved + bh * T, h, T, p, scale);
  });
}

// ---- incremental decoding ---------------------------------------------------------------------------
// One new position per sequence against the cached rows 0..t (no causal mask needed: every cached row
// precedes it). One task per (batch, head): scores s_j = <q, k_j> * scale, their max, exp(s_j - max)
// and its sum, normalise, then y = sum_j P_j v_j, in the reference's order. q may be a row of k and k
// may be v (the binding allows inputs to alias; y is disjoint from them).
void attention_decode(float* y, const float* q, const float* k, const float* v, int64_t B, int64_t t, int64_t Tmax, int64_t C, int64_t NH) {
  const int64_t p = C / NH, n = t + 1;
  const float scale = head_scale(p);
  pool_run(B * NH, [&](int64_t bh) {
    const int64_t b = bh / NH, hh = bh % NH;
    const float* qb = q + b * C + hh * p;
    const float* kb = k + b * Tmax * C + hh * p;
    const float* vb = v + b * Tmax * C + hh * p;
    std::vector<float> s(static_cast<size_t>(n));
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < n; ++j) {
      const float* kj = kb + j * C;
      float d = 0.0f;
      for (int64_t c = 0; c < p; ++c) d += qb[c] * kj[c];
      s[j] = d * scale;
      mx = std::max(mx, s[j]);
    }
    double sum = 0.0;
    for (int64_t j = 0; j < n; ++j) {
      s[j] = exp_nonpos(s[j] - mx);
      sum += s[j];
    }
    const float inv = static_cast<float>(1.0 / sum);
    float* yb = y + b * C + hh * p;
    std::fill(yb, yb + p, 0.0f);
    for (int64_t j = 0; j < n; ++j) {
      const float a = s[j] * inv;
      const float* vj = vb + j * C;
      for (int64_t c = 0; c < p; ++c) yb[c] += a * vj[c];
    }
  });
}

}  // namespace crate
