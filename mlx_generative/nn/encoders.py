"""The convolutional encoder and decoder that the autoencoder and the VAE share.

    encoder  x (N, S, S, C) -> two stride-2 convolutions with ReLU (S -> S/2 -> S/4) -> flat features
    decoder  a vector -> a linear map to (S/4, S/4, c2) -> two 4x4 stride-2 transposed convolutions -> logits

``Down`` and ``Up`` compute exactly those convolutions on MLX's fast CPU path (layers.py).
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

from .layers import Down, Up


def check_image_size(image_size: int) -> None:
    if image_size % 4:
        raise ValueError(f"image_size must be divisible by 4 (two 2x downsamplings), got {image_size}")


class ConvEncoder(nn.Module):
    """x (N, S, S, C) -> features (N, S/4 * S/4 * c2), two stride-2 stages with ReLU."""

    def __init__(self, in_channels: int, channels: tuple[int, int]):
        super().__init__()
        c1, c2 = channels
        self.down1 = Down(in_channels, c1)  # S -> S/2
        self.down2 = Down(c1, c2)  # S/2 -> S/4

    def __call__(self, x: mx.array) -> mx.array:
        h = self.down1(x, relu=True)  # relu(conv(x)), in one native call where it runs
        h = self.down2(h, relu=True)
        return h.reshape(h.shape[0], -1)


class ConvDecoder(nn.Module):
    """z (N, inputs) -> logits (N, S, S, out_channels), the encoder mirrored.

    ``output_bias``: where the logits start. At logit(mean pixel), not at sigmoid 0.5, the
    first steps cannot push every pixel into saturated black, where an MSE on sigmoid
    outputs has no gradient (benchmarks/RESULTS.md, "Measurements behind the defaults").
    """

    def __init__(self, inputs: int, channels: tuple[int, int], image_size: int, out_channels: int,
                 output_bias: float):
        super().__init__()
        c1, c2 = channels
        self.side = image_size // 4
        self.c2 = c2
        self.project = nn.Linear(inputs, self.side * self.side * c2)
        self.up1 = Up(c2, c1)  # S/4 -> S/2
        self.up2 = Up(c1, out_channels)  # S/2 -> S
        self.up2.bias = mx.full((out_channels,), output_bias)

    def __call__(self, z: mx.array) -> mx.array:
        h = nn.relu(self.project(z)).reshape(-1, self.side, self.side, self.c2)
        h = self.up1(h, relu=True)
        return self.up2(h)
