// silu(GroupNorm(x)) on raw float32 buffers: x (N, P, C) row-major (P pixels), w and b (C),
// groups dividing C; the same function as nn/norm.py's GroupNorm followed by
// nn/activations.py's silu, in one pass forward and two backward.
#pragma once

#include <cstdint>

namespace mg_kernels {

struct NormShape {
  int n = 0, pixels = 0, channels = 0, groups = 0;
  float eps = 1e-5f;
  bool operator==(const NormShape& o) const {
    return n == o.n && pixels == o.pixels && channels == o.channels && groups == o.groups && eps == o.eps;
  }
};

void norm_silu_forward(const NormShape& s, const float* x, const float* w, const float* b, float* y);
// dx (N, P, C), dw and db (C) from the output gradient dy.
void norm_silu_backward(const NormShape& s, const float* x, const float* w, const float* b, const float* dy,
                          float* dx, float* dw, float* db);

// y = silu(a) over n floats, and dx = dy * silu'(a): the rational SiLU of nn/activations.py.
void silu_forward(const float* a, float* y, int64_t n);
void silu_backward(const float* a, const float* dy, float* dx, int64_t n);

}  // namespace mg_kernels
