#include "threads.h"

#include <atomic>

namespace mg_kernels {

namespace {
std::atomic<int> thread_count{int(std::max(1u, std::thread::hardware_concurrency()))};
}

void set_threads(int count) { thread_count.store(std::max(1, count)); }
int threads() { return thread_count.load(); }

}  // namespace mg_kernels
