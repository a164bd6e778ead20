"""Training objectives. Each takes (model, batch, scalars) and returns (loss, metrics).

``scalars`` holds values that change during training (the KL weight) as mx
arrays, so the compiled step does not retrace when they change. ``metrics``
are scalars to log, all averaged over the batch.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

from .diffusion import Schedule

AE_LOSSES = ("mse", "bce")


def images_and_labels(batch) -> tuple[mx.array, mx.array | None]:
    """A conditional model's batch is (images, labels); an unconditional one's is the images."""
    return batch if isinstance(batch, tuple) else (batch, None)


def ae_loss(model, x: mx.array, scalars: dict, loss: str = "mse"):
    """Reconstruction loss of an autoencoder on pixels in [0, 1], per pixel."""
    logits = model(x)
    mse = mx.mean((mx.sigmoid(logits) - x) ** 2)
    bce = mx.mean(nn.losses.binary_cross_entropy(logits, x, with_logits=True, reduction="none"))
    objective = mse if loss == "mse" else bce
    return objective, {"mse": mse, "bce": bce}


def gaussian_kl(mu: mx.array, logvar: mx.array) -> mx.array:
    """KL(N(mu, exp(logvar)) || N(0, I)) per example: 1/2 sum(mu^2 + sigma^2 - log sigma^2 - 1)."""
    return 0.5 * mx.sum(mu**2 + mx.exp(logvar) - logvar - 1.0, axis=-1)


def bernoulli_nll(logits: mx.array, x: mx.array) -> mx.array:
    """-log p(x | logits) per example, summed over pixels (nats)."""
    bce = nn.losses.binary_cross_entropy(logits, x, with_logits=True, reduction="none")
    return mx.sum(bce.reshape(bce.shape[0], -1), axis=-1)


def vae_loss(model, batch, scalars: dict):
    """BCE + beta * KL per image (nats), the beta-weighted negative ELBO.

    With beta = 1 this is exactly -ELBO; ``neg_elbo`` is logged at beta = 1 always.
    ``batch``: images, or (images, labels) for a conditional VAE.
    """
    x, y = images_and_labels(batch)
    logits, mu, logvar = model(x, y)
    bce = mx.mean(bernoulli_nll(logits, x))
    kl = mx.mean(gaussian_kl(mu, logvar))
    beta = scalars["beta"]
    return bce + beta * kl, {"bce": bce, "kl": kl, "beta": beta, "neg_elbo": bce + kl}


def kl_beta(step: int, warmup_steps: int, beta_max: float) -> float:
    """KL warm-up: beta_t = min(beta_max, t / warmup * beta_max); beta_max at once if warmup is 0."""
    if warmup_steps <= 0:
        return beta_max
    return min(beta_max, step / warmup_steps * beta_max)


def ddpm_loss(model, batch, scalars: dict, schedule: Schedule, label_dropout: float = 0.0):
    """Epsilon-prediction MSE at a uniformly drawn timestep (Ho et al., Algorithm 1).

    ``batch``: images, or (images, labels) for a conditional model. Each label is
    replaced by the model's null label with probability ``label_dropout``, so the one
    network also learns the unconditional noise that classifier-free guidance
    subtracts (Ho & Salimans 2022, https://arxiv.org/abs/2207.12598, Algorithm 1).
    """
    x0, y = images_and_labels(batch)
    t = mx.random.randint(0, schedule.T, (x0.shape[0],))
    noise = mx.random.normal(x0.shape)
    x_t = schedule.add_noise(x0, noise, t)
    if y is not None and label_dropout > 0:
        dropped = mx.random.uniform(shape=y.shape) < label_dropout
        y = mx.where(dropped, model.null_label, y)
    mse = mx.mean((model(x_t, t, y) - noise) ** 2)
    return mse, {"mse": mse}


def classifier_loss(model, batch: tuple[mx.array, mx.array], scalars: dict):
    """Cross-entropy of the class logits (nats/image), with the batch accuracy."""
    x, y = batch
    logits = model(x)
    xent = mx.mean(nn.losses.cross_entropy(logits, y))
    accuracy = mx.mean(mx.argmax(logits, axis=-1) == y)
    return xent, {"xent": xent, "accuracy": accuracy}
