// Fixed-size thread pool: workers sleep on a condition variable between jobs (after a short spin,
// so back-to-back operator calls do not pay a wake-up each) and claim tasks from a shared counter.
#include "threadpool.h"

#include <algorithm>
#include <atomic>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace crate {
namespace {

thread_local bool tl_inside_pool = false;

class Pool {
 public:
  Pool() { resize(default_threads()); }
  ~Pool() { stop_workers(); }

  static int default_threads() {
    unsigned h = std::thread::hardware_concurrency();
    return h == 0 ? 1 : static_cast<int>(std::min(h, 256u));
  }

  int threads() const { return nthreads_; }

  void resize(int n) {
    std::lock_guard<std::mutex> run_lock(run_mutex_);
    if (n <= 0) n = default_threads();
    n = std::min(n, 256);
    if (n == nthreads_) return;
    stop_workers();
    nthreads_ = n;
    stopping_ = false;
    // A worker must compare against the generation current when it was created: reading it in the
    // new thread could miss a job published before the thread got to run.
    const uint64_t gen = generation_.load(std::memory_order_acquire);
    for (int t = 1; t < n; ++t) workers_.emplace_back([this, t, gen] { worker_loop(t, gen); });
  }

  void run(int64_t ntasks, const std::function<void(int64_t)>& fn) {
    if (ntasks <= 0) return;
    if (tl_inside_pool || nthreads_ == 1 || ntasks == 1) {
      for (int64_t i = 0; i < ntasks; ++i) fn(i);
      return;
    }
    std::lock_guard<std::mutex> run_lock(run_mutex_);
    int nt = nthreads_;
    first_error_ = nullptr;
    first_error_task_ = INT64_MAX;
    job_ = &fn;
    ntasks_ = ntasks;
    next_.store(0, std::memory_order_relaxed);
    pending_.store(nt - 1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lk(mutex_);
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    execute_share(0, nt);
    // Wait for the workers (spin briefly, then yield).
    int spins = 0;
    while (pending_.load(std::memory_order_acquire) != 0) {
      if (++spins > 2000) std::this_thread::yield();
    }
    job_ = nullptr;
    if (first_error_) std::rethrow_exception(first_error_);
  }

 private:
  // Claim tasks one at a time until none are left. Which thread runs a task never changes what
  // the task computes (see threadpool.h), so the schedule may adapt to a busy core.
  void execute_share(int /*t*/, int /*nt*/) {
    bool prev = tl_inside_pool;
    tl_inside_pool = true;
    for (;;) {
      int64_t i = next_.fetch_add(1, std::memory_order_relaxed);
      if (i >= ntasks_) break;
      try {
        (*job_)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lk(error_mutex_);
        if (i < first_error_task_) {
          first_error_task_ = i;
          first_error_ = std::current_exception();
        }
      }
    }
    tl_inside_pool = prev;
  }

  void worker_loop(int t, uint64_t seen) {
    for (;;) {
      // Spin a little for the next job before sleeping.
      int spins = 0;
      while (generation_.load(std::memory_order_acquire) == seen && !stopping_.load() && spins < 20000) ++spins;
      if (generation_.load(std::memory_order_acquire) == seen && !stopping_.load()) {
        std::unique_lock<std::mutex> lk(mutex_);
        cv_.wait(lk, [&] { return generation_.load(std::memory_order_acquire) != seen || stopping_.load(); });
      }
      if (stopping_.load()) return;
      seen = generation_.load(std::memory_order_acquire);
      execute_share(t, nthreads_);
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lk(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  int nthreads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // one job at a time (several JS threads may share the addon)
  std::mutex mutex_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stopping_{false};
  const std::function<void(int64_t)>* job_ = nullptr;
  int64_t ntasks_ = 0;
  std::atomic<int64_t> next_{0};
  std::mutex error_mutex_;
  std::exception_ptr first_error_;
  int64_t first_error_task_ = INT64_MAX;
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: workers must not be joined during static teardown
  return *p;
}

}  // namespace

int pool_threads() { return pool().threads(); }
void pool_set_threads(int n) { pool().resize(n); }
void pool_run(int64_t ntasks, const std::function<void(int64_t)>& fn) { pool().run(ntasks, fn); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  int64_t pieces = std::min<int64_t>(pool_threads(), (n + grain - 1) / grain);
  if (pieces <= 1) {
    fn(0, n);
    return;
  }
  pool_run(pieces, [&](int64_t p) { fn(n * p / pieces, n * (p + 1) / pieces); });
}

}  // namespace crate
