"""Building blocks shared by the models, chosen to stay on MLX's fast CPU path.

MLX's CPU backend runs a convolution as im2col + GEMM only when it is
undilated. A stride-2 transposed convolution, and the input gradient of any
strided convolution, go through input dilation and fall to single-threaded
reference loops (10-30x slower; see ../shared/MLX-NOTES.md). The two layers
here compute *exactly* a 3x3 stride-2 ``Conv2d`` and a 4x4 stride-2
``ConvTranspose2d`` (padding 1, PyTorch semantics) using only stride-1
convolutions and reshapes, so forward and backward stay on the GEMM path
(our own shifted-GEMM convolution, faster than mx.conv2d, or the optional native
kernels; see conv.py).
Their parameters have the same shapes as the layers they replace, so a
PyTorch twin has the same parameter count.
"""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn

from ..runtime import native
from .conv import conv2d, square_taps, tap_conv, tap_weights


def space_to_depth(x: mx.array) -> mx.array:
    """(N, H, W, C) -> (N, H/2, W/2, 4C); channel order (row phase, column phase, c)."""
    n, h, w, c = x.shape
    x = x.reshape(n, h // 2, 2, w // 2, 2, c)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(n, h // 2, w // 2, 4 * c)


def _uniform(shape: tuple[int, ...], fan_in: int) -> mx.array:
    # The init nn.Conv2d uses, so replacing a layer does not change training.
    bound = math.sqrt(1.0 / fan_in)
    return mx.random.uniform(-bound, bound, shape)


class Down(nn.Module):
    """Halve H and W: exactly ``Conv2d(in, out, 3, stride=2, padding=1)``.

    Output pixel i reads input rows 2i-1, 2i, 2i+1. After space-to-depth those
    are row-phase 1 of block i-1 and phases 0, 1 of block i: a 2x2 stride-1
    convolution over blocks, padded by one block at the top/left only. The 3x3
    kernel, padded to 4x4 with a leading zero row and column, is that 2x2
    kernel with each tap's two phases laid side by side (tap index 2*u + phase).
    ``weight`` has nn.Conv2d's shape (out, 3, 3, in). H and W must be even.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        fan_in = 9 * in_channels
        self.weight = _uniform((out_channels, 3, 3, in_channels), fan_in)
        self.bias = _uniform((out_channels,), fan_in)

    def block_kernel(self) -> mx.array:
        """The (out, 2, 2, 4*in) kernel the stride-1 convolution applies."""
        out_c, _, _, in_c = self.weight.shape
        w = mx.pad(self.weight, [(0, 0), (1, 0), (1, 0), (0, 0)])  # (out, 4, 4, in)
        w = w.reshape(out_c, 2, 2, 2, 2, in_c)  # (out, u, row phase, v, col phase, in)
        return w.transpose(0, 1, 3, 2, 4, 5).reshape(out_c, 2, 2, 4 * in_c)

    def __call__(self, x: mx.array, relu: bool = False) -> mx.array:
        """The convolution of x; ``nn.relu`` of it with ``relu`` (fused into the native kernel)."""
        if x.shape[1] % 2 or x.shape[2] % 2:
            raise ValueError(f"Down halves H and W, so they must be even: got {x.shape[1]} x {x.shape[2]}")
        native_conv = native.conv_for(x, self.weight)
        if native_conv is not None:  # reads x as blocks as it loads each image: no space_to_depth copy
            w = tap_weights(self.block_kernel())
            return native_conv(x, w, list(square_taps(2)), 1, (1, 0, 1, 0), self.bias, 1, relu, 2)
        blocks = space_to_depth(x)  # (N, H/2, W/2, 4*in), padded by one block at the top and left:
        return conv2d(blocks, self.block_kernel(), (1, 0, 1, 0), self.bias, relu=relu)


class Up(nn.Module):
    """Double H and W: exactly ``ConvTranspose2d(in, out, 4, stride=2, padding=1)``.

    Output row 2m + r (phase r) gathers input rows m - 1 + j for j = r, r + 1
    only, through kernel taps k = 3 - r (j = r) and k = 1 - r (j = r + 1). So
    each of the four output phases (r_y, r_x) is a 2x2 stride-1 convolution of
    the input padded by one pixel, reading only the 4 taps it needs (a single
    3x3 convolution into 4*out channels would multiply 5 of its 9 taps by zero),
    and interleaving the phases gives the result with no dilation.
    ``weight`` has nn.ConvTranspose2d's shape (out, 4, 4, in).
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        # PyTorch's ConvTranspose2d init: its fan-in is computed from dim 1 (= out) * k * k.
        fan_in = 16 * out_channels
        self.weight = _uniform((out_channels, 4, 4, in_channels), fan_in)
        self.bias = _uniform((out_channels,), fan_in)

    # Phase by phase, (ry, rx) = (0, 0), (0, 1), (1, 0), (1, 1): the 4 taps (ry + a, rx + b) each
    # reads in the input padded by one pixel on each side, and the kernel entry (row, column) of
    # each, 3 - ry - 2a, 3 - rx - 2b, as a position in the flattened 4x4 kernel.
    PHASES = ((0, 0), (0, 1), (1, 0), (1, 1))
    TAPS = tuple((ry + a, rx + b) for ry, rx in PHASES for a in (0, 1) for b in (0, 1))
    KERNEL_ENTRIES = tuple((3 - ry - 2 * a) * 4 + (3 - rx - 2 * b) for ry, rx in PHASES for a in (0, 1) for b in (0, 1))

    def tap_kernels(self) -> mx.array:
        """The 16 taps' matrices (16, in, out), phase-major as ``TAPS``: one gather from ``weight``
        (a few operations in the graph, not one per tap; its gradient is one scatter)."""
        out_c, _, _, in_c = self.weight.shape
        w = self.weight.reshape(out_c, 16, in_c)
        return mx.take(w, mx.array(self.KERNEL_ENTRIES), axis=1).transpose(1, 2, 0)

    def __call__(self, x: mx.array, relu: bool = False) -> mx.array:
        """The transposed convolution of x; ``nn.relu`` of it with ``relu`` (fused into the native kernel)."""
        n, h, w, _ = x.shape
        kernels = self.tap_kernels()
        native_conv = native.conv_for(x, self.weight)
        if native_conv is not None:
            # One native call pads as it reads, starts from the bias and writes each phase
            # straight to its interleaved pixels.
            return native_conv(x, kernels, list(self.TAPS), 2, (1, 1, 1, 1), self.bias, 4, relu)
        x = mx.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])  # one padded copy for the four phases
        y = [tap_conv(self.TAPS[4 * p : 4 * p + 4], 2)(x, kernels[4 * p : 4 * p + 4]) for p in range(4)]
        # (N, H, [ry], W, [rx], out) is row-major (N, 2H, 2W, out): stacking is the interleave.
        rows = [mx.stack(y[2 * ry : 2 * ry + 2], axis=3) for ry in (0, 1)]
        y = mx.stack(rows, axis=2).reshape(n, 2 * h, 2 * w, -1) + self.bias
        return nn.relu(y) if relu else y


def timestep_embedding(t: mx.array, dim: int, max_period: float = 10000.0) -> mx.array:
    """Sinusoidal embedding of (possibly fractional) timesteps, as in DDPM/Transformer.

    t: (N,) -> (N, dim), first half sines, second half cosines, frequencies from
    1 down to 1/max_period. (nn.SinusoidalPositionalEncoding orders and scales
    differently, so it would not match the usual DDPM embedding.)
    """
    half = dim // 2
    freqs = mx.exp(-math.log(max_period) * mx.arange(half, dtype=mx.float32) / half)
    args = t.astype(mx.float32)[:, None] * freqs[None, :]
    emb = mx.concatenate([mx.sin(args), mx.cos(args)], axis=-1)
    if dim % 2:
        emb = mx.pad(emb, [(0, 0), (0, 1)])
    return emb
