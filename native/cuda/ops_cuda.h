// The CUDA twin of native/ops.h: the same operators (the generated list of native/ops.json) in
// namespace crate::cuda, taking DEVICE pointers (float32, row-major, contiguous) and explicit sizes.
// This header needs no CUDA headers, so the Node-API glue (binding_cuda.cc) and the conformance
// harness include it as plain C++.
//
// Conventions (as the CPU twin): forward functions write their outputs; backward functions WRITE
// activation gradients and ACCUMULATE (+=) parameter gradients; attention saves one logsumexp per
// (batch, head, row) in (B, NH, T) (the same layout and values as the CPU twin); ISTA's codes buffer
// (steps, N, H) keeps every iterate; cross-entropy ignores target -1.
//
// Exceptions: token ids (idx) and targets are HOST pointers (they arrive from JavaScript as an
// Int32Array and are small); they are copied to the device inside the call. Scalars returned to the
// host (sum_squares, all_finite, cross_entropy_forward) synchronize the device.
//
// Errors: every CUDA call and kernel launch is checked; a failure throws crate::cuda::Error (a
// std::runtime_error) whose message names the operator and the CUDA error, e.g.
// "linear_forward: CUDA error cudaErrorIllegalAddress (an illegal memory access was encountered)".
// Kernels run asynchronously on the legacy default stream, so an error raised by a kernel may only be
// seen by a later call; set CRATE_CUDA_SYNC=1 to synchronize after every launch and pin it down.
//
// Determinism: no atomics; every reduction runs in a fixed order that depends only on the shapes
// (not on the GPU model), so the same inputs give bitwise-identical outputs run after run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace crate {
namespace cuda {

/** A failed CUDA call or launch, or an unsupported argument; the message names the operator. */
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// ---- NCCL, loaded at run time (nccl.cu) --------------------------------------------------------------

/** Bytes of an ncclUniqueId. */
constexpr int kNcclIdBytes = 128;
struct NcclStatus {
  bool loaded = false;
  /** Why not, when not loaded. */
  std::string reason;
  /** NCCL's version code (e.g. 22304), 0 if unknown. */
  int version = 0;
};
/** dlopen("libnccl.so.2") once and resolve the calls used; never throws. */
const NcclStatus& nccl_load();
void nccl_unique_id(uint8_t out[kNcclIdBytes]);
/** One communicator per process: this rank of nranks, on CUDA device `device`. */
void nccl_init(const uint8_t id[kNcclIdBytes], int nranks, int rank, int device);
/** Host buffers staged through the device; each call blocks until the collective is done. */
void nccl_all_reduce_sum(float* host, size_t n);
void nccl_all_gather(const void* send, void* recv, size_t bytes_per_rank, int nranks);
void nccl_broadcast(void* host, size_t bytes, int root);
/**
 * Device buffers, enqueued on NCCL's stream after the operators queued so far; they return at once.
 * buf <- the sum over ranks (NCCL's order); acc <- ((acc + c_0) + c_1) + ... in rank order (bitwise
 * the host path's fold). nccl_join: the operators queued after it wait for every collective so far.
 */
void nccl_all_reduce_sum_device(float* buf, size_t n);
void nccl_all_reduce_ordered_device(float* acc, const float* contribution, size_t n);
void nccl_join();
/** Which path ran: calls of each, and the bytes staged through the host (host path) or reduced in place (device path). */
struct NcclCounters {
  uint64_t host_calls = 0, host_bytes = 0, device_calls = 0, device_bytes = 0;
};
const NcclCounters& nccl_counters();
void nccl_destroy();

// ---- device, memory, precision (memory.cu) ---------------------------------------------------------

struct Availability {
  bool available = false;
  /** Why not, when unavailable: "no CUDA device", "no NVIDIA driver ...", ... */
  std::string reason;
  std::string device;  // e.g. "NVIDIA H100 80GB HBM3"
  int cc_major = 0, cc_minor = 0;
  int sm_count = 0;
  size_t total_bytes = 0;
  int runtime_version = 0;  // e.g. 13000
  int driver_version = 0;   // 0 when no driver is installed
};

/** Probes the driver and device 0 once (cached); never throws. */
const Availability& cuda_available();

/** cudaMalloc + zero fill of n floats; out of memory throws Error naming op and the bytes asked for. */
float* device_alloc(int64_t n, const char* op = "alloc");
void device_free(float* p);
/** Host <-> device copies of n floats (synchronous w.r.t. the host). */
void upload(float* dst_device, const float* src_host, int64_t n, const char* op = "upload");
void download(float* dst_host, const float* src_device, int64_t n, const char* op = "download");
/** Blocks until all queued work is done; throws if any of it failed. */
void synchronize(const char* op = "synchronize");
/** Free and total device memory in bytes. */
void memory_info(size_t* free_bytes, size_t* total_bytes);

/** Matrix-product precision: strict float32 SIMT kernels (default) or TF32 tensor cores. */
enum class Precision { kFp32 = 0, kTf32 = 1 };
void set_precision(Precision p);
Precision precision();

// ---- the operators of the table (native/ops.json; generated prototypes, device pointers) -----------
#include "../generated/ops_decl.inc"

// ---- helpers that are not operators of the table ---------------------------------------------------
/** dst[j] += sum_n src[n*cols + j], in double, fixed-order two-stage column reduction (elementwise.cu). */
void column_sums_accumulate(float* dst, const float* src, int64_t rows, int64_t cols);
/** C (M x N, ldc) = alpha op(A) op(B) (+ C if accumulate), as native/gemm.h's sgemm (linear.cu). */
void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, bool accumulate,
           float* C, int64_t ldc);
/** Largest head width p = C/NH the attention kernels accept (mssa.cu). */
constexpr int64_t kMaxHeadWidth = 256;

}  // namespace cuda
}  // namespace crate
