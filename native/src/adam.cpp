// Threads around Adam's loop (kernels.h). Compiled for the baseline CPU.
#include "adam.h"

#include <algorithm>

#include "isa.h"
#include "threads.h"

namespace mg_kernels {

namespace {
// The loop is a few operations per element: a thread must have many of them to pay.
constexpr int64_t ELEMENTS_PER_THREAD = 1 << 18;
constexpr int CHUNK = 1 << 12;  // elements per parallel_for item
}  // namespace

void adam_step(const float* k, const float* p, const float* g, const float* m, const float* v, float* p_out,
               float* m_out, float* v_out, int64_t n) {
  const auto& loops = kernels();
  const int chunks = int((n + CHUNK - 1) / CHUNK);
  parallel_for(chunks, workers_for(n, ELEMENTS_PER_THREAD, chunks), [&](int, int first, int last) {
    const int64_t a = int64_t(first) * CHUNK, b = std::min(n, int64_t(last) * CHUNK);
    loops.adam_step(k, p + a, g + a, m + a, v + a, p_out + a, m_out + a, v_out + a, b - a);
  });
}

}  // namespace mg_kernels
