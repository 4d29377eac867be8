// NCCL for the `nccl` communicator (src/distributed/nccl.ts), loaded at run time: dlopen of
// libnccl.so.2, so neither the build nor a machine without NCCL needs its headers or library. The few
// types and functions used are declared here from NCCL's documented C API (nccl.h, "Collective
// Communication Functions"): ncclUniqueId is 128 opaque bytes, ncclComm_t an opaque pointer,
// ncclResult_t / ncclDataType_t / ncclRedOp_t plain enums (ncclSuccess = 0, ncclUint8 = 1,
// ncclFloat32 = 7, ncclSum = 0).
//
// One communicator per process (one rank per GPU). Buffers handed in are HOST buffers (the
// communicator interface's Float32Array / bytes): they are staged through a device scratch buffer,
// the collective runs on the legacy default stream, and the result is copied back. Every call
// blocks until its collective is done. Errors throw crate::cuda::Error naming the NCCL call and
// NCCL's own error string.
#include <dlfcn.h>

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
void* g_scratch = nullptr;
size_t g_scratch_bytes = 0;

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

void* scratch(size_t bytes) {
  if (bytes > g_scratch_bytes) {
    if (g_scratch) check_cuda("nccl scratch", cudaFree(g_scratch));
    g_scratch = nullptr;
    g_scratch_bytes = 0;
    check_cuda("nccl scratch", cudaMalloc(&g_scratch, bytes));
    g_scratch_bytes = bytes;
  }
  return g_scratch;
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
  check_nccl("ncclCommInitRank", g_nccl.commInitRank(&g_comm, nranks, id, rank));
}

void nccl_all_reduce_sum(float* host, size_t n) {
  require_comm("nccl_all_reduce_sum");
  void* d = scratch(n * sizeof(float));
  check_cuda("nccl_all_reduce_sum upload", cudaMemcpy(d, host, n * sizeof(float), cudaMemcpyHostToDevice));
  check_nccl("ncclAllReduce", g_nccl.allReduce(d, d, n, kNcclFloat32, kNcclSum, g_comm, nullptr));
  check_cuda("nccl_all_reduce_sum download", cudaMemcpy(host, d, n * sizeof(float), cudaMemcpyDeviceToHost));
}

void nccl_all_gather(const void* send, void* recv, size_t bytes, int nranks) {
  require_comm("nccl_all_gather");
  char* d = static_cast<char*>(scratch(bytes * static_cast<size_t>(nranks + 1)));
  char* dsend = d + bytes * static_cast<size_t>(nranks);
  check_cuda("nccl_all_gather upload", cudaMemcpy(dsend, send, bytes, cudaMemcpyHostToDevice));
  check_nccl("ncclAllGather", g_nccl.allGather(dsend, d, bytes, kNcclUint8, g_comm, nullptr));
  check_cuda("nccl_all_gather download", cudaMemcpy(recv, d, bytes * static_cast<size_t>(nranks), cudaMemcpyDeviceToHost));
}

void nccl_broadcast(void* host, size_t bytes, int root) {
  require_comm("nccl_broadcast");
  void* d = scratch(bytes);
  check_cuda("nccl_broadcast upload", cudaMemcpy(d, host, bytes, cudaMemcpyHostToDevice));
  check_nccl("ncclBroadcast", g_nccl.broadcast(d, d, bytes, kNcclUint8, root, g_comm, nullptr));
  check_cuda("nccl_broadcast download", cudaMemcpy(host, d, bytes, cudaMemcpyDeviceToHost));
}

void nccl_destroy() {
  if (g_comm) g_nccl.commDestroy(g_comm);
  g_comm = nullptr;
  if (g_scratch) cudaFree(g_scratch);
  g_scratch = nullptr;
  g_scratch_bytes = 0;
}

}  // namespace cuda
}  // namespace crate
