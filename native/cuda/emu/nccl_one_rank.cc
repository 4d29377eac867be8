// A one-rank stand-in for libnccl.so.2, for the CPU emulator only (scripts/check-cuda.sh --emulate):
// the emulator's "device" memory is host memory, and with one rank every NCCL collective is a copy
// of the send buffer into the receive buffer. It lets test/dist-nccl.test.ts run the nccl
// communicator's code (id, init, the host path's staging, the device path's pointers, its fold
// kernel and counters) without a GPU. It is not NCCL: more than one rank is refused.
#include <cstddef>
#include <cstring>

namespace {
int g_token = 0;
size_t type_bytes(int t) {
  switch (t) {
    case 0:  // ncclInt8
    case 1:  // ncclUint8
      return 1;
    case 6:  // ncclFloat16
      return 2;
    case 2:  // ncclInt32
    case 3:  // ncclUint32
    case 7:  // ncclFloat32
      return 4;
    default: return 8;
  }
}
}  // namespace

extern "C" {
struct ncclUniqueId {
  char internal[128];
};
int ncclGetUniqueId(ncclUniqueId* id) {
  std::memset(id->internal, 0x5a, sizeof id->internal);
  return 0;
}
int ncclCommInitRank(void** comm, int nranks, ncclUniqueId, int rank) {
  if (nranks != 1 || rank != 0) return 4;  // ncclInvalidArgument
  *comm = &g_token;
  return 0;
}
int ncclAllReduce(const void* s, void* r, size_t count, int type, int, void*, void*) {
  std::memmove(r, s, count * type_bytes(type));
  return 0;
}
int ncclAllGather(const void* s, void* r, size_t count, int type, void*, void*) {
  std::memmove(r, s, count * type_bytes(type));
  return 0;
}
int ncclBroadcast(const void* s, void* r, size_t count, int type, int, void*, void*) {
  std::memmove(r, s, count * type_bytes(type));
  return 0;
}
int ncclCommDestroy(void*) { return 0; }
const char* ncclGetErrorString(int) { return "invalid argument (the emulator's one-rank NCCL stand-in)"; }
int ncclGetVersion(int* v) {
  *v = 0;
  return 0;
}
}
