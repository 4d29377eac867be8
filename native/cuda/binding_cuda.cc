// exports.cuda: the shared Node-API binding (native/binding.h) instantiated for the CUDA twin
// (namespace crate::cuda, device memory), plus the device runtime (available, synchronize,
// memory_info, precision). Argument errors read as on the CPU with a "cuda." prefix
// ("cuda.linear_forward: weight has 100 elements, expected OC*C = 120"); CUDA failures throw Error
// with the CUDA error ("cuda.linear_forward: CUDA error cudaErrorIllegalAddress (...)"); running out
// of device memory names the bytes asked for.
//
// CUDA handles start at 2^40 so that a CUDA buffer handed to the CPU functions (or the reverse) is
// rejected as "never allocated" instead of silently naming another buffer. One CUDA call runs at a
// time (the operators share device workspaces and several JavaScript threads may load the addon);
// the lock is taken after the arguments are read, so a getter may itself call the addon.
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "../binding.h"
#include "ops_cuda.h"
#include "register.h"

namespace crate {
namespace cuda {
namespace {

namespace K = ::crate::cuda;
#include "../generated/ops_invoke.inc"

using binding::ErrKind;
using binding::fail;
using binding::Reader;

std::mutex g_op_mutex;

struct CudaTraits {
  static constexpr const char* kPrefix = "cuda.";
  static constexpr const char* kBufferWord = "CUDA buffer";
  static constexpr const char* kNoun = "CUDA buffer";
  static constexpr const char* kForeignHint = " (a buffer of another backend?)";
  static constexpr double kFirstHandle = 1099511627776.0;  // 2^40
  static constexpr int64_t kMaxHeadWidth = ::crate::cuda::kMaxHeadWidth;

  static const optable::Invoker* invokers() { return kInvokers; }
  static std::unique_lock<std::mutex> lock() { return std::unique_lock<std::mutex>(g_op_mutex); }
  /** Operators need a working device; say why not (the JavaScript side normally checks available() first). */
  static void require_device(const std::string& fn) {
    const Availability& a = cuda_available();
    if (!a.available) fail(ErrKind::kError, fn, "no CUDA device: " + a.reason);
  }

  static float* alloc(int64_t n, const std::string&) { return device_alloc(n, "alloc"); }
  static void release(float* p) { device_free(p); }
  static void upload_f32(float* dst, const float* src, int64_t n, const std::string&) { upload(dst, src, n, "upload"); }
  static void upload_f64(float* dst, const double* src, int64_t n, const std::string&) {
    std::vector<float> tmp(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) tmp[i] = static_cast<float>(src[i]);
    upload(dst, tmp.data(), n, "upload");
  }
  static void download_f32(float* dst, const float* src, int64_t n, const std::string&) { download(dst, src, n, "download_f32"); }
  static void download_f64(double* dst, const float* src, int64_t n, const std::string&) {
    std::vector<float> tmp(static_cast<size_t>(n));
    download(tmp.data(), src, n, "download");
    for (int64_t i = 0; i < n; ++i) dst[i] = tmp[i];
  }
  static void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t Kd, float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, bool acc,
                    float* C, int64_t ldc) {
    ::crate::cuda::sgemm(ta, tb, M, N, Kd, alpha, A, lda, B, ldb, acc, C, ldc);
  }
};

using Cuda = binding::Binding<CudaTraits>;

// ---- device runtime ------------------------------------------------------------------------------------

Napi::Value Available(const Napi::CallbackInfo& info) {
  Reader in(info, "cuda.available");
  in.expect_count(0);
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

Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  Reader in(info, "cuda.synchronize");
  in.expect_count(0);
  auto lock = CudaTraits::lock();
  CudaTraits::require_device(in.fn());
  synchronize("synchronize");
  return info.Env().Undefined();
}

Napi::Value MemoryInfo(const Napi::CallbackInfo& info) {
  Reader in(info, "cuda.memory_info");
  in.expect_count(0);
  auto lock = CudaTraits::lock();
  CudaTraits::require_device(in.fn());
  size_t fr = 0, tot = 0;
  memory_info(&fr, &tot);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("freeBytes", static_cast<double>(fr));
  o.Set("totalBytes", static_cast<double>(tot));
  return o;
}

Napi::Value SetPrecision(const Napi::CallbackInfo& info) {
  Reader in(info, "cuda.set_precision");
  in.expect_count(1);
  const std::string p = in.string(0, "precision");
  auto lock = CudaTraits::lock();
  if (p == "fp32")
    set_precision(Precision::kFp32);
  else if (p == "tf32")
    set_precision(Precision::kTf32);
  else
    fail(ErrKind::kRange, in.fn(), "precision must be 'fp32' or 'tf32', got '" + p + "'");
  return info.Env().Undefined();
}

Napi::Value GetPrecision(const Napi::CallbackInfo& info) {
  Reader in(info, "cuda.precision");
  in.expect_count(0);
  return Napi::String::New(info.Env(), precision() == Precision::kTf32 ? "tf32" : "fp32");
}

// ---- NCCL (nccl.cu; src/distributed/nccl.ts) -------------------------------------------------------

/** The bytes of a typed-array argument; a TypeError names the argument otherwise. */
std::pair<uint8_t*, size_t> typed_bytes(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  if (info.Length() <= i || !info[i].IsTypedArray()) throw Napi::TypeError::New(info.Env(), std::string(fn) + ": " + name + " must be a typed array");
  auto ta = info[i].As<Napi::TypedArray>();
  return {static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset(), ta.ByteLength()};
}

int int_arg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(fn) + ": " + name + " must be a number");
  return info[i].As<Napi::Number>().Int32Value();
}

template <typename F>
Napi::Value nccl_call(const Napi::CallbackInfo& info, const char* fn, F&& f) {
  try {
    auto lock = CudaTraits::lock();
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), std::string("cuda.") + fn + ": " + e.what());
  }
}

Napi::Value NcclLoad(const Napi::CallbackInfo& info) {
  const NcclStatus& st = nccl_load();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("loaded", st.loaded);
  o.Set("reason", st.reason);
  o.Set("version", st.version);
  return o;
}

Napi::Value NcclUniqueId(const Napi::CallbackInfo& info) {
  return nccl_call(info, "nccl_unique_id", [&]() -> Napi::Value {
    auto buf = Napi::Buffer<uint8_t>::New(info.Env(), kNcclIdBytes);
    nccl_unique_id(buf.Data());
    return buf;
  });
}

Napi::Value NcclInit(const Napi::CallbackInfo& info) {
  const char* fn = "nccl_init";
  auto id = typed_bytes(info, 0, fn, "id");
  if (id.second != static_cast<size_t>(kNcclIdBytes)) throw Napi::RangeError::New(info.Env(), "cuda.nccl_init: id must be 128 bytes");
  const int nranks = int_arg(info, 1, fn, "nranks"), rank = int_arg(info, 2, fn, "rank"), device = int_arg(info, 3, fn, "device");
  if (nranks < 1 || rank < 0 || rank >= nranks || device < 0) throw Napi::RangeError::New(info.Env(), "cuda.nccl_init: rank, nranks or device out of range");
  return nccl_call(info, fn, [&]() -> Napi::Value {
    nccl_init(id.first, nranks, rank, device);
    return info.Env().Undefined();
  });
}

Napi::Value NcclAllReduceSum(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(info.Env(), "cuda.nccl_all_reduce_sum: buffer must be a Float32Array");
  auto b = typed_bytes(info, 0, "nccl_all_reduce_sum", "buffer");
  return nccl_call(info, "nccl_all_reduce_sum", [&]() -> Napi::Value {
    nccl_all_reduce_sum(reinterpret_cast<float*>(b.first), b.second / sizeof(float));
    return info.Env().Undefined();
  });
}

Napi::Value NcclAllGather(const Napi::CallbackInfo& info) {
  auto b = typed_bytes(info, 0, "nccl_all_gather", "bytes");
  const int nranks = int_arg(info, 1, "nccl_all_gather", "nranks");
  if (nranks < 1) throw Napi::RangeError::New(info.Env(), "cuda.nccl_all_gather: nranks must be positive");
  return nccl_call(info, "nccl_all_gather", [&]() -> Napi::Value {
    auto out = Napi::Buffer<uint8_t>::New(info.Env(), b.second * static_cast<size_t>(nranks));
    if (b.second > 0) nccl_all_gather(b.first, out.Data(), b.second, nranks);
    return out;
  });
}

Napi::Value NcclBroadcast(const Napi::CallbackInfo& info) {
  auto b = typed_bytes(info, 0, "nccl_broadcast", "bytes");
  const int root = int_arg(info, 1, "nccl_broadcast", "root");
  return nccl_call(info, "nccl_broadcast", [&]() -> Napi::Value {
    if (b.second > 0) nccl_broadcast(b.first, b.second, root);
    return info.Env().Undefined();
  });
}

// nccl_all_reduce_sum_device(buf), nccl_all_reduce_ordered_device(acc, contribution): CUDA buffers
// (views of the backend's allocations), enqueued on NCCL's stream; nccl_join(); nccl_counters().
Napi::Value NcclAllReduceSumDevice(const Napi::CallbackInfo& info) {
  const char* fn = "nccl_all_reduce_sum_device";
  Reader in(info, Cuda::fn_name(fn));
  in.expect_count(1);
  const binding::RawBuf b = in.buffer(0, "buffer", false, CudaTraits::kBufferWord);
  return nccl_call(info, fn, [&]() -> Napi::Value {
    nccl_all_reduce_sum_device(Cuda::pointer(in.fn(), "buffer", b), static_cast<size_t>(b.length));
    return info.Env().Undefined();
  });
}

Napi::Value NcclAllReduceOrderedDevice(const Napi::CallbackInfo& info) {
  const char* fn = "nccl_all_reduce_ordered_device";
  Reader in(info, Cuda::fn_name(fn));
  in.expect_count(2);
  const binding::RawBuf acc = in.buffer(0, "acc", false, CudaTraits::kBufferWord), c = in.buffer(1, "contribution", false, CudaTraits::kBufferWord);
  if (acc.length != c.length) fail(ErrKind::kRange, in.fn(), "acc has " + std::to_string(acc.length) + " elements, contribution " + std::to_string(c.length));
  if (acc.handle == c.handle && acc.offset < c.offset + c.length && c.offset < acc.offset + acc.length)
    fail(ErrKind::kError, in.fn(), "acc overlaps contribution");
  return nccl_call(info, fn, [&]() -> Napi::Value {
    float* a = Cuda::pointer(in.fn(), "acc", acc);
    const float* cp = Cuda::pointer(in.fn(), "contribution", c);
    nccl_all_reduce_ordered_device(a, cp, static_cast<size_t>(acc.length));
    return info.Env().Undefined();
  });
}

Napi::Value NcclJoin(const Napi::CallbackInfo& info) {
  return nccl_call(info, "nccl_join", [&]() -> Napi::Value {
    nccl_join();
    return info.Env().Undefined();
  });
}

Napi::Value NcclCountersJs(const Napi::CallbackInfo& info) {
  const NcclCounters& c = nccl_counters();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("hostCalls", static_cast<double>(c.host_calls));
  o.Set("hostBytes", static_cast<double>(c.host_bytes));
  o.Set("deviceCalls", static_cast<double>(c.device_calls));
  o.Set("deviceBytes", static_cast<double>(c.device_bytes));
  return o;
}

Napi::Value NcclDestroy(const Napi::CallbackInfo& info) {
  return nccl_call(info, "nccl_destroy", [&]() -> Napi::Value {
    nccl_destroy();
    return info.Env().Undefined();
  });
}

const binding::Function kRuntime[] = {{"nccl_load", NcclLoad},
                                      {"nccl_unique_id", NcclUniqueId},
                                      {"nccl_init", NcclInit},
                                      {"nccl_all_reduce_sum", NcclAllReduceSum},
                                      {"nccl_all_gather", NcclAllGather},
                                      {"nccl_broadcast", NcclBroadcast},
                                      {"nccl_all_reduce_sum_device", NcclAllReduceSumDevice},
                                      {"nccl_all_reduce_ordered_device", NcclAllReduceOrderedDevice},
                                      {"nccl_join", NcclJoin},
                                      {"nccl_counters", NcclCountersJs},
                                      {"nccl_destroy", NcclDestroy},
                                      {"available", Available},
                                      {"synchronize", Synchronize},
                                      {"memory_info", MemoryInfo},
                                      {"set_precision", SetPrecision},
                                      {"precision", GetPrecision}};

}  // namespace

void Register(Napi::Env env, Napi::Object exports) {
  Napi::Object o = Napi::Object::New(env);
  Cuda::register_all(env, o, kRuntime);
  exports.Set("cuda", o);
}

}  // namespace cuda
}  // namespace crate
