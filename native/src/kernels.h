// The tap convolution's loops, written once and compiled once per instruction set.
//
// Each kernels_<isa>.cpp defines MG_ISA (its namespace) and MG_VECTOR_BYTES, then includes
// this file; the compiler flags of that file (CMakeLists.txt) decide the instructions. The
// vectors are GCC/Clang vector extensions, so the same source becomes AVX-512, AVX2, SSE2 or
// NEON code. dispatch.cpp picks the widest one the CPU has, at run time.
//
// Only the loops live here, in a namespace of their own per instruction set: allocation,
// packing and threads are in convolution.cpp, compiled for the baseline CPU, so that no
// shared inline function or template is ever compiled with instructions the CPU may lack.
//
// What is computed (NHWC, float32, one image at a time; tap t reads offset (ty[t], tx[t])):
//   forward      y[i, j, :]  = bias + sum_t src[i + ty[t], j + tx[t], :] @ w[t]   w: (T, C, O)
//   weight grad  dw[t]      += sum_ij src[i + ty[t], j + tx[t], :]^T g[i, j, :]
//   bias grad    db         += sum_ij g[i, j, :]
// The input gradient is the forward loop run over the zero-padded output gradient with the
// taps mirrored and each w[t] transposed (tap_conv.cpp builds those arguments).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

#include "adam.h"
#include "isa.h"

namespace mg_kernels {
namespace MG_ISA {

constexpr int VW = MG_VECTOR_BYTES / 4;  // floats in a vector
typedef float V __attribute__((vector_size(MG_VECTOR_BYTES)));
// A tile keeps at most ACCUMULATORS vector registers as running sums, leaving the rest for its
// operands: 24 of AVX-512's and NEON's 32 registers, 12 of AVX2's and SSE2's 16.
constexpr int ACCUMULATORS = MG_VECTOR_REGISTERS == 32 ? 24 : 12;
constexpr int MAX_OV = 4;  // output vectors per tile; wider outputs are done in chunks

inline V load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}
inline void store(float* p, V v) { std::memcpy(p, &v, sizeof(V)); }
inline void store_first(float* p, V v, int lanes) { std::memcpy(p, &v, sizeof(float) * lanes); }
inline V splat(float s) { return V{} + s; }
inline float sum_lanes(V v) {
  float s = 0.0f;
  for (int k = 0; k < VW; ++k) s += v[k];
  return s;
}

// Loops along a pixel's channels are written once for a type T: V for the whole vectors of
// channels, float for the channels left over.
template <class T> inline T load_as(const float* p);
template <> inline float load_as<float>(const float* p) { return *p; }
template <> inline V load_as<V>(const float* p) { return load(p); }
inline void store_as(float* p, float v) { *p = v; }
inline void store_as(float* p, V v) { store(p, v); }

// f(V{}, c) for each vector of channels c, c + VW, ..., then f(0.0f, c) for each channel left.
template <class F>
inline void each_channel_vector(int channels, F&& f) {
  int c = 0;
  for (; c + VW <= channels; c += VW) f(V{}, c);
  for (; c < channels; ++c) f(0.0f, c);
}

// sums[c] += sum over the pixels of g[p, c]: the bias gradient of one image.
inline void channel_sums(const float* g, int pixels, int channels, float* sums) {
  each_channel_vector(channels, [&](auto zero, int c) {
    using T = decltype(zero);
    T even = zero, odd = zero;  // two chains: an add's latency is longer than a load's
    int p = 0;
    for (; p + 1 < pixels; p += 2) {
      even += load_as<T>(g + int64_t(p) * channels + c);
      odd += load_as<T>(g + int64_t(p + 1) * channels + c);
    }
    if (p < pixels) even += load_as<T>(g + int64_t(p) * channels + c);
    store_as(sums + c, load_as<T>(sums + c) + even + odd);
  });
}

// ReLU after a convolution, one image at a time while it is in cache. The gradient tests the
// clamped output: y > 0 exactly where the sum before it was > 0 (mx.maximum's gradient too).
inline void relu_in_place(float* y, int64_t n) {
  int64_t i = 0;
  for (; i + VW <= n; i += VW) {
    const V v = load(y + i);
    store(y + i, v > 0.0f ? v : V{});
  }
  for (; i < n; ++i) y[i] = y[i] > 0.0f ? y[i] : 0.0f;
}

inline void relu_gradient(const float* dy, const float* y, float* g, int64_t n) {
  int64_t i = 0;
  for (; i + VW <= n; i += VW) store(g + i, load(y + i) > 0.0f ? load(dy + i) : V{});
  for (; i < n; ++i) g[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

// ---- forward, wide outputs: a tile of R pixels along a row x OV output vectors ----------------

// src: the buffer at this tile's first pixel; off[t]: tap t's offset in floats; wp: packed
// weights (T, C, opad) at this chunk's first output; bias: OV vectors the sums start from;
// out: the output at the tile's first pixel, whose pixels are `out_pixel` floats apart.
template <int OV, int R>
void forward_tile(const float* src, const int64_t* off, int taps, int c_in, const float* wp,
                  int64_t opad, const float* bias, float* out, int64_t out_pixel, int o_valid) {
  V acc[R][OV];
#pragma GCC unroll 32
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < OV; ++v) acc[r][v] = load(bias + v * VW);
  for (int t = 0; t < taps; ++t) {
    const float* s = src + off[t];
    const float* w = wp + int64_t(t) * c_in * opad;
    for (int c = 0; c < c_in; ++c, w += opad) {
      V wv[OV];
#pragma GCC unroll 4
      for (int v = 0; v < OV; ++v) wv[v] = load(w + v * VW);
#pragma GCC unroll 32
      for (int r = 0; r < R; ++r) {
        const V x = splat(s[int64_t(r) * c_in + c]);
#pragma GCC unroll 4
        for (int v = 0; v < OV; ++v) acc[r][v] += x * wv[v];
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < OV; ++v) {
      const int lanes = std::min(VW, o_valid - v * VW);
      if (lanes == VW) store(out + r * out_pixel + v * VW, acc[r][v]);
      else if (lanes > 0) store_first(out + r * out_pixel + v * VW, acc[r][v], lanes);
    }
}

using ForwardTile = void (*)(const float*, const int64_t*, int, int, const float*, int64_t, const float*, float*,
                             int64_t, int);

template <int OV, int... Rs>
constexpr std::array<ForwardTile, sizeof...(Rs)> forward_tiles(std::integer_sequence<int, Rs...>) {
  return {&forward_tile<OV, Rs + 1>...};
}

// Largest tile width for OV output vectors.
constexpr int max_r(int ov) { return ACCUMULATORS / ov; }

inline ForwardTile forward_tile_for(int ov, int r) {
  static const auto t1 = forward_tiles<1>(std::make_integer_sequence<int, max_r(1)>{});
  static const auto t2 = forward_tiles<2>(std::make_integer_sequence<int, max_r(2)>{});
  static const auto t3 = forward_tiles<3>(std::make_integer_sequence<int, max_r(3)>{});
  static const auto t4 = forward_tiles<4>(std::make_integer_sequence<int, max_r(4)>{});
  switch (ov) {
    case 1: return t1[r - 1];
    case 2: return t2[r - 1];
    case 3: return t3[r - 1];
    default: return t4[r - 1];
  }
}

// Tiles covering a row of `width` pixels with at most `most` each, nearly equal: `count` tiles,
// all of r pixels but the last, which has the rest (7 = 4 + 3, 14 = 5 + 5 + 4). The loops are
// bound by their multiply-adds, so a narrower last tile costs less than one that overlaps
// its neighbour and recomputes its pixels.
inline std::pair<int, int> row_tiles(int width, int most) {
  const int count = (width + most - 1) / most;
  const int r = (width + count - 1) / count;
  return {count, r};
}

// ---- forward, narrow outputs (fewer than half a vector): vectors run along the input channels --

// wq: weights packed (O, T, C); bias: O floats. Four pixels at a time keep four independent sums
// in flight.
inline void forward_narrow_row(const float* src, const int64_t* off, int taps, int c_in, const float* wq,
                               const float* bias, int o_total, float* out, int64_t out_pixel, int width) {
  const int c_vec = c_in - c_in % VW;
  for (int j0 = 0; j0 < width; j0 += 4) {
    const int pixels = std::min(4, width - j0);
    for (int o = 0; o < o_total; ++o) {
      V acc[4] = {V{}, V{}, V{}, V{}};
      float tail[4] = {0, 0, 0, 0};
      for (int t = 0; t < taps; ++t) {
        const float* w = wq + (int64_t(o) * taps + t) * c_in;
        for (int p = 0; p < pixels; ++p) {
          const float* s = src + off[t] + int64_t(j0 + p) * c_in;
          for (int c = 0; c < c_vec; c += VW) acc[p] += load(s + c) * load(w + c);
          for (int c = c_vec; c < c_in; ++c) tail[p] += s[c] * w[c];
        }
      }
      for (int p = 0; p < pixels; ++p) out[(j0 + p) * out_pixel + o] = bias[o] + sum_lanes(acc[p]) + tail[p];
    }
  }
}

// One image: out (height, width, O) from src (rows of `src_width` pixels of c_in channels);
// off[t]: tap t's offset in floats. packed: (T, C, opad) weights when wide, (O, T, C) when narrow;
// bias: what each output starts from, opad floats when wide (zeros past O), O when narrow.
// Output pixel (i, j) is written at out + i * out_row + j * out_pixel (one phase of an
// upsampling writes every other pixel of every other row).
inline void forward_image(const float* src, int src_width, int c_in, int taps, const int64_t* off,
                          const float* packed, const float* bias, int o_total, bool narrow, float* out,
                          int64_t out_row, int64_t out_pixel, int height, int width) {
  if (narrow) {
    for (int i = 0; i < height; ++i)
      forward_narrow_row(src + int64_t(i) * src_width * c_in, off, taps, c_in, packed, bias, o_total,
                         out + i * out_row, out_pixel, width);
    return;
  }
  const int64_t opad = (o_total + VW - 1) / VW * VW;
  // Output chunks of MAX_OV vectors, unless half as many let one tile span a row that would
  // otherwise take two (7 pixels: one tile of 7 x 2 vectors, not 4 + 3 pixels x 4 vectors;
  // measured 25% faster on the 7x7 layers, where a row is all there is to reuse weights over).
  const int chunk = width > max_r(MAX_OV) && width <= max_r(MAX_OV / 2) ? MAX_OV / 2 : MAX_OV;
  for (int o0 = 0; o0 < o_total; o0 += chunk * VW) {
    const int o_valid = std::min(o_total - o0, chunk * VW);
    const int ov = (o_valid + VW - 1) / VW;
    const auto [count, r] = row_tiles(width, max_r(ov));
    const ForwardTile tile = forward_tile_for(ov, r), last = forward_tile_for(ov, width - (count - 1) * r);
    for (int i = 0; i < height; ++i) {
      const float* row = src + int64_t(i) * src_width * c_in;
      float* row_out = out + i * out_row + o0;
      for (int k = 0; k < count; ++k)
        (k + 1 < count ? tile : last)(row + int64_t(k) * r * c_in, off, taps, c_in, packed + o0, opad, bias + o0,
                                      row_out + k * r * out_pixel, out_pixel, o_valid);
    }
  }
}

// ---- weight gradient, wide outputs: CB input channels x OV output vectors, summed over pixels --

// src: the buffer at the tap's offset and at channel c0; gp: the output gradient of the image
// with each pixel padded to opad floats, at this chunk's first output; dw: rows of opad floats.
template <int OV, int CB>
void weight_tile(const float* src, int64_t src_row, int c_in, const float* gp, int64_t opad, int height,
                 int width, float* dw) {
  V acc[CB][OV];
#pragma GCC unroll 32
  for (int c = 0; c < CB; ++c)
#pragma GCC unroll 4
    for (int v = 0; v < OV; ++v) acc[c][v] = V{};
  for (int i = 0; i < height; ++i) {
    const float* s = src + int64_t(i) * src_row;
    const float* gr = gp + int64_t(i) * width * opad;
    for (int j = 0; j < width; ++j, s += c_in, gr += opad) {
      V gv[OV];
#pragma GCC unroll 4
      for (int v = 0; v < OV; ++v) gv[v] = load(gr + v * VW);
#pragma GCC unroll 32
      for (int c = 0; c < CB; ++c) {
        const V x = splat(s[c]);
#pragma GCC unroll 4
        for (int v = 0; v < OV; ++v) acc[c][v] += x * gv[v];
      }
    }
  }
  for (int c = 0; c < CB; ++c)
    for (int v = 0; v < OV; ++v) store(dw + c * opad + v * VW, load(dw + c * opad + v * VW) + acc[c][v]);
}

using WeightTile = void (*)(const float*, int64_t, int, const float*, int64_t, int, int, float*);

template <int OV, int... Cs>
constexpr std::array<WeightTile, sizeof...(Cs)> weight_tiles(std::integer_sequence<int, Cs...>) {
  return {&weight_tile<OV, Cs + 1>...};
}

inline WeightTile weight_tile_for(int ov, int cb) {
  static const auto t1 = weight_tiles<1>(std::make_integer_sequence<int, max_r(1)>{});
  static const auto t2 = weight_tiles<2>(std::make_integer_sequence<int, max_r(2)>{});
  static const auto t3 = weight_tiles<3>(std::make_integer_sequence<int, max_r(3)>{});
  static const auto t4 = weight_tiles<4>(std::make_integer_sequence<int, max_r(4)>{});
  switch (ov) {
    case 1: return t1[cb - 1];
    case 2: return t2[cb - 1];
    case 3: return t3[cb - 1];
    default: return t4[cb - 1];
  }
}

// dw (T, C, opad) += this image's contribution; gp: its output gradient (height, width, opad).
inline void weight_image_wide(const float* src, int src_width, int c_in, int taps, const int64_t* off,
                              const float* gp, int o_total, int height, int width, float* dw) {
  const int64_t opad = (o_total + VW - 1) / VW * VW;
  for (int o0 = 0; o0 < o_total; o0 += MAX_OV * VW) {
    const int ov = (std::min(o_total - o0, MAX_OV * VW) + VW - 1) / VW;
    const int most = max_r(ov);
    for (int t = 0; t < taps; ++t) {
      for (int c0 = 0; c0 < c_in; c0 += most) {
        const int cb = std::min(most, c_in - c0);
        weight_tile_for(ov, cb)(src + off[t] + c0, int64_t(src_width) * c_in, c_in, gp + o0, opad, height, width,
                                dw + (int64_t(t) * c_in + c0) * opad + o0);
      }
    }
  }
}

// Narrow outputs: vectors along the input channels; dw (T, C, O) unpadded; go: (height, width, O).
inline void weight_image_narrow(const float* src, int src_width, int c_in, int taps, const int64_t* off,
                                const float* go, int o_total, int height, int width, float* dw) {
  const int c_vec = c_in - c_in % VW;
  for (int t = 0; t < taps; ++t) {
    const float* st = src + off[t];
    for (int o = 0; o < o_total; ++o) {
      for (int c0 = 0; c0 < c_vec; c0 += MAX_OV * VW) {
        const int nv = std::min(MAX_OV, (c_vec - c0) / VW);
        V acc[2][MAX_OV] = {};  // even and odd pixels: two independent chains
        for (int i = 0; i < height; ++i) {
          const float* s = st + int64_t(i) * src_width * c_in + c0;
          const float* gr = go + int64_t(i) * width * o_total + o;
          for (int j = 0; j < width; ++j) {
            const V gv = splat(gr[int64_t(j) * o_total]);
            for (int v = 0; v < nv; ++v) acc[j & 1][v] += load(s + int64_t(j) * c_in + v * VW) * gv;
          }
        }
        for (int v = 0; v < nv; ++v) {
          const V total = acc[0][v] + acc[1][v];
          for (int k = 0; k < VW; ++k) dw[(int64_t(t) * c_in + c0 + v * VW + k) * o_total + o] += total[k];
        }
      }
      for (int c = c_vec; c < c_in; ++c) {
        float total = 0.0f;
        for (int i = 0; i < height; ++i)
          for (int j = 0; j < width; ++j)
            total += st[(int64_t(i) * src_width + j) * c_in + c] * go[(int64_t(i) * width + j) * o_total + o];
        dw[(int64_t(t) * c_in + c) * o_total + o] += total;
      }
    }
  }
}

#include "norm_kernels.h"

// Adam's update (adam.h), as a plain loop the compiler vectorises: the outputs never alias the
// inputs, and sqrt needs no errno (-fno-math-errno), so it becomes one vector instruction.
inline void adam_step(const float* k, const float* __restrict p, const float* __restrict g,
                      const float* __restrict m, const float* __restrict v, float* __restrict p_out,
                      float* __restrict m_out, float* __restrict v_out, int64_t n) {
  const float b1 = k[B1], one_minus_b1 = k[ONE_MINUS_B1], b2 = k[B2], one_minus_b2 = k[ONE_MINUS_B2];
  const float c1 = k[C1], c2 = k[C2], eps = k[EPS];
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i];
    const float mi = b1 * m[i] + one_minus_b1 * gi;
    const float vi = b2 * v[i] + one_minus_b2 * (gi * gi);
    m_out[i] = mi;
    v_out[i] = vi;
    p_out[i] = p[i] - (c1 * mi) / (__builtin_sqrtf(vi) * c2 + eps);
  }
}

// The table dispatch.cpp chooses from.
inline Kernels kernels() {
  return {MG_ISA_NAME,     VW,          &forward_image,           &weight_image_wide,
          &weight_image_narrow, &channel_sums, &relu_in_place, &relu_gradient,
          &norm_silu_forward_image, &norm_silu_backward_image, &silu_forward, &silu_backward,
          &adam_step};
}

}  // namespace MG_ISA
}  // namespace mg_kernels
