"""A small CNN classifier: not a generative model, but the feature extractor of the sample metrics.

    loss   cross-entropy of the class logits, -log softmax(logits)_y     (``classifier_loss``)

The Frechet distance, Inception Score and precision/recall of generated images are
computed on this network's penultimate features, the way FID uses Inception-v3 on
ImageNet. The project trains it itself (`bin/train classifier`), so every figure is
reproducible here.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from ..nn.conv import Conv2d
from ..nn.encoders import check_image_size
from ..nn.layers import Down
from .base import NUM_CLASSES, BaseModelArgs, Family, Metric, chunks, weighted_means


@dataclass
class ClassifierArgs(BaseModelArgs):
    num_classes: int = NUM_CLASSES
    channels: tuple[int, int] = (32, 64)  # at half and at quarter resolution
    feature_dim: int = 128  # the penultimate layer: what the Frechet distance compares
    dropout: float = 0.3  # on the features, in training only
    image_size: int = 28  # must be divisible by 4
    in_channels: int = 1


class Classifier(nn.Module):
    """x (N, S, S, C) in [0, 1] -> logits (N, num_classes).

    Down -> conv3x3 -> Down -> dense (features) -> dropout -> dense (logits), ReLU
    between. No convolution runs at full resolution: there it costs CPU time and buys no
    measurable accuracy (benchmarks/RESULTS.md).
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
        h = self.down1(x, relu=True)  # relu(conv(x)), in one native call where it runs
        h = self.conv2(h, relu=True)
        h = self.down2(h, relu=True)
        return nn.relu(self.hidden(h.reshape(h.shape[0], -1)))

    def __call__(self, x: mx.array) -> mx.array:
        return self.head(self.drop(self.features(x)))


def classifier_loss(model: Classifier, batch: tuple[mx.array, mx.array], scalars: dict):
    """Cross-entropy of the class logits (nats/image), with the batch accuracy."""
    x, y = batch
    logits = model(x)
    xent = mx.mean(nn.losses.cross_entropy(logits, y))
    accuracy = mx.mean(mx.argmax(logits, axis=-1) == y)
    return xent, {"xent": xent, "accuracy": accuracy}


class ClassifierFamily(Family):
    """Not a generative model: evaluation's feature extractor, trained like the others."""

    name, title = "classifier", "classifier"
    args_cls, model_cls = ClassifierArgs, Classifier
    scale = "unit"
    # 2,000 steps with a cosine-decayed rate and dropout (benchmarks/RESULTS.md).
    defaults = {"steps": 2000, "lr": 1e-3, "lr_schedule": "cosine", "lr_warmup": 0, "ema_decay": 0.0}
    heldout_metrics = (Metric("xent", "cross-entropy (nats/image)", "cross-entropy"),
                       Metric("accuracy", "accuracy", "accuracy", better="max"))
    generative = False
    classifies = True
    max_shift = 2  # random +-2 px shifts: 9,000 digits are few, and a CNN overfits them

    def takes_labels(self, opts) -> bool:
        return True

    def loss_fn(self, opts):
        return classifier_loss

    def heldout(self, model, x, opts, labels=None) -> dict:
        parts = []
        for a, b in chunks(len(x)):
            batch = (mx.array(x[a:b]), mx.array(labels[a:b].astype(np.int32)))
            parts.append((b - a, classifier_loss(model, batch, {})[1]))
        return weighted_means(parts)


FAMILY = ClassifierFamily()
