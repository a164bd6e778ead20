// The loops of one instruction set, as a table of plain function pointers (kernels.h fills one
// per instruction set; dispatch.cpp chooses one for this CPU).
#pragma once

#include <cstdint>
#include <string>

namespace mg_kernels {

struct Kernels {
  const char* name;  // "avx512", "avx2", "sse2", "neon"
  int vector_floats;
  void (*forward_image)(const float* src, int src_width, int c_in, int taps, const int64_t* off,
                        const float* packed, const float* bias, int o_total, bool narrow, float* out,
                        int64_t out_row, int64_t out_pixel, int height, int width);
  void (*weight_image_wide)(const float* src, int src_width, int c_in, int taps, const int64_t* off,
                            const float* gp, int o_total, int height, int width, float* dw);
  void (*weight_image_narrow)(const float* src, int src_width, int c_in, int taps, const int64_t* off,
                              const float* go, int o_total, int height, int width, float* dw);
  void (*channel_sums)(const float* g, int pixels, int channels, float* sums);  // sums += per channel
  // A convolution's ReLU: y = max(y, 0) in place; and the gradient it lets through, g = y > 0 ? dy : 0.
  void (*relu_in_place)(float* y, int64_t n);
  void (*relu_gradient)(const float* dy, const float* y, float* g, int64_t n);
  // GroupNorm + SiLU of one (pixels, channels) image (norm_kernels.h).
  void (*norm_silu_forward_image)(const float* x, const float* w, const float* b, int pixels, int channels,
                                  int groups, float eps, float* y, float* scratch);
  void (*norm_silu_backward_image)(const float* x, const float* w, const float* b, const float* dy, int pixels,
                                   int channels, int groups, float eps, float* dx, float* dw, float* db,
                                   float* scratch);
  // SiLU alone, over n floats.
  void (*silu_forward)(const float* a, float* y, int64_t n);
  void (*silu_backward)(const float* a, const float* dy, float* dx, int64_t n);
  // Adam's update of n parameters (adam.h).
  void (*adam_step)(const float* k, const float* p, const float* g, const float* m, const float* v, float* p_out,
                    float* m_out, float* v_out, int64_t n);
};

// Outputs narrower than half a vector waste most of a wide tile: they get loops that run their
// vectors along the input channels instead.
inline bool is_narrow(int channels, int vector_floats) { return 2 * channels < vector_floats; }

// The loops in use: the widest instruction set this CPU runs, unless MLX_GENERATIVE_SIMD or
// use_instruction_set() named another.
const Kernels& kernels();
// Switch to `name` (avx512, avx2, sse2, neon); throws std::invalid_argument naming the ones this
// CPU runs if it cannot.
void use_instruction_set(const std::string& name);
// The instruction sets this CPU runs, widest first, comma-separated.
std::string available_instruction_sets();

}  // namespace mg_kernels
