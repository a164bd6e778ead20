// Packing, padding and threads around the per-image loops of kernels.h. Compiled for the
// baseline CPU (see kernels.h for why).
#include "convolution.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "isa.h"
#include "threads.h"

namespace mg_kernels {

namespace {

int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// A thread costs tens of microseconds to start: give each at least this much work.
constexpr int64_t MULTIPLY_ADDS_PER_THREAD = 4 << 20;

int conv_workers(const Geometry& g) { return workers_for(g.multiply_adds(), MULTIPLY_ADDS_PER_THREAD, g.n); }

// The two halves of every 2x2 block of a (2h, 2w, c / 4) image: pixels 2j and 2j + 1 of row
// 2i + a, c / 2 floats in a row, are channels [a c / 2, (a + 1) c / 2) of block (i, j) of the
// (h, w, c) blocked image, whose rows are `block_row` floats apart. f(pixels offset, block
// offset, c / 2) for each: the blocks = 2 load and its inverse run the same copies both ways.
template <class F>
void each_block_half(int h, int w, int c, int64_t block_row, F&& f) {
  const int half = c / 2;
  for (int i = 0; i < h; ++i)
    for (int a = 0; a < 2; ++a)
      for (int j = 0; j < w; ++j)
        f((int64_t(2 * i + a) * w + j) * half, i * block_row + int64_t(j) * c + a * half, half);
}

// One image of x, zero-padded: the buffer's border is zeroed once, the interior rewritten per image.
// With blocks = 2, x's image is (2h, 2w, c / 4) and each 2x2 block becomes one pixel of c channels.
class PaddedImage {
 public:
  PaddedImage(int h, int w, int c, std::array<int, 4> pad, int extra_rows = 0, int extra_cols = 0, int blocks = 1)
      : h_(h), w_(w), c_(c), top_(pad[0]), left_(pad[2]), blocks_(blocks),
        rows_(h + pad[0] + pad[1] + extra_rows), cols_(w + pad[2] + pad[3] + extra_cols),
        plain_(pad == std::array<int, 4>{0, 0, 0, 0} && extra_rows == 0 && extra_cols == 0 && blocks == 1) {
    if (!plain_) buffer_.assign(size_t(rows_) * cols_ * c_, 0.0f);
  }
  // The padded image n of `images` (a pointer into it when nothing is padded).
  const float* load(const float* images, int n) {
    const float* image = images + int64_t(n) * h_ * w_ * c_;
    if (plain_) return image;
    if (blocks_ == 1) {
      for (int i = 0; i < h_; ++i)
        std::memcpy(&buffer_[(size_t(i + top_) * cols_ + left_) * c_], image + int64_t(i) * w_ * c_,
                    sizeof(float) * w_ * c_);
      return buffer_.data();
    }
    float* interior = &buffer_[(size_t(top_) * cols_ + left_) * c_];
    each_block_half(h_, w_, c_, int64_t(cols_) * c_, [&](int64_t pixels, int64_t block, int floats) {
      std::memcpy(interior + block, image + pixels, sizeof(float) * floats);
    });
    return buffer_.data();
  }
  int cols() const { return cols_; }

 private:
  int h_, w_, c_, top_, left_, blocks_, rows_, cols_;
  bool plain_;
  std::vector<float> buffer_;
};

// The inverse of a blocks = 2 load, for dx: blocked (h, w, c) -> (2h, 2w, c / 4).
void unblock(const float* blocked, int h, int w, int c, float* image) {
  each_block_half(h, w, c, int64_t(w) * c, [&](int64_t pixels, int64_t block, int floats) {
    std::memcpy(image + pixels, blocked + block, sizeof(float) * floats);
  });
}

std::vector<int64_t> tap_offsets(const std::vector<std::pair<int, int>>& taps, int cols, int channels) {
  std::vector<int64_t> off;
  for (auto [dy, dx] : taps) off.push_back((int64_t(dy) * cols + dx) * channels);
  return off;
}

// w (T, C, O) laid out for forward_image: (T, C, O padded to whole vectors) when wide, (O, T, C)
// when narrow. With `transpose`, packs w[t]^T (T, O, C) instead, for the input gradient.
std::vector<float> pack(const float* w, int taps, int c, int o, bool transpose, const Kernels& k) {
  const int in = transpose ? o : c, out = transpose ? c : o;
  auto at = [&](int t, int i, int j) {  // element (t, i, j) of the (T, in, out) matrix
    return transpose ? w[(int64_t(t) * c + j) * o + i] : w[(int64_t(t) * c + i) * o + j];
  };
  if (is_narrow(out, k.vector_floats)) {
    std::vector<float> q(size_t(out) * taps * in);
    for (int j = 0; j < out; ++j)
      for (int t = 0; t < taps; ++t)
        for (int i = 0; i < in; ++i) q[(size_t(j) * taps + t) * in + i] = at(t, i, j);
    return q;
  }
  const int64_t opad = round_up(out, k.vector_floats);
  std::vector<float> p(size_t(taps) * in * opad, 0.0f);
  for (int t = 0; t < taps; ++t)
    for (int i = 0; i < in; ++i)
      for (int j = 0; j < out; ++j) p[(size_t(t) * in + i) * opad + j] = at(t, i, j);
  return p;
}

}  // namespace

bool Geometry::operator==(const Geometry& other) const {
  return n == other.n && h == other.h && w == other.w && c == other.c && o == other.o && pad == other.pad &&
         margin == other.margin && taps == other.taps && bias == other.bias && phases == other.phases &&
         relu == other.relu && blocks == other.blocks;
}

void check(const Geometry& g) {
  auto fail = [](const std::string& what) { throw std::invalid_argument("tap_conv: " + what); };
  if (g.n < 1 || g.h < 1 || g.w < 1 || g.c < 1 || g.o < 1) fail("empty input, weight or output");
  if (*std::min_element(g.pad.begin(), g.pad.end()) < 0) fail("padding must be >= 0");
  if (g.taps.empty()) fail("no taps");
  if (g.phases != 1 && g.phases != 4) fail("phases must be 1 or 4, got " + std::to_string(g.phases));
  if (g.blocks != 1 && g.blocks != 2) fail("blocks must be 1 or 2, got " + std::to_string(g.blocks));
  if (g.taps.size() % g.phases) fail(std::to_string(g.taps.size()) + " taps do not split into 4 phases");
  if (g.margin < 0 || g.ho() < 1 || g.wo() < 1) fail("margin leaves no output");
  for (auto [dy, dx] : g.taps)
    if (dy < 0 || dx < 0 || dy > g.margin || dx > g.margin)
      fail("tap (" + std::to_string(dy) + ", " + std::to_string(dx) + ") outside 0.." + std::to_string(g.margin));
}

namespace {

// The layout of one output image: phase p's pixel (i, j) is at phase_base(p) + i * row + j * pixel.
struct OutputLayout {
  int up;               // 1, or 2 when the phases interleave
  int64_t row, pixel;   // floats between a phase's rows and between its pixels
  int64_t image;        // floats per output image
  int64_t phase_base(const Geometry& g, int p) const { return (int64_t(p / 2) * up * g.wo() + p % 2) * g.o; }
};

OutputLayout output_layout(const Geometry& g) {
  const int up = g.phases == 4 ? 2 : 1;
  const int64_t out_row = int64_t(up) * g.wo() * g.o;  // one row of the whole output
  return {up, up * out_row, int64_t(up) * g.o, int64_t(up) * g.ho() * out_row};
}

// Phase p's taps, and w's matrices for them: (T / phases, C, O) from the phase-major (T, C, O).
std::vector<std::pair<int, int>> phase_taps(const Geometry& g, int p) {
  const int per = int(g.taps.size()) / g.phases;
  return {g.taps.begin() + p * per, g.taps.begin() + (p + 1) * per};
}
const float* phase_weights(const Geometry& g, const float* w, int p) {
  return w + int64_t(p) * (int64_t(g.taps.size()) / g.phases) * g.c * g.o;
}

// Copies phase p of one output-gradient image into (ho, wo) pixels `stride` floats apart.
void gather_phase(const Geometry& g, const OutputLayout& layout, const float* image, int p, float* out,
                  int64_t stride) {
  const float* base = image + layout.phase_base(g, p);
  for (int i = 0; i < g.ho(); ++i)
    for (int j = 0; j < g.wo(); ++j)
      std::memcpy(out + (int64_t(i) * g.wo() + j) * stride, base + i * layout.row + j * layout.pixel,
                  sizeof(float) * g.o);
}

// The output gradient of image n as the loops read it: dy itself, or with a ReLU, the part of
// it that passed (y > 0), written into `passed` (one image, per worker: it stays in cache).
const float* image_grad(const Geometry& g, const OutputLayout& layout, const float* dy, const float* y, int n,
                        std::vector<float>& passed) {
  const float* dyn = dy + n * layout.image;
  if (!g.relu) return dyn;
  passed.resize(layout.image);
  kernels().relu_gradient(dyn, y + n * layout.image, passed.data(), layout.image);
  return passed.data();
}

}  // namespace

void forward(const Geometry& g, const float* x, const float* w, const float* b, float* y) {
  const Kernels& k = kernels();
  const int per_phase = int(g.taps.size()) / g.phases;
  const bool narrow = is_narrow(g.o, k.vector_floats);
  std::vector<std::vector<float>> packed;
  for (int p = 0; p < g.phases; ++p) packed.push_back(pack(phase_weights(g, w, p), per_phase, g.c, g.o, false, k));
  const OutputLayout layout = output_layout(g);
  parallel_for(g.n, conv_workers(g), [&](int, int first, int last) {
    PaddedImage image(g.h, g.w, g.c, g.pad, 0, 0, g.blocks);
    std::vector<std::vector<int64_t>> off;
    for (int p = 0; p < g.phases; ++p) off.push_back(tap_offsets(phase_taps(g, p), image.cols(), g.c));
    // The image's bias, as the loops read it: whole vectors, zeros past O (and zeros without one).
    std::vector<float> bias(round_up(g.o, k.vector_floats), 0.0f);
    for (int n = first; n < last; ++n) {
      if (g.bias != Bias::none && (n == first || g.bias == Bias::per_image))
        std::memcpy(bias.data(), b + (g.bias == Bias::per_image ? int64_t(n) * g.o : 0), sizeof(float) * g.o);
      const float* src = image.load(x, n);
      for (int p = 0; p < g.phases; ++p)
        k.forward_image(src, image.cols(), g.c, per_phase, off[p].data(), packed[p].data(), bias.data(), g.o, narrow,
                        y + n * layout.image + layout.phase_base(g, p), layout.row, layout.pixel, g.ho(), g.wo());
      if (g.relu) k.relu_in_place(y + n * layout.image, layout.image);
    }
  });
}

void input_grad(const Geometry& g, const float* dy, const float* y, const float* w, float* dx) {
  // Per phase: dx[a, b] += sum_t dy[a + top - dy_t, b + left - dx_t] @ w[t]^T, where dy is zero
  // outside its (ho, wo) grid: a forward pass over dy padded by (max dy_t, max dx_t) at the top
  // and left, with tap t mirrored to (top + max dy - dy_t, left + max dx - dx_t).
  struct Mirror {
    int max_dy = 0, max_dx = 0, extra_rows = 0, extra_cols = 0;
    std::vector<std::pair<int, int>> taps;
    std::vector<float> packed;
  };
  const Kernels& k = kernels();
  const int per_phase = int(g.taps.size()) / g.phases;
  const bool narrow = is_narrow(g.c, k.vector_floats);
  std::vector<Mirror> mirrors(g.phases);
  for (int p = 0; p < g.phases; ++p) {
    Mirror& m = mirrors[p];
    const auto taps = phase_taps(g, p);
    for (auto [ty, tx] : taps) m.max_dy = std::max(m.max_dy, ty), m.max_dx = std::max(m.max_dx, tx);
    int reach_y = 0, reach_x = 0;
    for (auto [ty, tx] : taps) {
      m.taps.emplace_back(g.pad[0] + m.max_dy - ty, g.pad[2] + m.max_dx - tx);
      reach_y = std::max(reach_y, m.taps.back().first), reach_x = std::max(reach_x, m.taps.back().second);
    }
    // Rows and columns the mirrored taps reach beyond dy's padded grid.
    m.extra_rows = std::max(0, g.h + reach_y - (m.max_dy + g.ho()));
    m.extra_cols = std::max(0, g.w + reach_x - (m.max_dx + g.wo()));
    m.packed = pack(phase_weights(g, w, p), per_phase, g.c, g.o, true, k);
  }
  const OutputLayout layout = output_layout(g);
  const int64_t in_image = int64_t(g.h) * g.w * g.c;
  const std::vector<float> no_bias(round_up(g.c, k.vector_floats), 0.0f);
  parallel_for(g.n, conv_workers(g), [&](int, int first, int last) {
    std::vector<PaddedImage> grads;
    std::vector<std::vector<int64_t>> off;
    for (const Mirror& m : mirrors) {
      grads.emplace_back(g.ho(), g.wo(), g.o, std::array<int, 4>{m.max_dy, 0, m.max_dx, 0}, m.extra_rows,
                         m.extra_cols);
      off.push_back(tap_offsets(m.taps, grads.back().cols(), g.o));
    }
    // With phases: each phase's dy gathered, and each phase's share of dx before it is added.
    std::vector<float> phase_dy(g.phases > 1 ? size_t(g.ho()) * g.wo() * g.o : 0);
    std::vector<float> share(g.phases > 1 ? size_t(in_image) : 0);
    std::vector<float> passed;
    std::vector<float> blocked(g.blocks > 1 ? size_t(in_image) : 0);  // dx by blocks, then unblocked
    for (int n = first; n < last; ++n) {
      float* dxn = g.blocks > 1 ? blocked.data() : dx + n * in_image;
      const float* dyn = image_grad(g, layout, dy, y, n, passed);
      for (int p = 0; p < g.phases; ++p) {
        const float* grad = dyn;
        if (g.phases > 1) {
          gather_phase(g, layout, grad, p, phase_dy.data(), g.o);
          grad = phase_dy.data();
        }
        float* out = p == 0 ? dxn : share.data();
        k.forward_image(grads[p].load(grad, 0), grads[p].cols(), g.o, per_phase, off[p].data(),
                        mirrors[p].packed.data(), no_bias.data(), g.c, narrow, out, int64_t(g.w) * g.c, g.c, g.h,
                        g.w);
        if (p > 0)
          for (int64_t i = 0; i < in_image; ++i) dxn[i] += share[i];
      }
      if (g.blocks > 1) unblock(blocked.data(), g.h, g.w, g.c, dx + n * in_image);
    }
  });
}

void weight_grad(const Geometry& g, const float* x, const float* dy, const float* y, float* dw, float* db) {
  const Kernels& k = kernels();
  const int taps = int(g.taps.size()), per_phase = taps / g.phases;
  const bool narrow = is_narrow(g.o, k.vector_floats);
  const int64_t opad = narrow ? g.o : round_up(g.o, k.vector_floats);
  const OutputLayout layout = output_layout(g);
  const int workers = conv_workers(g);
  // Each worker sums its images into its own (T, C, opad) block, and the shared bias gradient
  // into its own (O) row; they are added at the end.
  std::vector<std::vector<float>> partial(workers);  // workers_for gives 1..n, so every block is filled
  std::vector<std::vector<float>> partial_db(workers, std::vector<float>(g.o, 0.0f));
  if (g.bias == Bias::per_image) std::fill(db, db + int64_t(g.n) * g.o, 0.0f);
  parallel_for(g.n, workers, [&](int worker, int first, int last) {
    std::vector<float>& sum = partial[worker];
    sum.assign(size_t(taps) * g.c * opad, 0.0f);
    PaddedImage image(g.h, g.w, g.c, g.pad, 0, 0, g.blocks);
    std::vector<std::vector<int64_t>> off;
    for (int p = 0; p < g.phases; ++p) off.push_back(tap_offsets(phase_taps(g, p), image.cols(), g.c));
    // The loops read a phase's dy as (ho, wo) pixels opad floats apart: dy itself when it is one
    // phase of whole vectors; otherwise each image's phase is first copied so.
    const bool repack = g.phases > 1 || opad != g.o;
    std::vector<float> grad(repack ? size_t(g.ho()) * g.wo() * opad : 0, 0.0f);
    std::vector<float> passed;
    for (int n = first; n < last; ++n) {
      const float* src = image.load(x, n);
      const float* dyn = image_grad(g, layout, dy, y, n, passed);
      if (g.bias != Bias::none)
        k.channel_sums(dyn, int(layout.image / g.o), g.o,
                       g.bias == Bias::per_image ? db + int64_t(n) * g.o : partial_db[worker].data());
      for (int p = 0; p < g.phases; ++p) {
        const float* phase_dy = dyn;
        if (repack) {
          gather_phase(g, layout, dyn, p, grad.data(), opad);
          phase_dy = grad.data();
        }
        float* phase_sum = sum.data() + int64_t(p) * per_phase * g.c * opad;
        if (narrow)
          k.weight_image_narrow(src, image.cols(), g.c, per_phase, off[p].data(), phase_dy, g.o, g.ho(), g.wo(),
                                phase_sum);
        else
          k.weight_image_wide(src, image.cols(), g.c, per_phase, off[p].data(), phase_dy, g.o, g.ho(), g.wo(),
                              phase_sum);
      }
    }
  });
  for (int64_t row = 0; row < int64_t(taps) * g.c; ++row)
    for (int j = 0; j < g.o; ++j) {
      float total = 0.0f;
      for (const auto& sum : partial) total += sum[row * opad + j];
      dw[row * g.o + j] = total;
    }
  if (g.bias == Bias::shared)
    for (int j = 0; j < g.o; ++j) {
      float total = 0.0f;
      for (const auto& sums : partial_db) total += sums[j];
      db[j] = total;
    }
}

}  // namespace mg_kernels
