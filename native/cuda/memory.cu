// Device, memory and error plumbing of the CUDA twin: the availability probe, allocation with
// out-of-memory messages that name the bytes asked for, host<->device copies, the shared workspace,
// the matrix-product precision switch.
#ifndef CRATE_CUDA_EMULATION
#include <cuda_runtime.h>
#endif

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>
#include <string>

#include "common.cuh"

namespace crate {
namespace cuda {

// ---- errors ----------------------------------------------------------------------------------------

void throw_op(const char* op, const std::string& msg) { throw Error(std::string(op) + ": " + msg); }

void throw_cuda(const char* op, cudaError_t err, const char* what) {
  // Reset the per-thread "last error" so a non-sticky failure (e.g. out of memory) does not leak
  // into the next call; sticky errors (illegal address) keep failing every later call by design.
  (void)cudaGetLastError();
  std::ostringstream os;
  os << op << ": CUDA error " << cudaGetErrorName(err) << " (" << cudaGetErrorString(err) << ")";
  if (what && *what) os << " in " << what;
  if (err == cudaErrorIllegalAddress || err == cudaErrorLaunchFailure || err == cudaErrorAssert)
    os << "; the CUDA context is now unusable (restart the process); set CRATE_CUDA_SYNC=1 to find the kernel";
  throw Error(os.str());
}

bool sync_after_launch() {
  static const bool on = [] {
    const char* s = std::getenv("CRATE_CUDA_SYNC");
    return s != nullptr && s[0] != '\0' && std::strcmp(s, "0") != 0;
  }();
  return on;
}

// ---- availability ------------------------------------------------------------------------------------

namespace {

__global__ void probe_kernel(int* out) {
  if (threadIdx.x == 0 && blockIdx.x == 0) *out = 42;
}

std::string version_str(int v) {
  std::ostringstream os;
  os << v / 1000 << "." << (v % 1000) / 10;
  return os.str();
}

Availability probe() {
  Availability a;
  cudaRuntimeGetVersion(&a.runtime_version);
  cudaDriverGetVersion(&a.driver_version);  // 0 when libcuda.so.1 cannot be loaded
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  (void)cudaGetLastError();
  if (e == cudaErrorInsufficientDriver && a.driver_version == 0) {
    a.reason = "no NVIDIA driver found (libcuda.so.1 could not be loaded), so no CUDA device is usable";
    return a;
  }
  if (e == cudaErrorInsufficientDriver) {
    a.reason = "the NVIDIA driver supports CUDA " + version_str(a.driver_version) + ", older than the CUDA " + version_str(a.runtime_version) +
               " runtime this addon was built with";
    return a;
  }
  if (e == cudaErrorNoDevice || (e == cudaSuccess && n == 0)) {
    a.reason = "no CUDA device (the driver reports none; check CUDA_VISIBLE_DEVICES)";
    return a;
  }
  if (e != cudaSuccess) {
    a.reason = std::string("no CUDA device: cudaGetDeviceCount failed with ") + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
    return a;
  }
  cudaDeviceProp prop;
  const cudaError_t pe = cudaGetDeviceProperties(&prop, 0);
  if (pe != cudaSuccess) {
    (void)cudaGetLastError();
    a.reason = std::string("cudaGetDeviceProperties failed: ") + cudaGetErrorName(pe) + " (" + cudaGetErrorString(pe) + ")";
    return a;
  }
  a.device = prop.name;
  a.cc_major = prop.major;
  a.cc_minor = prop.minor;
  a.sm_count = prop.multiProcessorCount;
  a.total_bytes = prop.totalGlobalMem;
  if (prop.major < 8) {
    a.reason = "device 0 (" + a.device + ") has compute capability " + std::to_string(prop.major) + "." + std::to_string(prop.minor) +
               "; the CUDA kernels are built for sm_80 and newer";
    return a;
  }
  // Launch a trivial kernel: catches "no kernel image for this device" and a broken context early.
  int* d = nullptr;
  cudaError_t ke = cudaMalloc(&d, sizeof(int));
  if (ke == cudaSuccess) {
    probe_kernel<<<1, 32>>>(d);
    ke = cudaGetLastError();
    if (ke == cudaSuccess) ke = cudaDeviceSynchronize();
    int h = 0;
    if (ke == cudaSuccess) ke = cudaMemcpy(&h, d, sizeof(int), cudaMemcpyDeviceToHost);
    if (ke == cudaSuccess && h != 42) {
      cudaFree(d);
      a.reason = "a test kernel on " + a.device + " did not run";
      return a;
    }
    cudaFree(d);
  }
  if (ke != cudaSuccess) {
    (void)cudaGetLastError();
    a.reason = "a test kernel failed on " + a.device + ": " + cudaGetErrorName(ke) + " (" + cudaGetErrorString(ke) + ")";
    return a;
  }
  a.available = true;
  return a;
}

}  // namespace

const Availability& cuda_available() {
  static const Availability a = probe();
  return a;
}

// ---- memory ------------------------------------------------------------------------------------------

float* device_alloc(int64_t n, const char* op) {
  if (n < 0) throw_op(op, "negative size " + std::to_string(n));
  const size_t bytes = static_cast<size_t>(n == 0 ? 1 : n) * sizeof(float);
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, bytes);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    if (e == cudaErrorMemoryAllocation) {
      size_t fr = 0, tot = 0;
      cudaMemGetInfo(&fr, &tot);
      (void)cudaGetLastError();
      std::ostringstream os;
      os << "out of GPU memory: cannot allocate " << bytes << " bytes (" << n << " float32 elements); " << fr << " of " << tot << " bytes free";
      throw_op(op, os.str());
    }
    throw_cuda(op, e, "cudaMalloc");
  }
  const cudaError_t z = cudaMemset(p, 0, bytes);
  if (z != cudaSuccess) {
    cudaFree(p);
    throw_cuda(op, z, "cudaMemset");
  }
  return static_cast<float*>(p);
}

void device_free(float* p) {
  if (p) {
    const cudaError_t e = cudaFree(p);
    if (e != cudaSuccess) throw_cuda("free", e, "cudaFree");
  }
}

void upload(float* dst, const float* src, int64_t n, const char* op) {
  if (n <= 0) return;
  CRATE_CUDA_CHECK(op, cudaMemcpy(dst, src, static_cast<size_t>(n) * sizeof(float), cudaMemcpyHostToDevice));
}

void download(float* dst, const float* src, int64_t n, const char* op) {
  if (n <= 0) return;
  CRATE_CUDA_CHECK(op, cudaMemcpy(dst, src, static_cast<size_t>(n) * sizeof(float), cudaMemcpyDeviceToHost));
}

void synchronize(const char* op) { CRATE_CUDA_CHECK(op, cudaDeviceSynchronize()); }

void memory_info(size_t* free_bytes, size_t* total_bytes) { CRATE_CUDA_CHECK("memory_info", cudaMemGetInfo(free_bytes, total_bytes)); }

// ---- workspace -----------------------------------------------------------------------------------------

namespace {

struct Area {
  void* ptr = nullptr;
  size_t cap = 0;
};

Area g_workspace[3];
Area g_staging[2];

void* grow(Area& a, size_t bytes, const char* op, const char* what) {
  if (bytes == 0) bytes = 256;
  if (bytes <= a.cap) return a.ptr;
  const size_t want = bytes + bytes / 4;  // headroom against repeated small growth
  if (a.ptr) {
    const cudaError_t fe = cudaFree(a.ptr);  // synchronizes: no kernel still reads the old area
    a.ptr = nullptr;
    a.cap = 0;
    if (fe != cudaSuccess) throw_cuda(op, fe, "cudaFree (workspace)");
  }
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, want);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    if (e == cudaErrorMemoryAllocation) {
      std::ostringstream os;
      os << "out of GPU memory: cannot allocate " << want << " bytes of " << what;
      throw_op(op, os.str());
    }
    throw_cuda(op, e, "cudaMalloc (workspace)");
  }
  a.ptr = p;
  a.cap = want;
  return p;
}

}  // namespace

void* workspace(size_t bytes, const char* op, Ws area) { return grow(g_workspace[static_cast<int>(area)], bytes, op, "workspace"); }

int32_t* stage_ints(const int32_t* host, int64_t n, const char* op, int slot) {
  Area& a = g_staging[slot & 1];
  void* p = grow(a, static_cast<size_t>(n > 0 ? n : 1) * sizeof(int32_t), op, "token staging");
  if (n > 0) CRATE_CUDA_CHECK(op, cudaMemcpy(p, host, static_cast<size_t>(n) * sizeof(int32_t), cudaMemcpyHostToDevice));
  return static_cast<int32_t*>(p);
}

// ---- precision -----------------------------------------------------------------------------------------

namespace {
Precision g_precision = [] {
  const char* s = std::getenv("CRATE_CUDA_PRECISION");
  return (s && std::strcmp(s, "tf32") == 0) ? Precision::kTf32 : Precision::kFp32;
}();
}  // namespace

void set_precision(Precision p) { g_precision = p; }
Precision precision() { return g_precision; }

}  // namespace cuda
}  // namespace crate
