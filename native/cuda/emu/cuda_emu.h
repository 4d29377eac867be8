// A small CUDA emulator for machines without a GPU: compiles the kernels of native/cuda/*.cu as plain
// C++ (g++) and runs them on the CPU, one thread block at a time, every CUDA thread a cooperative
// fiber (ucontext). __syncthreads() and warp shuffles are real barriers between the fibers, so index
// math, tiling, shared-memory use, barriers and shuffles execute as written, in a fixed schedule.
//
// What it checks: kernel logic (which element each thread loads, stores and reduces; causal masks;
// split-K; tile edges) against the CPU twin, through the same conformance harness. What it cannot:
// timing, occupancy, real memory ordering, bank conflicts, float rounding of the hardware's
// intrinsics (exp2f etc. are the host libm's here), the TF32 tensor-core kernel (not emulated).
//
// Used by scripts/check-cuda.sh --emulate: launches `kernel<<<grid, block>>>(args)` are rewritten to
// `::emu::launch(grid, block, [&] { kernel(args); })` by native/cuda/emu/rewrite_launches.py, and this
// header is force-included (-include) with CRATE_CUDA_EMULATION defined.
#pragma once

#include <math.h>
#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <type_traits>
#include <vector>

#define CRATE_CUDA_EMULATION 1

inline int g_last_error = 0;  // the emulated cudaGetLastError() state

// ---- qualifiers ----------------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

// ---- vector types --------------------------------------------------------------------------------------
struct float4 {
  float x, y, z, w;
};
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct uint3 {
  unsigned x, y, z;
};

namespace emu {

// ---- fibers ----------------------------------------------------------------------------------------------

enum class St { kReady, kBlockBarrier, kWarpBarrier, kDone };

struct Fiber {
  ucontext_t ctx;
  St st = St::kReady;
};

struct State {
  std::vector<Fiber> fibers;
  std::vector<std::vector<char>> stacks;
  ucontext_t sched;
  int cur = -1;
  int nthreads = 0;
  dim3 block, grid;
  uint3 bidx{0, 0, 0};
  const std::function<void()>* body = nullptr;
  uint64_t slots[1024];  // warp shuffle exchange, one 8-byte slot per thread
};

inline State& st() {
  static State s;
  return s;
}

inline void fiber_entry() {
  State& s = st();
  (*s.body)();
  s.fibers[s.cur].st = St::kDone;
  swapcontext(&s.fibers[s.cur].ctx, &s.sched);
}

inline void yield_to_scheduler() {
  State& s = st();
  swapcontext(&s.fibers[s.cur].ctx, &s.sched);
}

inline void block_barrier() {
  st().fibers[st().cur].st = St::kBlockBarrier;
  yield_to_scheduler();
}

inline void warp_barrier() {
  st().fibers[st().cur].st = St::kWarpBarrier;
  yield_to_scheduler();
}

/** Releases barriers whose participants (all threads not yet done) have all arrived; false on deadlock. */
inline bool release_barriers() {
  State& s = st();
  bool any_ready = false;
  // block barrier
  bool all_block = true, some_block = false;
  for (auto& f : s.fibers) {
    if (f.st == St::kDone) continue;
    if (f.st == St::kBlockBarrier)
      some_block = true;
    else
      all_block = false;
  }
  if (some_block && all_block) {
    for (auto& f : s.fibers)
      if (f.st == St::kBlockBarrier) f.st = St::kReady;
    return true;
  }
  // warp barriers
  for (int w0 = 0; w0 < s.nthreads; w0 += 32) {
    const int w1 = std::min(s.nthreads, w0 + 32);
    bool all = true, some = false;
    for (int t = w0; t < w1; ++t) {
      const St x = s.fibers[t].st;
      if (x == St::kDone) continue;
      if (x == St::kWarpBarrier)
        some = true;
      else
        all = false;
    }
    if (some && all) {
      for (int t = w0; t < w1; ++t)
        if (s.fibers[t].st == St::kWarpBarrier) s.fibers[t].st = St::kReady;
      any_ready = true;
    }
  }
  return any_ready;
}

inline void run_block(const std::function<void()>& body) {
  State& s = st();
  const int n = s.nthreads;
  constexpr size_t kStack = 256 * 1024;
  if (static_cast<int>(s.stacks.size()) < n) s.stacks.resize(n);
  s.fibers.assign(n, Fiber{});
  s.body = &body;
  for (int t = 0; t < n; ++t) {
    if (s.stacks[t].empty()) s.stacks[t].resize(kStack);
    getcontext(&s.fibers[t].ctx);
    s.fibers[t].ctx.uc_stack.ss_sp = s.stacks[t].data();
    s.fibers[t].ctx.uc_stack.ss_size = kStack;
    s.fibers[t].ctx.uc_link = nullptr;
    makecontext(&s.fibers[t].ctx, fiber_entry, 0);
    s.fibers[t].st = St::kReady;
  }
  // CRATE_CUDA_EMU_ORDER=reverse runs the threads between barriers last-to-first: a kernel that reads
  // shared memory another thread writes without a barrier in between then gives different results.
  static const bool reverse = [] {
    const char* e = std::getenv("CRATE_CUDA_EMU_ORDER");
    return e && std::strcmp(e, "reverse") == 0;
  }();
  for (;;) {
    bool ran = false, alive = false;
    for (int k = 0; k < n; ++k) {
      const int t = reverse ? n - 1 - k : k;
      if (s.fibers[t].st == St::kReady) {
        s.cur = t;
        swapcontext(&s.sched, &s.fibers[t].ctx);
        ran = true;
      }
      if (s.fibers[t].st != St::kDone) alive = true;
    }
    if (!alive) break;
    if (!release_barriers() && !ran) {
      std::fprintf(stderr, "cuda_emu: deadlock (threads wait at barriers that cannot complete)\n");
      std::abort();
    }
  }
  s.cur = -1;
}

/** kernel<<<grid, block>>>(...) */
template <class F>
void launch(dim3 grid, dim3 block, F&& kernel_call) {
  State& s = st();
  const long long threads = 1LL * block.x * block.y * block.z;
  if (threads <= 0 || threads > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0) {
    ::g_last_error = 9;  // cudaErrorInvalidConfiguration
    return;
  }
  s.block = block;
  s.grid = grid;
  s.nthreads = static_cast<int>(threads);
  const std::function<void()> body = [&] { kernel_call(); };
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        s.bidx = uint3{x, y, z};
        run_block(body);
      }
}

inline uint3 thread_idx() {
  const State& s = st();
  const unsigned t = static_cast<unsigned>(s.cur);
  return uint3{t % s.block.x, (t / s.block.x) % s.block.y, t / (s.block.x * s.block.y)};
}
inline uint3 block_idx() { return st().bidx; }
inline dim3 block_dim() { return st().block; }
inline dim3 grid_dim() { return st().grid; }

template <class T>
T shfl_xor(T v, int mask) {
  static_assert(sizeof(T) <= 8, "8-byte shuffles at most");
  State& s = st();
  const int t = s.cur, lane = t & 31, base = t - lane;
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  s.slots[t] = bits;
  warp_barrier();
  const int src = base + ((lane ^ mask) & 31);
  T r;
  std::memcpy(&r, &s.slots[src], sizeof(T));
  warp_barrier();
  return r;
}

}  // namespace emu

#define threadIdx (::emu::thread_idx())
#define blockIdx (::emu::block_idx())
#define blockDim (::emu::block_dim())
#define gridDim (::emu::grid_dim())

inline void __syncthreads() { ::emu::block_barrier(); }
inline void __syncwarp(unsigned = 0xffffffffu) { ::emu::warp_barrier(); }
template <class T>
inline T __shfl_xor_sync(unsigned, T v, int mask) {
  return ::emu::shfl_xor(v, mask);
}
inline float __int_as_float(int i) {
  float f;
  std::memcpy(&f, &i, 4);
  return f;
}
[[noreturn]] inline void __trap() {
  std::fprintf(stderr, "cuda_emu: __trap()\n");
  std::abort();
}
template <class A, class B>
inline auto min(A a, B b) -> typename std::common_type<A, B>::type {
  return a < b ? a : b;
}
template <class A, class B>
inline auto max(A a, B b) -> typename std::common_type<A, B>::type {
  return a < b ? b : a;
}

// ---- runtime API (host memory stands in for device memory) ---------------------------------------------

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorNoDevice = 100,
  cudaErrorInsufficientDriver = 35,
  cudaErrorIllegalAddress = 700,
  cudaErrorAssert = 710,
  cudaErrorLaunchFailure = 719,
  cudaErrorNoKernelImageForDevice = 209,
};
enum cudaMemcpyKind { cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
typedef void* cudaStream_t;

struct cudaDeviceProp {
  char name[256];
  int major, minor, multiProcessorCount;
  size_t totalGlobalMem;
};

inline cudaError_t cudaGetLastError() {
  const int e = g_last_error;
  g_last_error = 0;
  return static_cast<cudaError_t>(e);
}
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
inline cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}
inline cudaError_t cudaDriverGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) {
  std::memset(p, 0, sizeof *p);
  std::snprintf(p->name, sizeof p->name, "CPU emulator (native/cuda/emu)");
  p->major = 9;
  p->minor = 0;
  p->multiProcessorCount = 132;
  p->totalGlobalMem = size_t(16) << 30;
  return cudaSuccess;
}
inline cudaError_t cudaMalloc(void** p, size_t bytes) {
  if (bytes > (size_t(64) << 30)) return cudaErrorMemoryAllocation;
  *p = std::malloc(bytes);
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
template <class T>
inline cudaError_t cudaMalloc(T** p, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(p), bytes);
}
inline cudaError_t cudaFree(void* p) {
  std::free(p);
  return cudaSuccess;
}
inline cudaError_t cudaMemset(void* p, int v, size_t n) {
  std::memset(p, v, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind) {
  std::memmove(d, s, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind k, cudaStream_t = nullptr) { return cudaMemcpy(d, s, n, k); }
// Streams and events: the emulator runs every launch and copy at once, in program order, which is
// one valid schedule of any stream/event graph; so they are handles that order nothing.
typedef void* cudaEvent_t;
constexpr unsigned cudaStreamNonBlocking = 0x01, cudaEventDisableTiming = 0x02;
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  *s = reinterpret_cast<cudaStream_t>(std::malloc(1));
  return *s ? cudaSuccess : cudaErrorMemoryAllocation;
}
inline cudaError_t cudaStreamDestroy(cudaStream_t s) {
  std::free(s);
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) {
  *e = std::malloc(1);
  return *e ? cudaSuccess : cudaErrorMemoryAllocation;
}
inline cudaError_t cudaEventDestroy(cudaEvent_t e) {
  std::free(e);
  return cudaSuccess;
}
inline cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t = nullptr) { return cudaSuccess; }
inline cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned = 0) { return cudaSuccess; }
inline cudaError_t cudaMemGetInfo(size_t* fr, size_t* tot) {
  *fr = size_t(16) << 30;
  *tot = size_t(16) << 30;
  return cudaSuccess;
}
inline const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    default: return "cudaError(emulated)";
  }
}
inline const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    default: return "emulated error";
  }
}
