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

Sparse build_rows(const float* a, int64_t N, int64_t S, const std::vector<int64_t>& per_row) {
  Sparse sp;
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
Sparse transpose(const Sparse& rows, int64_t N, int64_t S) {
  Sparse t;
  t.start.assign(S + 1, 0);
  for (int32_t j : rows.col) t.start[j + 1]++;
  for (int64_t j = 0; j < S; ++j) t.start[j + 1] += t.start[j];
  t.col.resize(rows.col.size());
  t.val.resize(rows.col.size());
  std::vector<int64_t> fill(t.start.begin(), t.start.end() - 1);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t e = rows.start[n]; e < rows.start[n + 1]; ++e) {
      const int64_t at = fill[rows.col[e]]++;
      t.col[at] = static_cast<int32_t>(n);
      t.val[at] = rows.val[e];
    }
  return t;
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
  std::vector<float> xc(static_cast<size_t>(N * D));
  parallel_for(N, 64, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n)
      for (int64_t i = 0; i < D; ++i) xc[n * D + i] = x[n * D + i] - b_dec[i];
  });
  // k >= S keeps every feature: h = relu(pre), written by the epilogue with pre's bias
  const bool all = k >= S;
  EncodeEpi ctx{b_enc, all ? h : nullptr, S};
  const SgemmEpilogue epi{encode_epilogue, &ctx};
  sgemm_ex(false, false, N, S, D, 1.0f, xc.data(), D, W_enc, S, false, pre, S, &epi);
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
  parallel_for(N, 16, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      float* o = xhat + n * D;
      for (int64_t i = 0; i < D; ++i) o[i] = b_dec ? b_dec[i] : 0.0f;
      const float* r = h + n * S;
      for (int64_t j = 0; j < S; ++j)
        if (r[j] != 0.0f) axpy(o, W_dec + j * D, r[j], D);
    }
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
  // dpre only where h > 0 (a sampled product: one dot per active (n, j)); the rest is zero
  const Sparse rows = build_rows(h, N, S, per_row);
  parallel_for(N, 16, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      float* o = dpre + n * S;
      std::fill(o, o + S, 0.0f);
      for (int64_t e = rows.start[n]; e < rows.start[n + 1]; ++e) {
        const int64_t j = rows.col[e];
        if (rows.val[e] > 0.0f) o[j] = dot(dxhat + n * D, W_dec + j * D, D) + l1f;
      }
    }
  });
  // dW_dec[j] += sum over the rows n where h[n,j] != 0 (increasing) of h[n,j] dxhat[n]
  const Sparse cols = transpose(rows, N, S);
  parallel_for(S, 16, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j)
      for (int64_t e = cols.start[j]; e < cols.start[j + 1]; ++e) axpy(dW_dec + j * D, dxhat + cols.col[e] * D, cols.val[e], D);
  });
}

void sae_encode_backward(float* dW_enc, float* db_enc, float* db_dec, const float* dpre, const float* x, const float* W_enc, const float* b_dec, int64_t N,
                         int64_t D, int64_t S) {
  if (N == 0) return;
  std::vector<int64_t> per_row;
  const int64_t nnz = count_nonzero(dpre, N, S, per_row);
  const bool dense = dense_enough(nnz, N, S);
  Sparse cols;
  // Column sums of dpre (double, rows in order): db_enc, and db_dec = -W_enc colsum.
  std::vector<double> colsum(static_cast<size_t>(S), 0.0);
  if (dense) {
    parallel_for(S, 256, [&](int64_t j0, int64_t j1) {
      for (int64_t n = 0; n < N; ++n)
        for (int64_t j = j0; j < j1; ++j) colsum[j] += dpre[n * S + j];
    });
  } else {
    cols = transpose(build_rows(dpre, N, S, per_row), N, S);
    parallel_for(S, 256, [&](int64_t j0, int64_t j1) {
      for (int64_t j = j0; j < j1; ++j) {
        double s = 0.0;
        for (int64_t e = cols.start[j]; e < cols.start[j + 1]; ++e) s += cols.val[e];
        colsum[j] = s;
      }
    });
  }
  for (int64_t j = 0; j < S; ++j) db_enc[j] += static_cast<float>(colsum[j]);
  parallel_for(D, 16, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      double s = 0.0;
      for (int64_t j = 0; j < S; ++j) s += static_cast<double>(W_enc[i * S + j]) * colsum[j];
      db_dec[i] -= static_cast<float>(s);
    }
  });
  std::vector<float> xc(static_cast<size_t>(N * D));
  parallel_for(N, 64, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n)
      for (int64_t i = 0; i < D; ++i) xc[n * D + i] = x[n * D + i] - b_dec[i];
  });
  if (dense) {
    sgemm(true, false, D, S, N, 1.0f, xc.data(), D, dpre, S, true, dW_enc, S);
    return;
  }
  // dW_enc[:, j] += sum over the rows n with dpre[n,j] != 0 (increasing) of dpre[n,j] xc[n]: built
  // as contiguous rows of a small (JB, D) block (features j0..j0+JB), then added to dW_enc's
  // columns, JB floats (one cache line) per row i. Each task owns its columns of dW_enc.
  constexpr int64_t JB = 16;
  parallel_for((S + JB - 1) / JB, 4, [&](int64_t b0, int64_t b1) {
    std::vector<float> acc(static_cast<size_t>(JB * D));
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t j0 = b * JB, j1 = std::min(S, j0 + JB);
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t j = j0; j < j1; ++j) {
        float* a = acc.data() + (j - j0) * D;
        for (int64_t e = cols.start[j]; e < cols.start[j + 1]; ++e) axpy(a, xc.data() + cols.col[e] * D, cols.val[e], D);
      }
      for (int64_t i = 0; i < D; ++i) {
        float* o = dW_enc + i * S;
        for (int64_t j = j0; j < j1; ++j) o[j] += acc[(j - j0) * D + i];
      }
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
