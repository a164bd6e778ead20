"""The DDPM family: what is learned, what is measured held out, and how it samples.

    training   t ~ U{0..T-1}, eps ~ N(0, I), x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps
               L = E_{t, eps} ||eps_theta(x_t, t) - eps||^2                           (``ddpm_loss``)
    held out   the same MSE, every timestep equally represented, fixed noise      (``DDPMFamily.heldout``)
    sampling   x_T ~ N(0, I), then the sampler's reverse steps down to x_0        (``DDPMFamily.sample``)

The pieces it is made of: ``unet.py`` (eps_theta), ``schedule.py`` (the betas and
q(x_t | x_0)), ``samplers.py`` (DDPM and DDIM steps, one loop, guidance).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import mlx.core as mx

from ...errors import UsageError
from ..base import (
    ATTENTION,
    CHANNELS,
    CONDITIONAL,
    EVAL_SEED,
    NUM_CLASSES,
    SAMPLE_STEPS,
    SAMPLER,
    SAMPLING,
    Family,
    Metric,
    Option,
    at_least,
    chunks,
    images_and_labels,
    labels_chunk,
    unet_widths,
    weighted_means,
)
from ..guidance import (
    GUIDANCE,
    LABEL_DROPOUT,
    check_conditional_options,
    drop_labels,
    fill_conditional_defaults,
)
from ..unet_sampling import sample_in_batches
from .samplers import (
    SAMPLERS,
    SIGMAS,
    SPACINGS,
    DDIMSampler,
    DDPMSampler,
    DPMSolverSampler,
    Sampler,
    sample_loop,
)
from .schedule import SCHEDULES, Schedule
from .unet import TinyUNet, UNetArgs

# ---- settings -----------------------------------------------------------------------

T = Option("T", int, 6, "number of diffusion steps", check=at_least(1))
SCHEDULE = Option("schedule", str, "cosine", "noise schedule (the guide's is linear)", choices=SCHEDULES)
SIGMA = Option(
    "sigma", str, "posterior", "reverse-step noise: the guide's sqrt(beta_t), or the posterior's "
    "sqrt(beta~_t), which leaves far less noise at small T", choices=SIGMAS, sweep=SAMPLING,
)
SAMPLE_ETA = Option(
    "sample_eta", float, None, "--sampler ddim: noise added at each reverse step, 0 deterministic to 1 as "
    "much as DDPM; more noise corrects more of the network's mistakes", check=at_least(0), sweep=SAMPLING,
    default_text="0",
)
SAMPLE_SPACING = Option(
    "sample_spacing", str, "uniform", "--sampler ddim or dpmpp: which of the T steps they visit: evenly spaced "
    "in t, in log-SNR, or at EDM's noise levels (rho = 7). In t drew the best digits in 6 steps",
    choices=SPACINGS, sweep=SAMPLING,
)
PREDICTIONS = ("eps", "v")
PREDICTION = Option(
    "prediction", str, "eps", "what the UNet predicts: the noise eps (the guide's), or v = sqrt(alpha_bar) "
    "eps - sqrt(1 - alpha_bar) x0 (Salimans & Ho 2022); samplers are given the eps it implies",
    choices=PREDICTIONS,
)
MIN_SNR_GAMMA = Option(
    "min_snr_gamma", float, 0.0, "weight each timestep's loss by min(SNR, gamma) / SNR (eps) or / (SNR + 1) "
    "(v), so the easy, nearly clean timesteps do not dominate the gradient (Hang et al. 2023); 0 is off",
    check=at_least(0),
)
STEPPED = ("ddim", "dpmpp")  # the samplers that take a number of steps


@dataclass(frozen=True)
class Sampling:
    """How a run draws samples: its recorded choices, with one call's overrides."""

    sampler: str = "ddpm"  # "ddpm": all T steps; "ddim", "dpmpp": `steps` of them
    sigma: str = "posterior"  # the DDPM sampler's reverse-step noise
    steps: int | None = None  # DDIM, DPM-Solver++: reverse steps (None: all T)
    spacing: str = "uniform"  # DDIM, DPM-Solver++: which of the T steps they visit
    eta: float = 0.0  # DDIM: 0 deterministic .. 1 as noisy as DDPM
    guidance: float = 0.0  # classifier-free guidance weight w (conditional runs)

    def sampler_for(self, schedule: Schedule) -> Sampler:
        if self.sampler == "ddim":
            return DDIMSampler(schedule, self.steps, self.eta, spacing=self.spacing)
        if self.sampler == "dpmpp":
            return DPMSolverSampler(schedule, self.steps, spacing=self.spacing)
        return DDPMSampler(schedule, self.sigma)


# What sample() takes beyond n, seed and labels (bin/sample's and bin/eval's flags).
SAMPLING_OPTIONS = (
    Option("sampler", str, None, "ddpm (all T steps), ddim or dpmpp (--steps of them)", choices=SAMPLERS,
           default_text="the run's"),
    Option("steps", int, None, "ddim, dpmpp: number of sampling steps", check=at_least(1),
           default_text="the run's --sample-steps, else all T"),
    Option("spacing", str, None, "ddim, dpmpp: which of the T steps they visit", choices=SPACINGS,
           default_text="the run's --sample-spacing, else uniform"),
    Option("eta", float, None, "ddim: noise scale, 0 deterministic", check=at_least(0),
           default_text="the run's --sample-eta, else 0"),
    Option("sigma", str, None, "ddpm: reverse-step noise", choices=SIGMAS, default_text="the run's"),
    Option("guidance", float, None, "conditional runs: classifier-free guidance weight", check=at_least(0),
           default_text="the run's"),
)


# ---- the objective ------------------------------------------------------------------


def ddpm_loss(model: TinyUNet, batch, scalars: dict, schedule: Schedule, label_dropout: float = 0.0,
              prediction: str = "eps", min_snr_gamma: float = 0.0):
    """Epsilon-prediction MSE at a uniformly drawn timestep (Ho et al. 2020, Algorithm 1), or
    with ``prediction="v"`` the MSE of v (``Schedule.velocity``). With ``min_snr_gamma`` each
    image's error is weighted by min(SNR_t, gamma) / SNR_t for eps, / (SNR_t + 1) for v (Hang
    et al. 2023, https://arxiv.org/abs/2303.09556): both are the x0 error, capped at gamma.

    ``batch``: images, or (images, labels) for a conditional model. Each label is
    replaced by the model's null label with probability ``label_dropout``, so the one
    network also learns the unconditional noise that classifier-free guidance
    subtracts (Ho & Salimans 2022, https://arxiv.org/abs/2207.12598, Algorithm 1).
    """
    x0, y = images_and_labels(batch)
    t = mx.random.randint(0, schedule.T, (x0.shape[0],))  # t ~ U{0..T-1}
    noise = mx.random.normal(x0.shape)  # eps ~ N(0, I)
    x_t = schedule.add_noise(x0, noise, t)
    if y is not None:
        y = drop_labels(y, label_dropout, model.null_label)
    target = noise if prediction == "eps" else schedule.velocity(x0, noise, t)
    per_image = mx.mean(mx.square(model(x_t, t, y) - target), axis=(1, 2, 3))  # ||eps_theta(x_t, t) - eps||^2
    mse = mx.mean(per_image)
    if not min_snr_gamma:
        return mse, {"mse": mse}
    snr = schedule.snr(t)
    weight = mx.minimum(snr, min_snr_gamma) / (snr if prediction == "eps" else snr + 1.0)
    return mx.mean(weight * per_image), {"mse": mse}


# ---- the family ---------------------------------------------------------------------


class DDPMFamily(Family):
    name, title = "ddpm", "DDPM"
    args_cls, model_cls = UNetArgs, TinyUNet
    scale = "symmetric"  # diffusion runs on pixels in [-1, 1], where x_T ~ N(0, I) is centred
    options = (T, SCHEDULE, PREDICTION, MIN_SNR_GAMMA, CHANNELS, SIGMA, SAMPLER, SAMPLE_STEPS, SAMPLE_SPACING,
               SAMPLE_ETA, ATTENTION, CONDITIONAL, LABEL_DROPOUT, GUIDANCE)
    # The guide's 800 steps; the learning rate and the EMA of the weights are measured
    # (benchmarks/RESULTS.md).
    defaults = {"steps": 800, "lr": 4e-3, "lr_schedule": "constant", "lr_warmup": 0, "ema_decay": 0.995,
                "sampler": "ddpm"}
    sampling_options = SAMPLING_OPTIONS
    heldout_metrics = (Metric("mse", "eps-MSE (noise prediction)", "eps-MSE"),)
    key_settings = ("T", "schedule", "sigma", "conditional", "guidance", "steps", "lr")
    task_settings = ("T",)  # an eps-MSE at another T is another task (other noise levels)
    denoises = True
    guide_grid = "ddpm_grid.png"

    def model_args(self, opts) -> UNetArgs:
        return UNetArgs(num_classes=NUM_CLASSES if opts.conditional else 0, attention=opts.attention,
                        **unet_widths(opts))

    def check_options(self, opts) -> None:
        if opts.sampler is not None and opts.sampler not in SAMPLERS:
            raise UsageError(f"--sampler must be {', '.join(SAMPLERS[:-1])} or {SAMPLERS[-1]}, got {opts.sampler!r}")
        check_conditional_options(opts)
        unet_widths(opts)  # a width its GroupNorm cannot split is named before anything is written
        if opts.sample_steps is not None and opts.sampler not in STEPPED:
            raise UsageError("--sample-steps applies to --sampler ddim or dpmpp (DDPM always takes all T steps)")
        if opts.sample_spacing != SAMPLE_SPACING.default and opts.sampler not in STEPPED:
            raise UsageError("--sample-spacing applies to --sampler ddim or dpmpp (DDPM visits every step)")
        if opts.sample_eta is not None and opts.sampler != "ddim":
            raise UsageError("--sample-eta applies to --sampler ddim (DDPM's noise is --sigma)")

    def fill_defaults(self, opts) -> None:
        super().fill_defaults(opts)
        fill_conditional_defaults(opts)

    def step_limits(self, opts) -> dict[str, int | None]:
        return {sampler: opts.T if sampler in STEPPED else 0 for sampler in SAMPLERS}

    def trajectory_labels(self, states: int, opts=None, settings=None) -> list[str]:
        """x_T (the noise) ... x_0, in the papers' counting: the network sees x_t at its step
        t - 1 of 0..T-1. Given the run's ``opts`` and sampling ``settings``, the states a
        DDIM or DPM-Solver++ run visits; without them, every step."""
        if opts is None or settings is None:
            return super().trajectory_labels(states)
        timesteps = settings.sampler_for(self.schedule(opts)).timesteps()
        return [f"x_{t + 1}" for t in timesteps] + ["x_0"]

    def describe(self, opts) -> str:
        return f"T={opts.T}, {opts.schedule}"

    @staticmethod
    def schedule(opts) -> Schedule:
        return Schedule.create(opts.T, opts.schedule)

    def loss_fn(self, opts):
        return partial(ddpm_loss, schedule=self.schedule(opts), label_dropout=opts.label_dropout or 0.0,
                       prediction=opts.prediction, min_snr_gamma=opts.min_snr_gamma)

    def heldout(self, model, x, opts, labels=None) -> dict:
        """Epsilon-MSE with every timestep equally represented and fixed noise
        (a conditional model's given the true labels)."""
        schedule = self.schedule(opts)
        labels = labels if self.is_conditional(opts) else None
        parts = []
        for a, b in chunks(len(x)):
            x0 = mx.array(x[a:b])
            t = mx.arange(a, b) % schedule.T
            noise = mx.random.normal(x0.shape, key=mx.random.key(EVAL_SEED + a))
            x_t = schedule.add_noise(x0, noise, t)
            eps = self.noise_prediction(model, opts, schedule)(x_t, t, labels_chunk(labels, a, b))
            parts.append((b - a, {"mse": mx.mean(mx.square(eps - noise))}))
        return weighted_means(parts)

    def sampling(self, opts, overrides: dict) -> Sampling:
        """The run's --sampler, --sample-steps, --sample-spacing, --sample-eta, --sigma and --guidance,
        with a call's ``overrides`` (sampler, steps, spacing, eta, sigma, guidance; each value already
        range-checked)."""
        sampler = overrides.get("sampler", opts.sampler)
        for name in ("steps", "spacing"):
            if name in overrides and sampler not in STEPPED:
                raise UsageError(f"{name} applies to sampler='ddim' or 'dpmpp' only (DDPM always takes all T steps)")
        if "eta" in overrides and sampler != "ddim":
            raise UsageError("eta applies to sampler='ddim' only (DPM-Solver++ is deterministic; DDPM's "
                             "noise is sigma)")
        if "guidance" in overrides and not self.is_conditional(opts):
            raise UsageError("guidance applies to ddpm runs trained with --conditional, not this unconditional ddpm run")
        ddim = sampler == "ddim"  # the run's DDIM settings fill what the call left out
        return Sampling(
            sampler=sampler,
            sigma=overrides.get("sigma", opts.sigma),
            steps=overrides.get("steps", opts.sample_steps) if sampler in STEPPED else None,
            spacing=self._spacing(sampler, opts, overrides),
            eta=overrides.get("eta", opts.sample_eta or 0.0) if ddim else 0.0,
            guidance=overrides.get("guidance", opts.guidance or 0.0),
        )

    @staticmethod
    def _spacing(sampler: str, opts, overrides: dict) -> str:
        """The call's spacing, else the run's if it was chosen for this sampler, else even in t."""
        if "spacing" in overrides:
            return overrides["spacing"]
        return opts.sample_spacing if sampler == opts.sampler else SAMPLE_SPACING.default
    @staticmethod
    def noise_prediction(network, opts, schedule: Schedule):
        """``network(x_t, t, ...)`` as a prediction of the noise, whatever the run's --prediction."""
        if getattr(opts, "prediction", "eps") == "eps":  # (runs made before --prediction are eps)
            return network
        return lambda x_t, t, *labels: schedule.noise_from_velocity(network(x_t, t, *labels), x_t, t)

    def sample(self, model, opts, extras, n, key, labels=None, settings=None, trajectory=False,
               predictions=False):
        """Reverse diffusion from x_T ~ N(0, I) with the settings' sampler; a conditional model
        draws each sample's label with classifier-free guidance."""
        settings = settings or self.sampling(opts, {})
        schedule = self.schedule(opts)
        sampler = settings.sampler_for(schedule)

        def chain(predict, shape, key, x0s):
            return sample_loop(self.noise_prediction(predict, opts, schedule), sampler, shape, key, trajectory=True,
                               predictions=x0s)

        return sample_in_batches(model, n, key, chain, labels, settings.guidance, trajectory=trajectory,
                                 predictions=predictions)

FAMILY = DDPMFamily()
