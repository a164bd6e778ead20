"""Convolutional VAE with a diagonal-Gaussian encoder and a Bernoulli decoder.

Same convolutional shape as the autoencoder; the encoder ends in two heads,
mu and log sigma^2, and the decoder returns Bernoulli logits per pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn

from .ae import AEArgs, ConvDecoder, ConvEncoder, check_image_size


@dataclass
class VAEArgs(AEArgs):
    latent_dim: int = 32


class VAE(nn.Module):
    """q(z|x) = N(mu(x), diag(exp(logvar(x)))), p(z) = N(0, I), p(x|z) = Bernoulli(sigmoid(logits))."""

    def __init__(self, args: VAEArgs):
        super().__init__()
        check_image_size(args.image_size)
        self.args = args
        features = (args.image_size // 4) ** 2 * args.channels[1]
        self.encoder = ConvEncoder(args)
        self.to_mu = nn.Linear(features, args.latent_dim)
        self.to_logvar = nn.Linear(features, args.latent_dim)
        self.decoder = ConvDecoder(args)

    def encode(self, x: mx.array) -> tuple[mx.array, mx.array]:
        """(N, S, S, C) -> (mu, logvar), each (N, latent_dim)."""
        h = self.encoder(x)
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z: mx.array) -> mx.array:
        """z (N, latent_dim) -> Bernoulli logits (N, S, S, C)."""
        return self.decoder(z)

    def __call__(self, x: mx.array) -> tuple[mx.array, mx.array, mx.array]:
        """One reparameterized pass: returns (logits, mu, logvar)."""
        mu, logvar = self.encode(x)
        # z = mu + sigma * eps keeps the sample differentiable in mu and logvar.
        z = mu + mx.exp(0.5 * logvar) * mx.random.normal(mu.shape)
        return self.decode(z), mu, logvar
