"""Classifier-free guidance, shared by the two families that sample by integrating from noise
(ddpm/, flow/): how one network learns both the conditional and the unconditional
prediction, and how sampling mixes them.

    training   each label is replaced by the null label with probability p      (``drop_labels``)
    sampling   f = (1 + w) f(x, t, y) - w f(x, t, null)         (``classifier_free_guidance``)

f is the network's output: the DDPM's noise prediction, the flow's velocity. Both are
linear in what they predict, so the same mixture applies to either.

Ho & Salimans 2022, "Classifier-Free Diffusion Guidance": https://arxiv.org/abs/2207.12598
"""

from __future__ import annotations

from collections.abc import Callable

import mlx.core as mx

from ..errors import UsageError
from .base import SAMPLING, Option, at_least, in_range

LABEL_DROPOUT = Option(
    "label_dropout", float, None, "--conditional: probability of training an image with no label, so the "
    "one network learns the unconditional prediction that classifier-free guidance needs",
    check=in_range(0, 1), default_text="0.1",
)
GUIDANCE = Option(
    "guidance", float, None, "--conditional: classifier-free guidance weight w that samples use by "
    "default; 0 is plain conditional sampling", check=at_least(0), sweep=SAMPLING, default_text="3",
)
# Conditional runs: label dropout as in Ho & Salimans 2022, and the guidance weight samples use.
CONDITIONAL_DEFAULTS = {"label_dropout": 0.1, "guidance": 3.0}


def drop_labels(y: mx.array, probability: float, null_label: int) -> mx.array:
    """Each label replaced by ``null_label`` with ``probability`` (Ho & Salimans, Algorithm 1)."""
    if probability <= 0:
        return y
    dropped = mx.random.uniform(shape=y.shape) < probability
    return mx.where(dropped, null_label, y)


def classifier_free_guidance(
    predict: Callable[[mx.array, mx.array, mx.array], mx.array], labels: mx.array, null_label: int, weight: float
) -> Callable[[mx.array, mx.array], mx.array]:
    """The guided prediction of Ho & Salimans 2022, eq. 6: (1 + w) f(x, t, y) - w f(x, t, null).

    ``predict(x, t, y)`` is a conditional network trained with label dropout. w = 0 is
    the plain conditional model; larger w trades diversity for images the label fits
    better. Both predictions come from one pass over a doubled batch.
    """
    if weight == 0:
        return lambda x, t: predict(x, t, labels)
    both_labels = mx.concatenate([labels, mx.full(labels.shape, null_label, dtype=labels.dtype)])

    def guided(x: mx.array, t: mx.array) -> mx.array:
        out = predict(mx.concatenate([x, x]), mx.concatenate([t, t]), both_labels)
        conditional, unconditional = mx.split(out, 2)
        return (1.0 + weight) * conditional - weight * unconditional

    return guided


def check_conditional_options(opts) -> None:
    """--label-dropout and --guidance mean something only for a model trained with labels."""
    for option in (LABEL_DROPOUT, GUIDANCE):
        if getattr(opts, option.name) is not None and not opts.conditional:
            raise UsageError(f"{option.cli_flag} applies to conditional models: add --conditional")


def fill_conditional_defaults(opts) -> None:
    """A conditional run's label dropout and guidance weight, where not given (in place)."""
    for name, value in CONDITIONAL_DEFAULTS.items():
        if opts.conditional and getattr(opts, name) is None:
            setattr(opts, name, value)
