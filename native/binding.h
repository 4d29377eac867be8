// The Node-API binding, written once for both twins: native/binding.cc instantiates it for the CPU
// operators (namespace crate, host memory), native/cuda/binding_cuda.cc for the CUDA operators
// (namespace crate::cuda, device memory). A Traits class supplies the difference: the kernel calls
// (native/generated/ops_invoke.inc included under a namespace alias), the memory functions, the
// message prefix ("cuda.") and the locking. Nothing here computes.
//
// Buffers live on the native side: alloc(n) returns a numeric handle to a zero-filled float32
// allocation; JavaScript refers to (a view of) it with an object {handle, offset, length}. Every
// operator of the table (native/ops.json -> native/generated/ops_table.h) goes through op_call:
//   1. read: every field of every argument becomes a plain value (numbers; the handle, offset and
//      length of each buffer; the Int32Array object of each id list). Only here may JavaScript run
//      (a getter, a proxy): nothing has been looked up yet, so a getter that frees or detaches
//      something cannot leave us holding a stale pointer.
//   2. validate, with no JavaScript running any more: integer ranges, the table's checks, every
//      buffer's element count against its size expression (int64, overflow-checked, at most 2^40
//      elements), the ids' count and range (read from the typed array only now);
//   3. resolve: each handle must be live and each view inside its allocation;
//   4. outputs must not overlap other buffers (except exact aliases where the table allows them);
//   5. call the kernel.
// Failures throw a JavaScript TypeError / RangeError / Error that names the function and the argument,
// e.g. "linear_forward: weight has 100 elements, expected OC*C = 120". C++ exceptions never cross
// the boundary.
#pragma once

#include <napi.h>

#include <cmath>
#include <cstring>
#include <mutex>
#include <new>
#include <sstream>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "generated/ops_table.h"

namespace crate {
namespace binding {

using optable::Arg;
using optable::ArgKind;
using optable::Expr;
using optable::FloatRule;
using optable::kMaxElements;
using optable::OpSpec;

// ---- errors ----------------------------------------------------------------------------------------

enum class ErrKind { kError, kType, kRange };

struct ArgError {
  ErrKind kind;
  std::string message;
};

[[noreturn]] inline void fail(ErrKind kind, const std::string& fn, const std::string& msg) { throw ArgError{kind, fn + ": " + msg}; }

inline std::string num_str(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}

inline std::string type_name(const Napi::Value& v) {
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

constexpr double kMaxIndex = 9007199254740991.0;  // 2^53 - 1: the largest exact integer of a double

// ---- step 1: reading arguments into plain values ----------------------------------------------------

/** A buffer argument as read from JavaScript: plain numbers, nothing looked up yet. */
struct RawBuf {
  bool present = false;  // false for a null optional buffer
  double handle = 0;
  int64_t offset = 0, length = 0;
};

/** Reads one call's arguments; each reader checks the JavaScript type and range of one value. */
class Reader {
 public:
  Reader(const Napi::CallbackInfo& info, std::string fn) : info_(info), fn_(std::move(fn)) {}

  void expect_count(size_t n) const {
    if (info_.Length() != n) fail(ErrKind::kType, fn_, "expected " + std::to_string(n) + " arguments, got " + std::to_string(info_.Length()));
  }

  /** An integer in [lo, hi]. */
  int64_t size(size_t i, const char* name, int64_t lo, int64_t hi) const {
    const Napi::Value v = info_[i];
    if (!v.IsNumber()) fail(ErrKind::kType, fn_, std::string(name) + " must be a number, got " + type_name(v));
    const double d = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || d != std::floor(d)) fail(ErrKind::kRange, fn_, std::string(name) + " must be an integer, got " + num_str(d));
    if (d < static_cast<double>(lo)) fail(ErrKind::kRange, fn_, std::string(name) + " must be >= " + std::to_string(lo) + ", got " + num_str(d));
    if (d > static_cast<double>(hi))
      fail(ErrKind::kRange, fn_, std::string(name) + " must be <= " + std::to_string(hi) + (hi == kMaxElements ? " (2^40)" : "") + ", got " + num_str(d));
    return static_cast<int64_t>(d);
  }

  double number(size_t i, const char* name, FloatRule rule) const {
    const Napi::Value v = info_[i];
    if (!v.IsNumber()) fail(ErrKind::kType, fn_, std::string(name) + " must be a number, got " + type_name(v));
    const double d = v.As<Napi::Number>().DoubleValue();
    if (rule == FloatRule::kAny) return d;
    if (!std::isfinite(d)) fail(ErrKind::kRange, fn_, std::string(name) + " must be a finite number, got " + num_str(d));
    if (rule == FloatRule::kNonNegative && d < 0) fail(ErrKind::kRange, fn_, std::string(name) + " must be >= 0, got " + num_str(d));
    if (rule == FloatRule::kUnitInterval && (d < 0 || d >= 1)) fail(ErrKind::kRange, fn_, std::string(name) + " must be in [0, 1), got " + num_str(d));
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

  /** {handle, offset, length} read into numbers (the only place where a getter or proxy can run). */
  RawBuf buffer(size_t i, const char* name, bool optional, const char* noun) const {
    const Napi::Value v = info_[i];
    RawBuf b;
    if (optional && (v.IsNull() || v.IsUndefined())) return b;
    if (!v.IsObject() || v.IsArray() || v.IsTypedArray() || v.IsFunction())
      fail(ErrKind::kType, fn_,
           std::string(name) + " must be a " + noun + " {handle, offset, length}" + (optional ? " or null" : "") + ", got " + type_name(v));
    const Napi::Object o = v.As<Napi::Object>();
    b.handle = field(o, name, "handle");
    b.offset = static_cast<int64_t>(field(o, name, "offset"));
    b.length = static_cast<int64_t>(field(o, name, "length"));
    b.present = true;
    return b;
  }

  /**
   * An Int32Array, returned as the plain value: its length and data are read later (a Napi::Int32Array
   * caches both when it is made, and a getter of a later argument may detach the array's buffer).
   */
  Napi::Value int32(size_t i, const char* name) const {
    const Napi::Value v = info_[i];
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      fail(ErrKind::kType, fn_, std::string(name) + " must be an Int32Array, got " + type_name(v));
    return v;
  }

  /** A Float64Array or Float32Array, returned as the plain value (read later, as int32). */
  Napi::Value floats(size_t i, const char* name) const {
    const Napi::Value v = info_[i];
    if (v.IsTypedArray()) {
      const auto t = v.As<Napi::TypedArray>().TypedArrayType();
      if (t == napi_float64_array || t == napi_float32_array) return v;
    }
    fail(ErrKind::kType, fn_, std::string(name) + " must be a Float64Array or Float32Array, got " + type_name(v));
  }

  const std::string& fn() const { return fn_; }

 private:
  double field(const Napi::Object& o, const char* name, const char* key) const {
    const Napi::Value f = o.Get(key);
    if (!f.IsNumber()) fail(ErrKind::kType, fn_, std::string(name) + "." + key + " must be a number, got " + type_name(f));
    const double d = f.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || d != std::floor(d) || d < 0 || d > kMaxIndex)
      fail(ErrKind::kRange, fn_, std::string(name) + "." + key + " must be a non-negative integer, got " + num_str(d));
    return d;
  }

  const Napi::CallbackInfo& info_;
  const std::string fn_;
};

// ---- step 2: sizes ----------------------------------------------------------------------------------

/** e over the slot values, in int64 with overflow checks; false when it overflows or exceeds 2^40. */
inline bool eval(const Expr& e, const int64_t* size, int64_t* out) {
  int64_t v = e.mult;
  for (int k = 0; k < e.n; ++k)
    if (size[e.slot[k]] == 0) v = 0;
  for (int k = 0; k < e.n && v != 0; ++k)
    if (__builtin_mul_overflow(v, size[e.slot[k]], &v)) return false;
  if (v > kMaxElements) return false;
  *out = v;
  return true;
}

/** "B = 2, T = 3, C = 4": the values behind an expression, for messages. */
inline std::string values_of(const Expr& e, const OpSpec& op, const int64_t* size) {
  std::string s;
  for (int k = 0; k < e.n; ++k) s += (k ? ", " : "") + std::string(op.slot_names[e.slot[k]]) + " = " + std::to_string(size[e.slot[k]]);
  return s;
}

/** Evaluates e or fails naming what it is for. */
inline int64_t eval_or_fail(const Expr& e, const OpSpec& op, const int64_t* size, const std::string& fn, const std::string& what) {
  int64_t v = 0;
  if (!eval(e, size, &v)) fail(ErrKind::kRange, fn, what + ": " + e.text + " exceeds the largest buffer of 2^40 elements (" + values_of(e, op, size) + ")");
  return v;
}

/**
 * Checks the table's checks and every buffer's element count, and fills the derived slots (n, V, ...).
 * Uses only plain values; `length[i]` is the declared length of buffer argument i.
 */
inline void check_sizes(const OpSpec& op, const RawBuf* raw, int64_t* size, int64_t max_head_width, const std::string& fn) {
  for (int c = 0; c < op.nchecks; ++c) {
    const optable::Check& k = op.checks[c];
    const char* a = op.slot_names[k.a];
    const char* b = op.slot_names[k.b];
    const int64_t va = size[k.a], vb = size[k.b];
    if (k.kind == optable::CheckKind::kHeads) {
      if (vb <= 0 || va % vb != 0)
        fail(ErrKind::kRange, fn, std::string(a) + " = " + std::to_string(va) + " is not divisible by " + b + " = " + std::to_string(vb));
      if (va / vb > max_head_width)
        fail(ErrKind::kRange, fn,
             "head width " + std::string(a) + "/" + b + " = " + std::to_string(va / vb) + " exceeds the attention kernels' limit of " +
                 std::to_string(max_head_width));
    } else if (!(va < vb)) {
      fail(ErrKind::kRange, fn, std::string(a) + " must be < " + b + " = " + std::to_string(vb) + ", got " + std::to_string(va));
    }
  }
  for (int i = 0; i < op.nargs; ++i) {
    const Arg& a = op.args[i];
    if (!optable::is_buffer(a.kind) || !raw[i].present) continue;
    const int64_t len = raw[i].length;
    if (a.slot >= 0) {  // this buffer defines a size: len = rest * size[slot]
      const int64_t rest = eval_or_fail(a.shape, op, size, fn, a.name);
      const int64_t lo = a.bound_slot >= 0 ? size[a.bound_slot] : a.lo;
      const char* derived = op.slot_names[a.slot];
      if (rest == 0 || len % rest != 0 || len / rest < lo) {
        std::string msg = std::string(a.name) + " has " + std::to_string(len) + " elements, expected " + a.shape.text + " with " + derived +
                          " >= " + (a.bound_slot >= 0 ? std::string(op.slot_names[a.bound_slot]) + " = " : "") + std::to_string(lo);
        if (a.shape.n > 0) msg += " (" + values_of(a.shape, op, size) + ")";
        fail(ErrKind::kRange, fn, msg);
      }
      size[a.slot] = len / rest;
    } else {
      const int64_t want = eval_or_fail(a.shape, op, size, fn, a.name);
      if (len != want)
        fail(ErrKind::kRange, fn, std::string(a.name) + " has " + std::to_string(len) + " elements, expected " + a.shape.text + " = " + std::to_string(want));
    }
  }
}

/** An id list: exactly `count` ids, each in [lo, hi). Reads the typed array now (no JavaScript runs here). */
inline const int32_t* check_ids(const Napi::Value& value, const char* name, int64_t count, const char* count_text, int64_t lo, int64_t hi,
                                const std::string& fn) {
  const Napi::Int32Array a = value.As<Napi::Int32Array>();  // length and data as they are now
  const size_t n = a.ElementLength();
  if (static_cast<int64_t>(n) != count)
    fail(ErrKind::kRange, fn, std::string(name) + " has " + std::to_string(n) + " elements, expected " + count_text + " = " + std::to_string(count));
  const int32_t* p = n > 0 ? a.Data() : nullptr;
  for (size_t i = 0; i < n; ++i) {
    if (p[i] < lo || p[i] >= hi)
      fail(ErrKind::kRange, fn,
           std::string(name) + "[" + std::to_string(i) + "] = " + std::to_string(p[i]) + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) +
               ")");
  }
  return p;
}

// ---- the binding ------------------------------------------------------------------------------------

/**
 * Traits (see native/binding.cc and native/cuda/binding_cuda.cc):
 *   kPrefix, kNoun, kForeignHint   message parts ("cuda.", "CUDA buffer", " (a buffer of another backend?)")
 *   kFirstHandle                   first handle number (distinct ranges catch buffers of the other twin)
 *   kMaxHeadWidth                  the attention kernels' limit on C/NH
 *   invokers()                     the kernel calls, indexed like optable::kOps
 *   lock()                         held while memory is touched (after the arguments are read)
 *   require_device(fn)             before an allocation (CUDA: fails when no device answers)
 *   alloc, release, upload_f32/f64, download_f32/f64, sgemm   the memory functions and SGEMM
 */
/** A function outside the table (memory, runtime controls): its name and implementation. */
struct Function {
  const char* name;
  Napi::Value (*impl)(const Napi::CallbackInfo&);
};

template <class Traits>
class Binding {
 public:
  /**
   * Registers on `target` the memory functions, sgemm, every operator of the table, and `extras` (the
   * twin's own runtime functions; the array must outlive the addon: a static one).
   */
  template <size_t N>
  static void register_all(Napi::Env env, Napi::Object target, const Function (&extras)[N]) {
    static const Function kMemory[] = {{"alloc", Alloc},   {"free", Free},         {"live_buffers", LiveBuffers},
                                       {"upload", Upload}, {"download", Download}, {"download_f32", DownloadF32},
                                       {"sgemm", Sgemm}};
    for (const Function& f : kMemory) add(env, target, f);
    for (const Function& f : extras) add(env, target, f);
    for (int i = 0; i < optable::kOpCount; ++i) {
      const OpSpec* op = &optable::kOps[i];
      target.Set(op->name, Napi::Function::New(env, OpEntry, op->name, const_cast<OpSpec*>(op)));
    }
  }

  static std::string fn_name(const char* name) { return std::string(Traits::kPrefix) + name; }

  /**
   * The memory of a buffer argument read with Reader::buffer, for a twin's own functions (the CUDA
   * twin's NCCL calls on device buffers): the handle must be live and the view inside it, as for
   * an operator. The caller holds Traits::lock().
   */
  static float* pointer(const std::string& fn, const char* name, const RawBuf& b) { return resolve(fn, name, b).ptr; }

 private:
  struct Allocation {
    float* ptr;
    int64_t n;
  };
  /** A resolved buffer argument. */
  struct View {
    float* ptr = nullptr;
    RawBuf raw;
    const char* name = "";
  };

  static std::mutex& registry_mutex() {
    static std::mutex m;
    return m;
  }
  static std::unordered_map<double, Allocation>& registry() {  // handles are never reused
    static std::unordered_map<double, Allocation> r;
    return r;
  }
  static double& next_handle() {
    static double h = Traits::kFirstHandle;
    return h;
  }

  /** Step 3: the handle must be live and the view inside its allocation. */
  static View resolve(const std::string& fn, const char* name, const RawBuf& b) {
    View v;
    v.raw = b;
    v.name = name;
    if (!b.present) return v;
    Allocation a{};
    {
      std::lock_guard<std::mutex> lock(registry_mutex());
      auto it = registry().find(b.handle);
      if (it == registry().end())
        fail(ErrKind::kError, fn,
             std::string(name) + " refers to " + Traits::kNoun + " " + num_str(b.handle) + ", which was freed or never allocated" + Traits::kForeignHint);
      a = it->second;
    }
    if (b.offset + b.length > a.n)
      fail(ErrKind::kRange, fn,
           std::string(name) + " view [" + std::to_string(b.offset) + ", " + std::to_string(b.offset + b.length) + ") lies outside its buffer of " +
               std::to_string(a.n) + " elements");
    v.ptr = a.ptr + b.offset;
    return v;
  }

  /** Step 4: each output is disjoint from every other buffer (or, where allowed, exactly the same view). */
  static void expect_disjoint(const std::string& fn, const View* views, const bool* is_output, int n, bool exact_ok) {
    for (int i = 0; i < n; ++i) {
      if (!is_output[i] || !views[i].raw.present) continue;
      const RawBuf& o = views[i].raw;
      for (int j = 0; j < n; ++j) {
        const RawBuf& b = views[j].raw;
        if (i == j || !b.present || o.handle != b.handle || o.length == 0 || b.length == 0) continue;
        const bool overlap = o.offset < b.offset + b.length && b.offset < o.offset + o.length;
        if (!overlap) continue;
        if (exact_ok && o.offset == b.offset && o.length == b.length) continue;
        fail(ErrKind::kError, fn, std::string(views[i].name) + " overlaps " + views[j].name + (exact_ok ? " (only an exact alias is allowed)" : ""));
      }
    }
  }

  // ---- the table's operators --------------------------------------------------------------------------

  static Napi::Value OpCall(const Napi::CallbackInfo& info, const OpSpec& op, int index) {
    const std::string fn = fn_name(op.name);
    Reader in(info, fn);
    int njs = 0;
    for (int i = 0; i < op.nargs; ++i) njs += op.args[i].kind != ArgKind::kDerived;
    in.expect_count(static_cast<size_t>(njs));

    // 1. read (JavaScript may run only here)
    RawBuf raw[optable::kMaxArgs];
    Napi::Value ids[optable::kMaxArgs];
    optable::Resolved r{};
    size_t j = 0;
    for (int i = 0; i < op.nargs; ++i) {
      const Arg& a = op.args[i];
      switch (a.kind) {
        case ArgKind::kDerived: continue;
        case ArgKind::kInt: r.size[a.slot] = in.size(j, a.name, a.lo, a.hi); break;
        case ArgKind::kF32:
        case ArgKind::kF64: r.real[i] = in.number(j, a.name, a.rule); break;
        case ArgKind::kIds: ids[i] = in.int32(j, a.name); break;
        default: raw[i] = in.buffer(j, a.name, a.nullable, Traits::kBufferWord); break;
      }
      ++j;
    }

    // 2. validate (plain values; the ids' typed arrays are read only now)
    check_sizes(op, raw, r.size, Traits::kMaxHeadWidth, fn);
    for (int i = 0; i < op.nargs; ++i) {
      const Arg& a = op.args[i];
      if (a.kind != ArgKind::kIds) continue;
      const int64_t count = eval_or_fail(a.shape, op, r.size, fn, a.name);
      r.ids[i] = check_ids(ids[i], a.name, count, a.shape.text, a.lo, r.size[a.bound_slot], fn);
    }
    if (op.ret == optable::Ret::kSize) return Napi::Number::New(info.Env(), static_cast<double>(eval_or_fail(op.value, op, r.size, fn, "the result")));

    // 3. resolve, 4. overlaps, 5. the kernel: under the traits' lock
    [[maybe_unused]] auto lock = Traits::lock();
    View views[optable::kMaxArgs];
    bool is_out[optable::kMaxArgs] = {};
    for (int i = 0; i < op.nargs; ++i) {
      const Arg& a = op.args[i];
      if (!optable::is_buffer(a.kind)) continue;
      views[i] = resolve(fn, a.name, raw[i]);
      is_out[i] = optable::is_output(a.kind);
      r.ptr[i] = views[i].ptr;
    }
    expect_disjoint(fn, views, is_out, op.nargs, op.alias_exact);
    const double result = Traits::invokers()[index](r);
    switch (op.ret) {
      case optable::Ret::kF64: return Napi::Number::New(info.Env(), result);
      case optable::Ret::kBool: return Napi::Boolean::New(info.Env(), result != 0.0);
      default: return info.Env().Undefined();
    }
  }

  static Napi::Value OpEntry(const Napi::CallbackInfo& info) {
    const OpSpec* op = static_cast<const OpSpec*>(info.Data());
    return run(info.Env(), op->name, [&] { return OpCall(info, *op, static_cast<int>(op - optable::kOps)); });
  }

  // ---- memory -------------------------------------------------------------------------------------------

  static Napi::Value Alloc(const Napi::CallbackInfo& info) {
    const std::string fn = fn_name("alloc");
    Reader in(info, fn);
    in.expect_count(1);
    const int64_t n = in.size(0, "n", 0, kMaxElements);
    [[maybe_unused]] auto lock = Traits::lock();
    Traits::require_device(fn);
    float* p = Traits::alloc(n, fn);
    std::lock_guard<std::mutex> guard(registry_mutex());
    const double h = next_handle()++;
    registry()[h] = Allocation{p, n};
    return Napi::Number::New(info.Env(), h);
  }

  static Napi::Value Free(const Napi::CallbackInfo& info) {
    const std::string fn = fn_name("free");
    Reader in(info, fn);
    in.expect_count(1);
    const Napi::Value v = info[0];
    if (!v.IsNumber()) fail(ErrKind::kType, fn, "handle must be a number, got " + type_name(v));
    const double h = v.As<Napi::Number>().DoubleValue();
    [[maybe_unused]] auto lock = Traits::lock();
    float* p = nullptr;
    {
      std::lock_guard<std::mutex> guard(registry_mutex());
      auto it = registry().find(h);
      if (it == registry().end()) fail(ErrKind::kError, fn, std::string(Traits::kNoun) + " " + num_str(h) + " was already freed or never allocated");
      p = it->second.ptr;
      registry().erase(it);
    }
    Traits::release(p);
    return info.Env().Undefined();
  }

  static Napi::Value LiveBuffers(const Napi::CallbackInfo& info) {
    Reader in(info, fn_name("live_buffers"));
    in.expect_count(0);
    std::lock_guard<std::mutex> guard(registry_mutex());
    return Napi::Number::New(info.Env(), static_cast<double>(registry().size()));
  }

  static Napi::Value Upload(const Napi::CallbackInfo& info) {
    const std::string fn = fn_name("upload");
    Reader in(info, fn);
    in.expect_count(2);
    const RawBuf dst_raw = in.buffer(0, "dst", false, Traits::kBufferWord);
    const Napi::TypedArray src = in.floats(1, "src").As<Napi::TypedArray>();  // after dst's getters ran
    const size_t n = src.ElementLength();
    if (static_cast<int64_t>(n) != dst_raw.length)
      fail(ErrKind::kRange, fn, "src has " + std::to_string(n) + " elements, expected size(dst) = " + std::to_string(dst_raw.length));
    [[maybe_unused]] auto lock = Traits::lock();
    const View dst = resolve(fn, "dst", dst_raw);
    if (n == 0) return info.Env().Undefined();
    if (src.TypedArrayType() == napi_float64_array)
      Traits::upload_f64(dst.ptr, src.As<Napi::Float64Array>().Data(), dst_raw.length, fn);
    else
      Traits::upload_f32(dst.ptr, src.As<Napi::Float32Array>().Data(), dst_raw.length, fn);
    return info.Env().Undefined();
  }

  template <bool F32>
  static Napi::Value DownloadAs(const Napi::CallbackInfo& info, const char* name) {
    const std::string fn = fn_name(name);
    Reader in(info, fn);
    in.expect_count(1);
    const RawBuf raw = in.buffer(0, "src", false, Traits::kBufferWord);
    [[maybe_unused]] auto lock = Traits::lock();
    const View src = resolve(fn, "src", raw);
    const size_t n = static_cast<size_t>(raw.length);
    if constexpr (F32) {
      auto out = Napi::Float32Array::New(info.Env(), n);
      if (n > 0) Traits::download_f32(out.Data(), src.ptr, raw.length, fn);
      return out;
    } else {
      auto out = Napi::Float64Array::New(info.Env(), n);
      if (n > 0) Traits::download_f64(out.Data(), src.ptr, raw.length, fn);
      return out;
    }
  }
  static Napi::Value Download(const Napi::CallbackInfo& info) { return DownloadAs<false>(info, "download"); }
  static Napi::Value DownloadF32(const Napi::CallbackInfo& info) { return DownloadAs<true>(info, "download_f32"); }

  /** C (M,N) = alpha op(A) op(B) (+ C if accumulate), row-major; op(X) = X^T when trans. */
  static Napi::Value Sgemm(const Napi::CallbackInfo& info) {
    const std::string fn = fn_name("sgemm");
    Reader in(info, fn);
    in.expect_count(10);
    const bool ta = in.boolean(0, "transA"), tb = in.boolean(1, "transB");
    const int64_t M = in.size(2, "M", 0, kMaxElements), N = in.size(3, "N", 0, kMaxElements);
    const int64_t K = in.size(4, "K", 0, kMaxElements);
    const double alpha = in.number(5, "alpha", FloatRule::kFinite);
    const RawBuf a = in.buffer(6, "A", false, Traits::kBufferWord), b = in.buffer(7, "B", false, Traits::kBufferWord);
    const bool acc = in.boolean(8, "accumulate");
    const RawBuf c = in.buffer(9, "C", false, Traits::kBufferWord);
    static const char* const kSlots[] = {"M", "N", "K"};
    static const Arg kArgs[] = {
        {"A", ArgKind::kIn, false, -1, {1, 2, {0, 2}, "M*K"}, -1, 0, 0, FloatRule::kFinite},
        {"B", ArgKind::kIn, false, -1, {1, 2, {2, 1}, "K*N"}, -1, 0, 0, FloatRule::kFinite},
        {"C", ArgKind::kOut, false, -1, {1, 2, {0, 1}, "M*N"}, -1, 0, 0, FloatRule::kFinite},
    };
    static const OpSpec kSpec{"sgemm", optable::Ret::kVoid, false, kArgs, 3, kSlots, 3, nullptr, 0, {1, 0, {}, ""}, true, "linear", false};
    int64_t size[optable::kMaxSlots] = {M, N, K};
    const RawBuf raw[3] = {a, b, c};
    check_sizes(kSpec, raw, size, Traits::kMaxHeadWidth, fn);
    [[maybe_unused]] auto lock = Traits::lock();
    const View views[3] = {resolve(fn, "A", a), resolve(fn, "B", b), resolve(fn, "C", c)};
    const bool is_out[3] = {false, false, true};
    expect_disjoint(fn, views, is_out, 3, false);
    Traits::sgemm(ta, tb, M, N, K, static_cast<float>(alpha), views[0].ptr, ta ? M : K, views[1].ptr, tb ? K : N, acc, views[2].ptr, N);
    return info.Env().Undefined();
  }

  // ---- errors -------------------------------------------------------------------------------------------

  /** "<prefix><name>: " + what, unless what already names the function. */
  static std::string error_text(const char* name, const std::string& what) {
    const std::string n = std::string(name) + ":";
    if (what.compare(0, n.size(), n) == 0) return Traits::kPrefix + what;
    return fn_name(name) + ": " + what;
  }

  template <class Body>
  static Napi::Value run(Napi::Env env, const char* name, Body&& body) {
    try {
      return body();
    } catch (const ArgError& e) {
      switch (e.kind) {
        case ErrKind::kType: throw Napi::TypeError::New(env, e.message);
        case ErrKind::kRange: throw Napi::RangeError::New(env, e.message);
        default: throw Napi::Error::New(env, e.message);
      }
    } catch (const Napi::Error&) {
      throw;
    } catch (const std::bad_alloc&) {
      throw Napi::Error::New(env, fn_name(name) + ": out of host memory");
    } catch (const std::exception& e) {  // a kernel failure (CUDA: crate::cuda::Error naming the operator)
      throw Napi::Error::New(env, error_text(name, e.what()));
    } catch (...) {
      throw Napi::Error::New(env, fn_name(name) + ": unknown native error");
    }
  }

  /** Every C++ exception of f becomes a JavaScript one naming the function. */
  static void add(Napi::Env env, Napi::Object target, const Function& f) {
    target.Set(f.name, Napi::Function::New(env, FunctionEntry, f.name, const_cast<Function*>(&f)));
  }
  static Napi::Value FunctionEntry(const Napi::CallbackInfo& info) {
    const Function* f = static_cast<const Function*>(info.Data());
    return run(info.Env(), f->name, [&] { return f->impl(info); });
  }
};

}  // namespace binding
}  // namespace crate
