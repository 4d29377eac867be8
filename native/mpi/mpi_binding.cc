// The optional MPI addon (build/mpi/crate_mpi.node): the collectives src/distributed/mpi.ts needs,
// and nothing else. Built by scripts/build-mpi.mjs with the MPI compiler wrapper (mpicxx), against
// whatever MPI the machine has (Open MPI, MPICH); never part of `npm install`, so a machine without
// MPI installs and runs everything else.
//
// Collectives run on a libuv worker thread (Napi::AsyncWorker) and resolve a Promise, so the
// JavaScript thread stays free while a rank waits for its peers: a signal from the launcher, or
// the check that same-host peers are still alive, can run meanwhile; or it computes: the trainer
// starts the reduction of a gradient bucket as soon as the backward has finished it, and goes on
// with the backward of the layers below while MPI moves the bucket (src/distributed/reducer.ts).
// Several collectives may therefore be pending at once. Each takes a ticket when it is started (on
// the JavaScript thread) and runs only when every earlier ticket has finished, so the collectives
// run one at a time (MPI_THREAD_SERIALIZED is enough) and in the order they were started, which is
// the same on every rank: MPI requires that, and it keeps the result independent of which libuv
// thread picked which collective up. libuv hands queued work to its threads in FIFO order, so the
// lowest waiting ticket always holds a thread; the others sleep on a condition variable.
//
// The ordered reduction (allReduceOrdered) is what makes N ranks bitwise equal to one: every rank
// receives every rank's buffer (MPI_Allgather) and adds them onto its accumulator one rank after the
// other, acc = ((acc + b_0) + b_1) + ..., in IEEE float32 (or float64) with no contraction. The
// sum is then the same left fold a single process computes over the same micro-batches in order.
#include <dlfcn.h>
#include <mpi.h>
#include <napi.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

bool g_initialised = false;
bool g_finalised = false;
int g_rank = 0, g_size = 1, g_local_rank = 0, g_local_size = 1;

std::string mpi_error(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, buf, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(buf, static_cast<size_t>(len));
}

void require_init(const Napi::Env& env) {
  if (!g_initialised || g_finalised) throw Napi::Error::New(env, "MPI is not initialised (call init() first)");
}

// The bytes of a typed array or Buffer argument.
struct Bytes {
  uint8_t* data = nullptr;
  size_t size = 0;
  int elem = 1;  // 1: bytes, 4: float32, 8: float64
};

Bytes bytes_of(const Napi::Env& env, const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray()) throw Napi::TypeError::New(env, std::string(what) + " must be a typed array");
  auto ta = v.As<Napi::TypedArray>();
  Bytes b;
  b.data = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  b.size = ta.ByteLength();
  switch (ta.TypedArrayType()) {
    case napi_float32_array: b.elem = 4; break;
    case napi_float64_array: b.elem = 8; break;
    case napi_uint8_array:
    case napi_int8_array:
    case napi_uint8_clamped_array: b.elem = 1; break;
    default: throw Napi::TypeError::New(env, std::string(what) + " must be a Float32Array, Float64Array or Uint8Array");
  }
  return b;
}

// The order in which collectives were started (tickets, taken on the JavaScript thread) and the
// ticket allowed to run now.
std::mutex g_order_mutex;
std::condition_variable g_order_cv;
uint64_t g_next_ticket = 0, g_serving = 0;

// A collective run off the JavaScript thread, after every collective started before it; resolves
// its promise with Result().
class Collective : public Napi::AsyncWorker {
 public:
  explicit Collective(Napi::Env env) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), ticket_(g_next_ticket++) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Keep(const Napi::Value& v) { refs_.emplace_back(Napi::Persistent(v.As<Napi::Object>())); }

 protected:
  void Check(int rc, const char* what) {
    if (rc != MPI_SUCCESS) throw std::runtime_error(std::string(what) + " failed: " + mpi_error(rc));
  }
  void Execute() override {
    {
      std::unique_lock<std::mutex> lock(g_order_mutex);
      g_order_cv.wait(lock, [this] { return g_serving == ticket_; });
    }
    try {
      Run();
    } catch (const std::exception& e) {
      SetError(e.what());
    }
    {
      std::lock_guard<std::mutex> lock(g_order_mutex);
      ++g_serving;
    }
    g_order_cv.notify_all();
  }
  virtual void Run() = 0;
  virtual Napi::Value Result() { return Env().Undefined(); }
  void OnOK() override { deferred_.Resolve(Result()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::vector<Napi::ObjectReference> refs_;
  const uint64_t ticket_;
};

class AllReduceSum : public Collective {
 public:
  AllReduceSum(Napi::Env env, Bytes b) : Collective(env), b_(b) {}

 protected:
  void Run() override {
    MPI_Datatype t = b_.elem == 8 ? MPI_DOUBLE : MPI_FLOAT;
    Check(MPI_Allreduce(MPI_IN_PLACE, b_.data, static_cast<int>(b_.size / b_.elem), t, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
  }

 private:
  Bytes b_;
};

template <typename F>
void fold(F* acc, const F* all, size_t n, int ranks) {
  // One rank after the other, so that the result does not depend on how MPI grouped the data.
  for (int r = 0; r < ranks; ++r) {
    const F* src = all + static_cast<size_t>(r) * n;
    for (size_t i = 0; i < n; ++i) acc[i] = acc[i] + src[i];
  }
}

class AllReduceOrdered : public Collective {
 public:
  AllReduceOrdered(Napi::Env env, Bytes acc, Bytes contrib) : Collective(env), acc_(acc), contrib_(contrib) {}

 protected:
  void Run() override {
    const size_t n = contrib_.size / contrib_.elem;
    MPI_Datatype t = contrib_.elem == 8 ? MPI_DOUBLE : MPI_FLOAT;
    std::vector<uint8_t> all(contrib_.size * static_cast<size_t>(g_size));
    Check(MPI_Allgather(contrib_.data, static_cast<int>(n), t, all.data(), static_cast<int>(n), t, MPI_COMM_WORLD), "MPI_Allgather");
    if (contrib_.elem == 8)
      fold(reinterpret_cast<double*>(acc_.data), reinterpret_cast<const double*>(all.data()), n, g_size);
    else
      fold(reinterpret_cast<float*>(acc_.data), reinterpret_cast<const float*>(all.data()), n, g_size);
  }

 private:
  Bytes acc_, contrib_;
};

class Broadcast : public Collective {
 public:
  Broadcast(Napi::Env env, Bytes b, int root) : Collective(env), b_(b), root_(root) {}

 protected:
  void Run() override { Check(MPI_Bcast(b_.data, static_cast<int>(b_.size), MPI_BYTE, root_, MPI_COMM_WORLD), "MPI_Bcast"); }

 private:
  Bytes b_;
  int root_;
};

class Barrier : public Collective {
 public:
  explicit Barrier(Napi::Env env) : Collective(env) {}

 protected:
  void Run() override { Check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }
};

// Variable-length byte gather: to `root` (all = false) or to every rank (all = true). Resolves with
// an array of Buffers, one per rank, on the receiving ranks, else null.
class GatherBytes : public Collective {
 public:
  GatherBytes(Napi::Env env, Bytes b, int root, bool all) : Collective(env), b_(b), root_(root), all_(all) {}

 protected:
  void Run() override {
    if (b_.size > static_cast<size_t>(INT32_MAX)) throw std::runtime_error("gather: more than 2 GiB from one rank");
    int mine = static_cast<int>(b_.size);
    counts_.assign(g_size, 0);
    if (all_)
      Check(MPI_Allgather(&mine, 1, MPI_INT, counts_.data(), 1, MPI_INT, MPI_COMM_WORLD), "MPI_Allgather");
    else
      Check(MPI_Gather(&mine, 1, MPI_INT, counts_.data(), 1, MPI_INT, root_, MPI_COMM_WORLD), "MPI_Gather");
    receives_ = all_ || g_rank == root_;
    std::vector<int> displs(g_size, 0);
    int64_t total = 0;
    if (receives_) {
      for (int r = 0; r < g_size; ++r) {
        if (total > INT32_MAX) throw std::runtime_error("gather: more than 2 GiB in all");
        displs[r] = static_cast<int>(total);
        total += counts_[r];
      }
      if (total > INT32_MAX) throw std::runtime_error("gather: more than 2 GiB in all");
      out_.resize(static_cast<size_t>(total));
    }
    if (all_)
      Check(MPI_Allgatherv(b_.data, mine, MPI_BYTE, out_.data(), counts_.data(), displs.data(), MPI_BYTE, MPI_COMM_WORLD), "MPI_Allgatherv");
    else
      Check(MPI_Gatherv(b_.data, mine, MPI_BYTE, out_.data(), counts_.data(), displs.data(), MPI_BYTE, root_, MPI_COMM_WORLD), "MPI_Gatherv");
  }
  Napi::Value Result() override {
    Napi::Env env = Env();
    if (!receives_) return env.Null();
    auto arr = Napi::Array::New(env, g_size);
    size_t off = 0;
    for (int r = 0; r < g_size; ++r) {
      arr.Set(r, Napi::Buffer<uint8_t>::Copy(env, out_.data() + off, static_cast<size_t>(counts_[r])));
      off += static_cast<size_t>(counts_[r]);
    }
    return arr;
  }

 private:
  Bytes b_;
  int root_;
  bool all_;
  bool receives_ = false;
  std::vector<int> counts_;
  std::vector<uint8_t> out_;
};

// Open MPI loads its components (mca_*.so) with dlopen and expects libmpi's symbols to be global;
// Node loads an addon and its dependencies RTLD_LOCAL. Re-open the library that defines MPI_Init
// with RTLD_GLOBAL | RTLD_NOLOAD (it is already loaded; this only changes its visibility).
void promote_libmpi() {
  if (getenv("CRATE_TS_MPI_NO_PROMOTE")) return;  // lets a test show why the promotion is there
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&MPI_Init), &info) && info.dli_fname) dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (g_finalised) throw Napi::Error::New(env, "MPI was finalised; it cannot be initialised again in this process");
  if (!g_initialised) {
    promote_libmpi();
    int provided = 0;
    int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
    if (rc != MPI_SUCCESS) throw Napi::Error::New(env, "MPI_Init_thread failed: " + mpi_error(rc));
    if (provided < MPI_THREAD_SERIALIZED)
      throw Napi::Error::New(env, "this MPI library does not support MPI_THREAD_SERIALIZED (collectives run on a worker thread)");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    MPI_Comm local;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &local) == MPI_SUCCESS) {
      MPI_Comm_rank(local, &g_local_rank);
      MPI_Comm_size(local, &g_local_size);
      MPI_Comm_free(&local);
    }
    g_initialised = true;
  }
  char name[MPI_MAX_PROCESSOR_NAME];
  int len = 0;
  MPI_Get_processor_name(name, &len);
  char version[MPI_MAX_LIBRARY_VERSION_STRING];
  int vlen = 0;
  MPI_Get_library_version(version, &vlen);
  std::string v(version, static_cast<size_t>(vlen));
  if (auto nl = v.find_first_of(std::string("\n\0", 2)); nl != std::string::npos) v.resize(nl);
  auto o = Napi::Object::New(env);
  o.Set("rank", g_rank);
  o.Set("size", g_size);
  o.Set("localRank", g_local_rank);
  o.Set("localSize", g_local_size);
  o.Set("processor", std::string(name, static_cast<size_t>(len)));
  o.Set("library", v);
  return o;
}

Napi::Value AllReduceSumJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  require_init(env);
  Bytes b = bytes_of(env, info[0], "buffer");
  if (b.elem == 1) throw Napi::TypeError::New(env, "allReduceSum needs a Float32Array or Float64Array");
  auto* w = new AllReduceSum(env, b);
  w->Keep(info[0]);
  w->Queue();
  return w->Promise();
}

Napi::Value AllReduceOrderedJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  require_init(env);
  Bytes acc = bytes_of(env, info[0], "acc"), c = bytes_of(env, info[1], "contribution");
  if (acc.elem == 1 || acc.elem != c.elem || acc.size != c.size)
    throw Napi::TypeError::New(env, "allReduceOrdered needs two float arrays of the same type and length");
  auto* w = new AllReduceOrdered(env, acc, c);
  w->Keep(info[0]);
  w->Keep(info[1]);
  w->Queue();
  return w->Promise();
}

Napi::Value BroadcastJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  require_init(env);
  Bytes b = bytes_of(env, info[0], "buffer");
  int root = info[1].As<Napi::Number>().Int32Value();
  if (root < 0 || root >= g_size) throw Napi::RangeError::New(env, "broadcast: root out of range");
  auto* w = new Broadcast(env, b, root);
  w->Keep(info[0]);
  w->Queue();
  return w->Promise();
}

Napi::Value BarrierJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  require_init(env);
  auto* w = new Barrier(env);
  w->Queue();
  return w->Promise();
}

Napi::Value GatherJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  require_init(env);
  Bytes b = bytes_of(env, info[0], "bytes");
  int root = info[1].As<Napi::Number>().Int32Value();
  bool all = info[2].ToBoolean();
  if (!all && (root < 0 || root >= g_size)) throw Napi::RangeError::New(env, "gather: root out of range");
  auto* w = new GatherBytes(env, b, root, all);
  w->Keep(info[0]);
  w->Queue();
  return w->Promise();
}

Napi::Value FinalizeJs(const Napi::CallbackInfo& info) {
  if (g_initialised && !g_finalised) {
    MPI_Finalize();
    g_finalised = true;
  }
  return info.Env().Undefined();
}

Napi::Value AbortJs(const Napi::CallbackInfo& info) {
  int code = info.Length() > 0 ? info[0].As<Napi::Number>().Int32Value() : 1;
  if (g_initialised && !g_finalised) MPI_Abort(MPI_COMM_WORLD, code);
  _exit(code);
}

// Leave now, without running exit handlers: a peer may be gone and a worker thread may sit in an
// MPI call that never returns, which exit() could wait on.
Napi::Value ExitNowJs(const Napi::CallbackInfo& info) {
  int code = info.Length() > 0 ? info[0].As<Napi::Number>().Int32Value() : 1;
  _exit(code);
}

Napi::Object Module(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("allReduceSum", Napi::Function::New(env, AllReduceSumJs));
  exports.Set("allReduceOrdered", Napi::Function::New(env, AllReduceOrderedJs));
  exports.Set("broadcast", Napi::Function::New(env, BroadcastJs));
  exports.Set("barrier", Napi::Function::New(env, BarrierJs));
  exports.Set("gather", Napi::Function::New(env, GatherJs));
  exports.Set("finalize", Napi::Function::New(env, FinalizeJs));
  exports.Set("abort", Napi::Function::New(env, AbortJs));
  exports.Set("exitNow", Napi::Function::New(env, ExitNowJs));
  return exports;
}

}  // namespace

NODE_API_MODULE(crate_mpi, Module)
