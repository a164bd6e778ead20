// The Python module mlx_generative_kernels._ext.
#include <nanobind/nanobind.h>
#include <nanobind/stl/array.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/variant.h>
#include <nanobind/stl/vector.h>

#include "isa.h"
#include "threads.h"
#include "primitives.h"

namespace nb = nanobind;
using namespace nb::literals;

NB_MODULE(_ext, m) {
  m.doc() = "Native CPU kernels for mlx-generative (optional; the package runs without them).";
  m.def("tap_conv", &mg_kernels::tap_conv, "x"_a, "w"_a, "taps"_a, "margin"_a, "pad"_a, "bias"_a = nb::none(),
        "phases"_a = 1, "relu"_a = false, "blocks"_a = 1, nb::kw_only(), "stream"_a = nb::none(),
        "y[n, i, j] = bias[n] + sum_t xpad[n, i + dy_t, j + dx_t] @ w[t]: x (N, H, W, C) float32, w (T, C, O), "
        "taps [(dy, dx)], pad (top, bottom, left, right), bias None, (O,) or (N, O); y (N, H + top + bottom - margin, "
        "W + left + right - margin, O). phases=4: the taps (and w) are four equal groups, one per output phase "
        "(ry, rx) of a stride-2 upsampling, interleaved into y (N, 2 Ho, 2 Wo, O) at (2i + ry, 2j + rx). "
        "relu=True: y = max(y, 0), the gradients passing only where y > 0. blocks=2: x (N, 2H, 2W, C / 4) is "
        "read as (N, H, W, C), each 2x2 block of pixels one pixel, channels ordered (row phase, column phase, c). "
        "Differentiable in x, w and bias; CPU streams only.");
  m.def("group_norm_silu", &mg_kernels::group_norm_silu, "x"_a, "weight"_a, "bias"_a, "groups"_a, "eps"_a,
        nb::kw_only(), "stream"_a = nb::none(),
        "silu(GroupNorm(x) * weight + bias) over (N, ..., C) float32 with `groups` groups of channels, as "
        "nn.GroupNorm(pytorch_compatible=True) then nn.silu. Differentiable in x, weight and bias; CPU streams only.");
  m.def("silu", &mg_kernels::silu, "x"_a, nb::kw_only(), "stream"_a = nb::none(),
        "x * sigmoid(x) elementwise over float32, sigmoid from the rational tanh of nn/activations.py. "
        "Differentiable; CPU streams only.");
  m.def("adam_update", &mg_kernels::adam_update, "k"_a, "p"_a, "g"_a, "m"_a, "v"_a, nb::kw_only(), "stream"_a = nb::none(),
        "(p', m', v'): Adam's update of parameter p (float32) from its gradient g and moments m, v, as "
        "mlx.optimizers.Adam(bias_correction=True): m' = b1 m + (1 - b1) g, v' = b2 v + (1 - b2) g^2, "
        "p' = p - c1 m' / (sqrt(v') c2 + eps), with k = [b1, 1 - b1, b2, 1 - b2, c1, c2, eps] (float32), "
        "c1 = lr / (1 - b1^t), c2 = 1 / sqrt(1 - b2^t). CPU streams only.");
  m.def("set_threads", &mg_kernels::set_threads, "threads"_a, "Threads a convolution may use (at least 1).");
  m.def("threads", &mg_kernels::threads);
  m.def("instruction_set", [] { return std::string(mg_kernels::kernels().name); },
        "The instruction set of the loops in use: avx512, avx2, sse2 or neon.");
  m.def("use_instruction_set", &mg_kernels::use_instruction_set, "name"_a,
        "Use the loops for `name` (for tests); ValueError if this CPU cannot run them.");
  m.def("available_instruction_sets", &mg_kernels::available_instruction_sets);
}
