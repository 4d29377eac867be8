// GPU conformance harness without Node: runs every CUDA operator of the operator table forward and
// backward on random inputs and compares it with the CPU twin (native/*.cc, linked in).
//
//   element passes when |got - ref| <= atolScale * max|ref| + rtol * |ref|
//   per operator family and direction: native/tolerances.json (via native/generated/ops_table.h)
//
// The list of operators is the table's (native/ops.json): every row must have a check here, or the
// harness reports it as a failure. Inputs: odd sizes, T = 1, one head, head widths of every kernel
// variant, large magnitudes, exact zeros at ReLU thresholds, ignored targets; plus determinism checks
// (the same call twice gives bitwise-identical results) and error checks (out of memory names the
// bytes; unsupported shapes throw). The whole model on the GPU is checked through Node instead
// (npm run test:gpu: test/cuda.test.ts reproduces every fixture on the cuda backend).
//
// Output: one line per check, then "N passed, N failed"; exit status 1 on any failure, 2 when no CUDA
// device is usable (the reason is printed).
//
// Usage: crate_conformance [--filter SUBSTRING] [--seed N]
// Build: see native/cuda/README.md (cmake target crate_conformance, or one nvcc command line).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "../gemm.h"
#include "../generated/ops_table.h"
#include "../ops.h"
#include "ops_cuda.h"

namespace {

// ---- results -------------------------------------------------------------------------------------------

int g_passed = 0, g_failed = 0;
std::string g_filter;

struct Tol {
  double rtol, atol_scale;
};

/** The tolerance of an operator family and direction (native/tolerances.json). */
Tol op_tol(const std::string& family, bool backward) {
  for (const auto& t : crate::optable::kTolerances) {
    if (family == t.family) {
      const crate::optable::Tolerance& x = backward ? t.backward : t.forward;
      return Tol{x.rtol, x.atol_scale};
    }
  }
  throw std::runtime_error("no tolerance for the family '" + family + "' in native/tolerances.json");
}

struct Cmp {
  bool pass = true;
  double max_abs = 0, worst_ratio = 0;
  int64_t worst = -1;
  double worst_got = 0, worst_ref = 0;
};

/** Element-wise check of got against ref (both as double); NaN/Inf must match exactly. */
Cmp compare(const std::vector<double>& got, const std::vector<double>& ref, Tol tol) {
  Cmp r;
  if (got.size() != ref.size()) {
    r.pass = false;
    return r;
  }
  double refmax = 0;
  for (double v : ref)
    if (std::isfinite(v)) refmax = std::max(refmax, std::fabs(v));
  const double atol = tol.atol_scale * refmax;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double g = got[i], e = ref[i];
    if (!std::isfinite(g) || !std::isfinite(e)) {
      const bool same = (std::isnan(g) && std::isnan(e)) || g == e;
      if (!same) {
        r.pass = false;
        r.worst_ratio = INFINITY;
        r.worst = static_cast<int64_t>(i);
        r.worst_got = g;
        r.worst_ref = e;
        r.max_abs = INFINITY;
      }
      continue;
    }
    const double d = std::fabs(g - e);
    r.max_abs = std::max(r.max_abs, d);
    const double bound = atol + tol.rtol * std::fabs(e);
    const double ratio = bound > 0 ? d / bound : (d > 0 ? INFINITY : 0);
    if (ratio > r.worst_ratio || r.worst < 0) {
      r.worst_ratio = ratio;
      r.worst = static_cast<int64_t>(i);
      r.worst_got = g;
      r.worst_ref = e;
    }
    if (d > bound) r.pass = false;
  }
  return r;
}

std::vector<double> widen(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

/** One reported line: PASS/FAIL, the label and each compared tensor's error. */
struct Line {
  std::string label;
  bool pass = true;
  std::ostringstream detail;
  explicit Line(std::string l) : label(std::move(l)) {}
  void check(const std::string& name, const std::vector<double>& got, const std::vector<double>& ref, Tol tol) {
    const Cmp c = compare(got, ref, tol);
    char buf[256];
    if (got.size() != ref.size()) {
      std::snprintf(buf, sizeof buf, " %s: size %zu vs %zu;", name.c_str(), got.size(), ref.size());
    } else {
      std::snprintf(buf, sizeof buf, " %s: max|err| %.2e (%.3g of tol)%s;", name.c_str(), c.max_abs, c.worst_ratio, c.pass ? "" : " FAIL");
      if (!c.pass) {
        char b2[160];
        std::snprintf(b2, sizeof b2, " [%lld] got %.9g ref %.9g;", static_cast<long long>(c.worst), c.worst_got, c.worst_ref);
        std::strncat(buf, b2, sizeof buf - std::strlen(buf) - 1);
      }
    }
    detail << buf;
    pass = pass && c.pass;
  }
  void check(const std::string& name, const std::vector<float>& got, const std::vector<float>& ref, Tol tol) { check(name, widen(got), widen(ref), tol); }
  void expect(const std::string& what, bool ok) {
    detail << " " << what << (ok ? " ok;" : " FAIL;");
    pass = pass && ok;
  }
  void finish() {
    std::printf("%s  %s %s\n", pass ? "PASS" : "FAIL", label.c_str(), detail.str().c_str());
    std::fflush(stdout);
    (pass ? g_passed : g_failed)++;
  }
};

bool selected(const std::string& label) { return g_filter.empty() || label.find(g_filter) != std::string::npos; }

/** Runs a check body; any exception is a failure that names the check. */
void run_check(const std::string& label, const std::function<void(Line&)>& body) {
  if (!selected(label)) return;
  Line line(label);
  try {
    body(line);
  } catch (const std::exception& e) {
    line.expect(std::string("threw: ") + e.what(), false);
  }
  line.finish();
}

// ---- random numbers ------------------------------------------------------------------------------------

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
  double normal() {
    const double u1 = uniform() + 1e-300, u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  int32_t below(int32_t n) { return static_cast<int32_t>(next() % static_cast<uint64_t>(n)); }
  std::vector<float> vec(int64_t n, double scale = 1.0, double offset = 0.0) {
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = static_cast<float>(offset + scale * normal());
    return v;
  }
};

uint64_t g_seed = 1;

// ---- device buffers --------------------------------------------------------------------------------------

/** A device copy of a host vector (or a zero buffer); frees itself. */
struct Dev {
  float* p = nullptr;
  int64_t n = 0;
  explicit Dev(int64_t count) : n(count) { p = crate::cuda::device_alloc(count); }
  explicit Dev(const std::vector<float>& h) : n(static_cast<int64_t>(h.size())) {
    p = crate::cuda::device_alloc(n);
    crate::cuda::upload(p, h.data(), n);
  }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  ~Dev() {
    try {
      crate::cuda::device_free(p);
    } catch (...) {}
  }
  std::vector<float> get() const {
    std::vector<float> h(static_cast<size_t>(n));
    crate::cuda::download(h.data(), p, n);
    return h;
  }
};

std::string shape_str(std::initializer_list<std::pair<const char*, int64_t>> kv) {
  std::ostringstream os;
  os << "(";
  bool first = true;
  for (auto& [k, v] : kv) {
    os << (first ? "" : " ") << k << "=" << v;
    first = false;
  }
  os << ")";
  return os.str();
}

// ---- operator checks: CUDA vs the CPU twin ------------------------------------------------------------

void check_elementwise() {
  for (int64_t n : {1, 7, 1000, 4097, 300001}) {
    Rng rng(g_seed + n);
    const auto a = rng.vec(n), b = rng.vec(n);
    run_check("elementwise add/scale/fill/copy " + shape_str({{"n", n}}), [&](Line& L) {
      std::vector<float> ca = a, cc(n);
      crate::add(cc.data(), a.data(), b.data(), n);
      crate::add(ca.data(), ca.data(), cc.data(), n);
      crate::scale(ca.data(), n, 0.5f);
      Dev ga(a), gb(b), gc(n);
      crate::cuda::add(gc.p, ga.p, gb.p, n);
      crate::cuda::add(ga.p, ga.p, gc.p, n);
      crate::cuda::scale(ga.p, n, 0.5f);
      L.check("add", gc.get(), cc, op_tol("elementwise", false));
      L.check("add-aliased+scale", ga.get(), ca, op_tol("elementwise", false));
      Dev gd(n);
      crate::cuda::copy(gd.p, gc.p, n);
      L.check("copy", gd.get(), cc, {0, 0});
      crate::cuda::fill(gd.p, n, 7.0f);
      L.check("fill", gd.get(), std::vector<float>(n, 7.0f), {0, 0});
    });
    run_check("elementwise sumSquares/allFinite " + shape_str({{"n", n}}), [&](Line& L) {
      Dev ga(a);
      const double got = crate::cuda::sum_squares(ga.p, n), ref = crate::sum_squares(a.data(), n);
      L.check("sumSquares", std::vector<double>{got}, std::vector<double>{ref}, {1e-6, 0});
      L.expect("sumSquares twice bitwise", crate::cuda::sum_squares(ga.p, n) == got);
      L.expect("allFinite(finite)", crate::cuda::all_finite(ga.p, n));
      std::vector<float> bad = a;
      bad[n / 2] = INFINITY;
      Dev gb(bad);
      L.expect("allFinite(inf)", !crate::cuda::all_finite(gb.p, n));
      bad[n / 2] = NAN;
      Dev gn(bad);
      L.expect("allFinite(nan)", !crate::cuda::all_finite(gn.p, n));
    });
    run_check("relu forward+backward " + shape_str({{"n", n}}), [&](Line& L) {
      std::vector<float> x = a;
      for (int64_t i = 0; i < n; i += 3) x[i] = 0.0f;
      if (n > 1) x[1] = -0.0f;
      std::vector<float> out(n), din(n);
      crate::relu_forward(out.data(), x.data(), n);
      crate::relu_backward(din.data(), b.data(), out.data(), n);
      Dev gx(x), gd(b), go(n), gi(n);
      crate::cuda::relu_forward(go.p, gx.p, n);
      crate::cuda::relu_backward(gi.p, gd.p, go.p, n);
      L.check("out", go.get(), out, op_tol("relu", false));
      L.check("dinp", gi.get(), din, op_tol("relu", true));
    });
  }
  for (auto [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {37, 5}, {1000, 130}, {4099, 3}}) {
    run_check("column sums " + shape_str({{"rows", rows}, {"cols", cols}}), [&, rows = rows, cols = cols](Line& L) {
      Rng rng(g_seed + rows * 7 + cols);
      const auto src = rng.vec(rows * cols), dst = rng.vec(cols);
      std::vector<float> ref = dst;
      crate::column_sums_accumulate(ref.data(), src.data(), rows, cols);
      Dev gs(src), gd(dst);
      crate::cuda::column_sums_accumulate(gd.p, gs.p, rows, cols);
      L.check("dst", gd.get(), ref, op_tol("linear", true));
    });
  }
}

void check_embedding() {
  struct S {
    int64_t B, T, C, V;
  };
  for (S s : {S{1, 1, 1, 1}, S{2, 9, 37, 13}, S{3, 64, 130, 50}, S{4, 257, 64, 1000}}) {
    run_check("embedding forward+backward " + shape_str({{"B", s.B}, {"T", s.T}, {"C", s.C}, {"V", s.V}}), [&](Line& L) {
      Rng rng(g_seed + s.B * 1000 + s.T);
      const int64_t N = s.B * s.T;
      std::vector<int32_t> idx(N);
      for (auto& i : idx) i = rng.below(static_cast<int32_t>(s.V));
      const auto wte = rng.vec(s.V * s.C), wpe = rng.vec(s.T * s.C), dout = rng.vec(N * s.C);
      const auto dwte0 = rng.vec(s.V * s.C), dwpe0 = rng.vec(s.T * s.C);
      std::vector<float> out(N * s.C), dwte = dwte0, dwpe = dwpe0;
      crate::embedding_forward(out.data(), idx.data(), wte.data(), wpe.data(), s.B, s.T, s.C);
      crate::embedding_backward(dwte.data(), dwpe.data(), dout.data(), idx.data(), s.B, s.T, s.C);
      Dev gwte(wte), gwpe(wpe), gout(N * s.C), gdout(dout), gdwte(dwte0), gdwpe(dwpe0);
      crate::cuda::embedding_forward(gout.p, idx.data(), gwte.p, gwpe.p, s.B, s.T, s.C);
      crate::cuda::embedding_backward(gdwte.p, gdwpe.p, gdout.p, idx.data(), s.B, s.T, s.C);
      L.check("out", gout.get(), out, op_tol("embedding", false));
      L.check("dwte", gdwte.get(), dwte, op_tol("embedding", true));
      L.check("dwpe", gdwpe.get(), dwpe, op_tol("embedding", true));
    });
  }
}

void check_layernorm() {
  struct S {
    int64_t N, C;
    double offset;
    bool bias;
  };
  for (S s : {S{1, 3, 0, true}, S{17, 70, 1000, true}, S{5, 3, 1, false}, S{300, 768, 0, true}, S{1030, 129, 1000, false}}) {
    run_check("layernorm forward+backward " + shape_str({{"N", s.N}, {"C", s.C}, {"offset", static_cast<int64_t>(s.offset)}, {"bias", s.bias}}), [&](Line& L) {
      Rng rng(g_seed + s.N * 31 + s.C);
      const auto inp = rng.vec(s.N * s.C, 1, s.offset), w = rng.vec(s.C), b = rng.vec(s.C);
      const auto dout = rng.vec(s.N * s.C), dw0 = rng.vec(s.C), db0 = rng.vec(s.C);
      std::vector<float> out(s.N * s.C), mean(s.N), rstd(s.N), dinp(s.N * s.C), dw = dw0, db = db0;
      crate::layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), w.data(), s.bias ? b.data() : nullptr, s.N, s.C, 1e-5f);
      crate::layernorm_backward(dinp.data(), dw.data(), s.bias ? db.data() : nullptr, dout.data(), inp.data(), w.data(), mean.data(), rstd.data(), s.N, s.C);
      Dev ginp(inp), gw(w), gb(b), gout(s.N * s.C), gmean(s.N), grstd(s.N), gdout(dout), gdinp(s.N * s.C), gdw(dw0), gdb(db0);
      crate::cuda::layernorm_forward(gout.p, gmean.p, grstd.p, ginp.p, gw.p, s.bias ? gb.p : nullptr, s.N, s.C, 1e-5f);
      L.check("out", gout.get(), out, op_tol("layernorm", false));
      L.check("mean", gmean.get(), mean, op_tol("layernorm", false));
      L.check("rstd", grstd.get(), rstd, op_tol("layernorm", false));
      // backward on the CPU's saved statistics, so both see identical inputs
      Dev cmean(mean), crstd(rstd);
      crate::cuda::layernorm_backward(gdinp.p, gdw.p, s.bias ? gdb.p : nullptr, gdout.p, ginp.p, gw.p, cmean.p, crstd.p, s.N, s.C);
      L.check("dinp", gdinp.get(), dinp, op_tol("layernorm", true));
      L.check("dweight", gdw.get(), dw, op_tol("layernorm", true));
      if (s.bias) L.check("dbias", gdb.get(), db, op_tol("layernorm", true));
    });
  }
}

void check_linear() {
  struct S {
    int64_t N, C, OC;
    bool bias;
    double scale;
  };
  // odd sizes; 1x1; a 128-tile output (>= 96 tiles of 128); split-K weight gradients (long N)
  for (S s : {S{1, 1, 1, true, 1}, S{67, 71, 69, true, 100}, S{13, 5, 1, false, 1}, S{1300, 37, 1100, true, 1}, S{2500, 64, 48, true, 1},
              S{4100, 130, 129, false, 1}, S{256, 768, 768, true, 1}}) {
    run_check("linear forward+backward " + shape_str({{"N", s.N}, {"C", s.C}, {"OC", s.OC}, {"bias", s.bias}, {"scale", (int64_t)s.scale}}), [&](Line& L) {
      Rng rng(g_seed + s.N + s.C * 3 + s.OC * 7);
      const auto x = rng.vec(s.N * s.C, s.scale), W = rng.vec(s.OC * s.C), b = rng.vec(s.OC);
      const auto dout = rng.vec(s.N * s.OC), dW0 = rng.vec(s.OC * s.C), db0 = rng.vec(s.OC);
      std::vector<float> out(s.N * s.OC), dx(s.N * s.C), dW = dW0, db = db0;
      crate::linear_forward(out.data(), x.data(), W.data(), s.bias ? b.data() : nullptr, s.N, s.C, s.OC);
      crate::linear_backward(dx.data(), dW.data(), s.bias ? db.data() : nullptr, dout.data(), x.data(), W.data(), s.N, s.C, s.OC);
      Dev gx(x), gW(W), gb(b), gout(s.N * s.OC), gdout(dout), gdx(s.N * s.C), gdW(dW0), gdb(db0);
      crate::cuda::linear_forward(gout.p, gx.p, gW.p, s.bias ? gb.p : nullptr, s.N, s.C, s.OC);
      crate::cuda::linear_backward(gdx.p, gdW.p, s.bias ? gdb.p : nullptr, gdout.p, gx.p, gW.p, s.N, s.C, s.OC);
      L.check("out", gout.get(), out, op_tol("linear", false));
      L.check("dinp", gdx.get(), dx, op_tol("linear", true));
      L.check("dweight", gdW.get(), dW, op_tol("linear", true));
      if (s.bias) L.check("dbias", gdb.get(), db, op_tol("linear", true));
      // determinism: the same backward again from the same state, bitwise
      Dev gdW2(dW0), gdb2(db0), gdx2(s.N * s.C);
      crate::cuda::linear_backward(gdx2.p, gdW2.p, s.bias ? gdb2.p : nullptr, gdout.p, gx.p, gW.p, s.N, s.C, s.OC);
      L.expect("backward twice bitwise", gdW2.get() == gdW.get() && gdx2.get() == gdx.get() && (!s.bias || gdb2.get() == gdb.get()));
    });
  }
  // sgemm in all four layouts, with and without accumulation
  for (int layout = 0; layout < 4; ++layout) {
    const bool ta = layout & 1, tb = layout & 2;
    for (auto [M, N, K] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{1, 1, 1}, {33, 65, 17}, {300, 200, 1500}}) {
      run_check(std::string("sgemm ") + (ta ? "T" : "N") + (tb ? "T" : "N") + " " + shape_str({{"M", M}, {"N", N}, {"K", K}}),
                [&, M = M, N = N, K = K](Line& L) {
                  Rng rng(g_seed + M * 5 + N * 3 + K + layout);
                  const auto A = rng.vec(M * K), B = rng.vec(K * N), C0 = rng.vec(M * N);
                  for (bool acc : {false, true}) {
                    std::vector<float> C = C0;
                    crate::sgemm(ta, tb, M, N, K, 0.75f, A.data(), ta ? M : K, B.data(), tb ? K : N, acc, C.data(), N);
                    Dev gA(A), gB(B), gC(C0);
                    crate::cuda::sgemm(ta, tb, M, N, K, 0.75f, gA.p, ta ? M : K, gB.p, tb ? K : N, acc, gC.p, N);
                    L.check(acc ? "C(accumulate)" : "C", gC.get(), C, op_tol("linear", false));
                  }
                });
    }
  }
  // TF32 tensor cores: only behind the precision switch; ~1e-3 relative by construction
#ifdef CRATE_CUDA_EMULATION
  std::printf("SKIP  linear forward TF32: the CPU emulator has no tensor cores\n");
  if (false)
#endif
    run_check("linear forward TF32 (precision switch) (N=300 C=257 OC=190)", [&](Line& L) {
      Rng rng(g_seed + 99);
      const int64_t N = 300, C = 257, OC = 190;
      const auto x = rng.vec(N * C), W = rng.vec(OC * C), b = rng.vec(OC);
      std::vector<float> out(N * OC);
      crate::linear_forward(out.data(), x.data(), W.data(), b.data(), N, C, OC);
      Dev gx(x), gW(W), gb(b), gout(N * OC);
      crate::cuda::set_precision(crate::cuda::Precision::kTf32);
      try {
        crate::cuda::linear_forward(gout.p, gx.p, gW.p, gb.p, N, C, OC);
      } catch (...) {
        crate::cuda::set_precision(crate::cuda::Precision::kFp32);
        throw;
      }
      crate::cuda::set_precision(crate::cuda::Precision::kFp32);
      L.check("out (tf32, tol 1e-2)", gout.get(), out, {1e-2, 1e-2});
    });
}

void check_attention() {
  struct S {
    int64_t B, T, NH, p;
    double scale;
  };
  // head widths of every kernel variant (PD 32/64/128/256), T = 1, one head, several row blocks
  for (S s : {S{1, 1, 1, 1, 1}, S{2, 37, 3, 5, 0.3}, S{1, 130, 2, 32, 1}, S{2, 70, 1, 64, 4}, S{1, 300, 4, 64, 1}, S{1, 50, 2, 100, 1}, S{1, 40, 1, 200, 1},
              S{3, 17, 4, 19, 4}}) {
    const int64_t C = s.NH * s.p, n = s.B * s.T * C, ns = s.B * s.NH * s.T;
    const std::string shp = shape_str({{"B", s.B}, {"T", s.T}, {"NH", s.NH}, {"p", s.p}});
    for (bool mssa : {true, false}) {
      const std::string op = mssa ? "mssa" : "attention";
      run_check(op + " forward+backward " + shp, [&](Line& L) {
        Rng rng(g_seed + s.T * 17 + s.p * 3 + (mssa ? 1 : 2));
        const int64_t nin = mssa ? n : 3 * n;
        const auto in = rng.vec(nin, s.scale), dy = rng.vec(n);
        std::vector<float> y(n), saved(ns), din(nin);
        if (mssa) {
          crate::mssa_forward(y.data(), saved.data(), in.data(), s.B, s.T, C, s.NH);
          crate::mssa_backward(din.data(), dy.data(), in.data(), y.data(), saved.data(), s.B, s.T, C, s.NH);
        } else {
          crate::attention_forward(y.data(), saved.data(), in.data(), s.B, s.T, C, s.NH);
          crate::attention_backward(din.data(), dy.data(), in.data(), y.data(), saved.data(), s.B, s.T, C, s.NH);
        }
        Dev gin(in), gdy(dy), gy(n), gsaved(ns), gdin(nin);
        if (mssa)
          crate::cuda::mssa_forward(gy.p, gsaved.p, gin.p, s.B, s.T, C, s.NH);
        else
          crate::cuda::attention_forward(gy.p, gsaved.p, gin.p, s.B, s.T, C, s.NH);
        L.check("y", gy.get(), y, op_tol(op, false));
        L.check("saved(lse)", gsaved.get(), saved, op_tol(op, false));
        // backward from the CPU's forward state (same saved layout), then from the GPU's own
        Dev cy(y), csaved(saved);
        if (mssa)
          crate::cuda::mssa_backward(gdin.p, gdy.p, gin.p, cy.p, csaved.p, s.B, s.T, C, s.NH);
        else
          crate::cuda::attention_backward(gdin.p, gdy.p, gin.p, cy.p, csaved.p, s.B, s.T, C, s.NH);
        L.check(mssa ? "dv" : "dqkv", gdin.get(), din, op_tol(op, true));
        Dev gdin2(nin);
        if (mssa)
          crate::cuda::mssa_backward(gdin2.p, gdy.p, gin.p, gy.p, gsaved.p, s.B, s.T, C, s.NH);
        else
          crate::cuda::attention_backward(gdin2.p, gdy.p, gin.p, gy.p, gsaved.p, s.B, s.T, C, s.NH);
        L.check(mssa ? "dv(own state)" : "dqkv(own state)", gdin2.get(), din, op_tol(op, true));
        Dev gdin3(nin);
        if (mssa)
          crate::cuda::mssa_backward(gdin3.p, gdy.p, gin.p, gy.p, gsaved.p, s.B, s.T, C, s.NH);
        else
          crate::cuda::attention_backward(gdin3.p, gdy.p, gin.p, gy.p, gsaved.p, s.B, s.T, C, s.NH);
        L.expect("backward twice bitwise", gdin3.get() == gdin2.get());
      });
    }
  }
  // incremental decoding: one new row against rows 0..t of a cache; CRATE passes q = row t of k and k = v
  struct D {
    int64_t B, t, Tmax, NH, p;
  };
  for (D s : {D{1, 0, 1, 1, 1}, D{2, 36, 37, 3, 5}, D{1, 299, 300, 4, 64}, D{3, 700, 1024, 2, 256}, D{2, 5, 64, 12, 64}}) {
    const int64_t C = s.NH * s.p;
    run_check("attentionDecode forward " + shape_str({{"B", s.B}, {"t", s.t}, {"Tmax", s.Tmax}, {"NH", s.NH}, {"p", s.p}}), [&](Line& L) {
      Rng rng(g_seed + s.t * 7 + s.p);
      const auto q = rng.vec(s.B * C), k = rng.vec(s.B * s.Tmax * C), v = rng.vec(s.B * s.Tmax * C);
      std::vector<float> y(s.B * C), ya(C);
      crate::attention_decode(y.data(), q.data(), k.data(), v.data(), s.B, s.t, s.Tmax, C, s.NH);
      crate::attention_decode(ya.data(), k.data() + s.t * C, k.data(), k.data(), 1, s.t, s.Tmax, C, s.NH);
      Dev gq(q), gk(k), gv(v), gy(s.B * C), gya(C);
      crate::cuda::attention_decode(gy.p, gq.p, gk.p, gv.p, s.B, s.t, s.Tmax, C, s.NH);
      crate::cuda::attention_decode(gya.p, gk.p + s.t * C, gk.p, gk.p, 1, s.t, s.Tmax, C, s.NH);
      L.check("y", gy.get(), y, op_tol("attentionDecode", false));
      L.check("y(q = k = v)", gya.get(), ya, op_tol("attentionDecode", false));
      Dev gy2(s.B * C);
      crate::cuda::attention_decode(gy2.p, gq.p, gk.p, gv.p, s.B, s.t, s.Tmax, C, s.NH);
      L.expect("twice bitwise", gy2.get() == gy.get());
    });
  }
  run_check("attention rejects head width > 256 with an Error", [&](Line& L) {
    Dev v(300), y(300), st(1);
    bool threw = false;
    try {
      crate::cuda::mssa_forward(y.p, st.p, v.p, 1, 1, 300, 1);
    } catch (const crate::cuda::Error& e) {
      threw = std::strstr(e.what(), "mssa_forward") != nullptr;
    }
    L.expect("threw naming mssa_forward", threw);
  });
}

void check_ista() {
  struct S {
    int64_t N, C, factor, steps;
  };
  for (S s : {S{1, 1, 1, 1}, S{40, 37, 4, 2}, S{13, 5, 3, 3}, S{300, 64, 4, 2}, S{1100, 96, 4, 2}, S{7, 20, 1, 1}}) {
    const int64_t H = s.factor * s.C;
    run_check("ista forward+backward " + shape_str({{"N", s.N}, {"C", s.C}, {"H", H}, {"steps", s.steps}}), [&](Line& L) {
      Rng rng(g_seed + s.N * 13 + s.C * 5 + s.steps);
      const double eta = 0.1, lam = 0.1;
      const auto u = rng.vec(s.N * s.C), A = rng.vec(H * s.C, std::sqrt(2.0 / s.C));
      const auto dout = rng.vec(s.N * s.C), dA0 = rng.vec(H * s.C);
      std::vector<float> out(s.N * s.C), codes(s.steps * s.N * H), du(s.N * s.C), dA = dA0;
      crate::ista_forward(out.data(), codes.data(), u.data(), A.data(), s.N, s.C, H, eta, lam, s.steps);
      crate::ista_backward(du.data(), dA.data(), dout.data(), u.data(), A.data(), codes.data(), s.N, s.C, H, eta, lam, s.steps);
      Dev gu(u), gA(A), gout(s.N * s.C), gcodes(s.steps * s.N * H), gdout(dout), gdu(s.N * s.C), gdA(dA0);
      crate::cuda::ista_forward(gout.p, gcodes.p, gu.p, gA.p, s.N, s.C, H, eta, lam, s.steps);
      L.check("out", gout.get(), out, op_tol("ista", false));
      L.check("codes", gcodes.get(), codes, op_tol("ista", false));
      // backward on the CPU's codes, so both see the same ReLU masks
      Dev ccodes(codes);
      crate::cuda::ista_backward(gdu.p, gdA.p, gdout.p, gu.p, gA.p, ccodes.p, s.N, s.C, H, eta, lam, s.steps);
      L.check("du", gdu.get(), du, op_tol("ista", true));
      L.check("dA", gdA.get(), dA, op_tol("ista", true));
    });
  }
  run_check("ista entries exactly at the threshold are zero and pass no gradient", [&](Line& L) {
    // one atom e_0 and u_0 = lam: the first pre-activation eta*u_0 - eta*lam is exactly 0 (eta 0.5, lam 0.25)
    Dev u(std::vector<float>{0.25f, 1.0f, -2.0f}), A(std::vector<float>{1, 0, 0}), dout(std::vector<float>{1, 1, 1});
    Dev out(3), codes(1), du(3), dA(3);
    crate::cuda::ista_forward(out.p, codes.p, u.p, A.p, 1, 3, 1, 0.5, 0.25, 1);
    crate::cuda::ista_backward(du.p, dA.p, dout.p, u.p, A.p, codes.p, 1, 3, 1, 0.5, 0.25, 1);
    auto pz = [](const std::vector<float>& v) {
      for (float x : v)
        if (x != 0.0f || std::signbit(x)) return false;
      return true;
    };
    L.expect("codes == +0", pz(codes.get()));
    L.expect("out == +0", pz(out.get()));
    L.expect("du == +0", pz(du.get()));
    L.expect("dA == +0", pz(dA.get()));
  });
  for (auto [N, C] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {40, 37}, {500, 128}}) {
    run_check("istaComplete forward+backward " + shape_str({{"N", N}, {"C", C}}), [&, N = N, C = C](Line& L) {
      Rng rng(g_seed + N * 3 + C);
      const double eta = 0.1, lam = 0.1;
      const auto x = rng.vec(N * C), W = rng.vec(C * C, 1.0 / std::sqrt(static_cast<double>(C)));
      const auto dout = rng.vec(N * C), dW0 = rng.vec(C * C);
      std::vector<float> out(N * C), dx(N * C), dW = dW0;
      crate::ista_complete_forward(out.data(), x.data(), W.data(), N, C, eta, lam);
      crate::ista_complete_backward(dx.data(), dW.data(), dout.data(), x.data(), W.data(), out.data(), N, C, eta, lam);
      Dev gx(x), gW(W), gout(N * C), gdout(dout), gdx(N * C), gdW(dW0), cout(out);
      crate::cuda::ista_complete_forward(gout.p, gx.p, gW.p, N, C, eta, lam);
      L.check("out", gout.get(), out, op_tol("istaComplete", false));
      crate::cuda::ista_complete_backward(gdx.p, gdW.p, gdout.p, gx.p, gW.p, cout.p, N, C, eta, lam);
      L.check("dx", gdx.get(), dx, op_tol("istaComplete", true));
      L.check("dW", gdW.get(), dW, op_tol("istaComplete", true));
    });
  }
}

void check_loss_and_adamw() {
  struct S {
    int64_t N, V;
    double scale, gs;
  };
  for (S s : {S{1, 2, 1, 1}, S{33, 700, 30, 0.25}, S{8, 50304, 1, 1}, S{257, 1000, 3, 1}}) {
    run_check("crossEntropy forward+backward " + shape_str({{"N", s.N}, {"V", s.V}, {"scale", (int64_t)s.scale}}), [&](Line& L) {
      Rng rng(g_seed + s.N * 7 + s.V);
      std::vector<int32_t> tg(s.N);
      for (int64_t n = 0; n < s.N; ++n) tg[n] = (n > 0 && rng.uniform() < 0.2) ? -1 : rng.below(static_cast<int32_t>(s.V));
      const auto logits = rng.vec(s.N * s.V, s.scale);
      std::vector<float> d(s.N * s.V);
      const double ref = crate::cross_entropy_forward(d.data(), logits.data(), tg.data(), s.N, s.V, s.gs);
      Dev gl(logits), gd(s.N * s.V);
      const double got = crate::cuda::cross_entropy_forward(gd.p, gl.p, tg.data(), s.N, s.V, s.gs);
      L.check("loss", std::vector<double>{got}, std::vector<double>{ref}, op_tol("crossEntropy", false));
      L.check("dlogits", gd.get(), d, op_tol("crossEntropy", true));
      const double fwd_only = crate::cuda::cross_entropy_forward(nullptr, gl.p, tg.data(), s.N, s.V, 1.0);
      L.expect("forward-only loss bitwise equal", fwd_only == got);
    });
  }
  run_check("crossEntropy every target ignored gives NaN", [&](Line& L) {
    Dev gl(std::vector<float>{1, 2, 3});
    const int32_t tg[1] = {-1};
    L.expect("NaN", std::isnan(crate::cuda::cross_entropy_forward(nullptr, gl.p, tg, 1, 3, 1.0)));
  });
  for (int64_t n : {1, 500, 100003}) {
    for (double wd : {0.0, 0.1}) {
      run_check("adamw 3 steps " + shape_str({{"n", n}, {"wd", wd > 0}}), [&](Line& L) {
        Rng rng(g_seed + n + (wd > 0));
        const auto p0 = rng.vec(n), g = rng.vec(n, 1e-3), m0 = rng.vec(n, 1e-4);
        auto v0 = rng.vec(n, 1e-4);
        for (auto& x : v0) x = x * x;
        std::vector<float> p = p0, m = m0, v = v0;
        Dev gp(p0), gg(g), gm(m0), gv(v0);
        for (int64_t step = 1; step <= 3; ++step) {
          crate::adamw_update(p.data(), g.data(), m.data(), v.data(), n, 1e-3, 0.9, 0.95, 1e-8, wd, step);
          crate::cuda::adamw_update(gp.p, gg.p, gm.p, gv.p, n, 1e-3, 0.9, 0.95, 1e-8, wd, step);
        }
        L.check("param", gp.get(), p, op_tol("adamw", false));
        L.check("m", gm.get(), m, op_tol("adamw", false));
        L.check("v", gv.get(), v, op_tol("adamw", false));
      });
    }
  }
}

// Inputs on a grid (multiples of 1/4 and 1/8, small D) so that the encoder's sums are exact in float32
// on both twins: the top-k then sees identical values and keeps identical entries, ties included.
std::vector<float> grid_vec(Rng& rng, int64_t n, float step, int range) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = step * static_cast<float>(static_cast<int>(rng.below(2 * range + 1)) - range);
  return v;
}

void check_sae() {
  struct S {
    int64_t N, D, S, k;
  };
  for (S s : {S{1, 1, 1, 1}, S{7, 5, 13, 1}, S{33, 17, 40, 3}, S{20, 9, 31, 31}, S{64, 32, 96, 200}, S{300, 24, 200, 8}}) {
    run_check("sae encode/decode forward+backward " + shape_str({{"N", s.N}, {"D", s.D}, {"S", s.S}, {"k", s.k}}), [&](Line& L) {
      Rng rng(g_seed + s.N * 11 + s.S);
      const auto x = grid_vec(rng, s.N * s.D, 0.25f, 4), We = grid_vec(rng, s.D * s.S, 0.125f, 4);
      const auto be = grid_vec(rng, s.S, 0.125f, 2), bd = grid_vec(rng, s.D, 0.25f, 2);
      auto Wd = rng.vec(s.S * s.D);
      const auto dWe0 = rng.vec(s.D * s.S), dWd0 = rng.vec(s.S * s.D), dbe0 = rng.vec(s.S), dbd0 = rng.vec(s.D);
      std::vector<float> pre(s.N * s.S), h(s.N * s.S), xh(s.N * s.D), dx(s.N * s.D), dpre(s.N * s.S);
      std::vector<float> dWe = dWe0, dWd = dWd0, dbe = dbe0, dbd = dbd0;
      crate::sae_normalize_rows(Wd.data(), s.S, s.D);
      crate::sae_encode_forward(pre.data(), h.data(), x.data(), We.data(), be.data(), bd.data(), s.N, s.D, s.S, s.k);
      crate::sae_decode_forward(xh.data(), h.data(), Wd.data(), bd.data(), s.N, s.D, s.S);
      const double loss = crate::sae_mse_loss(dx.data(), xh.data(), x.data(), s.N, s.D, 1.0);
      crate::sae_decode_backward(dpre.data(), dWd.data(), dbd.data(), dx.data(), h.data(), Wd.data(), s.N, s.D, s.S, 1e-3);
      crate::sae_encode_backward(dWe.data(), dbe.data(), dbd.data(), dpre.data(), x.data(), We.data(), bd.data(), s.N, s.D, s.S);
      Dev gx(x), gWe(We), gbe(be), gbd(bd), gWd(Wd), gpre(s.N * s.S), gh(s.N * s.S), gxh(s.N * s.D);
      Dev gdx(s.N * s.D), gdpre(s.N * s.S), gdWe(dWe0), gdWd(dWd0), gdbe(dbe0), gdbd(dbd0);
      const Tol fw = op_tol("sae", false), bw = op_tol("sae", true);
      crate::cuda::sae_encode_forward(gpre.p, gh.p, gx.p, gWe.p, gbe.p, gbd.p, s.N, s.D, s.S, s.k);
      L.check("pre", gpre.get(), pre, fw);
      L.check("h", gh.get(), h, fw);
      // downstream from the CPU twin's h, so each operator is judged on its own
      Dev ch(h), cxh(xh), cdx(dx), cdpre(dpre);
      crate::cuda::sae_decode_forward(gxh.p, ch.p, gWd.p, gbd.p, s.N, s.D, s.S);
      L.check("xhat", gxh.get(), xh, fw);
      const double gl = crate::cuda::sae_mse_loss(gdx.p, cxh.p, gx.p, s.N, s.D, 1.0);
      L.check("loss", std::vector<double>{gl}, std::vector<double>{loss}, fw);
      L.check("dxhat", gdx.get(), dx, bw);
      crate::cuda::sae_decode_backward(gdpre.p, gdWd.p, gdbd.p, cdx.p, ch.p, gWd.p, s.N, s.D, s.S, 1e-3);
      L.check("dpre", gdpre.get(), dpre, bw);
      L.check("dW_dec", gdWd.get(), dWd, bw);
      crate::cuda::sae_encode_backward(gdWe.p, gdbe.p, gdbd.p, cdpre.p, gx.p, gWe.p, gbd.p, s.N, s.D, s.S);
      L.check("dW_enc", gdWe.get(), dWe, bw);
      L.check("db_enc", gdbe.get(), dbe, bw);
      L.check("db_dec", gdbd.get(), dbd, bw);
    });
  }
  for (auto [N, S, k] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{5, 9, 2}, {40, 300, 7}, {3, 64, 64}}) {
    run_check("sae topk with mask, project, normalize " + shape_str({{"N", N}, {"S", S}, {"k", k}}), [&, N = N, S = S, k = k](Line& L) {
      Rng rng(g_seed + N + S + k);
      const auto pre = grid_vec(rng, N * S, 0.5f, 3);  // many exact ties
      std::vector<float> mask(S);
      for (auto& m : mask) m = rng.uniform() < 0.6 ? 1.0f : 0.0f;
      std::vector<float> h(N * S), hm(N * S);
      crate::sae_topk(h.data(), pre.data(), nullptr, N, S, k);
      crate::sae_topk(hm.data(), pre.data(), mask.data(), N, S, k);
      Dev gp(pre), gm(mask), gh(N * S), ghm(N * S);
      crate::cuda::sae_topk(gh.p, gp.p, nullptr, N, S, k);
      crate::cuda::sae_topk(ghm.p, gp.p, gm.p, N, S, k);
      L.expect("topk bitwise", gh.get() == h);
      L.expect("masked topk bitwise", ghm.get() == hm);
      std::vector<float> cnt(S);
      const double l1 = crate::sae_fire_counts(cnt.data(), h.data(), N, S);
      Dev gcnt(S);
      const double gl1 = crate::cuda::sae_fire_counts(gcnt.p, gh.p, N, S);
      L.expect("fire counts exact", gcnt.get() == cnt);
      L.check("l1 sum", std::vector<double>{gl1}, std::vector<double>{l1}, op_tol("sae", false));
      const int64_t D = 19;
      const auto W0 = rng.vec(S * D), G0 = rng.vec(S * D);
      std::vector<float> W = W0, G = G0;
      crate::sae_decoder_project(G.data(), W.data(), S, D);
      crate::sae_normalize_rows(W.data(), S, D);
      Dev gW(W0), gG(G0);
      crate::cuda::sae_decoder_project(gG.p, gW.p, S, D);
      crate::cuda::sae_normalize_rows(gW.p, S, D);
      L.check("projected grad", gG.get(), G, op_tol("sae", true));
      L.check("normalized rows", gW.get(), W, op_tol("sae", false));
    });
  }
}

void check_errors() {
  run_check("out of memory is an Error naming the bytes", [&](Line& L) {
    bool ok = false;
    std::string msg;
    try {
      float* p = crate::cuda::device_alloc(int64_t(1) << 40, "alloc");  // 4 TiB
      crate::cuda::device_free(p);
    } catch (const crate::cuda::Error& e) {
      msg = e.what();
      ok = msg.find("bytes") != std::string::npos && msg.find("4398046511104") != std::string::npos;
    }
    L.expect("message: " + msg, ok);
    // the device still works afterwards
    Dev a(std::vector<float>{1, 2, 3});
    L.expect("usable after OOM", crate::cuda::sum_squares(a.p, 3) == 14.0);
  });
}

// ---- serving: logit rows (serve_rows.cu) ---------------------------------------------------------------

void check_serve_rows() {
  struct S {
    int64_t N, V, M, K;
  };
  // GPT-2's vocabulary, a cut text vocabulary (M < V), K past M (empty places), one row, K = 0
  for (S s : {S{1, 2, 2, 0}, S{7, 50304, 50257, 5}, S{33, 700, 690, 20}, S{3, 5, 3, 4}}) {
    run_check("logitsStats " + shape_str({{"N", s.N}, {"V", s.V}, {"M", s.M}, {"K", s.K}}), [&](Line& L) {
      Rng rng(g_seed + s.N * 13 + s.V);
      auto logits = rng.vec(s.N * s.V, 3.0);
      // exact ties (a quarter grid) so the order of equal values is checked
      for (auto& x : logits) x = std::round(x * 4.0f) / 4.0f;
      std::vector<int32_t> tg(s.N);
      for (int64_t n = 0; n < s.N; ++n) tg[n] = rng.below(static_cast<int32_t>(s.V));
      std::vector<float> st(s.N * 3), top(s.N * s.K * 2);
      crate::logits_stats(st.data(), top.data(), logits.data(), tg.data(), s.N, s.V, s.M, s.K);
      Dev gl(logits), gst(s.N * 3), gtop(s.N * s.K * 2 > 0 ? s.N * s.K * 2 : 1);
      crate::cuda::logits_stats(gst.p, gtop.p, gl.p, tg.data(), s.N, s.V, s.M, s.K);
      std::vector<double> lse, glse, tl, gtl;
      const auto gs = gst.get();
      for (int64_t n = 0; n < s.N; ++n) {
        lse.push_back(static_cast<double>(st[3 * n]) + st[3 * n + 1]);
        glse.push_back(static_cast<double>(gs[3 * n]) + gs[3 * n + 1]);
        tl.push_back(st[3 * n + 2]);
        gtl.push_back(gs[3 * n + 2]);
      }
      L.check("lse", glse, lse, op_tol("serveRows", false));
      L.expect("target logits bitwise equal", gtl == tl);
      if (s.K > 0) {
        auto gt = gtop.get();
        gt.resize(top.size());
        L.expect("top (id, logit) pairs bitwise equal", gt == top);
      }
    });
  }
  run_check("sampleLogits: the CPU twin's id for every u", [&](Line& L) {
    Rng rng(g_seed + 5);
    auto logits = rng.vec(1000, 2.0);
    for (auto& x : logits) x = std::round(x * 2.0f) / 2.0f;
    Dev gl(logits);
    bool same = true;
    for (double t : {0.0, 0.7, 1.3})
      for (int64_t k : {0, 1, 50})
        for (double p : {1.0, 0.9, 0.3})
          for (int i = 0; i < 10; ++i) {
            const double u = rng.uniform();
            same = same && crate::cuda::sample_logits(gl.p, 1000, 990, t, k, p, u) == crate::sample_logits(logits.data(), 1000, 990, t, k, p, u);
          }
    L.expect("same ids", same);
  });
}

// ---- the table's operators -----------------------------------------------------------------------------

/** Which check covers which rows of the table (a check covers a family's forward and backward). */
struct Coverage {
  std::vector<std::string> ops;
  void (*run)();
};

const std::vector<Coverage>& coverage() {
  static const std::vector<Coverage> c = {
      {{"fill", "copy", "add", "scale", "sum_squares", "all_finite", "relu_forward", "relu_backward"}, check_elementwise},
      {{"embedding_forward", "embedding_backward"}, check_embedding},
      {{"layernorm_forward", "layernorm_backward"}, check_layernorm},
      {{"linear_forward", "linear_backward"}, check_linear},
      {{"mssa_forward", "mssa_backward", "attention_forward", "attention_backward", "attention_decode"}, check_attention},
      {{"ista_forward", "ista_backward", "ista_complete_forward", "ista_complete_backward"}, check_ista},
      {{"cross_entropy_forward", "adamw_update"}, check_loss_and_adamw},
      {{"sae_topk", "sae_encode_forward", "sae_decode_forward", "sae_decode_backward", "sae_encode_backward", "sae_mse_loss", "sae_fire_counts",
        "sae_decoder_project", "sae_normalize_rows"},
       check_sae},
      {{"logits_stats", "sample_logits"}, check_serve_rows},
  };
  return c;
}

/** Runs, in table order, the check of every row that has a kernel; a row without a check fails. */
void check_table() {
  std::vector<bool> done(coverage().size(), false);
  for (const crate::optable::OpSpec& op : crate::optable::kOps) {
    if (!op.has_kernel) continue;  // a size the binding computes (attention_saved_size): nothing runs on the GPU
    bool found = false;
    for (size_t i = 0; i < coverage().size() && !found; ++i) {
      for (const std::string& name : coverage()[i].ops) {
        if (name != op.name) continue;
        found = true;
        if (!done[i]) coverage()[i].run();
        done[i] = true;
      }
    }
    if (!found) run_check(std::string("table row ") + op.name, [&](Line& L) { L.expect("has a conformance check (add one here)", false); });
  }
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--filter" && i + 1 < argc)
      g_filter = argv[++i];
    else if (a == "--seed" && i + 1 < argc)
      g_seed = std::strtoull(argv[++i], nullptr, 10);
    else {
      std::fprintf(stderr, "usage: %s [--filter SUBSTRING] [--seed N]\n", argv[0]);
      return 64;
    }
  }
  const crate::cuda::Availability& a = crate::cuda::cuda_available();
  if (!a.available) {
    std::printf("no CUDA device: %s\n", a.reason.c_str());
    return 2;
  }
  std::printf("device: %s (compute capability %d.%d, %d SMs, %.1f GiB), CUDA runtime %d, driver %d\n", a.device.c_str(), a.cc_major, a.cc_minor, a.sm_count,
              a.total_bytes / 1073741824.0, a.runtime_version, a.driver_version);
  check_table();
  check_errors();
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
