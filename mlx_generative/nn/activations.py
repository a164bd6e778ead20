"""SiLU from multiplies and one divide, because MLX's CPU ``exp`` is slow.

On this Linux CPU MLX evaluates exp/sigmoid/tanh one element at a time, some 70x
slower than a multiply of the same array (benchmarks/RESULTS.md, "Where the time
goes"). A rational approximation of tanh (Eigen's ``ptanh_float``, max error ~2e-6
on silu) is nothing but multiply-adds, which MLX vectorizes and ``mx.compile`` fuses
into one loop. The backward pass is written out (silu' = s + silu * (1 - s)) so
autodiff does not differentiate the polynomial term by term.
On Apple GPUs this is merely harmless; there exp is cheap anyway.

``silu`` runs the same function in the optional native kernels where they run
(runtime/native.py): one vectorised pass each way, where MLX's fused loop is scalar.
"""

from __future__ import annotations

import mlx.core as mx

from ..runtime import native

# tanh(x) ~ x * P(x^2) / Q(x^2) on |x| <= 7.9053, where float32 tanh is +-1 anyway.
_TANH_CLAMP = 7.90531110763549805
_TANH_P = (
    4.89352455891786e-03,
    6.37261928875436e-04,
    1.48572235717979e-05,
    5.12229709037114e-08,
    -8.60467152213735e-11,
    2.00018790482477e-13,
    -2.76076847742355e-16,
)
_TANH_Q = (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06)


def _polynomial(x2: mx.array, coefficients: tuple[float, ...]) -> mx.array:
    """Horner's rule, lowest-order coefficient first."""
    result = coefficients[-1]
    for c in reversed(coefficients[:-1]):
        result = result * x2 + c
    return result


def tanh(x: mx.array) -> mx.array:
    x = mx.clip(x, -_TANH_CLAMP, _TANH_CLAMP)
    x2 = x * x
    return x * _polynomial(x2, _TANH_P) / _polynomial(x2, _TANH_Q)


def sigmoid(x: mx.array) -> mx.array:
    return 0.5 + 0.5 * tanh(0.5 * x)


@mx.custom_function
def rational_silu(x: mx.array) -> mx.array:
    """x * sigmoid(x), as nn.silu, in MLX operations."""
    return x * sigmoid(x)


@rational_silu.vjp
def _silu_vjp(x, cotangent, output):
    # With a single input, custom_function passes the array itself, not a tuple.
    s = sigmoid(x)
    return (cotangent * (s + output * (1 - s)),)


def silu(x: mx.array) -> mx.array:
    """x * sigmoid(x): ``rational_silu``, or the native kernel's loop of the same formula."""
    fused = native.silu_for(x)
    return fused(x) if fused is not None else rational_silu(x)
