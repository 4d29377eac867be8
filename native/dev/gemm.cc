// The SGEMM ladder: every version of the CPU matrix product this project has had or may have,
// numbered, each checked against a float64 reference and timed against the others in one run
// (the way llm.c's dev/cuda keeps its kernel versions). Not part of the addon; built and run by
// native/dev/run.sh (see native/dev/README.md).
//
//   gemm VARIANT|all [--m M] [--n N] [--k K] [--size S] [--layout NT|NN|TN] [--runs R]
//                    [--threads T] [--baseline V]
//
// Variants (C = op(A) op(B), row-major, the three layouts the linear layer uses):
//   1  naive: i-k-j triple loop, float accumulation, one thread
//   2  the addon's packed SGEMM (native/gemm.cc) with its scalar 4x8 micro-kernel
//   3  the same with the AVX2+FMA 6x16 micro-kernel
//   4  the same with the AVX-512 12x32 micro-kernel
// A variant the CPU cannot run is reported as skipped. Exit status: 0 when every variant that ran
// matched the reference, 1 when one did not, 2 for bad arguments.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../gemm.h"
#include "../threadpool.h"

namespace {

struct Problem {
  bool transA, transB;
  int64_t M, N, K;
  int64_t lda, ldb, ldc;
};

// float64 reference: C[i][j] = sum_p op(A)[i][p] op(B)[p][j]
void reference(const Problem& p, const float* A, const float* B, double* C) {
  for (int64_t i = 0; i < p.M; ++i)
    for (int64_t j = 0; j < p.N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < p.K; ++k) {
        const double a = p.transA ? A[k * p.lda + i] : A[i * p.lda + k];
        const double b = p.transB ? B[j * p.ldb + k] : B[k * p.ldb + j];
        s += a * b;
      }
      C[i * p.ldc + j] = s;
    }
}

// ---- variant 1: naive --------------------------------------------------------------------------
bool v1_naive(const Problem& p, const float* A, const float* B, float* C) {
  for (int64_t i = 0; i < p.M; ++i) std::fill(C + i * p.ldc, C + i * p.ldc + p.N, 0.0f);
  for (int64_t i = 0; i < p.M; ++i)
    for (int64_t k = 0; k < p.K; ++k) {
      const float a = p.transA ? A[k * p.lda + i] : A[i * p.lda + k];
      float* c = C + i * p.ldc;
      if (p.transB)
        for (int64_t j = 0; j < p.N; ++j) c[j] += a * B[j * p.ldb + k];
      else
        for (int64_t j = 0; j < p.N; ++j) c[j] += a * B[k * p.ldb + j];
    }
  return true;
}

// ---- variants 2-4: the addon's SGEMM with a chosen micro-kernel ----------------------------------
template <const char* Kernel>
bool v_addon(const Problem& p, const float* A, const float* B, float* C) {
  if (!crate::sgemm_set_kernel(Kernel)) return false;
  crate::sgemm(p.transA, p.transB, p.M, p.N, p.K, 1.0f, A, p.lda, B, p.ldb, false, C, p.ldc);
  return true;
}
constexpr char kScalar[] = "scalar";
constexpr char kAvx2[] = "avx2";
constexpr char kAvx512[] = "avx512";

struct Variant {
  int id;
  const char* name;
  bool (*run)(const Problem&, const float*, const float*, float*);  // false: not supported here
};

// Add a new version at the end with the next number; see README.md.
const Variant kVariants[] = {
    {1, "naive i-k-j, 1 thread", v1_naive},
    {2, "addon sgemm, scalar 4x8", v_addon<kScalar>},
    {3, "addon sgemm, avx2 6x16", v_addon<kAvx2>},
    {4, "addon sgemm, avx512 12x32", v_addon<kAvx512>},
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "gemm: %s\nusage: gemm VARIANT|all [--m M] [--n N] [--k K] [--size S] [--layout NT|NN|TN] [--runs R] "
               "[--threads T] [--baseline V]\n",
               why.c_str());
  std::exit(2);
}

int64_t positive(const char* flag, const char* v) {
  char* end = nullptr;
  const long long x = std::strtoll(v, &end, 10);
  if (end == v || *end != '\0' || x < 1 || x > (1 << 16)) usage(std::string(flag) + " needs an integer in [1, 65536], got '" + v + "'");
  return x;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) usage("name a variant (1-4) or all");
  const std::string which = argv[1];
  int64_t M = 512, N = 512, K = 512, runs = 7, baseline = 0;
  std::string layout = "NT";
  for (int i = 2; i < argc; i += 2) {
    const std::string f = argv[i];
    if (i + 1 >= argc) usage(f + " needs a value");
    const char* v = argv[i + 1];
    if (f == "--m")
      M = positive("--m", v);
    else if (f == "--n")
      N = positive("--n", v);
    else if (f == "--k")
      K = positive("--k", v);
    else if (f == "--size")
      M = N = K = positive("--size", v);
    else if (f == "--runs")
      runs = positive("--runs", v);
    else if (f == "--threads")
      crate::pool_set_threads(static_cast<int>(positive("--threads", v)));
    else if (f == "--baseline")
      baseline = positive("--baseline", v);
    else if (f == "--layout") {
      layout = v;
      if (layout != "NT" && layout != "NN" && layout != "TN") usage("--layout is NT, NN or TN, got '" + layout + "'");
    } else
      usage("unknown option '" + f + "'");
  }
  std::vector<const Variant*> chosen;
  for (const Variant& v : kVariants)
    if (which == "all" || which == std::to_string(v.id)) chosen.push_back(&v);
  if (chosen.empty()) usage("unknown variant '" + which + "'");

  // NT: out = inp W^T (linear forward); NN: dinp = dout W; TN: dW = dout^T inp (linear backward)
  Problem p{layout == "TN", layout == "NT", M, N, K, 0, 0, N};
  p.lda = p.transA ? M : K;
  p.ldb = p.transB ? K : N;
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  std::vector<float> A(static_cast<size_t>(M * K)), B(static_cast<size_t>(K * N)), C(static_cast<size_t>(M * N));
  for (float& x : A) x = u(rng);
  for (float& x : B) x = u(rng);
  std::vector<double> ref(static_cast<size_t>(M * N));
  reference(p, A.data(), B.data(), ref.data());
  double scale = 0;
  for (double x : ref) scale = std::max(scale, std::fabs(x));
  // float32 rounding of a K-term dot product of O(1) terms: a few ulp times sqrt(K), relative to the largest entry
  const double tol = 8.0 * 1.2e-7 * std::sqrt(static_cast<double>(K));

  std::printf("gemm %s M=%lld N=%lld K=%lld, %d threads, median of %lld runs, tolerance %.2e (relative to max|C|)\n", layout.c_str(), static_cast<long long>(M),
              static_cast<long long>(N), static_cast<long long>(K), crate::pool_threads(), static_cast<long long>(runs), tol);
  std::printf("%-3s %-28s %-10s %12s %10s %s\n", "v", "variant", "check", "max rel err", "ms", "GFLOP/s");
  bool ok = true;
  double base_ms = 0;
  std::vector<std::pair<int, double>> times;
  for (const Variant* v : chosen) {
    std::fill(C.begin(), C.end(), NAN);
    if (!v->run(p, A.data(), B.data(), C.data())) {
      std::printf("%-3d %-28s %-10s (not supported on this CPU)\n", v->id, v->name, "skipped");
      continue;
    }
    double err = 0;
    for (size_t i = 0; i < C.size(); ++i) {
      const double e = std::fabs(C[i] - ref[i]) / std::max(scale, 1e-30);
      if (!(e <= err)) err = std::isnan(e) ? INFINITY : e;
    }
    const bool pass = err <= tol;
    ok = ok && pass;
    std::vector<double> ms;
    for (int64_t r = 0; r < runs + 1; ++r) {  // the first run warms caches and the thread pool
      const auto t0 = std::chrono::steady_clock::now();
      v->run(p, A.data(), B.data(), C.data());
      const double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (r > 0) ms.push_back(dt);
    }
    std::sort(ms.begin(), ms.end());
    const double med = ms[ms.size() / 2];
    times.emplace_back(v->id, med);
    if (v->id == baseline) base_ms = med;
    std::printf("%-3d %-28s %-10s %12.2e %10.3f %8.1f\n", v->id, v->name, pass ? "ok" : "MISMATCH", err, med, 2.0 * M * N * K / (med * 1e6));
  }
  crate::sgemm_set_kernel("auto");
  if (baseline != 0) {
    if (base_ms == 0) usage("--baseline " + std::to_string(baseline) + " did not run");
    for (auto& [id, t] : times) std::printf("v%d / v%lld time: %.3f\n", id, static_cast<long long>(baseline), t / base_ms);
  }
  if (!ok) std::printf("gemm: a variant does not match the float64 reference\n");
  return ok ? 0 : 1;
}
