// What `crate-ts serve` needs of logit rows (src/serve), computed where the rows are, so that a row
// of V logits (50304 for GPT-2's vocabulary) never crosses to JavaScript:
//
// logits_stats: per row, the log-sum-exp (exp(x - max) in float32, vectorized, summed in double, as
//   cross_entropy_forward does), the target's logit, and the K largest logits among ids < M. The
//   top-K pass keeps a sorted list of K and skips every entry not above its last one, so it costs
//   about one comparison per entry. Rows run in parallel; each row's result depends on that row only.
// sample_logits: one draw with temperature, top-k and top-p from one row, in double, following
//   sampleId of src/serve/sampling.ts step by step (the same candidates in the same order, the same
//   sums in the same order, the same inverse-CDF walk), so the float64 reference (the TypeScript
//   sampler) and this twin give the same id for the same u.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ops.h"
#include "threadpool.h"
#include "vecmath.h"

namespace crate {
namespace {

// Larger value first, equal values by lower id: a strict total order on (value, id).
inline bool before(float a, int64_t ia, float b, int64_t ib) { return a > b || (a == b && ia < ib); }

CRATE_CLONES void stats_row(float* st, float* top, const float* x, int64_t target, int64_t V, int64_t M, int64_t K) {
  float mx = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : mx)
  for (int64_t i = 0; i < V; ++i) mx = x[i] > mx ? x[i] : mx;
  constexpr int64_t kChunk = 1024;
  float tmp[kChunk];
  double s = 0.0;
  for (int64_t c0 = 0; c0 < V; c0 += kChunk) {
    const int64_t len = std::min(kChunk, V - c0);
    const float* xc = x + c0;
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) tmp[i] = exp_nonpos(xc[i] - mx);
    double cs = 0.0;
#pragma omp simd reduction(+ : cs)
    for (int64_t i = 0; i < len; ++i) cs += tmp[i];
    s += cs;
  }
  const double lse = static_cast<double>(mx) + std::log(s);
  const float hi = static_cast<float>(lse);
  st[0] = hi;
  st[1] = static_cast<float>(lse - static_cast<double>(hi));
  st[2] = x[target];
  if (K == 0) return;
  // top-K by insertion into a sorted list (ids ascending is the scan order, so a later equal value
  // never goes before an earlier one)
  const int64_t n = std::min(M, V);
  std::vector<float> val(static_cast<size_t>(K));
  std::vector<int64_t> id(static_cast<size_t>(K));
  int64_t have = 0;
  for (int64_t j = 0; j < n; ++j) {
    const float v = x[j];
    if (have == K && !(v > val[K - 1])) continue;
    int64_t p = have < K ? have : K - 1;
    while (p > 0 && val[p - 1] < v) {
      val[p] = val[p - 1];
      id[p] = id[p - 1];
      --p;
    }
    val[p] = v;
    id[p] = j;
    if (have < K) ++have;
  }
  for (int64_t i = 0; i < K; ++i) {
    top[2 * i] = i < have ? static_cast<float>(id[i]) : -1.0f;
    top[2 * i + 1] = i < have ? val[i] : -std::numeric_limits<float>::infinity();
  }
}

}  // namespace

void logits_stats(float* stats, float* top, const float* logits, const int32_t* targets, int64_t N, int64_t V, int64_t M, int64_t K) {
  parallel_for(N, 1, [&](int64_t n0, int64_t n1) {
    for (int64_t r = n0; r < n1; ++r) stats_row(stats + 3 * r, top + 2 * K * r, logits + r * V, targets[r], V, M, K);
  });
}

double sample_logits(const float* x, int64_t V, int64_t n, double temperature, int64_t topK, double topP, double u) {
  n = std::min(n, V);
  if (temperature <= 0.0) {
    int64_t best = 0;
    for (int64_t j = 1; j < n; ++j)
      if (x[j] > x[best]) best = j;
    return static_cast<double>(best);
  }
  const bool byK = topK > 0 && topK < n, byP = topP < 1.0;
  // the candidates, in the order of the walk
  std::vector<int64_t> ids;
  if (byK || byP) {
    ids.resize(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) ids[j] = j;
    const auto cmp = [x](int64_t a, int64_t b) { return before(x[a], a, x[b], b); };
    if (byK) {
      std::partial_sort(ids.begin(), ids.begin() + topK, ids.end(), cmp);
      ids.resize(static_cast<size_t>(topK));
    } else
      std::sort(ids.begin(), ids.end(), cmp);
  }
  const int64_t m = (byK || byP) ? static_cast<int64_t>(ids.size()) : n;
  const auto at = [&](int64_t i) { return (byK || byP) ? ids[i] : i; };
  double mx = -std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < m; ++i) mx = std::max(mx, static_cast<double>(x[at(i)]));
  std::vector<double> w(static_cast<size_t>(m));
  double total = 0.0;
  for (int64_t i = 0; i < m; ++i) {
    w[i] = std::exp((static_cast<double>(x[at(i)]) - mx) / temperature);
    total += w[i];
  }
  int64_t keep = m;
  if (byP) {
    // the candidates are in descending order here: the shortest prefix whose mass reaches topP
    double acc = 0.0;
    for (int64_t i = 0; i < m; ++i) {
      acc += w[i] / total;
      if (acc >= topP) {
        keep = i + 1;
        break;
      }
    }
    total = 0.0;
    for (int64_t i = 0; i < keep; ++i) total += w[i];
  }
  double r = u * total;
  for (int64_t i = 0; i < keep; ++i) {
    r -= w[i];
    if (r < 0.0) return static_cast<double>(at(i));
  }
  return static_cast<double>(at(keep - 1));
}

}  // namespace crate
