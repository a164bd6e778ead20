"""The convolutional VAE: a latent-variable model trained on the ELBO, with KL warm-up.

    prior        p(z) = N(0, I)
    encoder      q(z | x) = N(mu(x), diag(sigma^2(x)))         a conv encoder with two heads (``VAE.encode``)
    decoder      p(x | z) = Bernoulli(sigmoid(logits(z)))      the conv decoder (``VAE.decode``)
    sample z     z = mu + sigma * eps, eps ~ N(0, I)            (the reparameterisation, ``VAE.__call__``)
    ELBO         E_q[log p(x | z)] - KL(q(z | x) || p(z))
    KL           1/2 sum_j (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1)      (``gaussian_kl``)
    loss         L_t = BCE + beta_t KL,  beta_t = min(beta_max, t / warmup * beta_max)  (``vae_loss``, ``kl_beta``)
    sampling     decode z ~ p(z)                                 (``VAEFamily.sample``)

With ``--conditional`` it is a conditional VAE (Sohn et al. 2015): a learned label
embedding joins the encoder's features and the code, so q(z | x, y) and p(x | y, z).
Given the label for free, the code keeps the style (slant, thickness), and sampling
z ~ N(0, I) with a chosen y draws that digit.

Held out, it reports -ELBO in nats per image with its two parts, and ``iwae_nll``
gives the tighter importance-weighted bound on -log p(x) (Burda et al. 2016).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from ..nn.encoders import ConvDecoder, ConvEncoder, check_image_size
from .base import (
    CHANNELS,
    CONDITIONAL,
    EVAL_SEED,
    LATENT_DIM,
    MEAN_PIXEL_LOGIT,
    NUM_CLASSES,
    BaseModelArgs,
    Family,
    Metric,
    Option,
    above,
    at_least,
    chunks,
    conv_widths,
    decode_pixels,
    images_and_labels,
    in_batches,
    labels_chunk,
    weighted_means,
)

# ---- settings -----------------------------------------------------------------------

WARMUP_STEPS = Option("warmup_steps", int, 200, "steps over which the KL weight rises linearly from 0 to "
                      "--beta-max", check=at_least(0))
BETA_MAX = Option("beta_max", float, 1.0, "final KL weight; 1 is the true ELBO", check=above(0))
BINARIZE = Option("binarize", str, None, "'dynamic' re-samples binary pixels every epoch, for likelihoods "
                  "comparable with the literature", choices=("dynamic",), default_text="none")


@dataclass
class VAEArgs(BaseModelArgs):
    latent_dim: int = 32
    channels: tuple[int, int] = (32, 64)  # after the first and second downsampling
    image_size: int = 28  # must be divisible by 4
    in_channels: int = 1
    output_bias: float = MEAN_PIXEL_LOGIT  # where the decoder's logits start (nn/encoders.py says why)
    num_classes: int = 0  # > 0: conditional on a label in 0 .. num_classes - 1
    label_dim: int = 16  # width of the label embedding (conditional only)


# ---- the network --------------------------------------------------------------------


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
        self.encoder = ConvEncoder(args.in_channels, args.channels)  # shared with the AE (nn/encoders.py)
        self.to_mu = nn.Linear(features + label_dim, args.latent_dim)  # mu(x)
        self.to_logvar = nn.Linear(features + label_dim, args.latent_dim)  # log sigma^2(x)
        self.decoder = ConvDecoder(args.latent_dim + label_dim, args.channels, args.image_size, args.in_channels,
                                   args.output_bias)

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
        """One reparameterised pass: returns (logits, mu, logvar)."""
        mu, logvar = self.encode(x, y)
        z = mu + mx.exp(0.5 * logvar) * mx.random.normal(mu.shape)  # z = mu + sigma * eps: differentiable in mu, sigma
        return self.decode(z, y), mu, logvar


# ---- the objective ------------------------------------------------------------------


def gaussian_kl(mu: mx.array, logvar: mx.array) -> mx.array:
    """KL(N(mu, sigma^2) || N(0, I)) per example."""
    return 0.5 * mx.sum(mu**2 + mx.exp(logvar) - logvar - 1.0, axis=-1)  # 1/2 sum(mu^2 + sigma^2 - log sigma^2 - 1)


def bernoulli_nll(logits: mx.array, x: mx.array) -> mx.array:
    """-log p(x | z) per example, summed over pixels (nats): the BCE of the Bernoulli decoder."""
    bce = nn.losses.binary_cross_entropy(logits, x, with_logits=True, reduction="none")
    return mx.sum(bce.reshape(bce.shape[0], -1), axis=-1)


def vae_loss(model: VAE, batch, scalars: dict):
    """BCE + beta_t * KL per image (nats): the beta-weighted negative ELBO.

    With beta = 1 this is exactly -ELBO; ``neg_elbo`` is logged at beta = 1 always.
    ``batch``: images, or (images, labels) for a conditional VAE.
    """
    x, y = images_and_labels(batch)
    logits, mu, logvar = model(x, y)
    bce = mx.mean(bernoulli_nll(logits, x))
    kl = mx.mean(gaussian_kl(mu, logvar))
    beta = scalars["beta"]
    return bce + beta * kl, {"bce": bce, "kl": kl, "beta": beta, "neg_elbo": bce + kl}  # L_t = BCE + beta_t KL


def kl_beta(step: int, warmup_steps: int, beta_max: float) -> float:
    """KL warm-up: beta_t = min(beta_max, t / warmup * beta_max); beta_max at once if warmup is 0."""
    if warmup_steps <= 0:
        return beta_max
    return min(beta_max, step / warmup_steps * beta_max)  # beta_t = min(beta_max, t / warmup * beta_max)


# ---- the importance-weighted bound -------------------------------------------------------
#   log p(x) >= log (1/k) sum_i p(x | z_i) p(z_i) / q(z_i | x),   z_i ~ q(z | x)
# It tightens as k grows (k = 1 is the ELBO); the literature reports k = 5000 or 1000.

_LOG_2PI = math.log(2.0 * math.pi)
DECODES_PER_CALL = 128  # decoder passes per call: the CPU's sweet spot, like EVAL_BATCH


def _log_weights(model: VAE, x: mx.array, k: int, key: mx.array, y: mx.array | None = None) -> mx.array:
    """log p(x|z) + log p(z) - log q(z|x) for k draws z ~ q(z|x) per image: (B, k)."""
    labelled = () if y is None else (y,)  # an unconditional model's methods take no labels
    mu, logvar = model.encode(x, *labelled)
    b, d = mu.shape
    eps = mx.random.normal((b, k, d), key=key)
    z = mu[:, None, :] + mx.exp(0.5 * logvar)[:, None, :] * eps
    each = () if y is None else (mx.repeat(y, k),)  # the label of each of the b * k draws
    logits = model.decode(z.reshape(b * k, d), *each)
    targets = mx.broadcast_to(x[:, None], (b, k, *x.shape[1:])).reshape(b * k, *x.shape[1:])
    log_px_z = -bernoulli_nll(logits, targets).reshape(b, k)
    log_pz = -0.5 * mx.sum(z**2 + _LOG_2PI, axis=-1)
    log_qz_x = -0.5 * mx.sum(eps**2 + _LOG_2PI + logvar[:, None, :], axis=-1)
    return log_px_z + log_pz - log_qz_x


def iwae_nll(model: VAE, x: np.ndarray, k: int = 1000, seed: int = 0, labels: np.ndarray | None = None) -> np.ndarray:
    """The upper bound on -log p(x) in nats, per image of x (float32 (N, H, W, C) in [0, 1]);
    on -log p(x | y) given a conditional VAE's ``labels``. k samples per image, in chunks, so
    memory stays bounded whatever k is; combined in log space with logsumexp."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    per_chunk = max(1, min(k, DECODES_PER_CALL))  # samples per image per call
    images = max(1, DECODES_PER_CALL // per_chunk)  # images per call
    key = mx.random.key(seed)
    out = np.empty(len(x), dtype=np.float64)
    for a in range(0, len(x), images):
        batch = mx.array(x[a : a + images])
        y = labels_chunk(labels, a, a + images)
        partial = []  # logsumexp of each chunk of samples, combined at the end
        for start in range(0, k, per_chunk):
            key, sub = mx.random.split(key)
            log_w = _log_weights(model, batch, min(per_chunk, k - start), sub, y)
            partial.append(mx.logsumexp(log_w, axis=1))
            mx.eval(partial[-1])
        lse = mx.logsumexp(mx.stack(partial, axis=1), axis=1)
        out[a : a + len(batch)] = -(np.array(lse, dtype=np.float64) - math.log(k))
    return out


# ---- the family ---------------------------------------------------------------------


class VAEFamily(Family):
    name, title = "vae", "VAE"
    args_cls, model_cls = VAEArgs, VAE
    scale = "unit"
    options = (LATENT_DIM, CHANNELS, WARMUP_STEPS, BETA_MAX, BINARIZE, CONDITIONAL)
    # The guide's 600 steps; the learning rate is measured (benchmarks/RESULTS.md).
    defaults = {"steps": 600, "lr": 2e-3, "lr_schedule": "constant", "lr_warmup": 0, "ema_decay": 0.0,
                "latent_dim": 32}
    heldout_metrics = (
        Metric("neg_elbo", "-ELBO (nats/image)", "-ELBO (nats)"),
        Metric("bce", "  of which reconstruction (BCE)", "recon. (nats)"),
        Metric("kl", "  of which KL", "KL (nats)", better=None),  # a trade-off, not a score
    )
    key_settings = ("latent_dim", "warmup_steps", "beta_max", "conditional", "steps", "lr")
    encodes = True
    code_name = "posterior means mu(x)"
    bounds_likelihood = True
    has_posterior = True

    def model_args(self, opts) -> VAEArgs:
        return VAEArgs(latent_dim=opts.latent_dim, num_classes=NUM_CLASSES if opts.conditional else 0,
                       **conv_widths(opts))

    def loss_fn(self, opts):
        return vae_loss

    def scalars_at(self, opts):
        return lambda step: {"beta": kl_beta(step, opts.warmup_steps, opts.beta_max)}

    def heldout(self, model, x, opts, labels=None) -> dict:
        """-ELBO in nats/image with one posterior sample (fixed noise), BCE and KL apart."""
        mx.random.seed(EVAL_SEED)
        labels = labels if self.is_conditional(opts) else None
        parts = []
        for a, b in chunks(len(x)):
            batch = mx.array(x[a:b])
            logits, mu, logvar = model(batch, labels_chunk(labels, a, b))
            bce = mx.mean(bernoulli_nll(logits, batch))
            kl = mx.mean(gaussian_kl(mu, logvar))
            parts.append((b - a, {"bce": bce, "kl": kl, "neg_elbo": bce + kl}))
        return weighted_means(parts)

    def likelihood_bound(self, model, x, k, seed, labels=None) -> np.ndarray:
        return iwae_nll(model, x, k=k, seed=seed, labels=labels)

    def sample(self, model, opts, extras, n, key, labels=None, settings=None, trajectory=False) -> np.ndarray:
        """Decode z ~ N(0, I); a conditional VAE decodes each z with its requested label."""
        z = mx.random.normal((n, model.args.latent_dim), key=key)  # z ~ p(z) = N(0, I)
        return decode_pixels(model, z, labels)  # the mean image of p(x | z)

    def encode(self, model, x, labels=None) -> np.ndarray:
        """The posterior means mu(x) (mu(x, y) for a conditional VAE)."""
        return in_batches(lambda a, b: model.encode(mx.array(x[a:b]), labels_chunk(labels, a, b))[0], len(x))

    def posterior(self, model, x, labels=None) -> tuple[np.ndarray, np.ndarray]:
        """q(z | x) = N(mu, diag sigma^2): (mu, sigma), each (N, latent_dim)."""
        both = in_batches(lambda a, b: mx.concatenate(model.encode(mx.array(x[a:b]), labels_chunk(labels, a, b)),
                                                      axis=-1), len(x))
        mu, logvar = np.split(both, 2, axis=-1)
        return mu, np.exp(0.5 * logvar)

    def decode(self, model, z, labels=None) -> np.ndarray:
        return decode_pixels(model, z, labels)

    def reconstruct(self, model, x, labels=None) -> np.ndarray:
        """Decode the posterior mean: the deterministic reconstruction."""

        def one_batch(a: int, b: int) -> mx.array:
            y = labels_chunk(labels, a, b)
            mu, _ = model.encode(mx.array(x[a:b]), y)
            return mx.sigmoid(model.decode(mu, y))

        return in_batches(one_batch, len(x))


FAMILY = VAEFamily()
