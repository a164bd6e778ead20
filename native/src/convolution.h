// The tap convolution on raw float32 buffers: what the MLX primitives (tap_conv.cpp) run.
//
//   y[n, i, j, :] = b + sum_t xpad[n, i + dy_t, j + dx_t, :] @ w[t]
//
// x: (N, H, W, C) row-major; xpad: x with `pad` zero rows/columns (top, bottom, left, right);
// w: (T, C, O), one matrix per tap (dy_t, dx_t); y: (N, Hp - margin, Wp - margin, O), where
// Hp = H + top + bottom. A k x k convolution is all k*k taps with margin k - 1; the stride-2
// layers of mlx_generative/nn/layers.py are a few taps each (see there). The bias b is optional:
// one (O) for every image, or one per image (N, O), as the UNet adds its time embedding.
// With four phases (see Geometry) one call is the whole stride-2 transposed convolution (Up).
// With relu the output is max(y, 0): the ReLU that follows most encoder and decoder layers,
// applied to each image while it is still in cache instead of in a pass of its own. With
// blocks = 2 the input is read as 2x2 blocks of pixels (see Geometry): Down needs no copy.
#pragma once

#include <array>
#include <cstdint>
#include <utility>
#include <vector>

namespace mg_kernels {

enum class Bias { none, shared, per_image };

struct Geometry {
  int n = 0, h = 0, w = 0, c = 0;         // input (N, H, W, C)
  int o = 0;                              // output channels
  std::array<int, 4> pad{0, 0, 0, 0};     // zeros added: top, bottom, left, right
  int margin = 0;                         // rows (and columns) of the padded input with no output
  std::vector<std::pair<int, int>> taps;  // (dy, dx) offsets into the padded input
  Bias bias = Bias::none;
  // 1, or 4: the taps are four equal groups, one per output phase (ry, rx) = (p / 2, p % 2) of
  // a stride-2 upsampling, and the output interleaves them: (N, 2 ho, 2 wo, O), phase (ry, rx)
  // at the pixels (2i + ry, 2j + rx). w holds the phases' matrices in the same order.
  int phases = 1;
  // y = max(0, ...). The gradients then let dy through only where y > 0, so they take y too.
  bool relu = false;
  // 1, or 2: x is stored as (N, 2h, 2w, c / 4) and read as (N, h, w, c), each 2x2 block of
  // pixels one pixel of 4 times the channels, in the order (row phase, column phase, channel):
  // nn/layers.py's space_to_depth, done as each image is loaded (and undone for dx).
  int blocks = 1;

  int hp() const { return h + pad[0] + pad[1]; }
  int wp() const { return w + pad[2] + pad[3]; }
  int ho() const { return hp() - margin; }
  int wo() const { return wp() - margin; }
  int64_t multiply_adds() const { return int64_t(n) * ho() * wo() * int64_t(taps.size()) * c * o; }
  bool operator==(const Geometry& other) const;
};

// Checks the geometry (non-empty, taps inside the padded input); throws std::invalid_argument.
void check(const Geometry& g);

// b: (O) or (N, O) as g.bias says; nullptr when it says none.
void forward(const Geometry& g, const float* x, const float* w, const float* b, float* y);
// y: the forward output when g.relu (its positive entries are where dy counts), else nullptr.
void input_grad(const Geometry& g, const float* dy, const float* y, const float* w, float* dx);
// db: the bias gradient, shaped as the bias (nullptr when there is none).
void weight_grad(const Geometry& g, const float* x, const float* dy, const float* y, float* dw, float* db);

}  // namespace mg_kernels
