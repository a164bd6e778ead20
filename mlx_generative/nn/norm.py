"""GroupNorm with a hand-written backward pass, because MLX's is slow on CPU.

``nn.GroupNorm(pytorch_compatible=True)`` transposes the activation to
(N, groups, pixels * channels_per_group), calls ``mx.fast.layer_norm`` and
transposes back; its autodiff backward repeats the copies. Here the statistics
are sums over the (pixels, channels-in-group) axes of a free reshape, and the
backward is the closed form

    dx = rstd * (g - mean(g) - x_hat * mean(g * x_hat))     (means over each group)

which ``mx.compile`` fuses into a few passes (benchmarks/RESULTS.md). Same parameters (``weight``,
``bias``) and results as ``nn.GroupNorm(groups, dims, pytorch_compatible=True)``.
"""

from __future__ import annotations

import functools

import mlx.core as mx
import mlx.nn as nn

from ..runtime import native
from .activations import silu


def _grouped(x: mx.array, groups: int) -> mx.array:
    """(N, ..., C) -> (N, pixels, groups, C / groups), a reshape without a copy."""
    return x.reshape(x.shape[0], -1, groups, x.shape[-1] // groups)


def _mean(x: mx.array) -> mx.array:
    return mx.mean(x, axis=(1, 3), keepdims=True)


@functools.lru_cache(maxsize=None)
def _normalize(groups: int, eps: float):
    """x -> (x - mean) / sqrt(var + eps) per (example, group), differentiable."""

    @mx.custom_function
    def normalize(x: mx.array) -> mx.array:
        xg = _grouped(x, groups)
        centred = xg - _mean(xg)
        return (centred * mx.rsqrt(_mean(centred * centred) + eps)).reshape(x.shape)

    @normalize.vjp
    def normalize_vjp(x, cotangent, output):
        xg = _grouped(x, groups)
        centred = xg - _mean(xg)
        rstd = mx.rsqrt(_mean(centred * centred) + eps)
        x_hat, g = _grouped(output, groups), _grouped(cotangent, groups)
        return (rstd * (g - _mean(g) - x_hat * _mean(g * x_hat))).reshape(x.shape)

    return normalize


class GroupNorm(nn.Module):
    """Drop-in for ``nn.GroupNorm(groups, dims, pytorch_compatible=True)`` on channels-last input."""

    def __init__(self, groups: int, dims: int, eps: float = 1e-5):
        super().__init__()
        if dims % groups:
            raise ValueError(f"groups={groups} must divide dims={dims}")
        self.groups, self.eps = groups, eps
        self.weight = mx.ones((dims,))
        self.bias = mx.zeros((dims,))

    def _extra_repr(self) -> str:
        return f"{self.groups}, {self.weight.shape[0]}, eps={self.eps}"

    def __call__(self, x: mx.array) -> mx.array:
        return self.weight * _normalize(self.groups, self.eps)(x) + self.bias


def group_norm_silu(norm: GroupNorm, x: mx.array) -> mx.array:
    """``silu(norm(x))``: one native pass when the optional kernels run here (runtime/native.py),
    which reads and writes the activation once instead of in several fused MLX loops."""
    fused = native.group_norm_silu_for(x, norm.weight)
    if fused is not None:
        return fused(x, norm.weight, norm.bias, norm.groups, norm.eps)
    return silu(norm(x))
