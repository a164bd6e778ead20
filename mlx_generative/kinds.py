"""Where each model meets its objective, its data transform and its sampler.

``KINDS`` is the one table that pairs a model family with a loss, the scalars
that change during training, held-out metrics and a way to draw samples. The
trainer and the CLI only ever go through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np

from . import parallel
from .diffusion import SCHEDULES, SIGMAS, Schedule, classifier_free_guidance, ddim_sample, ddpm_sample
from .errors import CheckpointError, UsageError
from .losses import ae_loss, bernoulli_nll, classifier_loss, ddpm_loss, gaussian_kl, kl_beta, vae_loss
from .models import AE, VAE, AEArgs, Classifier, ClassifierArgs, TinyUNet, UNetArgs, VAEArgs
from .options import TrainOptions

# Images per forward pass in evaluation and sampling. Not larger: on the CPU big batches fall
# out of cache (VAE decoder: 7,000 img/s at 128, 3,900 at 500, 1,800 at 4,000).
EVAL_BATCH = 128
EVAL_SEED = 1234  # fixed noise for held-out metrics, so runs compare fairly
NUM_CLASSES = 10  # of every data set here (MNIST digits, Fashion-MNIST garments)


def _chunks(n: int, size: int = EVAL_BATCH):
    for start in range(0, n, size):
        yield start, min(n, start + size)


def is_conditional(config: dict) -> bool:
    """Whether a run's model takes class labels (trained with --conditional)."""
    return config["kind"] in ("vae", "ddpm") and config["model"].get("num_classes", 0) > 0


def balanced_labels(n: int, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """n labels, every class equally often (to within one), in class order: n = 8 * classes
    laid out 8 per row is one row per class."""
    return (np.arange(n) * num_classes // n).astype(np.int32)


def _labels_chunk(labels: np.ndarray | None, a: int, b: int):
    return None if labels is None else mx.array(labels[a:b].astype(np.int32))


def decode_pixels(model, z, labels: np.ndarray | None = None) -> np.ndarray:
    """AE/VAE: latent codes (and a conditional VAE's labels) -> the decoder's mean image in
    [0, 1], batch by batch."""
    z = mx.array(z)
    parts = []
    for a, b in _chunks(len(z)):
        logits = model.decode(z[a:b]) if labels is None else model.decode(z[a:b], _labels_chunk(labels, a, b))
        parts.append(np.array(mx.sigmoid(logits)))
    return np.concatenate(parts)


def _weighted_means(parts: list[tuple[int, dict]]) -> dict:
    total = sum(n for n, _ in parts)
    return {k: sum(n * float(m[k]) for n, m in parts) / total for k in parts[0][1]}


@dataclass(frozen=True)
class Kind:
    name: str
    args_cls: type
    model_cls: type
    scale: str  # "unit" ([0, 1]) or "symmetric" ([-1, 1]) pixels
    generative = True  # False: nothing to sample (the classifier)
    max_shift = 0  # random-translation augmentation of training images, in pixels

    def model_args(self, opts: TrainOptions):
        return self.args_cls()

    def takes_labels(self, opts: TrainOptions) -> bool:
        """Whether training batches are (images, labels): the classifier, and conditional models."""
        return opts.conditional

    def build(self, model_args) -> nn.Module:
        model = self.model_cls(model_args)
        mx.eval(model.parameters())
        return model

    def extra_config(self, opts: TrainOptions) -> dict:
        return {}

    def learning_rate(self, opts: TrainOptions):
        """Adam's learning rate: a constant, or a schedule of the step."""
        if opts.lr_schedule == "cosine":
            return optim.cosine_decay(opts.lr, max(1, opts.steps), opts.lr * 0.01)
        return opts.lr

    def scalars_at(self, opts: TrainOptions):
        return lambda step: {}

    def check_config(self, config: dict, path) -> None:
        """Raise CheckpointError if a loaded config lacks what this kind needs to sample."""


def conv_widths(opts: TrainOptions) -> dict:
    """--channels C as the AE/VAE's (C, 2C), or nothing for the model's default."""
    return {} if opts.channels is None else {"channels": (opts.channels, 2 * opts.channels)}


class AEKind(Kind):
    def model_args(self, opts):
        return AEArgs(latent_dim=opts.latent_dim, **conv_widths(opts))

    def loss_fn(self, config: dict):
        return partial(ae_loss, loss=config["train"]["loss"])

    def heldout(self, model, x: np.ndarray, config: dict, labels: np.ndarray | None = None) -> dict:
        parts = []
        for a, b in _chunks(len(x)):
            _, metrics = ae_loss(model, mx.array(x[a:b]), {})
            parts.append((b - a, metrics))
        return _weighted_means(parts)

    def fit_prior(self, model, x: np.ndarray) -> dict[str, mx.array]:
        """A Gaussian fitted to the codes of the training images: the AE's stand-in prior."""
        codes = np.concatenate([np.array(model.encode(mx.array(x[a:b]))) for a, b in _chunks(len(x))])
        codes = codes.astype(np.float64)
        mean = codes.mean(axis=0)
        cov = np.cov(codes, rowvar=False).reshape(len(mean), len(mean))
        cov += 1e-5 * np.eye(len(mean))  # keeps the Cholesky factor defined for flat directions
        chol = np.linalg.cholesky(cov)
        return {"latent_mean": mx.array(mean.astype(np.float32)), "latent_chol": mx.array(chol.astype(np.float32))}

    def sample(self, model, config: dict, extras: dict, n: int, key: mx.array) -> np.ndarray:
        if "latent_mean" not in extras:
            raise CheckpointError("this AE run has no fitted latent Gaussian (extras.safetensors); retrain it")
        eps = mx.random.normal((n, extras["latent_mean"].shape[0]), key=key)
        return decode_pixels(model, extras["latent_mean"] + eps @ extras["latent_chol"].T)

    def reconstruct(self, model, x: np.ndarray, labels: None = None) -> np.ndarray:
        return np.concatenate([np.array(mx.sigmoid(model(mx.array(x[a:b])))) for a, b in _chunks(len(x))])

    def encode(self, model, x: np.ndarray, labels: None = None) -> np.ndarray:
        return np.concatenate([np.array(model.encode(mx.array(x[a:b]))) for a, b in _chunks(len(x))])


class VAEKind(Kind):
    def model_args(self, opts):
        return VAEArgs(
            latent_dim=opts.latent_dim, num_classes=NUM_CLASSES if opts.conditional else 0, **conv_widths(opts)
        )

    def loss_fn(self, config: dict):
        return vae_loss

    def scalars_at(self, opts):
        return lambda step: {"beta": kl_beta(step, opts.warmup_steps, opts.beta_max)}

    def heldout(self, model, x: np.ndarray, config: dict, labels: np.ndarray | None = None) -> dict:
        """-ELBO in nats/image with one posterior sample (fixed noise), BCE and KL apart."""
        mx.random.seed(EVAL_SEED)
        labels = labels if is_conditional(config) else None
        parts = []
        for a, b in _chunks(len(x)):
            batch = mx.array(x[a:b])
            logits, mu, logvar = model(batch, _labels_chunk(labels, a, b))
            bce = mx.mean(bernoulli_nll(logits, batch))
            kl = mx.mean(gaussian_kl(mu, logvar))
            parts.append((b - a, {"bce": bce, "kl": kl, "neg_elbo": bce + kl}))
        return _weighted_means(parts)

    def sample(
        self, model, config: dict, extras: dict, n: int, key: mx.array, labels: np.ndarray | None = None
    ) -> np.ndarray:
        """Decode z ~ N(0, I); a conditional VAE decodes each z with its requested label."""
        return decode_pixels(model, mx.random.normal((n, model.args.latent_dim), key=key), labels)

    def reconstruct(self, model, x: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        """Decode the posterior mean: the deterministic reconstruction."""
        out = []
        for a, b in _chunks(len(x)):
            y = _labels_chunk(labels, a, b)
            mu, _ = model.encode(mx.array(x[a:b]), y)
            out.append(np.array(mx.sigmoid(model.decode(mu, y))))
        return np.concatenate(out)

    def encode(self, model, x: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        """The posterior means mu(x) (mu(x, y) for a conditional VAE)."""
        return np.concatenate(
            [np.array(model.encode(mx.array(x[a:b]), _labels_chunk(labels, a, b))[0]) for a, b in _chunks(len(x))]
        )


class DDPMKind(Kind):
    def model_args(self, opts):
        return UNetArgs(num_classes=NUM_CLASSES if opts.conditional else 0, attention=opts.attention)

    def extra_config(self, opts):
        return {"diffusion": {"T": opts.T, "schedule": opts.schedule, "sigma": opts.sigma}}

    def check_config(self, config: dict, path) -> None:
        diffusion = config.get("diffusion")
        if not isinstance(diffusion, dict) or "T" not in diffusion or "schedule" not in diffusion:
            raise CheckpointError(f"{path}: missing key 'diffusion' with 'T' and 'schedule'")
        T, schedule = diffusion["T"], diffusion["schedule"]
        if not isinstance(T, int) or T < 1 or schedule not in SCHEDULES:
            raise CheckpointError(f"{path}: invalid diffusion settings T={T!r}, schedule={schedule!r}")
        if diffusion.get("sigma", "beta") not in SIGMAS:
            raise CheckpointError(f"{path}: invalid diffusion sigma {diffusion['sigma']!r}")

    @staticmethod
    def schedule(config: dict) -> Schedule:
        return Schedule.create(config["diffusion"]["T"], config["diffusion"]["schedule"])

    def loss_fn(self, config: dict):
        return partial(ddpm_loss, schedule=self.schedule(config), label_dropout=config["train"].get("label_dropout") or 0.0)

    def heldout(self, model, x: np.ndarray, config: dict, labels: np.ndarray | None = None) -> dict:
        """Epsilon-MSE with every timestep equally represented and fixed noise
        (a conditional model's given the true labels)."""
        schedule = self.schedule(config)
        labels = labels if is_conditional(config) else None
        parts = []
        for a, b in _chunks(len(x)):
            x0 = mx.array(x[a:b])
            t = mx.arange(a, b) % schedule.T
            noise = mx.random.normal(x0.shape, key=mx.random.key(EVAL_SEED + a))
            eps = model(schedule.add_noise(x0, noise, t), t, _labels_chunk(labels, a, b))
            parts.append((b - a, {"mse": mx.mean((eps - noise) ** 2)}))
        return _weighted_means(parts)

    def sample(
        self, model, config: dict, extras: dict, n: int, key: mx.array, trajectory: bool = False,
        sigma: str | None = None, sampler: str | None = None, steps: int | None = None, eta: float | None = None,
        labels: np.ndarray | None = None, guidance: float | None = None,
    ):
        """Reverse diffusion: "ddpm" (all T steps, ``sigma`` noise) or "ddim" (``steps`` of them, ``eta``).
        ``sampler``, ``steps`` and ``eta`` default to the run's (``--sampler``, ``--sample-steps``,
        ``--sample-eta``; eta 0 when the run has none).

        A conditional model draws each sample's ``labels`` with classifier-free guidance
        weight ``guidance`` (default: the run's).
        """
        schedule = self.schedule(config)
        sigma = sigma or config["diffusion"].get("sigma", "beta")
        if guidance is None:
            guidance = config["train"].get("guidance") or 0.0
        sampler = sampler or self.default_sampler(config)
        if sampler == "ddim":  # the run's DDIM settings fill what the call left out
            steps = config["train"].get("sample_steps") if steps is None else steps
            eta = (config["train"].get("sample_eta") or 0.0) if eta is None else eta
        keys = mx.random.split(key, (n + EVAL_BATCH - 1) // EVAL_BATCH)
        # The weights are fixed while sampling: one compiled graph per batch shape fuses the
        # UNet's elementwise work (its SiLUs, norms, biases) across all T calls.
        shards = parallel.default_shards(min(n, EVAL_BATCH))
        network = parallel.sharded_map(mx.compile(model), shards)  # each part of a batch on its own core
        out = []
        with parallel.blas_threads_for(shards):
            for i, (a, b) in enumerate(_chunks(n)):
                shape = (b - a, *self.image_shape(model))
                if labels is None:
                    denoise = network
                else:
                    denoise = classifier_free_guidance(network, _labels_chunk(labels, a, b), model.null_label, guidance)
                if sampler == "ddim":
                    states = ddim_sample(denoise, schedule, shape, keys[i], steps=steps, eta=eta, trajectory=True)
                else:
                    states = ddpm_sample(denoise, schedule, shape, keys[i], trajectory=True, sigma=sigma)
                states = [np.array((s + 1.0) / 2.0) for s in states]  # [-1, 1] -> [0, 1]
                out.append(np.stack(states, axis=1) if trajectory else states[-1])
        return np.concatenate(out)

    @staticmethod
    def default_sampler(config: dict) -> str:
        """How a run samples unless told otherwise: its --sampler (runs before it existed: ddpm)."""
        return config["train"].get("sampler", "ddpm")

    @staticmethod
    def image_shape(model) -> tuple[int, int, int]:
        return (model.args.image_size, model.args.image_size, model.args.in_channels)


class ClassifierKind(Kind):
    """Not a generative model: the feature extractor of the sample metrics (evaluation.py)."""

    generative = False
    max_shift = 2  # random +-2 px shifts: 9,000 digits are few, and a CNN overfits them

    def takes_labels(self, opts) -> bool:
        return True

    def loss_fn(self, config: dict):
        return classifier_loss

    def heldout(self, model, x: np.ndarray, config: dict, labels: np.ndarray | None = None) -> dict:
        parts = []
        for a, b in _chunks(len(x)):
            _, metrics = classifier_loss(model, (mx.array(x[a:b]), mx.array(labels[a:b].astype(np.int32))), {})
            parts.append((b - a, metrics))
        return _weighted_means(parts)

    def sample(self, *args, **kwargs):
        raise UsageError("a classifier does not generate images; sample from an ae, vae or ddpm run")


KINDS: dict[str, Kind] = {
    "ae": AEKind("ae", AEArgs, AE, "unit"),
    "vae": VAEKind("vae", VAEArgs, VAE, "unit"),
    "ddpm": DDPMKind("ddpm", UNetArgs, TinyUNet, "symmetric"),
    "classifier": ClassifierKind("classifier", ClassifierArgs, Classifier, "unit"),
}
GENERATIVE_KINDS = tuple(name for name, kind in KINDS.items() if kind.generative)
