"""Convolutional VAE with a diagonal-Gaussian encoder and a Bernoulli decoder.

Same convolutional shape as the autoencoder; the encoder ends in two heads,
mu and log sigma^2, and the decoder returns Bernoulli logits per pixel.

With ``num_classes`` > 0 it is a conditional VAE (Sohn et al. 2015): a learned
label embedding joins the encoder's features before the two heads and the code
z before the decoder, so q(z|x, y) and p(x|z, y). Given the label for free, the
code need not spend nats on the class and keeps the style (slant, thickness);
sampling z ~ N(0, I) with a chosen y draws that digit.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn

from .ae import AEArgs, ConvDecoder, ConvEncoder, check_image_size


@dataclass
class VAEArgs(AEArgs):
    latent_dim: int = 32
    num_classes: int = 0  # > 0: conditional on a label in 0 .. num_classes - 1
    label_dim: int = 16  # width of the label embedding (conditional only)


class VAE(nn.Module):
    """q(z|x) = N(mu(x), diag(exp(logvar(x)))), p(z) = N(0, I), p(x|z) = Bernoulli(sigmoid(logits)).

    Conditional (``args.num_classes`` > 0): every method takes the labels ``y`` (N,) int32 too.
    """

    def __init__(self, args: VAEArgs):
        super().__init__()
        check_image_size(args.image_size)
        self.args = args
        features = (args.image_size // 4) ** 2 * args.channels[1]
        label_dim = args.label_dim if args.num_classes else 0
        if args.num_classes:
            self.label_embedding = nn.Embedding(args.num_classes, label_dim)
        self.encoder = ConvEncoder(args)
        self.to_mu = nn.Linear(features + label_dim, args.latent_dim)
        self.to_logvar = nn.Linear(features + label_dim, args.latent_dim)
        self.decoder = ConvDecoder(args, extra_inputs=label_dim)

    @property
    def conditional(self) -> bool:
        return self.args.num_classes > 0

    def _with_label(self, h: mx.array, y: mx.array | None) -> mx.array:
        if not self.conditional:
            return h
        if y is None:
            raise ValueError("a conditional VAE needs the labels y")
        return mx.concatenate([h, self.label_embedding(y)], axis=-1)

    def encode(self, x: mx.array, y: mx.array | None = None) -> tuple[mx.array, mx.array]:
        """(N, S, S, C) -> (mu, logvar), each (N, latent_dim)."""
        h = self._with_label(self.encoder(x), y)
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z: mx.array, y: mx.array | None = None) -> mx.array:
        """z (N, latent_dim) -> Bernoulli logits (N, S, S, C)."""
        return self.decoder(self._with_label(z, y))

    def __call__(self, x: mx.array, y: mx.array | None = None) -> tuple[mx.array, mx.array, mx.array]:
        """One reparameterized pass: returns (logits, mu, logvar)."""
        mu, logvar = self.encode(x, y)
        # z = mu + sigma * eps keeps the sample differentiable in mu and logvar.
        z = mu + mx.exp(0.5 * logvar) * mx.random.normal(mu.shape)
        return self.decode(z, y), mu, logvar
