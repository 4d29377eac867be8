// NCCL for the `nccl` communicator (src/distributed/nccl.ts), loaded at run time: dlopen of
// libnccl.so.2, so neither the build nor a machine without NCCL needs its headers or library. The few
// types and functions used are declared here from NCCL's documented C API (nccl.h, "Collective
// Communication Functions"): ncclUniqueId is 128 opaque bytes, ncclComm_t an opaque pointer,
// ncclResult_t / ncclDataType_t / ncclRedOp_t plain enums (ncclSuccess = 0, ncclUint8 = 1,
// ncclFloat32 = 7, ncclSum = 0).
//
// One communicator per process (one rank per GPU), and one CUDA stream of its own (non-blocking, so
// that it runs beside the operators' legacy default stream) on which every NCCL call is enqueued, in
// the order the calls are made: NCCL requires the same order on every rank, and one stream keeps it.
//
// Two kinds of calls:
//   - host buffers (the communicator interface's Float32Array / bytes): staged through a device
//     scratch buffer, and the call blocks until the result is back on the host;
//   - device buffers (the CUDA backend's: the trainer's flat gradient and its accumulator), the
//     *_device calls: nothing crosses to the host. Each waits on the device for the operators
//     queued so far (an event recorded on the legacy stream), enqueues the collective on NCCL's
//     stream and returns at once, so the backward of the layers below runs while NCCL moves a
//     finished bucket; nccl_join() makes the legacy stream wait for every collective enqueued.
//     The ordered reduction gathers every rank's contribution (ncclAllGather) into device scratch
//     and adds them onto the accumulator in rank order, one float32 add per rank and element, in a
//     kernel on NCCL's stream: the same left fold as the host path (and as one process), bitwise.
// Counters (nccl_counters) say which path ran and how many bytes were staged through the host.
// Errors throw crate::cuda::Error naming the NCCL or CUDA call and its error string.
#include <dlfcn.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "ops_cuda.h"

namespace crate {
namespace cuda {
namespace {

typedef int ncclResult_t;
typedef void* ncclComm_t;
struct ncclUniqueId {
  char internal[128];
};
constexpr int kNcclUint8 = 1, kNcclFloat32 = 7, kNcclSum = 0;

struct Nccl {
  ncclResult_t (*getUniqueId)(ncclUniqueId*) = nullptr;
  ncclResult_t (*commInitRank)(ncclComm_t*, int, ncclUniqueId, int) = nullptr;
  ncclResult_t (*allReduce)(const void*, void*, size_t, int, int, ncclComm_t, cudaStream_t) = nullptr;
  ncclResult_t (*allGather)(const void*, void*, size_t, int, ncclComm_t, cudaStream_t) = nullptr;
  ncclResult_t (*broadcast)(const void*, void*, size_t, int, int, ncclComm_t, cudaStream_t) = nullptr;
  ncclResult_t (*commDestroy)(ncclComm_t) = nullptr;
  const char* (*getErrorString)(ncclResult_t) = nullptr;
  ncclResult_t (*getVersion)(int*) = nullptr;
};

Nccl g_nccl;
NcclStatus g_status;
bool g_tried = false;
ncclComm_t g_comm = nullptr;
int g_nranks = 0;
cudaStream_t g_stream = nullptr;  // NCCL's stream
cudaEvent_t g_compute_done = nullptr, g_comm_done = nullptr;
NcclCounters g_counters;

// Growable device scratch: one for the host path's staging, one for the device path's gathers
// (reallocating synchronizes the device, so no collective still uses the old one).
struct Scratch {
  void* p = nullptr;
  size_t bytes = 0;
  void* get(size_t want, const char* what);
  void release() {
    if (p) cudaFree(p);
    p = nullptr;
    bytes = 0;
  }
};
Scratch g_host_scratch, g_device_scratch;

void check_nccl(const char* what, ncclResult_t r) {
  if (r != 0) throw Error(std::string(what) + " failed: " + (g_nccl.getErrorString ? g_nccl.getErrorString(r) : "NCCL error " + std::to_string(r)));
}

void check_cuda(const char* what, cudaError_t e) {
  if (e != cudaSuccess) throw Error(std::string(what) + ": CUDA error " + cudaGetErrorString(e));
}

void require_comm(const char* what) {
  if (!g_status.loaded) throw Error(std::string(what) + ": NCCL is not loaded (" + g_status.reason + ")");
  if (g_comm == nullptr) throw Error(std::string(what) + ": the NCCL communicator is not initialised");
}

void* Scratch::get(size_t want, const char* what) {
  if (want > bytes) {
    if (p) check_cuda(what, cudaFree(p));
    p = nullptr;
    bytes = 0;
    check_cuda(what, cudaMalloc(&p, want));
    bytes = want;
  }
  return p;
}

/** Host path: the collective's device copy of `bytes` host bytes (counted). */
void* stage(size_t bytes) {
  ++g_counters.host_calls;
  return g_host_scratch.get(bytes, "nccl host staging");
}

void copy_in(const char* what, void* d, const void* host, size_t bytes) {
  g_counters.host_bytes += bytes;
  check_cuda(what, cudaMemcpyAsync(d, host, bytes, cudaMemcpyHostToDevice, g_stream));
}
void copy_out(const char* what, void* host, const void* d, size_t bytes) {
  g_counters.host_bytes += bytes;
  check_cuda(what, cudaMemcpyAsync(host, d, bytes, cudaMemcpyDeviceToHost, g_stream));
  check_cuda(what, cudaStreamSynchronize(g_stream));
}

/** Device path: NCCL's stream waits for every operator queued on the legacy stream so far. */
void after_compute(const char* what) {
  ++g_counters.device_calls;
  check_cuda(what, cudaEventRecord(g_compute_done, nullptr));
  check_cuda(what, cudaStreamWaitEvent(g_stream, g_compute_done, 0));
}

// acc[i] <- ((acc[i] + all[0][i]) + all[1][i]) + ... in float32, rank after rank (adds alone are never
// contracted, so this is the host fold's arithmetic exactly).
__global__ void fold_ranks_kernel(float* acc, const float* all, int64_t n, int ranks) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float a = acc[i];
    for (int r = 0; r < ranks; ++r) a = a + all[r * n + i];
    acc[i] = a;
  }
}

template <typename F>
bool sym(void* lib, const char* name, F* out) {
  *out = reinterpret_cast<F>(dlsym(lib, name));
  return *out != nullptr;
}

}  // namespace

const NcclStatus& nccl_load() {
  if (g_tried) return g_status;
  g_tried = true;
  void* lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_GLOBAL);
  if (!lib) {
    const char* e = dlerror();
    g_status.reason = std::string("dlopen(libnccl.so.2) failed: ") + (e ? e : "unknown error") +
                      " (install NCCL, e.g. the libnccl2 package, or put its directory on LD_LIBRARY_PATH)";
    return g_status;
  }
  Nccl n;
  const char* missing = nullptr;
  if (!sym(lib, "ncclGetUniqueId", &n.getUniqueId)) missing = "ncclGetUniqueId";
  if (!sym(lib, "ncclCommInitRank", &n.commInitRank)) missing = "ncclCommInitRank";
  if (!sym(lib, "ncclAllReduce", &n.allReduce)) missing = "ncclAllReduce";
  if (!sym(lib, "ncclAllGather", &n.allGather)) missing = "ncclAllGather";
  if (!sym(lib, "ncclBroadcast", &n.broadcast)) missing = "ncclBroadcast";
  if (!sym(lib, "ncclCommDestroy", &n.commDestroy)) missing = "ncclCommDestroy";
  if (!sym(lib, "ncclGetErrorString", &n.getErrorString)) missing = "ncclGetErrorString";
  if (!sym(lib, "ncclGetVersion", &n.getVersion)) missing = "ncclGetVersion";
  if (missing) {
    g_status.reason = std::string("libnccl.so.2 has no ") + missing + " (NCCL 2.x expected)";
    return g_status;
  }
  g_nccl = n;
  int v = 0;
  if (g_nccl.getVersion(&v) == 0) g_status.version = v;
  g_status.loaded = true;
  return g_status;
}

void nccl_unique_id(uint8_t out[kNcclIdBytes]) {
  if (!nccl_load().loaded) throw Error("nccl_unique_id: NCCL is not loaded (" + g_status.reason + ")");
  ncclUniqueId id;
  check_nccl("ncclGetUniqueId", g_nccl.getUniqueId(&id));
  std::memcpy(out, id.internal, kNcclIdBytes);
}

void nccl_init(const uint8_t id_bytes[kNcclIdBytes], int nranks, int rank, int device) {
  if (!nccl_load().loaded) throw Error("nccl_init: NCCL is not loaded (" + g_status.reason + ")");
  if (g_comm) throw Error("nccl_init: already initialised");
#ifdef __CUDACC__
  check_cuda("cudaSetDevice", cudaSetDevice(device));
#else
  (void)device;
#endif
  ncclUniqueId id;
  std::memcpy(id.internal, id_bytes, kNcclIdBytes);
  check_cuda("nccl_init stream", cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking));
  check_cuda("nccl_init event", cudaEventCreateWithFlags(&g_compute_done, cudaEventDisableTiming));
  check_cuda("nccl_init event", cudaEventCreateWithFlags(&g_comm_done, cudaEventDisableTiming));
  check_nccl("ncclCommInitRank", g_nccl.commInitRank(&g_comm, nranks, id, rank));
  g_nranks = nranks;
}

void nccl_all_reduce_sum(float* host, size_t n) {
  require_comm("nccl_all_reduce_sum");
  void* d = stage(n * sizeof(float));
  copy_in("nccl_all_reduce_sum upload", d, host, n * sizeof(float));
  check_nccl("ncclAllReduce", g_nccl.allReduce(d, d, n, kNcclFloat32, kNcclSum, g_comm, g_stream));
  copy_out("nccl_all_reduce_sum download", host, d, n * sizeof(float));
}

void nccl_all_gather(const void* send, void* recv, size_t bytes, int nranks) {
  require_comm("nccl_all_gather");
  char* d = static_cast<char*>(stage(bytes * static_cast<size_t>(nranks + 1)));
  char* dsend = d + bytes * static_cast<size_t>(nranks);
  copy_in("nccl_all_gather upload", dsend, send, bytes);
  check_nccl("ncclAllGather", g_nccl.allGather(dsend, d, bytes, kNcclUint8, g_comm, g_stream));
  copy_out("nccl_all_gather download", recv, d, bytes * static_cast<size_t>(nranks));
}

void nccl_broadcast(void* host, size_t bytes, int root) {
  require_comm("nccl_broadcast");
  void* d = stage(bytes);
  copy_in("nccl_broadcast upload", d, host, bytes);
  check_nccl("ncclBroadcast", g_nccl.broadcast(d, d, bytes, kNcclUint8, root, g_comm, g_stream));
  copy_out("nccl_broadcast download", host, d, bytes);
}

void nccl_all_reduce_sum_device(float* buf, size_t n) {
  require_comm("nccl_all_reduce_sum_device");
  if (n == 0) return;
  after_compute("nccl_all_reduce_sum_device");
  check_nccl("ncclAllReduce", g_nccl.allReduce(buf, buf, n, kNcclFloat32, kNcclSum, g_comm, g_stream));
  g_counters.device_bytes += n * sizeof(float);
}

void nccl_all_reduce_ordered_device(float* acc, const float* contribution, size_t n) {
  require_comm("nccl_all_reduce_ordered_device");
  if (n == 0) return;
  const size_t bytes = n * sizeof(float);
  // before after_compute: a reallocation synchronizes the device, which only delays this call
  float* all = static_cast<float*>(g_device_scratch.get(bytes * static_cast<size_t>(g_nranks), "nccl_all_reduce_ordered_device scratch"));
  after_compute("nccl_all_reduce_ordered_device");
  check_nccl("ncclAllGather", g_nccl.allGather(contribution, all, n, kNcclFloat32, g_comm, g_stream));
  const int64_t blocks = std::min<int64_t>((static_cast<int64_t>(n) + 255) / 256, 4096);
  fold_ranks_kernel<<<static_cast<unsigned>(blocks), 256, 0, g_stream>>>(acc, all, static_cast<int64_t>(n), g_nranks);
  check_cuda("nccl_all_reduce_ordered_device fold", cudaGetLastError());
  g_counters.device_bytes += bytes * static_cast<size_t>(g_nranks);
}

void nccl_join() {
  if (g_stream == nullptr) return;
  check_cuda("nccl_join", cudaEventRecord(g_comm_done, g_stream));
  check_cuda("nccl_join", cudaStreamWaitEvent(nullptr, g_comm_done, 0));
}

const NcclCounters& nccl_counters() { return g_counters; }

void nccl_destroy() {
  if (g_stream) cudaStreamSynchronize(g_stream);
  if (g_comm) g_nccl.commDestroy(g_comm);
  g_comm = nullptr;
  g_nranks = 0;
  g_host_scratch.release();
  g_device_scratch.release();
  if (g_compute_done) cudaEventDestroy(g_compute_done);
  if (g_comm_done) cudaEventDestroy(g_comm_done);
  if (g_stream) cudaStreamDestroy(g_stream);
  g_compute_done = g_comm_done = nullptr;
  g_stream = nullptr;
}

}  // namespace cuda
}  // namespace crate
