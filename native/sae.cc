// Sparse autoencoder operators (src/reference/sae.ts has the equations; README "Sparse autoencoders" the recipe).
//
//   pre = (x - b_dec) W_enc + b_enc   (N,S)   h = relu(topk_k(pre))   xhat = h W_dec + b_dec   (N,D)
//
// The encoder product is dense (packed SGEMM). Everything downstream of h exploits its sparsity
// (an SAE's code has a few active features per row) when fewer than 1/8 of its entries are non-zero,
// and falls back to the packed SGEMM otherwise; which path runs depends only on the data, so the
// result is the same for every thread count. Sums over rows run in a fixed order; sparse parameter
// gradients are accumulated by the thread that owns the parameter row (no atomics).
#include <algorithm>
#include <cmath>
#include <vector>

#include "gemm.h"
#include "ops.h"
#include "threadpool.h"
#include "vecmath.h"

namespace crate {
namespace {

// The top-k order of src/reference/sae.ts: larger value first, equal values by lower index.
struct Beats {
  const float* row;
  bool operator()(int64_t a, int64_t b) const { return row[a] > row[b] || (row[a] == row[b] && a < b); }
};

void topk_rows(float* h, const float* pre, const float* mask, int64_t N, int64_t S, int64_t k) {
  std::vector<int64_t> elig;
  for (int64_t j = 0; j < S; ++j)
    if (!mask || mask[j] != 0.0f) elig.push_back(j);
  const int64_t E = static_cast<int64_t>(elig.size());
  parallel_for(N, 16, [&](int64_t n0, int64_t n1) {
    std::vector<int64_t> idx;
    for (int64_t n = n0; n < n1; ++n) {
      const float* p = pre + n * S;
      float* o = h + n * S;
      std::fill(o, o + S, 0.0f);
      if (k >= E) {
        for (int64_t j : elig) o[j] = p[j] > 0.0f ? p[j] : 0.0f;
        continue;
      }
      idx = elig;
      std::nth_element(idx.begin(), idx.begin() + (k - 1), idx.end(), Beats{p});
      for (int64_t t = 0; t < k; ++t) {
        const int64_t j = idx[t];
        o[j] = p[j] > 0.0f ? p[j] : 0.0f;
      }
    }
  });
}

// Row-wise sparse structure of a (N,S) matrix: for each row the columns with a non-zero entry, in
// increasing order, and their values (so that the products below stream over nnz entries instead of
// reading single floats scattered over the N*S matrix).
struct Sparse {
  std::vector<int64_t> start;  // rows + 1
  std::vector<int32_t> col;
  std::vector<float> val;
  std::vector<int64_t> pos;  // transposes only: the entry's index in the row-wise structure
};

int64_t count_nonzero(const float* a, int64_t N, int64_t S, std::vector<int64_t>& per_row) {
  per_row.assign(N, 0);
  parallel_for(N, 16, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      int64_t c = 0;
      const float* r = a + n * S;
      for (int64_t j = 0; j < S; ++j) c += r[j] != 0.0f;
      per_row[n] = c;
    }
  });
  int64_t total = 0;
  for (int64_t c : per_row) total += c;
  return total;
}

// The structures and work arrays below live in thread_local buffers that keep their capacity from one
// call to the next: freshly allocated, a step's tens of MB would be page-faulted in again on every call.
thread_local Sparse tl_rows, tl_cols;
thread_local std::vector<float> tl_xc, tl_g;

const float* centred(const float* x, const float* b_dec, int64_t N, int64_t D) {
  tl_xc.resize(static_cast<size_t>(N * D));
  float* xc = tl_xc.data();
  parallel_for(N, 64, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n)
      for (int64_t i = 0; i < D; ++i) xc[n * D + i] = x[n * D + i] - b_dec[i];
  });
  return xc;
}

const Sparse& build_rows(const float* a, int64_t N, int64_t S, const std::vector<int64_t>& per_row) {
  Sparse& sp = tl_rows;
  sp.start.assign(N + 1, 0);
  for (int64_t n = 0; n < N; ++n) sp.start[n + 1] = sp.start[n] + per_row[n];
  sp.col.resize(sp.start[N]);
  sp.val.resize(sp.start[N]);
  parallel_for(N, 16, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      int64_t o = sp.start[n];
      const float* r = a + n * S;
      for (int64_t j = 0; j < S; ++j)
        if (r[j] != 0.0f) {
          sp.col[o] = static_cast<int32_t>(j);
          sp.val[o++] = r[j];
        }
    }
  });
  return sp;
}

// Column-wise view (the transpose): for each column the rows with a non-zero, rows increasing, and
// their values.
const Sparse& transpose(const Sparse& rows, int64_t N, int64_t S) {
  Sparse& t = tl_cols;
  t.start.assign(S + 1, 0);
  for (int32_t j : rows.col) t.start[j + 1]++;
  for (int64_t j = 0; j < S; ++j) t.start[j + 1] += t.start[j];
  t.col.resize(rows.col.size());
  t.val.resize(rows.col.size());
  t.pos.resize(rows.col.size());
  std::vector<int64_t> fill(t.start.begin(), t.start.end() - 1);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t e = rows.start[n]; e < rows.start[n + 1]; ++e) {
      const int64_t at = fill[rows.col[e]]++;
      t.col[at] = static_cast<int32_t>(n);
      t.val[at] = rows.val[e];
      t.pos[at] = e;
    }
  return t;
}

// Cache blocking of the sparse products. A product over the non-zeros (n, j) gathers one row of a
// dense operand per entry; taken in plain row or column order, consecutive entries gather unrelated
// rows from a matrix far larger than the caches. Instead the entries are visited block by block:
//   by_row_blocks: rows n in blocks of kRowBlock, and within a block feature by feature (through the
//     column-wise view), so W_dec[j] is read once per block for all its rows there;
//   by_feature_blocks: features j in blocks of kFeatureBlock, and within a block row by row (through
//     the row-wise view), so a row of the N-side operand is read once per block for all its features.
// Every output element still receives its terms in the same order as the plain loop (j increasing for
// a row-side output, n increasing for a feature-side one).
constexpr int64_t kRowBlock = 512;
thread_local std::vector<float> tl_block;  // a feature block's accumulator (encode backward)
constexpr int64_t kFeatureBlock = 1024;

// fn(n0, n1, j, e0, e1): entries e0..e1 of the column-wise view cols are those of column j in rows
// [n0, n1). Parallel over row blocks, each block on one thread.
template <class F>
void by_row_blocks(const Sparse& cols, int64_t N, int64_t S, F&& fn) {
  parallel_for((N + kRowBlock - 1) / kRowBlock, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t n0 = b * kRowBlock, n1 = std::min(N, n0 + kRowBlock);
      for (int64_t j = 0; j < S; ++j) {
        const int32_t* c0 = cols.col.data() + cols.start[j];
        const int32_t* c1 = cols.col.data() + cols.start[j + 1];
        const int32_t* lo = std::lower_bound(c0, c1, static_cast<int32_t>(n0));
        const int32_t* hi = std::lower_bound(lo, c1, static_cast<int32_t>(n1));
        if (lo != hi) fn(n0, n1, j, lo - cols.col.data(), hi - cols.col.data());
      }
    }
  });
}

// fn(j0, j1, n, e0, e1): entries e0..e1 of the row-wise view rows are those of row n in columns
// [j0, j1). Parallel over feature blocks; each block is visited row by row (n increasing) on one
// thread, after begin(j0, j1) and before end(j0, j1).
template <class B, class F, class E>
void by_feature_blocks(const Sparse& rows, int64_t N, int64_t S, B&& begin, F&& fn, E&& end) {
  parallel_for((S + kFeatureBlock - 1) / kFeatureBlock, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t j0 = b * kFeatureBlock, j1 = std::min(S, j0 + kFeatureBlock);
      begin(j0, j1);
      for (int64_t n = 0; n < N; ++n) {
        const int32_t* c0 = rows.col.data() + rows.start[n];
        const int32_t* c1 = rows.col.data() + rows.start[n + 1];
        const int32_t* lo = std::lower_bound(c0, c1, static_cast<int32_t>(j0));
        const int32_t* hi = std::lower_bound(lo, c1, static_cast<int32_t>(j1));
        if (lo != hi) fn(j0, j1, n, lo - rows.col.data(), hi - rows.col.data());
      }
      end(j0, j1);
    }
  });
}

bool dense_enough(int64_t nnz, int64_t N, int64_t S) { return nnz * 8 > N * S; }

CRATE_CLONES void axpy(float* y, const float* x, float a, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

CRATE_CLONES float dot(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

void sae_topk(float* h, const float* pre, const float* mask, int64_t N, int64_t S, int64_t k) { topk_rows(h, pre, mask, N, S, k); }

namespace {

// Epilogues run on each finished tile of the SGEMM while it is in cache (saves whole passes over the
// (N,S) matrices; the arithmetic is that of the separate passes, element by element).
struct EncodeEpi {
  const float* b_enc;
  float* h;  // non-null: also h = relu(pre) (the top-k when k keeps every feature)
  int64_t S;
};
void encode_epilogue(void* ctx, float* C, int64_t ldc, int64_t i, int64_t j, int64_t rows, int64_t cols) {
  const EncodeEpi& e = *static_cast<const EncodeEpi*>(ctx);
  for (int64_t r = 0; r < rows; ++r) {
    float* c = C + r * ldc;
    float* h = e.h ? e.h + (i + r) * e.S + j : nullptr;
    for (int64_t q = 0; q < cols; ++q) {
      const float v = c[q] + e.b_enc[j + q];
      c[q] = v;
      if (h) h[q] = v > 0.0f ? v : 0.0f;
    }
  }
}

struct MaskEpi {
  const float* h;
  int64_t S;
  float l1;
};
void mask_epilogue(void* ctx, float* C, int64_t ldc, int64_t i, int64_t j, int64_t rows, int64_t cols) {
  const MaskEpi& e = *static_cast<const MaskEpi*>(ctx);
  for (int64_t r = 0; r < rows; ++r) {
    float* c = C + r * ldc;
    const float* h = e.h + (i + r) * e.S + j;
    for (int64_t q = 0; q < cols; ++q) c[q] = h[q] > 0.0f ? c[q] + e.l1 : 0.0f;
  }
}

}  // namespace

void sae_encode_forward(float* pre, float* h, const float* x, const float* W_enc, const float* b_enc, const float* b_dec, int64_t N, int64_t D, int64_t S,
                        int64_t k) {
  if (N == 0) return;
  const float* xc = centred(x, b_dec, N, D);
  // k >= S keeps every feature: h = relu(pre), written by the epilogue with pre's bias
  const bool all = k >= S;
  EncodeEpi ctx{b_enc, all ? h : nullptr, S};
  const SgemmEpilogue epi{encode_epilogue, &ctx};
  sgemm_ex(false, false, N, S, D, 1.0f, xc, D, W_enc, S, false, pre, S, &epi);
  if (!all) topk_rows(h, pre, nullptr, N, S, k);
}

void sae_decode_forward(float* xhat, const float* h, const float* W_dec, const float* b_dec, int64_t N, int64_t D, int64_t S) {
  if (N == 0) return;
  std::vector<int64_t> per_row;
  const int64_t nnz = count_nonzero(h, N, S, per_row);
  if (dense_enough(nnz, N, S)) {
    sgemm(false, false, N, D, S, 1.0f, h, S, W_dec, D, false, xhat, D);
    if (b_dec)
      parallel_for(N, 64, [&](int64_t n0, int64_t n1) {
        for (int64_t n = n0; n < n1; ++n) axpy(xhat + n * D, b_dec, 1.0f, D);
      });
    return;
  }
  // xhat[n] = b_dec + sum over the active j (increasing) of h[n,j] W_dec[j]
  const Sparse& cols = transpose(build_rows(h, N, S, per_row), N, S);
  parallel_for(N, 64, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n)
      for (int64_t i = 0; i < D; ++i) xhat[n * D + i] = b_dec ? b_dec[i] : 0.0f;
  });
  by_row_blocks(cols, N, S, [&](int64_t, int64_t, int64_t j, int64_t e0, int64_t e1) {
    for (int64_t e = e0; e < e1; ++e) axpy(xhat + cols.col[e] * D, W_dec + j * D, cols.val[e], D);
  });
}

void sae_decode_backward(float* dpre, float* dW_dec, float* db_dec, const float* dxhat, const float* h, const float* W_dec, int64_t N, int64_t D, int64_t S,
                         double l1) {
  if (N == 0) return;
  const float l1f = static_cast<float>(l1);
  if (db_dec) {
    parallel_for(D, 64, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        double s = 0.0;
        for (int64_t n = 0; n < N; ++n) s += dxhat[n * D + i];
        db_dec[i] += static_cast<float>(s);
      }
    });
  }
  std::vector<int64_t> per_row;
  const int64_t nnz = count_nonzero(h, N, S, per_row);
  if (dense_enough(nnz, N, S)) {
    MaskEpi ctx{h, S, l1f};
    const SgemmEpilogue epi{mask_epilogue, &ctx};
    sgemm_ex(false, true, N, S, D, 1.0f, dxhat, D, W_dec, D, false, dpre, S, &epi);
    sgemm(true, false, S, D, N, 1.0f, h, S, dxhat, D, true, dW_dec, D);
    return;
  }
  // dpre only where h > 0 (a sampled product: one dot per active (n, j)), computed into the row-wise
  // list's slots, then spread over dpre's rows; the rest of dpre is zero
  const Sparse& rows = build_rows(h, N, S, per_row);
  const Sparse& cols = transpose(rows, N, S);
  tl_g.resize(rows.val.size());
  float* g = tl_g.data();
  by_row_blocks(cols, N, S, [&](int64_t, int64_t, int64_t j, int64_t e0, int64_t e1) {
    for (int64_t e = e0; e < e1; ++e) g[cols.pos[e]] = cols.val[e] > 0.0f ? dot(dxhat + cols.col[e] * D, W_dec + j * D, D) + l1f : 0.0f;
  });
  parallel_for(N, 16, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      float* o = dpre + n * S;
      std::fill(o, o + S, 0.0f);
      for (int64_t e = rows.start[n]; e < rows.start[n + 1]; ++e) o[rows.col[e]] = g[e];
    }
  });
  // dW_dec[j] += sum over the rows n where h[n,j] != 0 (increasing) of h[n,j] dxhat[n]
  by_feature_blocks(
      rows, N, S, [](int64_t, int64_t) {},
      [&](int64_t, int64_t, int64_t n, int64_t e0, int64_t e1) {
        for (int64_t e = e0; e < e1; ++e) axpy(dW_dec + rows.col[e] * D, dxhat + n * D, rows.val[e], D);
      },
      [](int64_t, int64_t) {});
}

void sae_encode_backward(float* dW_enc, float* db_enc, float* db_dec, const float* dpre, const float* x, const float* W_enc, const float* b_dec, int64_t N,
                         int64_t D, int64_t S) {
  if (N == 0) return;
  std::vector<int64_t> per_row;
  const int64_t nnz = count_nonzero(dpre, N, S, per_row);
  const bool dense = dense_enough(nnz, N, S);
  const Sparse& rows = tl_rows;
  // Column sums of dpre (double, rows in order): db_enc, and db_dec = -W_enc colsum.
  std::vector<double> colsum(static_cast<size_t>(S), 0.0);
  if (dense) {
    parallel_for(S, 256, [&](int64_t j0, int64_t j1) {
      for (int64_t n = 0; n < N; ++n)
        for (int64_t j = j0; j < j1; ++j) colsum[j] += dpre[n * S + j];
    });
  } else {
    build_rows(dpre, N, S, per_row);
    // n increasing within each column: the order of the dense loop (whose zeros add nothing)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t e = rows.start[n]; e < rows.start[n + 1]; ++e) colsum[rows.col[e]] += rows.val[e];
  }
  for (int64_t j = 0; j < S; ++j) db_enc[j] += static_cast<float>(colsum[j]);
  parallel_for(D, 16, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      double s = 0.0;
      for (int64_t j = 0; j < S; ++j) s += static_cast<double>(W_enc[i * S + j]) * colsum[j];
      db_dec[i] -= static_cast<float>(s);
    }
  });
  const float* xc = centred(x, b_dec, N, D);
  if (dense) {
    sgemm(true, false, D, S, N, 1.0f, xc, D, dpre, S, true, dW_enc, S);
    return;
  }
  // dW_enc[:, j] += sum over the rows n with dpre[n,j] != 0 (increasing) of dpre[n,j] xc[n]: built
  // as contiguous rows of a (kFeatureBlock, D) block, then added to dW_enc's columns j0..j1 (a few
  // cache lines per row i). Each block is one thread's.
  by_feature_blocks(
      rows, N, S, [&](int64_t, int64_t) { tl_block.assign(static_cast<size_t>(kFeatureBlock * D), 0.0f); },
      [&](int64_t j0, int64_t, int64_t n, int64_t e0, int64_t e1) {
        float* acc = tl_block.data();
        for (int64_t e = e0; e < e1; ++e) axpy(acc + (rows.col[e] - j0) * D, xc + n * D, rows.val[e], D);
      },
      [&](int64_t j0, int64_t j1) {
        const float* acc = tl_block.data();
        for (int64_t i = 0; i < D; ++i) {
          float* o = dW_enc + i * S;
          for (int64_t j = j0; j < j1; ++j) o[j] += acc[(j - j0) * D + i];
        }
      });
}

double sae_mse_loss(float* dxhat, const float* xhat, const float* x, int64_t N, int64_t D, double gradScale) {
  if (N == 0) return std::nan("");
  std::vector<double> den_i(static_cast<size_t>(D), 0.0), num_n(static_cast<size_t>(N), 0.0);
  parallel_for(D, 16, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      double m = 0.0;
      for (int64_t n = 0; n < N; ++n) m += x[n * D + i];
      m /= static_cast<double>(N);
      double s = 0.0;
      for (int64_t n = 0; n < N; ++n) {
        const double d = x[n * D + i] - m;
        s += d * d;
      }
      den_i[i] = s;
    }
  });
  double den = 0.0;
  for (double v : den_i) den += v;
  if (!(den > 0.0)) den = static_cast<double>(N);
  const double g = gradScale * 2.0 / den;
  parallel_for(N, 16, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      double s = 0.0;
      for (int64_t i = 0; i < D; ++i) {
        const double d = static_cast<double>(xhat[n * D + i]) - x[n * D + i];
        s += d * d;
        if (dxhat) dxhat[n * D + i] = static_cast<float>(g * d);
      }
      num_n[n] = s;
    }
  });
  double num = 0.0;
  for (double v : num_n) num += v;
  return num / den;
}

void sae_decoder_project(float* dW_dec, const float* W_dec, int64_t S, int64_t D) {
  parallel_for(S, 16, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      const float* w = W_dec + j * D;
      float* g = dW_dec + j * D;
      double d = 0.0, nn = 0.0;
      for (int64_t i = 0; i < D; ++i) {
        d += static_cast<double>(g[i]) * w[i];
        nn += static_cast<double>(w[i]) * w[i];
      }
      if (!(nn > 0.0)) continue;
      axpy(g, w, static_cast<float>(-d / nn), D);
    }
  });
}

void sae_normalize_rows(float* W, int64_t S, int64_t D) {
  parallel_for(S, 16, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      float* w = W + j * D;
      double nn = 0.0;
      for (int64_t i = 0; i < D; ++i) nn += static_cast<double>(w[i]) * w[i];
      if (!(nn > 0.0)) continue;
      const float r = static_cast<float>(1.0 / std::sqrt(nn));
      for (int64_t i = 0; i < D; ++i) w[i] *= r;
    }
  });
}

double sae_fire_counts(float* counts, const float* h, int64_t N, int64_t S) {
  // per column: the count and the sum over rows in order; then the column sums in order
  std::vector<double> sums(static_cast<size_t>(S), 0.0);
  parallel_for(S, 256, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) counts[j] = 0.0f;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t j = j0; j < j1; ++j) {
        const float a = h[n * S + j];
        counts[j] += a > 0.0f ? 1.0f : 0.0f;
        sums[j] += a;
      }
  });
  double total = 0.0;
  for (double v : sums) total += v;
  return total;
}

}  // namespace crate
