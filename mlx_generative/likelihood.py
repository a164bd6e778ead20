"""The importance-weighted bound on a VAE's negative log-likelihood (Burda et al. 2016).

    log p(x) >= log (1/k) sum_i p(x | z_i) p(z_i) / q(z_i | x),   z_i ~ q(z | x)

The bound tightens as k grows (k = 1 is the ELBO); the literature reports k = 5000
or 1000. A conditional VAE's bound is on log p(x | y), given each image's label.
Computed in log space with logsumexp, k samples per image in chunks so
memory stays bounded whatever k is.
"""

from __future__ import annotations

import math

import mlx.core as mx
import numpy as np

from .losses import bernoulli_nll

_LOG_2PI = math.log(2.0 * math.pi)
# Decoder passes per call: the CPU's sweet spot (7,000 img/s at 128 vs 1,800 at 4,000 here).
DECODES_PER_CALL = 128


def _log_weights(model, x: mx.array, k: int, key: mx.array, y: mx.array | None = None) -> mx.array:
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


def iwae_nll(model, x: np.ndarray, k: int = 1000, seed: int = 0, labels: np.ndarray | None = None) -> np.ndarray:
    """-log p(x) upper bound, in nats, per image of x (float32 (N, H, W, C) in [0, 1]);
    -log p(x | y) with a conditional VAE's ``labels``."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    per_chunk = max(1, min(k, DECODES_PER_CALL))  # samples per image per call
    images = max(1, DECODES_PER_CALL // per_chunk)  # images per call
    key = mx.random.key(seed)
    out = np.empty(len(x), dtype=np.float64)
    for a in range(0, len(x), images):
        batch = mx.array(x[a : a + images])
        y = None if labels is None else mx.array(labels[a : a + images].astype(np.int32))
        partial = []  # logsumexp of each chunk of samples, combined at the end
        for start in range(0, k, per_chunk):
            key, sub = mx.random.split(key)
            log_w = _log_weights(model, batch, min(per_chunk, k - start), sub, y)
            partial.append(mx.logsumexp(log_w, axis=1))
            mx.eval(partial[-1])
        lse = mx.logsumexp(mx.stack(partial, axis=1), axis=1)
        out[a : a + len(batch)] = -(np.array(lse, dtype=np.float64) - math.log(k))
    return out
