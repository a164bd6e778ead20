"""A small CNN digit classifier: the feature extractor behind the sample metrics.

The Frechet distance, Inception Score and precision/recall of generated images
are computed on this network's penultimate features, the way FID uses
Inception-v3 on ImageNet. It is trained by the project itself
(`bin/train classifier`), so every figure is reproducible here.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn

from ..conv import Conv2d
from ..layers import Down
from .ae import check_image_size
from .base import BaseModelArgs


@dataclass
class ClassifierArgs(BaseModelArgs):
    num_classes: int = 10
    channels: tuple[int, int] = (32, 64)  # at half and at quarter resolution
    feature_dim: int = 128  # the penultimate layer: what the Frechet distance compares
    dropout: float = 0.3  # on the features, in training only
    image_size: int = 28  # must be divisible by 4
    in_channels: int = 1


class Classifier(nn.Module):
    """x (N, S, S, C) in [0, 1] -> logits (N, num_classes).

    Down -> conv3x3 -> Down -> dense (features) -> dropout -> dense (logits), ReLU
    between. No convolution runs at full resolution: a 3x3 conv there tripled the
    step time on the CPU for no accuracy we could measure.
    """

    def __init__(self, args: ClassifierArgs):
        super().__init__()
        check_image_size(args.image_size)
        self.args = args
        c1, c2 = args.channels
        self.down1 = Down(args.in_channels, c1)  # S -> S/2
        self.conv2 = Conv2d(c1, c2, 3, padding=1)  # S/2
        self.down2 = Down(c2, c2)  # S/2 -> S/4
        self.hidden = nn.Linear((args.image_size // 4) ** 2 * c2, args.feature_dim)
        self.drop = nn.Dropout(args.dropout)
        self.head = nn.Linear(args.feature_dim, args.num_classes)

    def features(self, x: mx.array) -> mx.array:
        """The penultimate activations (N, feature_dim)."""
        h = nn.relu(self.down1(x))
        h = nn.relu(self.conv2(h))
        h = nn.relu(self.down2(h))
        return nn.relu(self.hidden(h.reshape(h.shape[0], -1)))

    def __call__(self, x: mx.array) -> mx.array:
        return self.head(self.drop(self.features(x)))
