"""Stride-1 convolution as a sum of shifted matrix products (forward and backward).

MLX's CPU convolution builds an im2col copy of its input, and its backward
pass is slower still: a 3x3 convolution at 128x28x28x32 costs ~4x its GEMM
forward and ~13x forward+backward (benchmarks/RESULTS.md, "Where the time
goes"). This one copies nothing it does not have to.

Lay the zero-padded input out as a matrix with one row per pixel,
``(N * Hp * Wp, C)``. The pixel that kernel tap (dy, dx) reads for output
pixel p is then row ``p + dy * Wp + dx``: every tap is a *contiguous* block of
rows, which the BLAS reads in place. So

    y[p] = sum over taps t of  x[p + offset_t] @ W_t

computed for every pixel of the padded grid (the k-1 rows and columns at the
bottom/right edge are garbage and cropped; one extra zero image at the end
keeps the last taps in bounds). The backward pass is the same sum run in
reverse, written out by hand (``mx.custom_function``) so autodiff does not
turn every row slice into a zero-filled copy of the whole input:

    dx[q]  = sum_t  dy[q - offset_t] @ W_t^T     (dy padded with a leading zero image)
    dW_t   = x[offset_t : offset_t + P]^T @ dy

Each sum is computed one of three ways, by shape (``_shifted_matmul``): one
GEMM per tap; or, when the taps' inputs are narrow (the 1-channel image), one
GEMM on the taps' blocks side by side (a small im2col); or, when their
outputs are narrow (a 1-channel output), one GEMM into every tap's output
and a sum of shifted slices of it. A GEMM with 1 to 4 columns runs at a few
GFLOP/s; these keep every GEMM at least ~16 wide.

Where the optional native kernels are installed (runtime/native.py), the
layers call ``padded_tap_conv``, which runs the same sum as one C++ primitive
that also does the zero padding; this file's code is then the reference the
tests hold it to, and what runs everywhere else.
"""

from __future__ import annotations

import functools
import math

import mlx.core as mx
import mlx.nn as nn

from ..runtime import native

# Below this many columns (taps x channels) a side of the sum is "narrow".
NARROW = 32


def _as_rows(x: mx.array) -> mx.array:
    """(N, Hp, Wp, C) -> ((N + 1) * Hp * Wp, C), the extra zero image keeping every tap in bounds."""
    return mx.pad(x, [(0, 1), (0, 0), (0, 0), (0, 0)]).reshape(-1, x.shape[-1])


def _tap_offsets(taps: tuple[tuple[int, int], ...], padded_width: int) -> list[int]:
    """Row offset of each tap (dy, dx) in the flattened padded image."""
    return [dy * padded_width + dx for dy, dx in taps]


def _side_by_side(rows: mx.array, offsets: list[int], pixels: int) -> mx.array:
    """The row blocks starting at ``offsets``, concatenated along columns: (pixels, T * C), a copy."""
    return mx.concatenate([rows[o : o + pixels] for o in offsets], axis=1)


def _shifted_matmul(rows: mx.array, w: mx.array, offsets: list[int], pixels: int) -> mx.array:
    """sum_t rows[offsets[t] : offsets[t] + pixels] @ w[t]; rows (R, C), w (T, C, O) -> (pixels, O)."""
    taps, in_c, out_c = w.shape
    if taps * in_c <= NARROW:  # narrow inputs: one GEMM over the blocks side by side
        return _side_by_side(rows, offsets, pixels) @ w.reshape(taps * in_c, out_c)
    if taps * out_c <= NARROW:  # narrow outputs: every tap's output at once, then shift and sum
        y = rows[: max(offsets) + pixels] @ w.transpose(1, 0, 2).reshape(in_c, taps * out_c)
        total = None
        for t, o in enumerate(offsets):
            part = y[o : o + pixels, t * out_c : (t + 1) * out_c]
            total = part if total is None else total + part
        return total
    total = None
    for o, wt in zip(offsets, w):
        block = rows[o : o + pixels]
        total = block @ wt if total is None else mx.addmm(total, block, wt)
    return total


def _shifted_weight_grad(rows: mx.array, dy_rows: mx.array, offsets: list[int], pixels: int, frame: int):
    """dW_t = rows[o_t : o_t + pixels]^T @ dy, as (T, C, O); dy_rows has one leading zero image (frame rows)."""
    in_c, out_c, taps = rows.shape[1], dy_rows.shape[1], len(offsets)
    dy = dy_rows[frame : frame + pixels]
    if taps * in_c <= NARROW:
        return (_side_by_side(rows, offsets, pixels).T @ dy).reshape(taps, in_c, out_c)
    if taps * out_c <= NARROW:
        # sum_q rows[q]^T dy[q - o_t]: rows past `pixels` are the zero image, so q < pixels suffices.
        shifted = _side_by_side(dy_rows, [frame - o for o in offsets], pixels)
        return (rows[:pixels].T @ shifted).reshape(in_c, taps, out_c).transpose(1, 0, 2)
    return mx.stack([rows[o : o + pixels].T @ dy for o in offsets])


@functools.lru_cache(maxsize=None)
def tap_conv(taps: tuple[tuple[int, int], ...], margin: int):
    """A differentiable ``f(x, w)`` computing ``y[i, j] = sum_t x[i + dy_t, j + dx_t] @ w[t]``.

    x: (N, Hp, Wp, C) already padded; w: (len(taps), C, out), one matrix per
    tap (dy, dx); y: (N, Hp - margin, Wp - margin, out). A k x k convolution
    is all k*k taps with margin k - 1; one output phase of a transposed
    convolution is the 4 taps that phase reads (see ``Up``).
    """

    @mx.custom_function
    def conv(x: mx.array, w: mx.array) -> mx.array:
        n, hp, wp, _ = x.shape
        offsets = _tap_offsets(taps, wp)
        y = _shifted_matmul(_as_rows(x), w, offsets, n * hp * wp)
        return y.reshape(n, hp, wp, -1)[:, : hp - margin, : wp - margin, :]

    @conv.vjp
    def conv_vjp(primals, cotangent, output):
        x, w = primals
        n, hp, wp, _ = x.shape
        pixels, frame = n * hp * wp, hp * wp
        offsets = _tap_offsets(taps, wp)
        # dy on the full padded grid (zeros where the forward pass cropped), after one
        # leading zero image so that dy[q - offset] is a row block for every q >= 0.
        dy_rows = mx.pad(cotangent, [(1, 0), (0, margin), (0, margin), (0, 0)]).reshape(-1, w.shape[-1])
        dx = _shifted_matmul(dy_rows, w.transpose(0, 2, 1), [frame - o for o in offsets], pixels)
        dw = _shifted_weight_grad(_as_rows(x), dy_rows, offsets, pixels, frame)
        return dx.reshape(x.shape), dw

    return conv


def square_taps(k: int) -> tuple[tuple[int, int], ...]:
    """Every tap (dy, dx) of a k x k kernel, row-major."""
    return tuple((dy, dx) for dy in range(k) for dx in range(k))


def tap_weights(w: mx.array) -> mx.array:
    """(out, k, k, in) -> (k*k, in, out): one GEMM right-hand side per tap, row-major taps."""
    out_c, k, _, in_c = w.shape
    return w.transpose(1, 2, 3, 0).reshape(k * k, in_c, out_c)


def conv2d_valid(x: mx.array, w: mx.array) -> mx.array:
    """Unpadded stride-1 cross-correlation, as mx.conv2d(x, w).

    x: (N, Hp, Wp, C) already padded as the caller wants; w: (out, k, k, C) square.
    Returns (N, Hp - k + 1, Wp - k + 1, out).
    """
    k = w.shape[1]
    return tap_conv(square_taps(k), k - 1)(x, tap_weights(w))


def padded_tap_conv(x: mx.array, w: mx.array, taps: tuple[tuple[int, int], ...], margin: int,
                    pad: tuple[int, int, int, int], bias: mx.array | None = None,
                    shift: mx.array | None = None, relu: bool = False) -> mx.array:
    """``tap_conv(taps, margin)`` of x zero-padded by pad = (top, bottom, left, right), plus
    ``bias`` (out,) and ``shift`` (N, out), one per image, when given; then ``nn.relu`` if ``relu``.

    The native primitive pads as it reads, starts its sums from the bias and shift, and clamps
    each image's output while it is in cache, when it is installed and can run here (its
    backward pass then sums their gradients from the output gradient it reads anyway).
    Otherwise the padding is an ``mx.pad`` copy, the sum is this file's ``tap_conv``, and the
    bias, shift and ReLU are applied after.
    """
    native_conv = native.conv_for(x, w)
    if native_conv is not None:
        start = shift if bias is None else bias if shift is None else bias + shift
        return native_conv(x, w, list(taps), margin, pad, start, 1, relu)
    top, bottom, left, right = pad
    if any(pad):
        x = mx.pad(x, [(0, 0), (top, bottom), (left, right), (0, 0)])
    y = tap_conv(taps, margin)(x, w)
    if bias is not None:
        y = y + bias
    if shift is not None:
        y = y + shift[:, None, None, :]  # (N, out) broadcast over H, W
    return nn.relu(y) if relu else y


def conv2d(x: mx.array, w: mx.array, pad: tuple[int, int, int, int], bias: mx.array | None = None,
           shift: mx.array | None = None, relu: bool = False) -> mx.array:
    """Stride-1 cross-correlation of x zero-padded by pad = (top, bottom, left, right);
    w: (out, k, k, C) square. As ``conv2d_valid`` of the padded x, plus the optional
    ``bias`` (out,) and per-image ``shift`` (N, out), then a ReLU if asked (see ``padded_tap_conv``)."""
    k = w.shape[1]
    return padded_tap_conv(x, tap_weights(w), square_taps(k), k - 1, pad, bias, shift, relu)


class Conv2d(nn.Module):
    """Drop-in for ``nn.Conv2d(in, out, k, stride=1, padding=p)`` (same parameter names,
    shapes and init, so checkpoints and PyTorch twins match) computed by ``conv2d_valid``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0):
        super().__init__()
        bound = math.sqrt(1.0 / (in_channels * kernel_size * kernel_size))
        self.padding = padding
        self.weight = mx.random.uniform(-bound, bound, (out_channels, kernel_size, kernel_size, in_channels))
        self.bias = mx.zeros((out_channels,))  # as nn.Conv2d

    def _extra_repr(self) -> str:
        out_c, k, _, in_c = self.weight.shape
        return f"{in_c}, {out_c}, kernel_size={k}, padding={self.padding}"

    def __call__(self, x: mx.array, shift: mx.array | None = None, relu: bool = False) -> mx.array:
        """The convolution of x, plus ``shift`` (N, out) per image when given (the UNet adds
        its time embedding so: inside the native kernel, it costs no pass of its own), then
        ``nn.relu`` with ``relu`` (fused into the native kernel too)."""
        p = self.padding
        out_c, k, _, in_c = self.weight.shape
        if k == 1 and p == 0:  # a 1x1 convolution is one GEMM over the pixels as they are
            y = x @ self.weight.reshape(out_c, in_c).T + self.bias
            y = y if shift is None else y + shift[:, None, None, :]
            return nn.relu(y) if relu else y
        return conv2d(x, self.weight, (p, p, p, p), self.bias, shift, relu)
