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

const binding::Function kRuntime[] = {
    {"available", Available}, {"synchronize", Synchronize}, {"memory_info", MemoryInfo}, {"set_precision", SetPrecision}, {"precision", GetPrecision}};

}  // namespace

void Register(Napi::Env env, Napi::Object exports) {
  Napi::Object o = Napi::Object::New(env);
  Cuda::register_all(env, o, kRuntime);
  exports.Set("cuda", o);
}

}  // namespace cuda
}  // namespace crate
