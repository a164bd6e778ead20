"""Convolutional autoencoder: 28x28x1 -> latent vector -> 28x28x1 logits.

The guide's shape: two stride-2 convolutions (28->14->7) to a linear latent,
mirrored by two 4x4 stride-2 transposed convolutions. ``Down``/``Up`` compute
exactly those layers on MLX's fast CPU path (see layers.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn

from ..layers import Down, Up
from .base import BaseModelArgs


@dataclass
class AEArgs(BaseModelArgs):
    latent_dim: int = 64
    channels: tuple[int, int] = (32, 64)  # after the first and second downsampling
    image_size: int = 28  # must be divisible by 4
    in_channels: int = 1
    # The decoder's output logits start at logit(0.1307), MNIST's mean pixel, rather than 0.
    # From 0 (sigmoid 0.5 everywhere) the first steps push every output towards black, and with
    # an MSE loss on sigmoid outputs the logits can overshoot into saturation, where the gradient
    # vanishes: the guide's AE at latent 16 (lr 3e-3) stayed at the all-black image, held-out MSE
    # 0.110 after 500 steps; started here it reaches 0.017 after 150 (seeds 0 and 1).
    output_bias: float = -1.9


class ConvEncoder(nn.Module):
    """x (N, S, S, C) -> features (N, S/4 * S/4 * c2), two stride-2 stages with ReLU."""

    def __init__(self, args: AEArgs):
        super().__init__()
        c1, c2 = args.channels
        self.down1 = Down(args.in_channels, c1)  # S -> S/2
        self.down2 = Down(c1, c2)  # S/2 -> S/4

    def __call__(self, x: mx.array) -> mx.array:
        h = nn.relu(self.down1(x))
        h = nn.relu(self.down2(h))
        return h.reshape(h.shape[0], -1)


class ConvDecoder(nn.Module):
    """z (N, latent [+ extra]) -> logits (N, S, S, C), the encoder mirrored.

    ``extra_inputs``: features concatenated to the code (a conditional VAE's label embedding).
    """

    def __init__(self, args: AEArgs, extra_inputs: int = 0):
        super().__init__()
        c1, c2 = args.channels
        self.side = args.image_size // 4
        self.c2 = c2
        self.project = nn.Linear(args.latent_dim + extra_inputs, self.side * self.side * c2)
        self.up1 = Up(c2, c1)  # S/4 -> S/2
        self.up2 = Up(c1, args.in_channels)  # S/2 -> S
        self.up2.bias = mx.full((args.in_channels,), args.output_bias)

    def __call__(self, z: mx.array) -> mx.array:
        h = nn.relu(self.project(z)).reshape(-1, self.side, self.side, self.c2)
        h = nn.relu(self.up1(h))
        return self.up2(h)


def check_image_size(image_size: int) -> None:
    if image_size % 4:
        raise ValueError(f"image_size must be divisible by 4 (two 2x downsamplings), got {image_size}")


class AE(nn.Module):
    """Deterministic autoencoder. ``__call__`` returns logits; sigmoid gives pixels in [0, 1]."""

    def __init__(self, args: AEArgs):
        super().__init__()
        check_image_size(args.image_size)
        self.args = args
        c2 = args.channels[1]
        self.encoder = ConvEncoder(args)
        self.to_latent = nn.Linear((args.image_size // 4) ** 2 * c2, args.latent_dim)
        self.decoder = ConvDecoder(args)

    def encode(self, x: mx.array) -> mx.array:
        """(N, S, S, C) in [0, 1] -> codes (N, latent_dim)."""
        return self.to_latent(self.encoder(x))

    def decode(self, z: mx.array) -> mx.array:
        """codes (N, latent_dim) -> logits (N, S, S, C)."""
        return self.decoder(z)

    def __call__(self, x: mx.array) -> mx.array:
        return self.decode(self.encode(x))
