// Threads for the loops: a parallel for over images, and how many threads a call may use.
#pragma once

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace mg_kernels {

// Threads a call may use (1 = the calling thread only). The trainer sets 1 when it runs one
// batch shard per core, as it does for the BLAS (mlx_generative/runtime/parallel.py).
void set_threads(int threads);
int threads();

// A thread costs tens of microseconds to start: each gets at least `min_work` units of work.
inline int workers_for(int64_t work, int64_t min_work, int items) {
  const int64_t by_work = std::max<int64_t>(1, work / min_work);
  return int(std::min<int64_t>({int64_t(threads()), by_work, int64_t(items)}));
}

// Runs body(worker, first, last) over [0, items) split into `workers` near-equal contiguous parts.
template <class Body>
void parallel_for(int items, int workers, Body body) {
  workers = std::max(1, std::min(workers, items));
  if (workers == 1) {
    body(0, 0, items);
    return;
  }
  std::vector<std::thread> pool;
  for (int k = 1; k < workers; ++k)
    pool.emplace_back(body, k, int(int64_t(items) * k / workers), int(int64_t(items) * (k + 1) / workers));
  body(0, 0, int(int64_t(items) / workers));
  for (auto& t : pool) t.join();
}

}  // namespace mg_kernels
