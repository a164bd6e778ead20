// Threads around the per-image loops of norm_kernels.h. Compiled for the baseline CPU.
#include "group_norm.h"

#include <algorithm>
#include <vector>

#include "isa.h"
#include "threads.h"

namespace mg_kernels {

namespace {
// Elements per thread at least: these passes are cheap, so a thread must have many to pay.
constexpr int64_t ELEMENTS_PER_THREAD = 1 << 18;
}

void norm_silu_forward(const NormShape& s, const float* x, const float* w, const float* b, float* y) {
  const Kernels& k = kernels();
  const int64_t image = int64_t(s.pixels) * s.channels;
  parallel_for(s.n, workers_for(s.n * image, ELEMENTS_PER_THREAD, s.n), [&](int, int first, int last) {
    std::vector<float> scratch(2 * size_t(s.channels));
    for (int n = first; n < last; ++n)
      k.norm_silu_forward_image(x + n * image, w, b, s.pixels, s.channels, s.groups, s.eps, y + n * image,
                                scratch.data());
  });
}

void norm_silu_backward(const NormShape& s, const float* x, const float* w, const float* b, const float* dy,
                          float* dx, float* dw, float* db) {
  const Kernels& k = kernels();
  const int64_t image = int64_t(s.pixels) * s.channels;
  const int workers = workers_for(s.n * image, ELEMENTS_PER_THREAD, s.n);
  // Each worker sums dw and db over its images; the sums are added at the end.
  std::vector<std::vector<float>> partial(workers, std::vector<float>(2 * size_t(s.channels), 0.0f));
  parallel_for(s.n, workers, [&](int worker, int first, int last) {
    std::vector<float> scratch(4 * size_t(s.channels));
    float* sums = partial[worker].data();
    for (int n = first; n < last; ++n)
      k.norm_silu_backward_image(x + n * image, w, b, dy + n * image, s.pixels, s.channels, s.groups, s.eps,
                                 dx + n * image, sums, sums + s.channels, scratch.data());
  });
  for (int c = 0; c < s.channels; ++c) {
    float total_w = 0.0f, total_b = 0.0f;
    for (const auto& sums : partial) total_w += sums[c], total_b += sums[s.channels + c];
    dw[c] = total_w, db[c] = total_b;
  }
}

namespace {
// SiLU runs in blocks of this many floats, split over the threads.
constexpr int64_t SILU_BLOCK = 1 << 14;

template <class Body>
void silu_blocks(int64_t n, Body body) {
  const int blocks = int((n + SILU_BLOCK - 1) / SILU_BLOCK);
  parallel_for(blocks, workers_for(n, ELEMENTS_PER_THREAD, blocks), [&](int, int first, int last) {
    const int64_t begin = first * SILU_BLOCK, end = std::min(n, last * SILU_BLOCK);
    body(begin, end - begin);
  });
}
}  // namespace

void silu_forward(const float* a, float* y, int64_t n) {
  const Kernels& k = kernels();
  silu_blocks(n, [&](int64_t begin, int64_t count) { k.silu_forward(a + begin, y + begin, count); });
}

void silu_backward(const float* a, const float* dy, float* dx, int64_t n) {
  const Kernels& k = kernels();
  silu_blocks(n, [&](int64_t begin, int64_t count) { k.silu_backward(a + begin, dy + begin, dx + begin, count); });
}

}  // namespace mg_kernels
