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

// One image of x, zero-padded: the buffer's border is zeroed once, the interior rewritten per image.
class PaddedImage {
 public:
  PaddedImage(int h, int w, int c, std::array<int, 4> pad, int extra_rows = 0, int extra_cols = 0)
      : h_(h), w_(w), c_(c), top_(pad[0]), left_(pad[2]),
        rows_(h + pad[0] + pad[1] + extra_rows), cols_(w + pad[2] + pad[3] + extra_cols),
        plain_(pad == std::array<int, 4>{0, 0, 0, 0} && extra_rows == 0 && extra_cols == 0) {
    if (!plain_) buffer_.assign(size_t(rows_) * cols_ * c_, 0.0f);
  }
  // The padded image n of `images` (a pointer into it when nothing is padded).
  const float* load(const float* images, int n) {
    const float* image = images + int64_t(n) * h_ * w_ * c_;
    if (plain_) return image;
    for (int i = 0; i < h_; ++i)
      std::memcpy(&buffer_[(size_t(i + top_) * cols_ + left_) * c_], image + int64_t(i) * w_ * c_,
                  sizeof(float) * w_ * c_);
    return buffer_.data();
  }
  int cols() const { return cols_; }

 private:
  int h_, w_, c_, top_, left_, rows_, cols_;
  bool plain_;
  std::vector<float> buffer_;
};

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
         margin == other.margin && taps == other.taps && bias == other.bias;
}

void check(const Geometry& g) {
  auto fail = [](const std::string& what) { throw std::invalid_argument("tap_conv: " + what); };
  if (g.n < 1 || g.h < 1 || g.w < 1 || g.c < 1 || g.o < 1) fail("empty input, weight or output");
  if (*std::min_element(g.pad.begin(), g.pad.end()) < 0) fail("padding must be >= 0");
  if (g.taps.empty()) fail("no taps");
  if (g.margin < 0 || g.ho() < 1 || g.wo() < 1) fail("margin leaves no output");
  for (auto [dy, dx] : g.taps)
    if (dy < 0 || dx < 0 || dy > g.margin || dx > g.margin)
      fail("tap (" + std::to_string(dy) + ", " + std::to_string(dx) + ") outside 0.." + std::to_string(g.margin));
}

void forward(const Geometry& g, const float* x, const float* w, const float* b, float* y) {
  const Kernels& k = kernels();
  const int taps = int(g.taps.size());
  const bool narrow = is_narrow(g.o, k.vector_floats);
  const std::vector<float> packed = pack(w, taps, g.c, g.o, false, k);
  const int64_t out_image = int64_t(g.ho()) * g.wo() * g.o;
  parallel_for(g.n, conv_workers(g), [&](int, int first, int last) {
    PaddedImage image(g.h, g.w, g.c, g.pad);
    const std::vector<int64_t> off = tap_offsets(g.taps, image.cols(), g.c);
    // The image's bias, as the loops read it: whole vectors, zeros past O (and zeros without one).
    std::vector<float> bias(round_up(g.o, k.vector_floats), 0.0f);
    for (int n = first; n < last; ++n) {
      if (g.bias != Bias::none && (n == first || g.bias == Bias::per_image))
        std::memcpy(bias.data(), b + (g.bias == Bias::per_image ? int64_t(n) * g.o : 0), sizeof(float) * g.o);
      k.forward_image(image.load(x, n), image.cols(), g.c, taps, off.data(), packed.data(), bias.data(), g.o,
                      narrow, y + n * out_image, g.ho(), g.wo());
    }
  });
}

void input_grad(const Geometry& g, const float* dy, const float* w, float* dx) {
  // dx[a, b] = sum_t dy[a + top - dy_t, b + left - dx_t] @ w[t]^T, where dy is zero outside its
  // (ho, wo) grid: a forward pass over dy padded by (max dy_t, max dx_t) at the top and left,
  // with tap t mirrored to (top + max dy - dy_t, left + max dx - dx_t).
  const Kernels& k = kernels();
  const int taps = int(g.taps.size());
  int max_dy = 0, max_dx = 0;
  for (auto [ty, tx] : g.taps) max_dy = std::max(max_dy, ty), max_dx = std::max(max_dx, tx);
  std::vector<std::pair<int, int>> mirrored;
  int reach_y = 0, reach_x = 0;
  for (auto [ty, tx] : g.taps) {
    mirrored.emplace_back(g.pad[0] + max_dy - ty, g.pad[2] + max_dx - tx);
    reach_y = std::max(reach_y, mirrored.back().first), reach_x = std::max(reach_x, mirrored.back().second);
  }
  // Rows and columns the mirrored taps reach beyond dy's padded grid.
  const int extra_rows = std::max(0, g.h + reach_y - (max_dy + g.ho()));
  const int extra_cols = std::max(0, g.w + reach_x - (max_dx + g.wo()));
  const bool narrow = is_narrow(g.c, k.vector_floats);
  const std::vector<float> packed = pack(w, taps, g.c, g.o, true, k);
  const int64_t in_image = int64_t(g.h) * g.w * g.c;
  const std::vector<float> no_bias(round_up(g.c, k.vector_floats), 0.0f);
  parallel_for(g.n, conv_workers(g), [&](int, int first, int last) {
    PaddedImage grad(g.ho(), g.wo(), g.o, {max_dy, 0, max_dx, 0}, extra_rows, extra_cols);
    const std::vector<int64_t> off = tap_offsets(mirrored, grad.cols(), g.o);
    for (int n = first; n < last; ++n)
      k.forward_image(grad.load(dy, n), grad.cols(), g.o, taps, off.data(), packed.data(), no_bias.data(), g.c,
                      narrow, dx + n * in_image, g.h, g.w);
  });
}

void weight_grad(const Geometry& g, const float* x, const float* dy, float* dw, float* db) {
  const Kernels& k = kernels();
  const int taps = int(g.taps.size());
  const bool narrow = is_narrow(g.o, k.vector_floats);
  const int64_t opad = narrow ? g.o : round_up(g.o, k.vector_floats);
  const int64_t out_image = int64_t(g.ho()) * g.wo() * g.o;
  const int workers = conv_workers(g);
  // Each worker sums its images into its own (T, C, opad) block, and the shared bias gradient
  // into its own (O) row; they are added at the end.
  std::vector<std::vector<float>> partial(workers);  // workers_for gives 1..n, so every block is filled
  std::vector<std::vector<float>> partial_db(workers, std::vector<float>(g.o, 0.0f));
  if (g.bias == Bias::per_image) std::fill(db, db + int64_t(g.n) * g.o, 0.0f);
  parallel_for(g.n, workers, [&](int worker, int first, int last) {
    std::vector<float>& sum = partial[worker];
    sum.assign(size_t(taps) * g.c * opad, 0.0f);
    PaddedImage image(g.h, g.w, g.c, g.pad);
    const std::vector<int64_t> off = tap_offsets(g.taps, image.cols(), g.c);
    // The wide loops read whole vectors of outputs per pixel: when O is not a whole number of
    // vectors, each image's dy is first copied with its pixels padded to opad.
    const bool repack = !narrow && opad != g.o;
    std::vector<float> grad(repack ? size_t(g.ho()) * g.wo() * opad : 0, 0.0f);
    for (int n = first; n < last; ++n) {
      const float* src = image.load(x, n);
      const float* dyn = dy + n * out_image;
      if (g.bias != Bias::none)
        k.channel_sums(dyn, g.ho() * g.wo(), g.o,
                       g.bias == Bias::per_image ? db + int64_t(n) * g.o : partial_db[worker].data());
      if (narrow) {
        k.weight_image_narrow(src, image.cols(), g.c, taps, off.data(), dyn, g.o, g.ho(), g.wo(), sum.data());
        continue;
      }
      if (repack) {
        for (int64_t p = 0; p < int64_t(g.ho()) * g.wo(); ++p)
          std::memcpy(&grad[p * opad], dyn + p * g.o, sizeof(float) * g.o);
        dyn = grad.data();
      }
      k.weight_image_wide(src, image.cols(), g.c, taps, off.data(), dyn, g.o, g.ho(), g.wo(), sum.data());
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
