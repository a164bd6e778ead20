"""Training options shared by the CLI and the Python API, with their range checks."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from . import parallel
from .diffusion import SAMPLERS, SCHEDULES, SIGMAS
from .errors import UsageError

KIND_NAMES = ("ae", "vae", "ddpm", "classifier")
# Flags that only some model families read: giving them to another is a mistake worth naming.
KIND_ONLY = {
    "loss": ("ae",),
    "channels": ("ae", "vae"),
    "warmup_steps": ("vae",),
    "beta_max": ("vae",),
    "binarize": ("vae",),
    "conditional": ("vae", "ddpm"),
    "T": ("ddpm",),
    "schedule": ("ddpm",),
    "sigma": ("ddpm",),
    "label_dropout": ("ddpm",),
    "guidance": ("ddpm",),
    "sampler": ("ddpm",),
    "sample_steps": ("ddpm",),
    "sample_eta": ("ddpm",),
    "attention": ("ddpm",),
}


def check_kind_only(kind: str, flags) -> None:
    """Name the first of ``flags`` (option names) that another model family reads."""
    for flag, owners in KIND_ONLY.items():
        if flag in flags and kind not in owners:
            raise UsageError(f"--{flag.replace('_', '-')} applies to {' and '.join(owners)} only, not {kind}")

# Per-kind defaults: the guide's step counts, so `bin/train vae` runs the guide's recipe.
DEFAULT_STEPS = {"ae": 500, "vae": 600, "ddpm": 800, "classifier": 2000}
DEFAULT_LATENT = {"ae": 64, "vae": 32}
# Held-out figures on the sample's last 1,000 digits, the guide's recipes, seed 0:
# AE MSE after 500 steps: 0.0071 / 0.0059 / 0.0056 at lr 1e-3 / 2e-3 / 3e-3; 5e-3 diverges
#   (the sigmoid saturates), and seeds 1 and 2 at 3e-3 gave 0.0062 and 0.0049.
# VAE -ELBO after 600 steps: 115.3 / 110.5 / 110.2 nats at 1e-3 / 2e-3 / 3e-3.
# DDPM eps-MSE after 300 steps (T=6, linear): 0.078 / 0.065 / 0.061 at 1e-3 / 2e-3 / 4e-3,
#   and 0.048 / 0.046 at 2e-3 / 4e-3 after 800 steps.
DEFAULT_LR = {"ae": 3e-3, "vae": 2e-3, "ddpm": 4e-3, "classifier": 1e-3}
# DDPM, the guide's 800 steps at T = 6 (linear schedule, same seed): an EMA at 0.995 gives
# held-out eps-MSE 0.0453 and sample FD 552.8 (10,000 samples) against 0.0463 and 689.9 from the
# raw weights, at no measurable cost (240 s of training with it, 242 s without, in the same
# hour; benchmarks/RESULTS.md). Not measured on the AE, VAE or classifier: off there.
DEFAULT_EMA = {"ae": 0.0, "vae": 0.0, "ddpm": 0.995, "classifier": 0.0}
# The classifier decays its rate (cosine, to 1%): 98.5% on the real MNIST test split after 2000
# steps on the sample (with dropout 0.3), against 97.9% at a constant 1e-3 for 1000 steps.
LR_SCHEDULES = ("constant", "cosine")
# Conditional DDPM: label dropout as in Ho & Salimans 2022; the guidance weight samples use.
DEFAULT_LABEL_DROPOUT = 0.1
DEFAULT_GUIDANCE = 3.0
DEFAULT_LR_SCHEDULE = {"ae": "constant", "vae": "constant", "ddpm": "constant", "classifier": "cosine"}


@dataclass
class TrainOptions:
    """Everything `bin/train` accepts. None means "the kind's default"."""

    steps: int | None = None  # optimizer steps (the guide: ae 500, vae 600, ddpm 800)
    batch_size: int = 128
    lr: float | None = None  # Adam learning rate (ae 3e-3, vae 2e-3, ddpm 4e-3, classifier 1e-3)
    lr_schedule: str | None = None  # constant, or cosine decay to 1% of lr over the run (classifier)
    seed: int = 0
    latent_dim: int | None = None  # ae 64, vae 32
    # ae/vae: convolution channels after the first downsampling; the second has twice as many.
    # None: the guide's 32 (then 64).
    channels: int | None = None
    loss: str = "mse"  # ae reconstruction loss: mse or bce
    warmup_steps: int = 200  # vae: KL weight rises linearly to beta_max over these steps
    beta_max: float = 1.0  # vae: final KL weight (1 = the true ELBO)
    binarize: str | None = None  # vae: None or "dynamic" (Bernoulli-sample pixels each epoch)
    # vae/ddpm: condition on the class label (a conditional VAE; a DDPM for classifier-free guidance)
    conditional: bool = False
    label_dropout: float | None = None  # ddpm --conditional: P(label -> "no label") per image (0.1)
    guidance: float | None = None  # ddpm --conditional: the guidance weight samples use by default
    T: int = 6  # ddpm: diffusion steps
    # ddpm: cosine or linear. Cosine by default: the guide's 800 steps at T = 6 (with the EMA)
    # give sample FD 448.9 against 552.8 with linear (10,000 samples, benchmarks/RESULTS.md).
    schedule: str = "cosine"
    # ddpm: reverse-step noise. "posterior" (sqrt(beta~_t)) by default: with T = 6 the guide's
    # sqrt(beta_t) injects more noise than the last steps remove, leaving speckled samples.
    sigma: str = "posterior"
    # ddpm: how samples are drawn unless a call says otherwise (the grids, bin/sample, bin/eval):
    # "ddpm" takes all T steps; "ddim" takes sample_steps of them (default all). A T = 1000
    # model is trained as cheaply as a T = 6 one, but sampling it needs DDIM's shortcut.
    sampler: str = "ddpm"
    sample_steps: int | None = None
    sample_eta: float | None = None  # ddpm --sampler ddim: DDIM noise, 0 deterministic (default) to 1
    attention: bool = False  # ddpm: a self-attention layer in the UNet's middle (models/unet.py)
    dataset: str = "mnist"
    data_dir: str | None = None
    limit_train: int | None = None  # use only the first N training images
    out: str = "outputs"  # parent folder of run directories
    name: str | None = None  # run directory name (default: <kind>-<timestamp>)
    log_every: int = 10
    eval_every: int = 0  # held-out evaluation every N steps (0: a fifth of the run)
    checkpoint_every: int = 0  # resumable checkpoint every N steps (0: a fifth of the run)
    keep_checkpoints: int = 2
    clip_grad_norm: float | None = None
    ema_decay: float | None = None  # EMA of the weights to evaluate and sample (ddpm 0.995; others 0: off)
    # CPU streams each batch is split over, run side by side (parallel.py). None: one per core
    # (1 on a GPU). Noise draws depend on it, so a run records it and a resume keeps it.
    shards: int | None = None
    progress: bool = True

    def resolved(self, kind: str, processes: int = 1) -> "TrainOptions":
        """A copy with the kind's defaults filled in and every value checked.

        ``processes``: how many training processes share this machine (mlx.launch ranks).
        """
        if kind not in KIND_NAMES:
            raise UsageError(f"unknown model {kind!r}; choose one of: {', '.join(KIND_NAMES)}")
        opts = dataclasses.replace(self)
        if opts.conditional and kind not in KIND_ONLY["conditional"]:
            raise UsageError(f"--conditional applies to vae and ddpm only, not {kind}")
        if opts.steps is None:
            opts.steps = DEFAULT_STEPS[kind]
        if opts.lr is None:
            opts.lr = DEFAULT_LR[kind]
        if opts.lr_schedule is None:
            opts.lr_schedule = DEFAULT_LR_SCHEDULE[kind]
        if opts.ema_decay is None:
            opts.ema_decay = DEFAULT_EMA[kind]
        if kind == "ddpm" and opts.conditional:
            opts.label_dropout = DEFAULT_LABEL_DROPOUT if opts.label_dropout is None else opts.label_dropout
            opts.guidance = DEFAULT_GUIDANCE if opts.guidance is None else opts.guidance
        if opts.shards is None and opts.batch_size >= 1:
            opts.shards = parallel.default_shards(opts.batch_size, processes)
        if opts.latent_dim is None and kind in DEFAULT_LATENT:
            opts.latent_dim = DEFAULT_LATENT[kind]
        fifth = max(1, opts.steps // 5)
        opts.eval_every = opts.eval_every or fifth
        opts.checkpoint_every = opts.checkpoint_every or fifth
        opts.check()
        return opts

    def check(self) -> None:
        def need(ok: bool, flag: str, expected: str, value) -> None:
            if not ok:
                raise UsageError(f"--{flag} must be {expected}, got {value!r}")

        need(self.steps >= 0, "steps", ">= 0", self.steps)
        need(self.batch_size >= 1, "batch-size", ">= 1", self.batch_size)
        need(self.shards is None or 1 <= self.shards <= self.batch_size, "shards",
             f"between 1 and --batch-size ({self.batch_size})", self.shards)
        need(self.lr > 0, "lr", "> 0", self.lr)
        need(self.lr_schedule in LR_SCHEDULES, "lr-schedule", " or ".join(LR_SCHEDULES), self.lr_schedule)
        need(self.latent_dim is None or self.latent_dim >= 1, "latent-dim", ">= 1", self.latent_dim)
        need(self.channels is None or self.channels >= 1, "channels", ">= 1", self.channels)
        need(self.loss in ("mse", "bce"), "loss", "mse or bce", self.loss)
        need(self.warmup_steps >= 0, "warmup-steps", ">= 0", self.warmup_steps)
        need(self.beta_max > 0, "beta-max", "> 0", self.beta_max)
        need(self.binarize in (None, "dynamic"), "binarize", "none or dynamic", self.binarize)
        for flag in ("label_dropout", "guidance"):
            if getattr(self, flag) is not None and not self.conditional:
                raise UsageError(f"--{flag.replace('_', '-')} applies to conditional models: add --conditional")
        need(self.label_dropout is None or 0 <= self.label_dropout < 1, "label-dropout", "in [0, 1)", self.label_dropout)
        need(self.guidance is None or self.guidance >= 0, "guidance", ">= 0", self.guidance)
        need(self.T >= 1, "T", ">= 1", self.T)
        need(self.schedule in SCHEDULES, "schedule", " or ".join(SCHEDULES), self.schedule)
        need(self.sigma in SIGMAS, "sigma", " or ".join(SIGMAS), self.sigma)
        need(self.sampler in SAMPLERS, "sampler", " or ".join(SAMPLERS), self.sampler)
        if self.sample_steps is not None and self.sampler != "ddim":
            raise UsageError("--sample-steps applies to --sampler ddim (DDPM always takes all T steps)")
        need(self.sample_steps is None or self.sample_steps >= 1, "sample-steps", ">= 1", self.sample_steps)
        if self.sample_eta is not None and self.sampler != "ddim":
            raise UsageError("--sample-eta applies to --sampler ddim (DDPM's noise is --sigma)")
        need(self.sample_eta is None or self.sample_eta >= 0, "sample-eta", ">= 0", self.sample_eta)
        need(self.limit_train is None or self.limit_train >= 1, "limit-train", ">= 1", self.limit_train)
        need(self.log_every >= 1, "log-every", ">= 1", self.log_every)
        need(self.eval_every >= 0, "eval-every", ">= 0", self.eval_every)
        need(self.checkpoint_every >= 0, "checkpoint-every", ">= 0", self.checkpoint_every)
        need(self.keep_checkpoints >= 1, "keep-checkpoints", ">= 1", self.keep_checkpoints)
        need(0 <= self.ema_decay < 1, "ema-decay", "in [0, 1)", self.ema_decay)
        need(
            self.clip_grad_norm is None or self.clip_grad_norm > 0,
            "clip-grad-norm", "> 0", self.clip_grad_norm,
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
