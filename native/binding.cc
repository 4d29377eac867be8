// Node-API binding: a thin layer that validates every argument, resolves buffer handles and calls
// the operator in ops.h. Nothing here computes.
//
// Buffers live on the native side: alloc(n) returns a numeric handle to a 64-byte aligned float32
// allocation; JS refers to (a view of) it with an object {handle, offset, length}. Every call checks,
// before touching memory: the argument count and types, that each handle is live, that each view
// lies inside its allocation, that each buffer has exactly the number of elements the sizes imply,
// that outputs do not overlap other arguments, that token ids and targets are in range. Failures
// throw a JavaScript Error (TypeError / RangeError where apt) that names the function and the
// argument, e.g. "linear_forward: weight has 100 elements, expected OC*C = 120". C++ exceptions
// never cross the boundary.
#include <napi.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "gemm.h"
#include "ops.h"
#include "threadpool.h"
#ifdef CRATE_WITH_CUDA  // CUDA hook (native/cuda/register.h): exports.cuda, built by npm run build:cuda
#include "cuda/register.h"
#endif

namespace {


// ---- errors ----------------------------------------------------------------------------------------

enum class ErrKind { kError, kType, kRange };

struct ArgError {
  ErrKind kind;
  std::string message;
};

[[noreturn]] void fail(ErrKind kind, const std::string& fn, const std::string& msg) {
  throw ArgError{kind, fn + ": " + msg};
}

std::string num_str(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}

// ---- buffer registry -------------------------------------------------------------------------------

struct Allocation {
  float* ptr;
  int64_t n;
};

std::mutex g_registry_mutex;
std::unordered_map<double, Allocation> g_registry;  // handle -> allocation (handles are never reused)
double g_next_handle = 1;

constexpr double kMaxIndex = 9007199254740991.0;  // 2^53 - 1

struct Buf {
  float* ptr = nullptr;
  int64_t length = 0;
  double handle = 0;
  int64_t offset = 0;
  const char* name = "";
  bool present = false;  // false for a null optional buffer
};

class Call {
 public:
  Call(const Napi::CallbackInfo& info, const char* fn) : info_(info), fn_(fn) {}

  void expect_args(size_t n) const {
    if (info_.Length() != n)
      fail(ErrKind::kType, fn_, "expected " + std::to_string(n) + " arguments, got " + std::to_string(info_.Length()));
  }

  // An integer size >= min.
  int64_t size(size_t i, const char* name, int64_t min) const {
    const Napi::Value v = info_[i];
    if (!v.IsNumber()) fail(ErrKind::kType, fn_, std::string(name) + " must be a number, got " + type_name(v));
    const double d = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || d != std::floor(d))
      fail(ErrKind::kRange, fn_, std::string(name) + " must be an integer, got " + num_str(d));
    if (d < static_cast<double>(min))
      fail(ErrKind::kRange, fn_, std::string(name) + " must be >= " + std::to_string(min) + ", got " + num_str(d));
    if (d > kMaxIndex) fail(ErrKind::kRange, fn_, std::string(name) + " is too large: " + num_str(d));
    return static_cast<int64_t>(d);
  }

  // A finite number (or any number when allow_nonfinite).
  double number(size_t i, const char* name, bool allow_nonfinite = false) const {
    const Napi::Value v = info_[i];
    if (!v.IsNumber()) fail(ErrKind::kType, fn_, std::string(name) + " must be a number, got " + type_name(v));
    const double d = v.As<Napi::Number>().DoubleValue();
    if (!allow_nonfinite && !std::isfinite(d))
      fail(ErrKind::kRange, fn_, std::string(name) + " must be a finite number, got " + num_str(d));
    return d;
  }

  bool boolean(size_t i, const char* name) const {
    const Napi::Value v = info_[i];
    if (!v.IsBoolean()) fail(ErrKind::kType, fn_, std::string(name) + " must be a boolean, got " + type_name(v));
    return v.As<Napi::Boolean>().Value();
  }

  std::string string(size_t i, const char* name) const {
    const Napi::Value v = info_[i];
    if (!v.IsString()) fail(ErrKind::kType, fn_, std::string(name) + " must be a string, got " + type_name(v));
    return v.As<Napi::String>().Utf8Value();
  }

  // A buffer view {handle, offset, length}; null/undefined allowed when optional.
  Buf buffer(size_t i, const char* name, bool optional = false) const {
    const Napi::Value v = info_[i];
    Buf b;
    b.name = name;
    if (optional && (v.IsNull() || v.IsUndefined())) return b;
    if (!v.IsObject() || v.IsArray() || v.IsTypedArray() || v.IsFunction())
      fail(ErrKind::kType, fn_,
           std::string(name) + " must be a native buffer {handle, offset, length}" + (optional ? " or null" : "") +
               ", got " + type_name(v));
    const Napi::Object o = v.As<Napi::Object>();
    const double handle = field(o, name, "handle");
    const double offset = field(o, name, "offset");
    const double length = field(o, name, "length");
    Allocation a{};
    {
      std::lock_guard<std::mutex> lock(g_registry_mutex);
      auto it = g_registry.find(handle);
      if (it == g_registry.end())
        fail(ErrKind::kError, fn_,
             std::string(name) + " refers to buffer " + num_str(handle) + ", which was freed or never allocated");
      a = it->second;
    }
    if (offset + length > static_cast<double>(a.n))
      fail(ErrKind::kRange, fn_,
           std::string(name) + " view [" + num_str(offset) + ", " + num_str(offset + length) +
               ") lies outside its buffer of " + std::to_string(a.n) + " elements");
    b.ptr = a.ptr + static_cast<int64_t>(offset);
    b.length = static_cast<int64_t>(length);
    b.handle = handle;
    b.offset = static_cast<int64_t>(offset);
    b.present = true;
    return b;
  }

  // An Int32Array (token ids, targets).
  Napi::Int32Array int32(size_t i, const char* name) const {
    const Napi::Value v = info_[i];
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      fail(ErrKind::kType, fn_, std::string(name) + " must be an Int32Array, got " + type_name(v));
    return v.As<Napi::Int32Array>();
  }

  // buf must hold exactly `expected` elements; `expr` spells the product, e.g. "OC*C".
  void expect_len(const Buf& b, double expected, const char* expr) const {
    if (!b.present) return;
    if (static_cast<double>(b.length) != expected)
      fail(ErrKind::kRange, fn_,
           std::string(b.name) + " has " + std::to_string(b.length) + " elements, expected " + expr + " = " +
               num_str(expected));
  }

  // Each output must be disjoint from every other listed buffer (or, where `same_ok`, either
  // disjoint or exactly the same view).
  void expect_disjoint(std::initializer_list<const Buf*> outputs, std::initializer_list<const Buf*> all,
                       bool same_ok = false) const {
    for (const Buf* o : outputs) {
      for (const Buf* b : all) {
        if (o == b || !o->present || !b->present || o->handle != b->handle) continue;
        if (o->length == 0 || b->length == 0) continue;
        const bool overlap = o->offset < b->offset + b->length && b->offset < o->offset + o->length;
        if (!overlap) continue;
        if (same_ok && o->offset == b->offset && o->length == b->length) continue;
        fail(ErrKind::kError, fn_,
             std::string(o->name) + " overlaps " + b->name + (same_ok ? " (only an exact alias is allowed)" : ""));
      }
    }
  }

  const char* fn() const { return fn_; }
  Napi::Env env() const { return info_.Env(); }

 private:
  double field(const Napi::Object& o, const char* name, const char* key) const {
    const Napi::Value f = o.Get(key);
    if (!f.IsNumber())
      fail(ErrKind::kType, fn_, std::string(name) + "." + key + " must be a number, got " + type_name(f));
    const double d = f.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || d != std::floor(d) || d < 0 || d > kMaxIndex)
      fail(ErrKind::kRange, fn_, std::string(name) + "." + key + " must be a non-negative integer, got " + num_str(d));
    return d;
  }

  static std::string type_name(const Napi::Value& v) {
    if (v.IsUndefined()) return "undefined";
    if (v.IsNull()) return "null";
    if (v.IsBoolean()) return "a boolean";
    if (v.IsNumber()) return "a number";
    if (v.IsString()) return "a string";
    if (v.IsBigInt()) return "a bigint";
    if (v.IsTypedArray()) {
      switch (v.As<Napi::TypedArray>().TypedArrayType()) {
        case napi_int8_array: return "an Int8Array";
        case napi_uint8_array: return "a Uint8Array";
        case napi_uint8_clamped_array: return "a Uint8ClampedArray";
        case napi_int16_array: return "an Int16Array";
        case napi_uint16_array: return "a Uint16Array";
        case napi_int32_array: return "an Int32Array";
        case napi_uint32_array: return "a Uint32Array";
        case napi_float32_array: return "a Float32Array";
        case napi_float64_array: return "a Float64Array";
        default: return "a typed array";
      }
    }
    if (v.IsArray()) return "an array";
    if (v.IsFunction()) return "a function";
    if (v.IsObject()) return "an object";
    return "a value of another type";
  }

  const Napi::CallbackInfo& info_;
  const char* fn_;
};

// Token ids in [lo, hi).
void check_ids(const Call& c, const Napi::Int32Array& a, const char* name, int64_t lo, int64_t hi) {
  const int32_t* p = a.Data();
  const size_t n = a.ElementLength();
  for (size_t i = 0; i < n; ++i) {
    if (p[i] < lo || p[i] >= hi)
      fail(ErrKind::kRange, c.fn(),
           std::string(name) + "[" + std::to_string(i) + "] = " + std::to_string(p[i]) + " is out of range [" +
               std::to_string(lo) + ", " + std::to_string(hi) + ")");
  }
}

void expect_count(const Call& c, const Napi::Int32Array& a, const char* name, double expected, const char* expr) {
  if (static_cast<double>(a.ElementLength()) != expected)
    fail(ErrKind::kRange, c.fn(),
         std::string(name) + " has " + std::to_string(a.ElementLength()) + " elements, expected " + expr + " = " +
             num_str(expected));
}

double d(int64_t v) { return static_cast<double>(v); }

// ---- memory ------------------------------------------------------------------------------------------

Napi::Value Alloc(const Napi::CallbackInfo& info) {
  Call c(info, "alloc");
  c.expect_args(1);
  const int64_t n = c.size(0, "n", 0);
  if (n > (int64_t(1) << 40)) fail(ErrKind::kRange, "alloc", "n = " + std::to_string(n) + " is too large");
  const size_t bytes = ((static_cast<size_t>(n) * sizeof(float) + 63) / 64) * 64;
  float* p = static_cast<float*>(std::aligned_alloc(64, bytes == 0 ? 64 : bytes));
  if (!p)
    fail(ErrKind::kError, "alloc", "cannot allocate " + std::to_string(n) + " float32 elements (out of memory)");
  crate::fill(p, n, 0.0f);
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  const double h = g_next_handle++;
  g_registry[h] = Allocation{p, n};
  return Napi::Number::New(info.Env(), h);
}

Napi::Value Free(const Napi::CallbackInfo& info) {
  Call c(info, "free");
  c.expect_args(1);
  const Napi::Value v = info[0];
  if (!v.IsNumber()) fail(ErrKind::kType, "free", "handle must be a number");
  const double h = v.As<Napi::Number>().DoubleValue();
  float* p = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_registry_mutex);
    auto it = g_registry.find(h);
    if (it == g_registry.end())
      fail(ErrKind::kError, "free", "buffer " + num_str(h) + " was already freed or never allocated");
    p = it->second.ptr;
    g_registry.erase(it);
  }
  std::free(p);
  return info.Env().Undefined();
}

Napi::Value LiveBuffers(const Napi::CallbackInfo& info) {
  Call c(info, "live_buffers");
  c.expect_args(0);
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  return Napi::Number::New(info.Env(), static_cast<double>(g_registry.size()));
}

Napi::Value Upload(const Napi::CallbackInfo& info) {
  Call c(info, "upload");
  c.expect_args(2);
  Buf dst = c.buffer(0, "dst");
  const Napi::Value v = info[1];
  if (!v.IsTypedArray()) fail(ErrKind::kType, "upload", "src must be a Float64Array or Float32Array");
  const auto type = v.As<Napi::TypedArray>().TypedArrayType();
  if (type == napi_float64_array) {
    auto a = v.As<Napi::Float64Array>();
    if (static_cast<int64_t>(a.ElementLength()) != dst.length)
      fail(ErrKind::kRange, "upload",
           "src has " + std::to_string(a.ElementLength()) + " elements, expected size(dst) = " +
               std::to_string(dst.length));
    const double* s = a.Data();
    for (int64_t i = 0; i < dst.length; ++i) dst.ptr[i] = static_cast<float>(s[i]);
  } else if (type == napi_float32_array) {
    auto a = v.As<Napi::Float32Array>();
    if (static_cast<int64_t>(a.ElementLength()) != dst.length)
      fail(ErrKind::kRange, "upload",
           "src has " + std::to_string(a.ElementLength()) + " elements, expected size(dst) = " +
               std::to_string(dst.length));
    std::memcpy(dst.ptr, a.Data(), static_cast<size_t>(dst.length) * sizeof(float));
  } else {
    fail(ErrKind::kType, "upload", "src must be a Float64Array or Float32Array");
  }
  return info.Env().Undefined();
}

Napi::Value Download(const Napi::CallbackInfo& info) {
  Call c(info, "download");
  c.expect_args(1);
  Buf src = c.buffer(0, "src");
  auto out = Napi::Float64Array::New(info.Env(), static_cast<size_t>(src.length));
  double* o = out.Data();
  for (int64_t i = 0; i < src.length; ++i) o[i] = src.ptr[i];
  return out;
}

Napi::Value DownloadF32(const Napi::CallbackInfo& info) {
  Call c(info, "download_f32");
  c.expect_args(1);
  Buf src = c.buffer(0, "src");
  auto out = Napi::Float32Array::New(info.Env(), static_cast<size_t>(src.length));
  std::memcpy(out.Data(), src.ptr, static_cast<size_t>(src.length) * sizeof(float));
  return out;
}

Napi::Value Fill(const Napi::CallbackInfo& info) {
  Call c(info, "fill");
  c.expect_args(2);
  Buf b = c.buffer(0, "buf");
  const double value = c.number(1, "value", /*allow_nonfinite=*/true);
  crate::fill(b.ptr, b.length, static_cast<float>(value));
  return info.Env().Undefined();
}

Napi::Value Copy(const Napi::CallbackInfo& info) {
  Call c(info, "copy");
  c.expect_args(2);
  Buf dst = c.buffer(0, "dst"), src = c.buffer(1, "src");
  c.expect_len(src, d(dst.length), "size(dst)");
  c.expect_disjoint({&dst}, {&src}, /*same_ok=*/true);
  crate::copy(dst.ptr, src.ptr, dst.length);
  return info.Env().Undefined();
}

// ---- elementwise -----------------------------------------------------------------------------------

Napi::Value Add(const Napi::CallbackInfo& info) {
  Call c(info, "add");
  c.expect_args(3);
  Buf out = c.buffer(0, "out"), a = c.buffer(1, "a"), b = c.buffer(2, "b");
  c.expect_len(a, d(out.length), "size(out)");
  c.expect_len(b, d(out.length), "size(out)");
  c.expect_disjoint({&out}, {&a, &b}, /*same_ok=*/true);
  crate::add(out.ptr, a.ptr, b.ptr, out.length);
  return info.Env().Undefined();
}

Napi::Value Scale(const Napi::CallbackInfo& info) {
  Call c(info, "scale");
  c.expect_args(2);
  Buf b = c.buffer(0, "buf");
  const double s = c.number(1, "s");
  crate::scale(b.ptr, b.length, static_cast<float>(s));
  return info.Env().Undefined();
}

Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  Call c(info, "sum_squares");
  c.expect_args(1);
  Buf b = c.buffer(0, "buf");
  return Napi::Number::New(info.Env(), crate::sum_squares(b.ptr, b.length));
}

Napi::Value AllFinite(const Napi::CallbackInfo& info) {
  Call c(info, "all_finite");
  c.expect_args(1);
  Buf b = c.buffer(0, "buf");
  return Napi::Boolean::New(info.Env(), crate::all_finite(b.ptr, b.length));
}

Napi::Value ReluForward(const Napi::CallbackInfo& info) {
  Call c(info, "relu_forward");
  c.expect_args(2);
  Buf out = c.buffer(0, "out"), inp = c.buffer(1, "inp");
  c.expect_len(inp, d(out.length), "size(out)");
  c.expect_disjoint({&out}, {&inp}, /*same_ok=*/true);
  crate::relu_forward(out.ptr, inp.ptr, out.length);
  return info.Env().Undefined();
}

Napi::Value ReluBackward(const Napi::CallbackInfo& info) {
  Call c(info, "relu_backward");
  c.expect_args(3);
  Buf dinp = c.buffer(0, "dinp"), dout = c.buffer(1, "dout"), out = c.buffer(2, "out");
  c.expect_len(dout, d(dinp.length), "size(dinp)");
  c.expect_len(out, d(dinp.length), "size(dinp)");
  c.expect_disjoint({&dinp}, {&dout, &out}, /*same_ok=*/true);
  crate::relu_backward(dinp.ptr, dout.ptr, out.ptr, dinp.length);
  return info.Env().Undefined();
}

// ---- embedding ---------------------------------------------------------------------------------------

Napi::Value EmbeddingForward(const Napi::CallbackInfo& info) {
  Call c(info, "embedding_forward");
  c.expect_args(7);
  Buf out = c.buffer(0, "out");
  Napi::Int32Array idx = c.int32(1, "idx");
  Buf wte = c.buffer(2, "wte"), wpe = c.buffer(3, "wpe");
  const int64_t B = c.size(4, "B", 0), T = c.size(5, "T", 0), C = c.size(6, "C", 1);
  c.expect_len(out, d(B) * d(T) * d(C), "B*T*C");
  expect_count(c, idx, "idx", d(B) * d(T), "B*T");
  if (wte.length % C != 0 || wte.length == 0)
    fail(ErrKind::kRange, c.fn(), "wte has " + std::to_string(wte.length) + " elements, expected V*C with V >= 1 (C = " +
                                      std::to_string(C) + ")");
  if (wpe.length % C != 0 || wpe.length / C < T)
    fail(ErrKind::kRange, c.fn(), "wpe has " + std::to_string(wpe.length) + " elements, expected maxT*C with maxT >= T = " +
                                      std::to_string(T) + " (C = " + std::to_string(C) + ")");
  check_ids(c, idx, "idx", 0, wte.length / C);
  c.expect_disjoint({&out}, {&wte, &wpe});
  crate::embedding_forward(out.ptr, idx.Data(), wte.ptr, wpe.ptr, B, T, C);
  return info.Env().Undefined();
}

Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  Call c(info, "embedding_backward");
  c.expect_args(7);
  Buf dwte = c.buffer(0, "dwte"), dwpe = c.buffer(1, "dwpe"), dout = c.buffer(2, "dout");
  Napi::Int32Array idx = c.int32(3, "idx");
  const int64_t B = c.size(4, "B", 0), T = c.size(5, "T", 0), C = c.size(6, "C", 1);
  c.expect_len(dout, d(B) * d(T) * d(C), "B*T*C");
  expect_count(c, idx, "idx", d(B) * d(T), "B*T");
  if (dwte.length % C != 0 || dwte.length == 0)
    fail(ErrKind::kRange, c.fn(), "dwte has " + std::to_string(dwte.length) +
                                      " elements, expected V*C with V >= 1 (C = " + std::to_string(C) + ")");
  if (dwpe.length % C != 0 || dwpe.length / C < T)
    fail(ErrKind::kRange, c.fn(), "dwpe has " + std::to_string(dwpe.length) +
                                      " elements, expected maxT*C with maxT >= T = " + std::to_string(T) +
                                      " (C = " + std::to_string(C) + ")");
  check_ids(c, idx, "idx", 0, dwte.length / C);
  c.expect_disjoint({&dwte, &dwpe}, {&dwte, &dwpe, &dout});
  crate::embedding_backward(dwte.ptr, dwpe.ptr, dout.ptr, idx.Data(), B, T, C);
  return info.Env().Undefined();
}

// ---- layernorm ---------------------------------------------------------------------------------------

Napi::Value LayernormForward(const Napi::CallbackInfo& info) {
  Call c(info, "layernorm_forward");
  c.expect_args(9);
  Buf out = c.buffer(0, "out"), mean = c.buffer(1, "mean"), rstd = c.buffer(2, "rstd"), inp = c.buffer(3, "inp");
  Buf weight = c.buffer(4, "weight"), bias = c.buffer(5, "bias", true);
  const int64_t N = c.size(6, "N", 0), C = c.size(7, "C", 1);
  const double eps = c.number(8, "eps");
  if (eps < 0) fail(ErrKind::kRange, c.fn(), "eps must be >= 0, got " + num_str(eps));
  c.expect_len(out, d(N) * d(C), "N*C");
  c.expect_len(mean, d(N), "N");
  c.expect_len(rstd, d(N), "N");
  c.expect_len(inp, d(N) * d(C), "N*C");
  c.expect_len(weight, d(C), "C");
  c.expect_len(bias, d(C), "C");
  c.expect_disjoint({&out, &mean, &rstd}, {&out, &mean, &rstd, &inp, &weight, &bias});
  crate::layernorm_forward(out.ptr, mean.ptr, rstd.ptr, inp.ptr, weight.ptr, bias.ptr, N, C, static_cast<float>(eps));
  return info.Env().Undefined();
}

Napi::Value LayernormBackward(const Napi::CallbackInfo& info) {
  Call c(info, "layernorm_backward");
  c.expect_args(10);
  Buf dinp = c.buffer(0, "dinp"), dweight = c.buffer(1, "dweight"), dbias = c.buffer(2, "dbias", true);
  Buf dout = c.buffer(3, "dout"), inp = c.buffer(4, "inp"), weight = c.buffer(5, "weight");
  Buf mean = c.buffer(6, "mean"), rstd = c.buffer(7, "rstd");
  const int64_t N = c.size(8, "N", 0), C = c.size(9, "C", 1);
  c.expect_len(dinp, d(N) * d(C), "N*C");
  c.expect_len(dweight, d(C), "C");
  c.expect_len(dbias, d(C), "C");
  c.expect_len(dout, d(N) * d(C), "N*C");
  c.expect_len(inp, d(N) * d(C), "N*C");
  c.expect_len(weight, d(C), "C");
  c.expect_len(mean, d(N), "N");
  c.expect_len(rstd, d(N), "N");
  c.expect_disjoint({&dinp, &dweight, &dbias}, {&dinp, &dweight, &dbias, &dout, &inp, &weight, &mean, &rstd});
  crate::layernorm_backward(dinp.ptr, dweight.ptr, dbias.ptr, dout.ptr, inp.ptr, weight.ptr, mean.ptr, rstd.ptr, N, C);
  return info.Env().Undefined();
}

// ---- linear ------------------------------------------------------------------------------------------

Napi::Value LinearForward(const Napi::CallbackInfo& info) {
  Call c(info, "linear_forward");
  c.expect_args(7);
  Buf out = c.buffer(0, "out"), inp = c.buffer(1, "inp"), weight = c.buffer(2, "weight");
  Buf bias = c.buffer(3, "bias", true);
  const int64_t N = c.size(4, "N", 0), C = c.size(5, "C", 1), OC = c.size(6, "OC", 1);
  c.expect_len(out, d(N) * d(OC), "N*OC");
  c.expect_len(inp, d(N) * d(C), "N*C");
  c.expect_len(weight, d(OC) * d(C), "OC*C");
  c.expect_len(bias, d(OC), "OC");
  c.expect_disjoint({&out}, {&inp, &weight, &bias});
  crate::linear_forward(out.ptr, inp.ptr, weight.ptr, bias.ptr, N, C, OC);
  return info.Env().Undefined();
}

Napi::Value LinearBackward(const Napi::CallbackInfo& info) {
  Call c(info, "linear_backward");
  c.expect_args(9);
  Buf dinp = c.buffer(0, "dinp", true), dweight = c.buffer(1, "dweight"), dbias = c.buffer(2, "dbias", true);
  Buf dout = c.buffer(3, "dout"), inp = c.buffer(4, "inp"), weight = c.buffer(5, "weight");
  const int64_t N = c.size(6, "N", 0), C = c.size(7, "C", 1), OC = c.size(8, "OC", 1);
  c.expect_len(dinp, d(N) * d(C), "N*C");
  c.expect_len(dweight, d(OC) * d(C), "OC*C");
  c.expect_len(dbias, d(OC), "OC");
  c.expect_len(dout, d(N) * d(OC), "N*OC");
  c.expect_len(inp, d(N) * d(C), "N*C");
  c.expect_len(weight, d(OC) * d(C), "OC*C");
  c.expect_disjoint({&dinp, &dweight, &dbias}, {&dinp, &dweight, &dbias, &dout, &inp, &weight});
  crate::linear_backward(dinp.ptr, dweight.ptr, dbias.ptr, dout.ptr, inp.ptr, weight.ptr, N, C, OC);
  return info.Env().Undefined();
}

Napi::Value Sgemm(const Napi::CallbackInfo& info) {
  Call c(info, "sgemm");
  c.expect_args(10);
  const bool ta = c.boolean(0, "transA"), tb = c.boolean(1, "transB");
  const int64_t M = c.size(2, "M", 0), N = c.size(3, "N", 0), K = c.size(4, "K", 0);
  const double alpha = c.number(5, "alpha");
  Buf A = c.buffer(6, "A"), B = c.buffer(7, "B");
  const bool acc = c.boolean(8, "accumulate");
  Buf C = c.buffer(9, "C");
  c.expect_len(A, d(M) * d(K), "M*K");
  c.expect_len(B, d(K) * d(N), "K*N");
  c.expect_len(C, d(M) * d(N), "M*N");
  c.expect_disjoint({&C}, {&A, &B});
  crate::sgemm(ta, tb, M, N, K, static_cast<float>(alpha), A.ptr, ta ? M : K, B.ptr, tb ? K : N, acc, C.ptr, N);
  return info.Env().Undefined();
}

// ---- attention ---------------------------------------------------------------------------------------

void check_heads(const Call& c, int64_t C, int64_t NH) {
  if (C % NH != 0)
    fail(ErrKind::kRange, c.fn(), "C = " + std::to_string(C) + " is not divisible by NH = " + std::to_string(NH));
}

Napi::Value AttentionSavedSize(const Napi::CallbackInfo& info) {
  Call c(info, "attention_saved_size");
  c.expect_args(3);
  const int64_t B = c.size(0, "B", 0), NH = c.size(1, "NH", 1), T = c.size(2, "T", 0);
  return Napi::Number::New(info.Env(), d(crate::attention_saved_size(B, NH, T)));
}

Napi::Value MssaForward(const Napi::CallbackInfo& info) {
  Call c(info, "mssa_forward");
  c.expect_args(7);
  Buf y = c.buffer(0, "y"), saved = c.buffer(1, "saved"), v = c.buffer(2, "v");
  const int64_t B = c.size(3, "B", 0), T = c.size(4, "T", 0), C = c.size(5, "C", 1), NH = c.size(6, "NH", 1);
  check_heads(c, C, NH);
  c.expect_len(y, d(B) * d(T) * d(C), "B*T*C");
  c.expect_len(saved, d(B) * d(NH) * d(T), "B*NH*T");
  c.expect_len(v, d(B) * d(T) * d(C), "B*T*C");
  c.expect_disjoint({&y, &saved}, {&y, &saved, &v});
  crate::mssa_forward(y.ptr, saved.ptr, v.ptr, B, T, C, NH);
  return info.Env().Undefined();
}

Napi::Value MssaBackward(const Napi::CallbackInfo& info) {
  Call c(info, "mssa_backward");
  c.expect_args(9);
  Buf dv = c.buffer(0, "dv"), dy = c.buffer(1, "dy"), v = c.buffer(2, "v"), y = c.buffer(3, "y");
  Buf saved = c.buffer(4, "saved");
  const int64_t B = c.size(5, "B", 0), T = c.size(6, "T", 0), C = c.size(7, "C", 1), NH = c.size(8, "NH", 1);
  check_heads(c, C, NH);
  c.expect_len(dv, d(B) * d(T) * d(C), "B*T*C");
  c.expect_len(dy, d(B) * d(T) * d(C), "B*T*C");
  c.expect_len(v, d(B) * d(T) * d(C), "B*T*C");
  c.expect_len(y, d(B) * d(T) * d(C), "B*T*C");
  c.expect_len(saved, d(B) * d(NH) * d(T), "B*NH*T");
  c.expect_disjoint({&dv}, {&dy, &v, &y, &saved});
  crate::mssa_backward(dv.ptr, dy.ptr, v.ptr, y.ptr, saved.ptr, B, T, C, NH);
  return info.Env().Undefined();
}

Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  Call c(info, "attention_forward");
  c.expect_args(7);
  Buf y = c.buffer(0, "y"), saved = c.buffer(1, "saved"), qkv = c.buffer(2, "qkv");
  const int64_t B = c.size(3, "B", 0), T = c.size(4, "T", 0), C = c.size(5, "C", 1), NH = c.size(6, "NH", 1);
  check_heads(c, C, NH);
  c.expect_len(y, d(B) * d(T) * d(C), "B*T*C");
  c.expect_len(saved, d(B) * d(NH) * d(T), "B*NH*T");
  c.expect_len(qkv, d(B) * d(T) * 3 * d(C), "B*T*3*C");
  c.expect_disjoint({&y, &saved}, {&y, &saved, &qkv});
  crate::attention_forward(y.ptr, saved.ptr, qkv.ptr, B, T, C, NH);
  return info.Env().Undefined();
}

Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  Call c(info, "attention_backward");
  c.expect_args(9);
  Buf dqkv = c.buffer(0, "dqkv"), dy = c.buffer(1, "dy"), qkv = c.buffer(2, "qkv"), y = c.buffer(3, "y");
  Buf saved = c.buffer(4, "saved");
  const int64_t B = c.size(5, "B", 0), T = c.size(6, "T", 0), C = c.size(7, "C", 1), NH = c.size(8, "NH", 1);
  check_heads(c, C, NH);
  c.expect_len(dqkv, d(B) * d(T) * 3 * d(C), "B*T*3*C");
  c.expect_len(dy, d(B) * d(T) * d(C), "B*T*C");
  c.expect_len(qkv, d(B) * d(T) * 3 * d(C), "B*T*3*C");
  c.expect_len(y, d(B) * d(T) * d(C), "B*T*C");
  c.expect_len(saved, d(B) * d(NH) * d(T), "B*NH*T");
  c.expect_disjoint({&dqkv}, {&dy, &qkv, &y, &saved});
  crate::attention_backward(dqkv.ptr, dy.ptr, qkv.ptr, y.ptr, saved.ptr, B, T, C, NH);
  return info.Env().Undefined();
}

// ---- ISTA --------------------------------------------------------------------------------------------

Napi::Value IstaForward(const Napi::CallbackInfo& info) {
  Call c(info, "ista_forward");
  c.expect_args(10);
  Buf out = c.buffer(0, "out"), codes = c.buffer(1, "codes"), u = c.buffer(2, "u"), A = c.buffer(3, "A");
  const int64_t N = c.size(4, "N", 0), C = c.size(5, "C", 1), H = c.size(6, "H", 1);
  const double eta = c.number(7, "eta"), lam = c.number(8, "lam");
  const int64_t steps = c.size(9, "steps", 1);
  c.expect_len(out, d(N) * d(C), "N*C");
  c.expect_len(codes, d(steps) * d(N) * d(H), "steps*N*H");
  c.expect_len(u, d(N) * d(C), "N*C");
  c.expect_len(A, d(H) * d(C), "H*C");
  c.expect_disjoint({&out, &codes}, {&out, &codes, &u, &A});
  crate::ista_forward(out.ptr, codes.ptr, u.ptr, A.ptr, N, C, H, eta, lam, steps);
  return info.Env().Undefined();
}

Napi::Value IstaBackward(const Napi::CallbackInfo& info) {
  Call c(info, "ista_backward");
  c.expect_args(12);
  Buf du = c.buffer(0, "du"), dA = c.buffer(1, "dA"), dout = c.buffer(2, "dout"), u = c.buffer(3, "u");
  Buf A = c.buffer(4, "A"), codes = c.buffer(5, "codes");
  const int64_t N = c.size(6, "N", 0), C = c.size(7, "C", 1), H = c.size(8, "H", 1);
  const double eta = c.number(9, "eta"), lam = c.number(10, "lam");
  const int64_t steps = c.size(11, "steps", 1);
  c.expect_len(du, d(N) * d(C), "N*C");
  c.expect_len(dA, d(H) * d(C), "H*C");
  c.expect_len(dout, d(N) * d(C), "N*C");
  c.expect_len(u, d(N) * d(C), "N*C");
  c.expect_len(A, d(H) * d(C), "H*C");
  c.expect_len(codes, d(steps) * d(N) * d(H), "steps*N*H");
  c.expect_disjoint({&du, &dA}, {&du, &dA, &dout, &u, &A, &codes});
  crate::ista_backward(du.ptr, dA.ptr, dout.ptr, u.ptr, A.ptr, codes.ptr, N, C, H, eta, lam, steps);
  return info.Env().Undefined();
}

Napi::Value IstaCompleteForward(const Napi::CallbackInfo& info) {
  Call c(info, "ista_complete_forward");
  c.expect_args(7);
  Buf out = c.buffer(0, "out"), x = c.buffer(1, "x"), W = c.buffer(2, "W");
  const int64_t N = c.size(3, "N", 0), C = c.size(4, "C", 1);
  const double eta = c.number(5, "eta"), lam = c.number(6, "lam");
  c.expect_len(out, d(N) * d(C), "N*C");
  c.expect_len(x, d(N) * d(C), "N*C");
  c.expect_len(W, d(C) * d(C), "C*C");
  c.expect_disjoint({&out}, {&x, &W});
  crate::ista_complete_forward(out.ptr, x.ptr, W.ptr, N, C, eta, lam);
  return info.Env().Undefined();
}

Napi::Value IstaCompleteBackward(const Napi::CallbackInfo& info) {
  Call c(info, "ista_complete_backward");
  c.expect_args(10);
  Buf dx = c.buffer(0, "dx"), dW = c.buffer(1, "dW"), dout = c.buffer(2, "dout"), x = c.buffer(3, "x");
  Buf W = c.buffer(4, "W"), out = c.buffer(5, "out");
  const int64_t N = c.size(6, "N", 0), C = c.size(7, "C", 1);
  const double eta = c.number(8, "eta"), lam = c.number(9, "lam");
  c.expect_len(dx, d(N) * d(C), "N*C");
  c.expect_len(dW, d(C) * d(C), "C*C");
  c.expect_len(dout, d(N) * d(C), "N*C");
  c.expect_len(x, d(N) * d(C), "N*C");
  c.expect_len(W, d(C) * d(C), "C*C");
  c.expect_len(out, d(N) * d(C), "N*C");
  c.expect_disjoint({&dx, &dW}, {&dx, &dW, &dout, &x, &W, &out});
  crate::ista_complete_backward(dx.ptr, dW.ptr, dout.ptr, x.ptr, W.ptr, out.ptr, N, C, eta, lam);
  return info.Env().Undefined();
}

// ---- loss --------------------------------------------------------------------------------------------

Napi::Value CrossEntropyForward(const Napi::CallbackInfo& info) {
  Call c(info, "cross_entropy_forward");
  c.expect_args(6);
  Buf dlogits = c.buffer(0, "dlogits", true), logits = c.buffer(1, "logits");
  Napi::Int32Array targets = c.int32(2, "targets");
  const int64_t N = c.size(3, "N", 0), V = c.size(4, "V", 1);
  const double gs = c.number(5, "gradScale");
  c.expect_len(dlogits, d(N) * d(V), "N*V");
  c.expect_len(logits, d(N) * d(V), "N*V");
  expect_count(c, targets, "targets", d(N), "N");
  check_ids(c, targets, "targets", -1, V);
  c.expect_disjoint({&dlogits}, {&logits});
  const double loss = crate::cross_entropy_forward(dlogits.ptr, logits.ptr, targets.Data(), N, V, gs);
  return Napi::Number::New(info.Env(), loss);
}

// ---- optimizer ---------------------------------------------------------------------------------------

Napi::Value AdamwUpdate(const Napi::CallbackInfo& info) {
  Call c(info, "adamw_update");
  c.expect_args(10);
  Buf param = c.buffer(0, "param"), grad = c.buffer(1, "grad"), m = c.buffer(2, "m"), v = c.buffer(3, "v");
  const double lr = c.number(4, "lr"), b1 = c.number(5, "beta1"), b2 = c.number(6, "beta2");
  const double eps = c.number(7, "eps"), wd = c.number(8, "weightDecay");
  const int64_t step = c.size(9, "step", 1);
  if (b1 < 0 || b1 >= 1) fail(ErrKind::kRange, c.fn(), "beta1 must be in [0, 1), got " + num_str(b1));
  if (b2 < 0 || b2 >= 1) fail(ErrKind::kRange, c.fn(), "beta2 must be in [0, 1), got " + num_str(b2));
  if (eps < 0) fail(ErrKind::kRange, c.fn(), "eps must be >= 0, got " + num_str(eps));
  c.expect_len(grad, d(param.length), "size(param)");
  c.expect_len(m, d(param.length), "size(param)");
  c.expect_len(v, d(param.length), "size(param)");
  c.expect_disjoint({&param, &m, &v}, {&param, &grad, &m, &v});
  crate::adamw_update(param.ptr, grad.ptr, m.ptr, v.ptr, param.length, lr, b1, b2, eps, wd, step);
  return info.Env().Undefined();
}

// ---- runtime -----------------------------------------------------------------------------------------

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  Call c(info, "set_threads");
  c.expect_args(1);
  const int64_t n = c.size(0, "n", 1);
  if (n > 256) fail(ErrKind::kRange, c.fn(), "n must be <= 256, got " + std::to_string(n));
  crate::pool_set_threads(static_cast<int>(n));
  return info.Env().Undefined();
}

Napi::Value Threads(const Napi::CallbackInfo& info) {
  Call c(info, "threads");
  c.expect_args(0);
  return Napi::Number::New(info.Env(), crate::pool_threads());
}

Napi::Value GemmKernel(const Napi::CallbackInfo& info) {
  Call c(info, "gemm_kernel");
  c.expect_args(0);
  return Napi::String::New(info.Env(), crate::sgemm_kernel());
}

Napi::Value SetGemmKernel(const Napi::CallbackInfo& info) {
  Call c(info, "set_gemm_kernel");
  c.expect_args(1);
  const std::string name = c.string(0, "name");
  return Napi::Boolean::New(info.Env(), crate::sgemm_set_kernel(name.c_str()));
}

Napi::Value FmaPeakGflops(const Napi::CallbackInfo& info) {
  Call c(info, "fma_peak_gflops");
  c.expect_args(1);
  const double seconds = c.number(0, "seconds");
  if (seconds <= 0 || seconds > 10) fail(ErrKind::kRange, c.fn(), "seconds must be in (0, 10], got " + num_str(seconds));
  return Napi::Number::New(info.Env(), crate::fma_peak_gflops(seconds));
}

// ---- registration ------------------------------------------------------------------------------------

using Impl = Napi::Value (*)(const Napi::CallbackInfo&);

// Runs an implementation and turns every C++ exception into a JavaScript one.
template <Impl F>
Napi::Value Guarded(const Napi::CallbackInfo& info) {
  const char* name = static_cast<const char*>(info.Data());
  Napi::Env env = info.Env();
  try {
    return F(info);
  } catch (const ArgError& e) {
    switch (e.kind) {
      case ErrKind::kType: throw Napi::TypeError::New(env, e.message);
      case ErrKind::kRange: throw Napi::RangeError::New(env, e.message);
      default: throw Napi::Error::New(env, e.message);
    }
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw Napi::Error::New(env, std::string(name) + ": out of memory");
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string(name) + ": " + e.what());
  } catch (...) {
    throw Napi::Error::New(env, std::string(name) + ": unknown native error");
  }
}

template <Impl F>
void Register(Napi::Env env, Napi::Object exports, const char* name) {
  exports.Set(name, Napi::Function::New(env, Guarded<F>, name, const_cast<char*>(name)));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Register<Alloc>(env, exports, "alloc");
  Register<Free>(env, exports, "free");
  Register<LiveBuffers>(env, exports, "live_buffers");
  Register<Upload>(env, exports, "upload");
  Register<Download>(env, exports, "download");
  Register<DownloadF32>(env, exports, "download_f32");
  Register<Fill>(env, exports, "fill");
  Register<Copy>(env, exports, "copy");
  Register<Add>(env, exports, "add");
  Register<Scale>(env, exports, "scale");
  Register<SumSquares>(env, exports, "sum_squares");
  Register<AllFinite>(env, exports, "all_finite");
  Register<ReluForward>(env, exports, "relu_forward");
  Register<ReluBackward>(env, exports, "relu_backward");
  Register<EmbeddingForward>(env, exports, "embedding_forward");
  Register<EmbeddingBackward>(env, exports, "embedding_backward");
  Register<LayernormForward>(env, exports, "layernorm_forward");
  Register<LayernormBackward>(env, exports, "layernorm_backward");
  Register<LinearForward>(env, exports, "linear_forward");
  Register<LinearBackward>(env, exports, "linear_backward");
  Register<Sgemm>(env, exports, "sgemm");
  Register<AttentionSavedSize>(env, exports, "attention_saved_size");
  Register<MssaForward>(env, exports, "mssa_forward");
  Register<MssaBackward>(env, exports, "mssa_backward");
  Register<AttentionForward>(env, exports, "attention_forward");
  Register<AttentionBackward>(env, exports, "attention_backward");
  Register<IstaForward>(env, exports, "ista_forward");
  Register<IstaBackward>(env, exports, "ista_backward");
  Register<IstaCompleteForward>(env, exports, "ista_complete_forward");
  Register<IstaCompleteBackward>(env, exports, "ista_complete_backward");
  Register<CrossEntropyForward>(env, exports, "cross_entropy_forward");
  Register<AdamwUpdate>(env, exports, "adamw_update");
  Register<SetThreads>(env, exports, "set_threads");
  Register<Threads>(env, exports, "threads");
  Register<GemmKernel>(env, exports, "gemm_kernel");
  Register<SetGemmKernel>(env, exports, "set_gemm_kernel");
  Register<FmaPeakGflops>(env, exports, "fma_peak_gflops");
#ifdef CRATE_WITH_CUDA  // CUDA hook: the CUDA twin's functions as exports.cuda (native/cuda/binding_cuda.cc)
  crate::cuda::Register(env, exports);
#endif
  return exports;
}

}  // namespace

NODE_API_MODULE(crate_native, Init)
