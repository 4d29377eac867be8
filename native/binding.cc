// The CPU addon: the shared Node-API binding (native/binding.h) instantiated for the C++ operators
// in namespace crate on 64-byte aligned host memory, plus the CPU runtime controls (threads, the
// SGEMM micro-kernel). With CRATE_WITH_CUDA (npm run build:cuda) it also registers exports.cuda,
// the same binding over the CUDA twin (native/cuda/binding_cuda.cc).
#include <cstdlib>
#include <cstring>

#include "binding.h"
#include "gemm.h"
#include "ops.h"
#include "threadpool.h"
#ifdef CRATE_WITH_CUDA  // CUDA hook (native/cuda/register.h): exports.cuda, built by npm run build:cuda
#include "cuda/register.h"
#endif

namespace {

namespace K = ::crate;
#include "generated/ops_invoke.inc"

using crate::binding::ErrKind;
using crate::binding::fail;
using crate::binding::num_str;
using crate::binding::Reader;

struct CpuTraits {
  static constexpr const char* kPrefix = "";
  static constexpr const char* kBufferWord = "native buffer";
  static constexpr const char* kNoun = "buffer";
  static constexpr const char* kForeignHint = "";
  static constexpr double kFirstHandle = 1;
  static constexpr int64_t kMaxHeadWidth = crate::optable::kMaxElements;

  static const crate::optable::Invoker* invokers() { return kInvokers; }
  static int lock() { return 0; }  // the CPU operators need no lock beyond the registry's
  static void require_device(const std::string&) {}

  static float* alloc(int64_t n, const std::string& fn) {
    const size_t bytes = ((static_cast<size_t>(n) * sizeof(float) + 63) / 64) * 64;
    float* p = static_cast<float*>(std::aligned_alloc(64, bytes == 0 ? 64 : bytes));
    if (!p) fail(ErrKind::kError, fn, "cannot allocate " + std::to_string(n) + " float32 elements (out of memory)");
    crate::fill(p, n, 0.0f);
    return p;
  }
  static void release(float* p) { std::free(p); }
  static void upload_f32(float* dst, const float* src, int64_t n, const std::string&) { std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float)); }
  static void upload_f64(float* dst, const double* src, int64_t n, const std::string&) {
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]);
  }
  static void download_f32(float* dst, const float* src, int64_t n, const std::string&) { std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float)); }
  static void download_f64(double* dst, const float* src, int64_t n, const std::string&) {
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
  }
  static void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t Kd, float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, bool acc,
                    float* C, int64_t ldc) {
    crate::sgemm(ta, tb, M, N, Kd, alpha, A, lda, B, ldb, acc, C, ldc);
  }
};

using Cpu = crate::binding::Binding<CpuTraits>;

// ---- runtime -----------------------------------------------------------------------------------------

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  Reader in(info, "set_threads");
  in.expect_count(1);
  crate::pool_set_threads(static_cast<int>(in.size(0, "n", 1, 256)));
  return info.Env().Undefined();
}

Napi::Value Threads(const Napi::CallbackInfo& info) {
  Reader in(info, "threads");
  in.expect_count(0);
  return Napi::Number::New(info.Env(), crate::pool_threads());
}

Napi::Value GemmKernel(const Napi::CallbackInfo& info) {
  Reader in(info, "gemm_kernel");
  in.expect_count(0);
  return Napi::String::New(info.Env(), crate::sgemm_kernel());
}

Napi::Value SetGemmKernel(const Napi::CallbackInfo& info) {
  Reader in(info, "set_gemm_kernel");
  in.expect_count(1);
  const std::string name = in.string(0, "name");
  return Napi::Boolean::New(info.Env(), crate::sgemm_set_kernel(name.c_str()));
}

Napi::Value FmaPeakGflops(const Napi::CallbackInfo& info) {
  Reader in(info, "fma_peak_gflops");
  in.expect_count(1);
  const double seconds = in.number(0, "seconds", crate::optable::FloatRule::kFinite);
  if (seconds <= 0 || seconds > 10) fail(ErrKind::kRange, "fma_peak_gflops", "seconds must be in (0, 10], got " + num_str(seconds));
  return Napi::Number::New(info.Env(), crate::fma_peak_gflops(seconds));
}

const crate::binding::Function kRuntime[] = {
    {"set_threads", SetThreads}, {"threads", Threads}, {"gemm_kernel", GemmKernel}, {"set_gemm_kernel", SetGemmKernel}, {"fma_peak_gflops", FmaPeakGflops}};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Cpu::register_all(env, exports, kRuntime);
#ifdef CRATE_WITH_CUDA  // CUDA hook: the CUDA twin's functions as exports.cuda (native/cuda/binding_cuda.cc)
  crate::cuda::Register(env, exports);
#endif
  return exports;
}

}  // namespace

NODE_API_MODULE(crate_native, Init)
