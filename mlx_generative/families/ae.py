"""The convolutional autoencoder: compress an image to a code, and rebuild it from the code.

    encoder  f(x) = z      28x28x1 -> two stride-2 convolutions (28 -> 14 -> 7) -> a linear code
    decoder  g(z) = x_hat  the code -> two 4x4 stride-2 transposed convolutions (7 -> 14 -> 28)
    loss     L = 1/N sum_i ||x_hat_i - x_i||^2            (``ae_loss``; or the BCE, --loss bce)

An autoencoder has no prior over its codes, so it cannot sample by itself. To draw
images anyway we fit a Gaussian to the codes of the training images after training
(``fit_prior``) and decode draws from it: compare the VAE, whose prior is part of the
model. Read top to bottom: the settings, the network, the objective, the family.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from ..errors import CheckpointError
from ..nn.encoders import ConvDecoder, ConvEncoder, check_image_size
from .base import (
    CHANNELS,
    LATENT_DIM,
    MEAN_PIXEL_LOGIT,
    BaseModelArgs,
    Family,
    Metric,
    Option,
    chunks,
    conv_widths,
    decode_pixels,
    in_batches,
    weighted_means,
)

# ---- settings -----------------------------------------------------------------------

LOSS = Option("loss", str, "mse", "reconstruction loss", choices=("mse", "bce"))


@dataclass
class AEArgs(BaseModelArgs):
    latent_dim: int = 64
    channels: tuple[int, int] = (32, 64)  # after the first and second downsampling
    image_size: int = 28  # must be divisible by 4
    in_channels: int = 1
    output_bias: float = MEAN_PIXEL_LOGIT  # where the decoder's logits start (nn/encoders.py says why)


# ---- the network --------------------------------------------------------------------


class AE(nn.Module):
    """Deterministic autoencoder. ``__call__`` returns logits; sigmoid gives pixels in [0, 1]."""

    def __init__(self, args: AEArgs):
        super().__init__()
        check_image_size(args.image_size)
        self.args = args
        c2 = args.channels[1]
        self.encoder = ConvEncoder(args.in_channels, args.channels)
        self.to_latent = nn.Linear((args.image_size // 4) ** 2 * c2, args.latent_dim)
        self.decoder = ConvDecoder(args.latent_dim, args.channels, args.image_size, args.in_channels,
                                   args.output_bias)

    def encode(self, x: mx.array) -> mx.array:
        """f(x): (N, S, S, C) in [0, 1] -> codes (N, latent_dim)."""
        return self.to_latent(self.encoder(x))

    def decode(self, z: mx.array) -> mx.array:
        """g(z): codes (N, latent_dim) -> logits (N, S, S, C); sigmoid(logits) = x_hat."""
        return self.decoder(z)

    def __call__(self, x: mx.array) -> mx.array:
        return self.decode(self.encode(x))


# ---- the objective ------------------------------------------------------------------


def ae_loss(model: AE, x: mx.array, scalars: dict, loss: str = "mse"):
    """Reconstruction loss per pixel, on pixels in [0, 1]: (objective, {"mse", "bce"})."""
    logits = model(x)
    mse = mx.mean(mx.square(mx.sigmoid(logits) - x))  # L = 1/N sum_i ||x_hat_i - x_i||^2, per pixel
    bce = mx.mean(nn.losses.binary_cross_entropy(logits, x, with_logits=True, reduction="none"))
    objective = mse if loss == "mse" else bce
    return objective, {"mse": mse, "bce": bce}


def fit_prior(model: AE, x: np.ndarray) -> dict[str, mx.array]:
    """A Gaussian N(mean, L L^T) fitted to the codes of the training images: the AE's stand-in prior."""
    codes = in_batches(lambda a, b: model.encode(mx.array(x[a:b])), len(x)).astype(np.float64)
    mean = codes.mean(axis=0)
    cov = np.cov(codes, rowvar=False).reshape(len(mean), len(mean))
    cov += 1e-5 * np.eye(len(mean))  # keeps the Cholesky factor defined for flat directions
    chol = np.linalg.cholesky(cov)
    return {"latent_mean": mx.array(mean.astype(np.float32)), "latent_chol": mx.array(chol.astype(np.float32))}


# ---- the family ---------------------------------------------------------------------


class AEFamily(Family):
    name, title = "ae", "autoencoder"
    args_cls, model_cls = AEArgs, AE
    scale = "unit"
    options = (LATENT_DIM, CHANNELS, LOSS)
    # The guide's 500 steps; the learning rate is measured (benchmarks/RESULTS.md).
    defaults = {"steps": 500, "lr": 3e-3, "lr_schedule": "constant", "lr_warmup": 0, "ema_decay": 0.0,
                "latent_dim": 64}
    heldout_metrics = (Metric("mse", "MSE per pixel", "MSE/pixel"), Metric("bce", "BCE per pixel", "BCE/pixel"))
    key_settings = ("latent_dim", "loss", "steps", "lr")
    encodes = True

    def model_args(self, opts) -> AEArgs:
        return AEArgs(latent_dim=opts.latent_dim, **conv_widths(opts))

    def loss_fn(self, opts):
        return partial(ae_loss, loss=opts.loss)

    def heldout(self, model, x, opts, labels=None) -> dict:
        parts = [(b - a, ae_loss(model, mx.array(x[a:b]), {})[1]) for a, b in chunks(len(x))]
        return weighted_means(parts)

    def fit_extras(self, model, x) -> dict:
        return fit_prior(model, x)

    def sample(self, model, opts, extras, n, key, labels=None, settings=None, trajectory=False) -> np.ndarray:
        """Decode draws z = mean + L eps from the Gaussian fitted to the training codes."""
        if "latent_mean" not in extras:
            raise CheckpointError("this AE run has no fitted latent Gaussian (extras.safetensors); retrain it")
        eps = mx.random.normal((n, extras["latent_mean"].shape[0]), key=key)
        return decode_pixels(model, extras["latent_mean"] + eps @ extras["latent_chol"].T)  # z = mean + L eps

    def encode(self, model, x, labels=None) -> np.ndarray:
        return in_batches(lambda a, b: model.encode(mx.array(x[a:b])), len(x))

    def decode(self, model, z, labels=None) -> np.ndarray:
        return decode_pixels(model, z)

    def reconstruct(self, model, x, labels=None) -> np.ndarray:
        return in_batches(lambda a, b: mx.sigmoid(model(mx.array(x[a:b]))), len(x))


FAMILY = AEFamily()
