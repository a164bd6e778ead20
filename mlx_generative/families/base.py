"""What every model family provides, and the small pieces the families share.

A family is one home: its network, its objective, what it measures on held-out
data, how it samples, its defaults and the options it owns. The generic code
(options, trainer, run directories, evaluation, sweeps, reports, the CLI) goes
only through the ``Family`` interface below and the registry in
``families/__init__.py``; it never asks which family it holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from ..errors import UsageError

# Images per forward pass in evaluation and sampling: larger batches fall out of the CPU's
# cache (benchmarks/RESULTS.md).
EVAL_BATCH = 128
EVAL_SEED = 1234  # fixed noise for held-out metrics, so runs compare fairly
NUM_CLASSES = 10  # of every data set here (MNIST digits, Fashion-MNIST garments)


# ---- declarations -------------------------------------------------------------------


@dataclass
class BaseModelArgs:
    """What every network's argument dataclass shares: a round trip through config.json."""

    @classmethod
    def from_dict(cls, params: dict):
        """Build from a config dict, ignoring keys this version does not know."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in params.items() if k in names})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Check:
    """A range check of an option's value: ``ok(value)``, described as "must be {expected}"."""

    ok: Callable[[Any], bool]
    expected: str


def at_least(low) -> Check:
    return Check(lambda v: v >= low, f">= {low}")


def above(low) -> Check:
    return Check(lambda v: v > low, f"> {low}")


def in_range(low, high) -> Check:
    """low <= v < high."""
    return Check(lambda v: low <= v < high, f"in [{low}, {high})")


# How an option enters a sweep.
LEARNED = "learned"  # sweepable; changes what the model learns
SAMPLING = "sampling"  # sweepable; changes only how a trained model samples (runs share one training)
FIXED = "fixed"  # one value for every run of a sweep (where and how results are shown or computed)
NOT_IN_SWEEPS = "never"  # a sweep sets it itself (the run's directory)


@dataclass(frozen=True)
class Option:
    """One training option, declared once. The CLI's flags, the API's keywords, the
    "applies to X only" checks, the sweep rules and the docs' flag table are derived from it.

    ``default`` None means "not set" or, when a family lists the option in its ``defaults``,
    "that family's value". The families that own an option are those that list it (every
    family owns the common ones in ``training/options.py``).
    """

    name: str  # the TrainOptions field; the flag is --name with "-" for "_"
    type: type  # int, float, str or bool
    default: Any
    help: str
    choices: tuple = ()
    check: Check | None = None
    sweep: str = LEARNED
    group: str = "model"  # the section of bin/train --help: training, model, data and output
    default_text: str | None = None  # what "(default ...)" says, where the value alone would not
    flag: str | None = None  # only where it is not --name, e.g. --no-progress

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class Metric:
    """A held-out figure a family reports: its key in metrics.jsonl and eval.json, how the
    evaluation table and the reports label it, and which way is better (None: not a score)."""

    key: str
    label: str  # bin/eval's table
    column: str  # report tables
    better: str | None = "min"


# Options that more than one family owns: each family lists the ones it takes.
CONDITIONAL = Option(
    "conditional", bool, False,
    "condition on the class label, so you can ask for a given digit (bin/sample --labels 7)",
)
LATENT_DIM = Option("latent_dim", int, None, "latent size", check=at_least(1))
CHANNELS = Option(
    "channels", int, None,
    "convolution channels after the first downsampling; the second has twice as many (a UNet's full "
    "resolution has half: C/2, C, 2C). Wider fits better and costs step time", check=at_least(1),
    default_text="32, then 64",
)
MEAN_PIXEL_LOGIT = -1.9  # logit(0.1307), MNIST's mean pixel
# The two families that sample by integrating from noise (ddpm, flow) share these three; each
# family checks that the sampler is one of its own (check_options).
ATTENTION = Option("attention", bool, False, "add a self-attention layer at the UNet's 7x7 middle, so each "
                   "position reads every other directly (about 7% slower per step)")
SAMPLER = Option(
    "sampler", str, None, "how this run's samples are drawn unless bin/sample or bin/eval say otherwise. "
    "ddpm: ddpm (all T steps), ddim, or dpmpp (DPM-Solver++(2M): a second-order ODE solver, for few steps "
    "of a model trained with large T). flow: euler, or heun (second order, two network evaluations a step)",
    choices=("ddpm", "ddim", "dpmpp", "euler", "heun"), sweep=SAMPLING,
    default_text="ddpm for a ddpm, heun for a flow",
)
SAMPLE_STEPS = Option(
    "sample_steps", int, None, "steps of the sampler from noise to image: --sampler ddim or dpmpp of a ddpm "
    "(e.g. --T 1000 --sampler dpmpp --sample-steps 10), or a flow's euler or heun", check=at_least(1),
    sweep=SAMPLING, default_text="all T for a ddpm, 10 for a flow",
)


def conv_widths(opts) -> dict:
    """--channels C as the conv encoder's (C, 2C), or nothing for the network's default."""
    return {} if opts.channels is None else {"channels": (opts.channels, 2 * opts.channels)}


UNET_GROUPS = 8  # the UNet's GroupNorm groups


def unet_widths(opts) -> dict:
    """--channels C as a UNet's (C/2, C, 2C) at full, 1/2 and 1/4 resolution, or nothing for
    the network's default (16, 32, 64)."""
    if opts.channels is None:
        return {}
    if opts.channels % (2 * UNET_GROUPS):
        raise UsageError(f"--channels must be a multiple of {2 * UNET_GROUPS} for a UNet (its full resolution "
                         f"has C/2 channels in {UNET_GROUPS} GroupNorm groups), got {opts.channels}")
    return {"channels": (opts.channels // 2, opts.channels, 2 * opts.channels)}


# ---- the interface ------------------------------------------------------------------


class Family:
    """A model family. Subclasses fill in the attributes and override the methods their
    model supports; ``opts`` is always a resolved ``TrainOptions``."""

    name: str = ""
    title: str = ""  # for people: "VAE"
    args_cls: type = BaseModelArgs  # the network's argument dataclass (config.json "model")
    model_cls: type = nn.Module
    scale: str = "unit"  # the pixels the network sees: "unit" [0, 1] or "symmetric" [-1, 1]
    options: tuple[Option, ...] = ()  # the options this family owns beside the common ones
    defaults: dict = {}  # its values of options whose declared default is None
    sampling_options: tuple[Option, ...] = ()  # what sample() accepts beyond n, seed and labels
    heldout_metrics: tuple[Metric, ...] = ()  # what heldout() returns; the first is its curve
    key_settings: tuple[str, ...] = ()  # what a report shows of a lone run
    task_settings: tuple[str, ...] = ()  # settings that change the task its held-out metric measures
    generative = True  # False: nothing to sample (the classifier)
    encodes = False  # has an encoder: reconstruct, encode, interpolate, latent maps
    denoises = False  # draws samples through states x_T .. x_0 (denoising strips)
    bounds_likelihood = False  # likelihood_bound(): an upper bound on -log p(x)
    classifies = False  # a classifier with features(x): what the sample metrics are measured on
    has_posterior = False  # posterior(): a distribution q(z|x) over codes, not one code (the VAE)
    max_shift = 0  # random-translation augmentation of training images, in pixels
    guide_grid: str | None = None  # where the guide promises this family's sample grid (outputs/...)
    code_name = "codes"  # what encode() returns, for figure titles

    # -- the network

    def model_args(self, opts) -> BaseModelArgs:
        return self.args_cls()

    def build(self, args: BaseModelArgs) -> nn.Module:
        model = self.model_cls(args)
        mx.eval(model.parameters())
        return model

    def is_conditional(self, opts) -> bool:
        """Whether the network takes class labels (trained with --conditional)."""
        return bool(opts.conditional)

    def describe(self, opts) -> str:
        """The settings that say which model this is, in a few words (figure titles)."""
        return ", ".join(f"{k}={getattr(opts, k)}" for k in self.task_settings) or self.title

    # -- training

    def takes_labels(self, opts) -> bool:
        """Whether training batches are (images, labels)."""
        return self.is_conditional(opts)

    def check_options(self, opts) -> None:
        """Raise UsageError for settings that cannot go together (each value alone is checked
        by its declaration)."""

    def fill_defaults(self, opts) -> None:
        """Set this family's values of the options still at None (in place)."""
        for name, value in self.defaults.items():
            if getattr(opts, name) is None:
                setattr(opts, name, value)

    def loss_fn(self, opts) -> Callable:
        """``loss(model, batch, scalars) -> (loss, metrics)``, the objective the trainer minimises."""
        raise NotImplementedError

    def scalars_at(self, opts) -> Callable[[int], dict]:
        """Values that change during training (a KL weight), by step."""
        return lambda step: {}

    def fit_extras(self, model, x: np.ndarray) -> dict[str, mx.array]:
        """Statistics fitted after training and saved beside the weights (extras.safetensors)."""
        return {}

    # -- held-out data

    def heldout(self, model, x: np.ndarray, opts, labels: np.ndarray | None = None) -> dict:
        """The held-out figures, one per ``heldout_metrics``, averaged over images."""
        raise NotImplementedError

    def likelihood_bound(self, model, x: np.ndarray, k: int, seed: int, labels=None) -> np.ndarray:
        raise UsageError(f"a {self.name} has no likelihood bound")

    # -- sampling and encoding

    def sampling(self, opts, overrides: dict):
        """The settings sample() uses: the run's own, with a call's ``overrides`` checked and applied."""
        return None

    def sample(self, model, opts, extras: dict, n: int, key: mx.array, labels=None, settings=None,
               trajectory: bool = False, predictions: bool = False):
        """n images in [0, 1], (n, H, W, C); with ``trajectory`` (n, states, H, W, C). Families
        that denoise also take ``predictions``: then (states, the x_0 each state points at)."""
        raise UsageError(f"a {self.name} does not generate images")

    def trajectory_labels(self, states: int, opts=None, settings=None) -> list[str]:
        """Names of the ``states`` states a trajectory passes through, noise first (figures).
        ``opts`` and ``settings`` (``sampling``'s): the run's, where the names depend on them."""
        return [f"t={t}" for t in range(states - 1, -1, -1)]

    def step_limits(self, opts) -> dict[str, int | None]:
        """Each sampler, with the most steps a call may ask of it: None for no limit (a flow's
        ODE solvers), 0 where it takes no number of steps (DDPM's ancestral sampler: all T)."""
        return {}

    def encode(self, model, x: np.ndarray, labels=None) -> np.ndarray:
        raise UsageError(f"a {self.name} has no encoder")

    def posterior(self, model, x: np.ndarray, labels=None) -> tuple[np.ndarray, np.ndarray]:
        """A VAE's q(z | x): its mean and standard deviation per latent dimension."""
        raise UsageError(f"a {self.name} has no posterior distribution (a VAE has)")

    def decode(self, model, z: np.ndarray, labels=None) -> np.ndarray:
        raise UsageError(f"a {self.name} has no decoder")

    def reconstruct(self, model, x: np.ndarray, labels=None) -> np.ndarray:
        raise UsageError(f"a {self.name} has no encoder")


# ---- helpers every family uses ------------------------------------------------------


def chunks(n: int, size: int = EVAL_BATCH):
    """(start, stop) of consecutive batches covering range(n)."""
    for start in range(0, n, size):
        yield start, min(n, start + size)


def weighted_means(parts: list[tuple[int, dict]]) -> dict:
    """Per-batch means (batch size, {name: value}) -> the mean over every image, as floats."""
    total = sum(n for n, _ in parts)
    return {k: sum(n * float(m[k]) for n, m in parts) / total for k in parts[0][1]}


def labels_chunk(labels: np.ndarray | None, a: int, b: int) -> mx.array | None:
    return None if labels is None else mx.array(labels[a:b].astype(np.int32))


def images_and_labels(batch) -> tuple[mx.array, mx.array | None]:
    """A conditional model's batch is (images, labels); an unconditional one's is the images."""
    return batch if isinstance(batch, tuple) else (batch, None)


def balanced_labels(n: int, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """n labels, every class equally often (to within one), in class order: n = 8 * classes
    laid out 8 per row is one row per class."""
    return (np.arange(n) * num_classes // n).astype(np.int32)


def in_batches(fn: Callable[[int, int], mx.array], n: int) -> np.ndarray:
    """``fn(a, b)`` over consecutive batches of range(n), concatenated as numpy."""
    return np.concatenate([np.array(fn(a, b)) for a, b in chunks(n)])


def decode_pixels(model, z, labels: np.ndarray | None = None) -> np.ndarray:
    """Codes (and a conditional model's labels) -> the decoder's mean image sigmoid(logits) in
    [0, 1], batch by batch."""
    z = mx.array(z)

    def decode(a: int, b: int) -> mx.array:
        y = () if labels is None else (labels_chunk(labels, a, b),)
        return mx.sigmoid(model.decode(z[a:b], *y))

    return in_batches(decode, len(z))
