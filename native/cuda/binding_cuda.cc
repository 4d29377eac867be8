// Node-API glue of the CUDA twin: exports.cuda, a thin layer that validates every argument, resolves
// device-buffer handles and calls the operator in ops_cuda.h. Nothing here computes.
//
// Mirrors native/binding.cc: alloc(n) returns a numeric handle to a zero-filled device allocation of
// n float32; JS refers to (a view of) it with {handle, offset, length}. Every call checks, before any
// device memory is touched: argument count and types, live handles, views inside their allocation,
// exact element counts, no overlap between outputs and other arguments, token ids and targets in
// range. Argument errors throw TypeError / RangeError naming the function and the argument
// ("cuda.linear_forward: weight has 100 elements, expected OC*C = 120"); CUDA failures throw Error
// with the CUDA error ("cuda.linear_forward: CUDA error cudaErrorIllegalAddress (...)"); running out
// of device memory names the bytes asked for. C++ exceptions never cross the boundary.
//
// CUDA handles start at 2^40 so that a CUDA buffer handed to the CPU functions (or the reverse) is
// rejected as "never allocated" instead of silently naming another buffer.
#include <napi.h>

#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include "ops_cuda.h"
#include "register.h"

namespace crate {
namespace cuda {
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

// ---- device buffer registry --------------------------------------------------------------------------

struct Allocation {
  float* ptr;
  int64_t n;
};

std::mutex g_mutex;
std::map<double, Allocation> g_registry;       // handle -> allocation (handles are never reused)
constexpr double kFirstHandle = 1099511627776.0;  // 2^40
double g_next_handle = kFirstHandle;
constexpr double kMaxIndex = 9007199254740991.0;  // 2^53 - 1

struct Buf {
  float* ptr = nullptr;
  int64_t length = 0;
  double handle = 0;
  int64_t offset = 0;
  const char* name = "";
  bool present = false;
};

std::string type_name(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsBoolean()) return "a boolean";
  if (v.IsNumber()) return "a number";
  if (v.IsString()) return "a string";
  if (v.IsTypedArray()) {
    switch (v.As<Napi::TypedArray>().TypedArrayType()) {
      case napi_int32_array: return "an Int32Array";
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

class Call {
 public:
  Call(const Napi::CallbackInfo& info, const std::string& fn) : info_(info), fn_(fn) {}

  void expect_args(size_t n) const {
    if (info_.Length() != n)
      fail(ErrKind::kType, fn_, "expected " + std::to_string(n) + " arguments, got " + std::to_string(info_.Length()));
  }

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

  Buf buffer(size_t i, const char* name, bool optional = false) const {
    const Napi::Value v = info_[i];
    Buf b;
    b.name = name;
    if (optional && (v.IsNull() || v.IsUndefined())) return b;
    if (!v.IsObject() || v.IsArray() || v.IsTypedArray() || v.IsFunction())
      fail(ErrKind::kType, fn_,
           std::string(name) + " must be a CUDA buffer {handle, offset, length}" + (optional ? " or null" : "") +
               ", got " + type_name(v));
    const Napi::Object o = v.As<Napi::Object>();
    const double handle = field(o, name, "handle");
    const double offset = field(o, name, "offset");
    const double length = field(o, name, "length");
    Allocation a{};
    {
      std::lock_guard<std::mutex> lock(g_mutex);
      auto it = g_registry.find(handle);
      if (it == g_registry.end())
        fail(ErrKind::kError, fn_,
             std::string(name) + " refers to CUDA buffer " + num_str(handle) +
                 ", which was freed or never allocated (a buffer of another backend?)");
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

  Napi::Int32Array int32(size_t i, const char* name) const {
    const Napi::Value v = info_[i];
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      fail(ErrKind::kType, fn_, std::string(name) + " must be an Int32Array, got " + type_name(v));
    return v.As<Napi::Int32Array>();
  }

  void expect_len(const Buf& b, double expected, const char* expr) const {
    if (!b.present) return;
    if (static_cast<double>(b.length) != expected)
      fail(ErrKind::kRange, fn_,
           std::string(b.name) + " has " + std::to_string(b.length) + " elements, expected " + expr + " = " +
               num_str(expected));
  }

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

  void check_ids(const Napi::Int32Array& a, const char* name, int64_t lo, int64_t hi) const {
    const int32_t* p = a.Data();
    const size_t n = a.ElementLength();
    for (size_t i = 0; i < n; ++i) {
      if (p[i] < lo || p[i] >= hi)
        fail(ErrKind::kRange, fn_,
             std::string(name) + "[" + std::to_string(i) + "] = " + std::to_string(p[i]) + " is out of range [" +
                 std::to_string(lo) + ", " + std::to_string(hi) + ")");
    }
  }

  void expect_count(const Napi::Int32Array& a, const char* name, double expected, const char* expr) const {
    if (static_cast<double>(a.ElementLength()) != expected)
      fail(ErrKind::kRange, fn_,
           std::string(name) + " has " + std::to_string(a.ElementLength()) + " elements, expected " + expr + " = " +
               num_str(expected));
  }

  void check_heads(int64_t C, int64_t NH) const {
    if (C % NH != 0)
      fail(ErrKind::kRange, fn_, "C = " + std::to_string(C) + " is not divisible by NH = " + std::to_string(NH));
    if (C / NH > kMaxHeadWidth)
      fail(ErrKind::kRange, fn_,
           "head width C/NH = " + std::to_string(C / NH) + " exceeds the CUDA attention kernels' limit of " +
               std::to_string(kMaxHeadWidth));
  }

  const std::string& fn() const { return fn_; }

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

  const Napi::CallbackInfo& info_;
  std::string fn_;
};

double d(int64_t v) { return static_cast<double>(v); }

/** Operators need a working device; say why not (the JS side normally checks available() first). */
void require_device(const Call& c) {
  const Availability& a = cuda_available();
  if (!a.available) fail(ErrKind::kError, c.fn(), "no CUDA device: " + a.reason);
}

#define CRATE_FN(name) Call c(info, "cuda." name)

// ---- device, memory ----------------------------------------------------------------------------------

Napi::Value Available(const Napi::CallbackInfo& info) {
  CRATE_FN("available");
  c.expect_args(0);
  const Availability& a = cuda_available();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("available", a.available);
  o.Set("reason", a.reason);
  o.Set("device", a.device);
  o.Set("computeCapability", std::to_string(a.cc_major) + "." + std::to_string(a.cc_minor));
  o.Set("smCount", a.sm_count);
  o.Set("totalMemoryBytes", static_cast<double>(a.total_bytes));
  o.Set("runtimeVersion", a.runtime_version);
  o.Set("driverVersion", a.driver_version);
  return o;
}

Napi::Value Alloc(const Napi::CallbackInfo& info) {
  CRATE_FN("alloc");
  c.expect_args(1);
  const int64_t n = c.size(0, "n", 0);
  if (n > (int64_t(1) << 40)) fail(ErrKind::kRange, c.fn(), "n = " + std::to_string(n) + " is too large");
  require_device(c);
  float* p = device_alloc(n, "alloc");
  std::lock_guard<std::mutex> lock(g_mutex);
  const double h = g_next_handle++;
  g_registry[h] = Allocation{p, n};
  return Napi::Number::New(info.Env(), h);
}

Napi::Value Free(const Napi::CallbackInfo& info) {
  CRATE_FN("free");
  c.expect_args(1);
  const Napi::Value v = info[0];
  if (!v.IsNumber()) fail(ErrKind::kType, c.fn(), "handle must be a number");
  const double h = v.As<Napi::Number>().DoubleValue();
  float* p = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto it = g_registry.find(h);
    if (it == g_registry.end())
      fail(ErrKind::kError, c.fn(), "CUDA buffer " + num_str(h) + " was already freed or never allocated");
    p = it->second.ptr;
    g_registry.erase(it);
  }
  device_free(p);
  return info.Env().Undefined();
}

Napi::Value LiveBuffers(const Napi::CallbackInfo& info) {
  CRATE_FN("live_buffers");
  c.expect_args(0);
  std::lock_guard<std::mutex> lock(g_mutex);
  return Napi::Number::New(info.Env(), static_cast<double>(g_registry.size()));
}

Napi::Value Upload(const Napi::CallbackInfo& info) {
  CRATE_FN("upload");
  c.expect_args(2);
  Buf dst = c.buffer(0, "dst");
  const Napi::Value v = info[1];
  if (!v.IsTypedArray()) fail(ErrKind::kType, c.fn(), "src must be a Float64Array or Float32Array");
  const auto type = v.As<Napi::TypedArray>().TypedArrayType();
  if (type == napi_float64_array) {
    auto a = v.As<Napi::Float64Array>();
    if (static_cast<int64_t>(a.ElementLength()) != dst.length)
      fail(ErrKind::kRange, c.fn(),
           "src has " + std::to_string(a.ElementLength()) + " elements, expected size(dst) = " +
               std::to_string(dst.length));
    std::vector<float> tmp(static_cast<size_t>(dst.length));
    const double* s = a.Data();
    for (int64_t i = 0; i < dst.length; ++i) tmp[i] = static_cast<float>(s[i]);
    upload(dst.ptr, tmp.data(), dst.length, "upload");
  } else if (type == napi_float32_array) {
    auto a = v.As<Napi::Float32Array>();
    if (static_cast<int64_t>(a.ElementLength()) != dst.length)
      fail(ErrKind::kRange, c.fn(),
           "src has " + std::to_string(a.ElementLength()) + " elements, expected size(dst) = " +
               std::to_string(dst.length));
    upload(dst.ptr, a.Data(), dst.length, "upload");
  } else {
    fail(ErrKind::kType, c.fn(), "src must be a Float64Array or Float32Array");
  }
  return info.Env().Undefined();
}

Napi::Value Download(const Napi::CallbackInfo& info) {
  CRATE_FN("download");
  c.expect_args(1);
  Buf src = c.buffer(0, "src");
  std::vector<float> tmp(static_cast<size_t>(src.length));
  download(tmp.data(), src.ptr, src.length, "download");
  auto out = Napi::Float64Array::New(info.Env(), static_cast<size_t>(src.length));
  double* o = out.Data();
  for (int64_t i = 0; i < src.length; ++i) o[i] = tmp[i];
  return out;
}

Napi::Value DownloadF32(const Napi::CallbackInfo& info) {
  CRATE_FN("download_f32");
  c.expect_args(1);
  Buf src = c.buffer(0, "src");
  auto out = Napi::Float32Array::New(info.Env(), static_cast<size_t>(src.length));
  download(out.Data(), src.ptr, src.length, "download_f32");
  return out;
}

Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  CRATE_FN("synchronize");
  c.expect_args(0);
  require_device(c);
  synchronize("synchronize");
  return info.Env().Undefined();
}

Napi::Value MemoryInfo(const Napi::CallbackInfo& info) {
  CRATE_FN("memory_info");
  c.expect_args(0);
  require_device(c);
  size_t fr = 0, tot = 0;
  memory_info(&fr, &tot);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("freeBytes", static_cast<double>(fr));
  o.Set("totalBytes", static_cast<double>(tot));
  return o;
}

Napi::Value SetPrecision(const Napi::CallbackInfo& info) {
  CRATE_FN("set_precision");
  c.expect_args(1);
  const std::string p = c.string(0, "precision");
  if (p == "fp32") set_precision(Precision::kFp32);
  else if (p == "tf32") set_precision(Precision::kTf32);
  else fail(ErrKind::kRange, c.fn(), "precision must be 'fp32' or 'tf32', got '" + p + "'");
  return info.Env().Undefined();
}

Napi::Value GetPrecision(const Napi::CallbackInfo& info) {
  CRATE_FN("precision");
  c.expect_args(0);
  return Napi::String::New(info.Env(), precision() == Precision::kTf32 ? "tf32" : "fp32");
}

Napi::Value Fill(const Napi::CallbackInfo& info) {
  CRATE_FN("fill");
  c.expect_args(2);
  Buf b = c.buffer(0, "buf");
  const double value = c.number(1, "value", /*allow_nonfinite=*/true);
  fill(b.ptr, b.length, static_cast<float>(value));
  return info.Env().Undefined();
}

Napi::Value Copy(const Napi::CallbackInfo& info) {
  CRATE_FN("copy");
  c.expect_args(2);
  Buf dst = c.buffer(0, "dst"), src = c.buffer(1, "src");
  c.expect_len(src, d(dst.length), "size(dst)");
  c.expect_disjoint({&dst}, {&src}, /*same_ok=*/true);
  copy(dst.ptr, src.ptr, dst.length);
  return info.Env().Undefined();
}

// ---- elementwise -----------------------------------------------------------------------------------

Napi::Value Add(const Napi::CallbackInfo& info) {
  CRATE_FN("add");
  c.expect_args(3);
  Buf out = c.buffer(0, "out"), a = c.buffer(1, "a"), b = c.buffer(2, "b");
  c.expect_len(a, d(out.length), "size(out)");
  c.expect_len(b, d(out.length), "size(out)");
  c.expect_disjoint({&out}, {&a, &b}, /*same_ok=*/true);
  add(out.ptr, a.ptr, b.ptr, out.length);
  return info.Env().Undefined();
}

Napi::Value Scale(const Napi::CallbackInfo& info) {
  CRATE_FN("scale");
  c.expect_args(2);
  Buf b = c.buffer(0, "buf");
  const double s = c.number(1, "s");
  scale(b.ptr, b.length, static_cast<float>(s));
  return info.Env().Undefined();
}

Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  CRATE_FN("sum_squares");
  c.expect_args(1);
  Buf b = c.buffer(0, "buf");
  return Napi::Number::New(info.Env(), sum_squares(b.ptr, b.length));
}

Napi::Value AllFinite(const Napi::CallbackInfo& info) {
  CRATE_FN("all_finite");
  c.expect_args(1);
  Buf b = c.buffer(0, "buf");
  return Napi::Boolean::New(info.Env(), all_finite(b.ptr, b.length));
}

Napi::Value ReluForward(const Napi::CallbackInfo& info) {
  CRATE_FN("relu_forward");
  c.expect_args(2);
  Buf out = c.buffer(0, "out"), inp = c.buffer(1, "inp");
  c.expect_len(inp, d(out.length), "size(out)");
  c.expect_disjoint({&out}, {&inp}, /*same_ok=*/true);
  relu_forward(out.ptr, inp.ptr, out.length);
  return info.Env().Undefined();
}

Napi::Value ReluBackward(const Napi::CallbackInfo& info) {
  CRATE_FN("relu_backward");
  c.expect_args(3);
  Buf dinp = c.buffer(0, "dinp"), dout = c.buffer(1, "dout"), out = c.buffer(2, "out");
  c.expect_len(dout, d(dinp.length), "size(dinp)");
  c.expect_len(out, d(dinp.length), "size(dinp)");
  c.expect_disjoint({&dinp}, {&dout, &out}, /*same_ok=*/true);
  relu_backward(dinp.ptr, dout.ptr, out.ptr, dinp.length);
  return info.Env().Undefined();
}

// ---- embedding ---------------------------------------------------------------------------------------

void check_tables(const Call& c, const Buf& te, const Buf& pe, int64_t T, int64_t C) {
  if (te.length % C != 0 || te.length == 0)
    fail(ErrKind::kRange, c.fn(),
         std::string(te.name) + " has " + std::to_string(te.length) + " elements, expected V*C with V >= 1 (C = " +
             std::to_string(C) + ")");
  if (pe.length % C != 0 || pe.length / C < T)
    fail(ErrKind::kRange, c.fn(),
         std::string(pe.name) + " has " + std::to_string(pe.length) + " elements, expected maxT*C with maxT >= T = " +
             std::to_string(T) + " (C = " + std::to_string(C) + ")");
}

Napi::Value EmbeddingForward(const Napi::CallbackInfo& info) {
  CRATE_FN("embedding_forward");
  c.expect_args(7);
  Buf out = c.buffer(0, "out");
  Napi::Int32Array idx = c.int32(1, "idx");
  Buf wte = c.buffer(2, "wte"), wpe = c.buffer(3, "wpe");
  const int64_t B = c.size(4, "B", 0), T = c.size(5, "T", 0), C = c.size(6, "C", 1);
  c.expect_len(out, d(B) * d(T) * d(C), "B*T*C");
  c.expect_count(idx, "idx", d(B) * d(T), "B*T");
  check_tables(c, wte, wpe, T, C);
  c.check_ids(idx, "idx", 0, wte.length / C);
  c.expect_disjoint({&out}, {&wte, &wpe});
  embedding_forward(out.ptr, idx.Data(), wte.ptr, wpe.ptr, B, T, C);
  return info.Env().Undefined();
}

Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  CRATE_FN("embedding_backward");
  c.expect_args(7);
  Buf dwte = c.buffer(0, "dwte"), dwpe = c.buffer(1, "dwpe"), dout = c.buffer(2, "dout");
  Napi::Int32Array idx = c.int32(3, "idx");
  const int64_t B = c.size(4, "B", 0), T = c.size(5, "T", 0), C = c.size(6, "C", 1);
  c.expect_len(dout, d(B) * d(T) * d(C), "B*T*C");
  c.expect_count(idx, "idx", d(B) * d(T), "B*T");
  check_tables(c, dwte, dwpe, T, C);
  c.check_ids(idx, "idx", 0, dwte.length / C);
  c.expect_disjoint({&dwte, &dwpe}, {&dwte, &dwpe, &dout});
  embedding_backward(dwte.ptr, dwpe.ptr, dout.ptr, idx.Data(), B, T, C);
  return info.Env().Undefined();
}

// ---- layernorm ---------------------------------------------------------------------------------------

Napi::Value LayernormForward(const Napi::CallbackInfo& info) {
  CRATE_FN("layernorm_forward");
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
  layernorm_forward(out.ptr, mean.ptr, rstd.ptr, inp.ptr, weight.ptr, bias.ptr, N, C, static_cast<float>(eps));
  return info.Env().Undefined();
}

Napi::Value LayernormBackward(const Napi::CallbackInfo& info) {
  CRATE_FN("layernorm_backward");
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
  layernorm_backward(dinp.ptr, dweight.ptr, dbias.ptr, dout.ptr, inp.ptr, weight.ptr, mean.ptr, rstd.ptr, N, C);
  return info.Env().Undefined();
}

// ---- linear ------------------------------------------------------------------------------------------

Napi::Value LinearForward(const Napi::CallbackInfo& info) {
  CRATE_FN("linear_forward");
  c.expect_args(7);
  Buf out = c.buffer(0, "out"), inp = c.buffer(1, "inp"), weight = c.buffer(2, "weight");
  Buf bias = c.buffer(3, "bias", true);
  const int64_t N = c.size(4, "N", 0), C = c.size(5, "C", 1), OC = c.size(6, "OC", 1);
  c.expect_len(out, d(N) * d(OC), "N*OC");
  c.expect_len(inp, d(N) * d(C), "N*C");
  c.expect_len(weight, d(OC) * d(C), "OC*C");
  c.expect_len(bias, d(OC), "OC");
  c.expect_disjoint({&out}, {&inp, &weight, &bias});
  linear_forward(out.ptr, inp.ptr, weight.ptr, bias.ptr, N, C, OC);
  return info.Env().Undefined();
}

Napi::Value LinearBackward(const Napi::CallbackInfo& info) {
  CRATE_FN("linear_backward");
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
  linear_backward(dinp.ptr, dweight.ptr, dbias.ptr, dout.ptr, inp.ptr, weight.ptr, N, C, OC);
  return info.Env().Undefined();
}

Napi::Value Sgemm(const Napi::CallbackInfo& info) {
  CRATE_FN("sgemm");
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
  sgemm(ta, tb, M, N, K, static_cast<float>(alpha), A.ptr, ta ? M : K, B.ptr, tb ? K : N, acc, C.ptr, N);
  return info.Env().Undefined();
}

// ---- attention ---------------------------------------------------------------------------------------

Napi::Value AttentionSavedSize(const Napi::CallbackInfo& info) {
  CRATE_FN("attention_saved_size");
  c.expect_args(3);
  const int64_t B = c.size(0, "B", 0), NH = c.size(1, "NH", 1), T = c.size(2, "T", 0);
  return Napi::Number::New(info.Env(), d(attention_saved_size(B, NH, T)));
}

Napi::Value MssaForward(const Napi::CallbackInfo& info) {
  CRATE_FN("mssa_forward");
  c.expect_args(7);
  Buf y = c.buffer(0, "y"), saved = c.buffer(1, "saved"), v = c.buffer(2, "v");
  const int64_t B = c.size(3, "B", 0), T = c.size(4, "T", 0), C = c.size(5, "C", 1), NH = c.size(6, "NH", 1);
  c.check_heads(C, NH);
  c.expect_len(y, d(B) * d(T) * d(C), "B*T*C");
  c.expect_len(saved, d(B) * d(NH) * d(T), "B*NH*T");
  c.expect_len(v, d(B) * d(T) * d(C), "B*T*C");
  c.expect_disjoint({&y, &saved}, {&y, &saved, &v});
  mssa_forward(y.ptr, saved.ptr, v.ptr, B, T, C, NH);
  return info.Env().Undefined();
}

Napi::Value MssaBackward(const Napi::CallbackInfo& info) {
  CRATE_FN("mssa_backward");
  c.expect_args(9);
  Buf dv = c.buffer(0, "dv"), dy = c.buffer(1, "dy"), v = c.buffer(2, "v"), y = c.buffer(3, "y");
  Buf saved = c.buffer(4, "saved");
  const int64_t B = c.size(5, "B", 0), T = c.size(6, "T", 0), C = c.size(7, "C", 1), NH = c.size(8, "NH", 1);
  c.check_heads(C, NH);
  c.expect_len(dv, d(B) * d(T) * d(C), "B*T*C");
  c.expect_len(dy, d(B) * d(T) * d(C), "B*T*C");
  c.expect_len(v, d(B) * d(T) * d(C), "B*T*C");
  c.expect_len(y, d(B) * d(T) * d(C), "B*T*C");
  c.expect_len(saved, d(B) * d(NH) * d(T), "B*NH*T");
  c.expect_disjoint({&dv}, {&dy, &v, &y, &saved});
  mssa_backward(dv.ptr, dy.ptr, v.ptr, y.ptr, saved.ptr, B, T, C, NH);
  return info.Env().Undefined();
}

Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  CRATE_FN("attention_forward");
  c.expect_args(7);
  Buf y = c.buffer(0, "y"), saved = c.buffer(1, "saved"), qkv = c.buffer(2, "qkv");
  const int64_t B = c.size(3, "B", 0), T = c.size(4, "T", 0), C = c.size(5, "C", 1), NH = c.size(6, "NH", 1);
  c.check_heads(C, NH);
  c.expect_len(y, d(B) * d(T) * d(C), "B*T*C");
  c.expect_len(saved, d(B) * d(NH) * d(T), "B*NH*T");
  c.expect_len(qkv, d(B) * d(T) * 3 * d(C), "B*T*3*C");
  c.expect_disjoint({&y, &saved}, {&y, &saved, &qkv});
  attention_forward(y.ptr, saved.ptr, qkv.ptr, B, T, C, NH);
  return info.Env().Undefined();
}

Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  CRATE_FN("attention_backward");
  c.expect_args(9);
  Buf dqkv = c.buffer(0, "dqkv"), dy = c.buffer(1, "dy"), qkv = c.buffer(2, "qkv"), y = c.buffer(3, "y");
  Buf saved = c.buffer(4, "saved");
  const int64_t B = c.size(5, "B", 0), T = c.size(6, "T", 0), C = c.size(7, "C", 1), NH = c.size(8, "NH", 1);
  c.check_heads(C, NH);
  c.expect_len(dqkv, d(B) * d(T) * 3 * d(C), "B*T*3*C");
  c.expect_len(dy, d(B) * d(T) * d(C), "B*T*C");
  c.expect_len(qkv, d(B) * d(T) * 3 * d(C), "B*T*3*C");
  c.expect_len(y, d(B) * d(T) * d(C), "B*T*C");
  c.expect_len(saved, d(B) * d(NH) * d(T), "B*NH*T");
  c.expect_disjoint({&dqkv}, {&dy, &qkv, &y, &saved});
  attention_backward(dqkv.ptr, dy.ptr, qkv.ptr, y.ptr, saved.ptr, B, T, C, NH);
  return info.Env().Undefined();
}

// ---- ISTA --------------------------------------------------------------------------------------------

Napi::Value IstaForward(const Napi::CallbackInfo& info) {
  CRATE_FN("ista_forward");
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
  ista_forward(out.ptr, codes.ptr, u.ptr, A.ptr, N, C, H, eta, lam, steps);
  return info.Env().Undefined();
}

Napi::Value IstaBackward(const Napi::CallbackInfo& info) {
  CRATE_FN("ista_backward");
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
  ista_backward(du.ptr, dA.ptr, dout.ptr, u.ptr, A.ptr, codes.ptr, N, C, H, eta, lam, steps);
  return info.Env().Undefined();
}

Napi::Value IstaCompleteForward(const Napi::CallbackInfo& info) {
  CRATE_FN("ista_complete_forward");
  c.expect_args(7);
  Buf out = c.buffer(0, "out"), x = c.buffer(1, "x"), W = c.buffer(2, "W");
  const int64_t N = c.size(3, "N", 0), C = c.size(4, "C", 1);
  const double eta = c.number(5, "eta"), lam = c.number(6, "lam");
  c.expect_len(out, d(N) * d(C), "N*C");
  c.expect_len(x, d(N) * d(C), "N*C");
  c.expect_len(W, d(C) * d(C), "C*C");
  c.expect_disjoint({&out}, {&x, &W});
  ista_complete_forward(out.ptr, x.ptr, W.ptr, N, C, eta, lam);
  return info.Env().Undefined();
}

Napi::Value IstaCompleteBackward(const Napi::CallbackInfo& info) {
  CRATE_FN("ista_complete_backward");
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
  ista_complete_backward(dx.ptr, dW.ptr, dout.ptr, x.ptr, W.ptr, out.ptr, N, C, eta, lam);
  return info.Env().Undefined();
}

// ---- loss --------------------------------------------------------------------------------------------

Napi::Value CrossEntropyForward(const Napi::CallbackInfo& info) {
  CRATE_FN("cross_entropy_forward");
  c.expect_args(6);
  Buf dlogits = c.buffer(0, "dlogits", true), logits = c.buffer(1, "logits");
  Napi::Int32Array targets = c.int32(2, "targets");
  const int64_t N = c.size(3, "N", 0), V = c.size(4, "V", 1);
  const double gs = c.number(5, "gradScale");
  c.expect_len(dlogits, d(N) * d(V), "N*V");
  c.expect_len(logits, d(N) * d(V), "N*V");
  c.expect_count(targets, "targets", d(N), "N");
  c.check_ids(targets, "targets", -1, V);
  c.expect_disjoint({&dlogits}, {&logits});
  const double loss = cross_entropy_forward(dlogits.ptr, logits.ptr, targets.Data(), N, V, gs);
  return Napi::Number::New(info.Env(), loss);
}

// ---- optimizer ---------------------------------------------------------------------------------------

Napi::Value AdamwUpdate(const Napi::CallbackInfo& info) {
  CRATE_FN("adamw_update");
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
  adamw_update(param.ptr, grad.ptr, m.ptr, v.ptr, param.length, lr, b1, b2, eps, wd, step);
  return info.Env().Undefined();
}

// ---- registration ------------------------------------------------------------------------------------

using Impl = Napi::Value (*)(const Napi::CallbackInfo&);

/** "cuda.<name>: " + what, unless what already starts with "<name>:" (then just the "cuda." prefix). */
std::string error_text(const std::string& name, const std::string& what) {
  if (what.compare(0, name.size() + 1, name + ":") == 0) return "cuda." + what;
  return "cuda." + name + ": " + what;
}

// One CUDA call at a time: the operators share device workspaces (several JS threads may load the addon).
std::mutex g_op_mutex;

template <Impl F>
Napi::Value Guarded(const Napi::CallbackInfo& info) {
  const std::string name = static_cast<const char*>(info.Data());
  Napi::Env env = info.Env();
  try {
    std::lock_guard<std::mutex> lock(g_op_mutex);
    return F(info);
  } catch (const ArgError& e) {
    switch (e.kind) {
      case ErrKind::kType: throw Napi::TypeError::New(env, e.message);
      case ErrKind::kRange: throw Napi::RangeError::New(env, e.message);
      default: throw Napi::Error::New(env, e.message);
    }
  } catch (const Napi::Error&) {
    throw;
  } catch (const Error& e) {  // a CUDA failure, named by the operator
    throw Napi::Error::New(env, error_text(name, e.what()));
  } catch (const std::bad_alloc&) {
    throw Napi::Error::New(env, "cuda." + name + ": out of host memory");
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, error_text(name, e.what()));
  } catch (...) {
    throw Napi::Error::New(env, "cuda." + name + ": unknown native error");
  }
}

template <Impl F>
void Reg(Napi::Env env, Napi::Object obj, const char* name) {
  obj.Set(name, Napi::Function::New(env, Guarded<F>, name, const_cast<char*>(name)));
}

}  // namespace

void Register(Napi::Env env, Napi::Object exports) {
  Napi::Object o = Napi::Object::New(env);
  Reg<Available>(env, o, "available");
  Reg<Alloc>(env, o, "alloc");
  Reg<Free>(env, o, "free");
  Reg<LiveBuffers>(env, o, "live_buffers");
  Reg<Upload>(env, o, "upload");
  Reg<Download>(env, o, "download");
  Reg<DownloadF32>(env, o, "download_f32");
  Reg<Synchronize>(env, o, "synchronize");
  Reg<MemoryInfo>(env, o, "memory_info");
  Reg<SetPrecision>(env, o, "set_precision");
  Reg<GetPrecision>(env, o, "precision");
  Reg<Fill>(env, o, "fill");
  Reg<Copy>(env, o, "copy");
  Reg<Add>(env, o, "add");
  Reg<Scale>(env, o, "scale");
  Reg<SumSquares>(env, o, "sum_squares");
  Reg<AllFinite>(env, o, "all_finite");
  Reg<ReluForward>(env, o, "relu_forward");
  Reg<ReluBackward>(env, o, "relu_backward");
  Reg<EmbeddingForward>(env, o, "embedding_forward");
  Reg<EmbeddingBackward>(env, o, "embedding_backward");
  Reg<LayernormForward>(env, o, "layernorm_forward");
  Reg<LayernormBackward>(env, o, "layernorm_backward");
  Reg<LinearForward>(env, o, "linear_forward");
  Reg<LinearBackward>(env, o, "linear_backward");
  Reg<Sgemm>(env, o, "sgemm");
  Reg<AttentionSavedSize>(env, o, "attention_saved_size");
  Reg<MssaForward>(env, o, "mssa_forward");
  Reg<MssaBackward>(env, o, "mssa_backward");
  Reg<AttentionForward>(env, o, "attention_forward");
  Reg<AttentionBackward>(env, o, "attention_backward");
  Reg<IstaForward>(env, o, "ista_forward");
  Reg<IstaBackward>(env, o, "ista_backward");
  Reg<IstaCompleteForward>(env, o, "ista_complete_forward");
  Reg<IstaCompleteBackward>(env, o, "ista_complete_backward");
  Reg<CrossEntropyForward>(env, o, "cross_entropy_forward");
  Reg<AdamwUpdate>(env, o, "adamw_update");
  exports.Set("cuda", o);
}

}  // namespace cuda
}  // namespace crate
