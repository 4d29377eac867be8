// A small fixed-size thread pool (default size = hardware concurrency, settable).
//
// pool_run(n, fn) calls fn(i) for every task index i in [0, n); the calling thread takes part.
// Determinism does not depend on which thread runs which task: every kernel in native/ splits its
// work into tasks whose boundaries are fixed by the problem sizes (never by the thread count),
// each task writes only its own outputs, and partial sums are combined afterwards in task order.
// So results are bitwise identical for any thread count and any schedule, and tasks can be
// claimed dynamically (a core that is busy with another process does not stall the others).
#pragma once

#include <cstdint>
#include <functional>

namespace crate {

/** Number of threads the pool uses (the caller included). */
int pool_threads();
/** Set the number of threads (>= 1); n <= 0 selects the hardware concurrency. */
void pool_set_threads(int n);
/** Call fn(task) for task in [0, ntasks); blocks until all have finished. Exceptions from fn are
 *  rethrown on the calling thread (the first one by task order). Not reentrant: a nested call runs
 *  serially on the calling thread. */
void pool_run(int64_t ntasks, const std::function<void(int64_t)>& fn);

/** Split [0, n) into at most pool_threads() contiguous ranges of at least `grain` items and call
 *  fn(begin, end) for each in parallel. The split depends on the thread count: use it only for
 *  work whose per-item results do not depend on the split (no reductions across items). */
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace crate
