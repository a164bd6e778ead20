// Adam's update of one parameter array on raw float32 buffers, as mlx.optimizers.Adam with
// bias_correction=True computes it, in its order of operations:
//   m' = b1 m + (1 - b1) g,   v' = b2 v + (1 - b2) g^2,   p' = p - c1 m' / (sqrt(v') c2 + eps)
// where c1 = lr / (1 - b1^t) and c2 = 1 / sqrt(1 - b2^t) come from the caller, since the
// learning rate and the step t are arrays that change every step. MLX runs these lines as one
// scalar loop on one thread; here they are vectorised, and split over threads when large.
#pragma once

#include <cstdint>

namespace mg_kernels {

// The coefficients, in the order of the float array the primitive reads them from.
enum AdamCoefficient { B1, ONE_MINUS_B1, B2, ONE_MINUS_B2, C1, C2, EPS, ADAM_COEFFICIENTS };

// k: ADAM_COEFFICIENTS floats; p, g, m, v: n floats each; the outputs may not alias them.
void adam_step(const float* k, const float* p, const float* g, const float* m, const float* v, float* p_out,
               float* m_out, float* v_out, int64_t n);

}  // namespace mg_kernels
