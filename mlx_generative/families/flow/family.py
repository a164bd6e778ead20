"""The flow-matching family: what is learned, what is measured held out, and how it samples.

    training   t ~ uniform or logit-normal on (0, 1), eps ~ N(0, I), x_t = (1 - t) x_0 + t eps
               L = E_{t, eps} ||v_theta(x_t, t) - (eps - x_0)||^2                   (``flow_loss``)
    held out   the same MSE on a fixed grid of 16 times and fixed noise        (``FlowFamily.heldout``)
    sampling   x_1 ~ N(0, I), then Euler or Heun steps of dx/dt = v_theta down to t = 0
                                                                               (``FlowFamily.sample``)

The pieces it is made of: ``path.py`` (the straight path and where training looks on it),
``samplers.py`` (the ODE solvers) and the DDPM's tiny UNet (../ddpm/unet.py), unchanged:
it predicts a velocity here instead of a noise, from the time 1000 t.
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
from ..ddpm.unet import TinyUNet, UNetArgs
from ..guidance import GUIDANCE, LABEL_DROPOUT, check_conditional_options, drop_labels, fill_conditional_defaults
from ..unet_sampling import sample_in_batches
from .path import TIME_SAMPLINGS, TIME_SCALE, interpolate, sample_times, target_velocity
from .samplers import FLOW_SAMPLERS, flow_sample_loop

# ---- settings -----------------------------------------------------------------------

TIME_SAMPLING = Option(
    "time_sampling", str, "logit-normal", "where on the path training draws t: uniform, or logit-normal "
    "(most draws near t = 0.5, where the velocity is hardest to learn; a lower Frechet distance after "
    "800 steps with every sampler measured)", choices=TIME_SAMPLINGS,
)
HELDOUT_TIMES = 16  # the held-out figure averages the MSE over this many evenly spaced t

# What sample() takes beyond n, seed and labels (bin/sample's and bin/eval's flags).
SAMPLING_OPTIONS = (
    Option("sampler", str, None, "euler or heun", choices=FLOW_SAMPLERS, default_text="the run's"),
    Option("steps", int, None, "solver steps (heun evaluates the network twice a step)", check=at_least(1),
           default_text="the run's --sample-steps"),
    Option("guidance", float, None, "conditional runs: classifier-free guidance weight", check=at_least(0),
           default_text="the run's"),
)


@dataclass(frozen=True)
class Sampling:
    """How a run draws samples: its recorded choices, with one call's overrides."""

    sampler: str = "heun"
    steps: int = 10
    guidance: float = 0.0  # classifier-free guidance weight w (conditional runs)


# ---- the objective ------------------------------------------------------------------


def velocity(model: TinyUNet, x_t: mx.array, t: mx.array, y: mx.array | None = None) -> mx.array:
    """v_theta(x_t, t[, y]): the UNet, told the time as 1000 t (path.TIME_SCALE)."""
    return model(x_t, t * TIME_SCALE, y)


def flow_loss(model: TinyUNet, batch, scalars: dict, time_sampling: str = "logit-normal",
              label_dropout: float = 0.0):
    """Conditional flow matching (Lipman et al. 2022, eq. 23, with the straight path).

    ``batch``: images, or (images, labels) for a conditional model, whose labels are
    dropped with probability ``label_dropout`` so that the one network also learns the
    unconditional velocity that classifier-free guidance needs (../guidance.py).
    """
    x0, y = images_and_labels(batch)
    t = sample_times(time_sampling, x0.shape[0])  # t ~ p(t) on (0, 1)
    noise = mx.random.normal(x0.shape)  # eps ~ N(0, I)
    x_t = interpolate(x0, noise, t)  # (1 - t) x_0 + t eps
    if y is not None:
        y = drop_labels(y, label_dropout, model.null_label)
    mse = mx.mean(mx.square(velocity(model, x_t, t, y) - target_velocity(x0, noise)))  # ||v_theta - (eps - x_0)||^2
    return mse, {"mse": mse}


# ---- the family ---------------------------------------------------------------------


class FlowFamily(Family):
    name, title = "flow", "flow matching"
    args_cls, model_cls = UNetArgs, TinyUNet
    scale = "symmetric"  # pixels in [-1, 1], so that the noise end of the path is centred on them
    options = (TIME_SAMPLING, CHANNELS, SAMPLER, SAMPLE_STEPS, ATTENTION, CONDITIONAL, LABEL_DROPOUT, GUIDANCE)
    # The DDPM's budget, peak learning rate and weight average, with a 40-step warm-up and cosine
    # decay (benchmarks/RESULTS.md, "Training at a fixed budget"). Heun in 10 steps (20 network
    # calls) drew the best samples of the ways measured ("Flow matching"); sampling stays cheap
    # beside training.
    defaults = {"steps": 800, "lr": 4e-3, "lr_schedule": "cosine", "lr_warmup": 40, "ema_decay": 0.995,
                "sampler": "heun", "sample_steps": 10}
    sampling_options = SAMPLING_OPTIONS
    heldout_metrics = (Metric("mse", "velocity MSE", "v-MSE"),)
    key_settings = ("time_sampling", "sampler", "sample_steps", "conditional", "guidance", "steps", "lr")
    denoises = True
    guide_grid = "flow_grid.png"

    def model_args(self, opts) -> UNetArgs:
        return UNetArgs(num_classes=NUM_CLASSES if opts.conditional else 0, attention=opts.attention,
                        **unet_widths(opts))

    def check_options(self, opts) -> None:
        if opts.sampler is not None and opts.sampler not in FLOW_SAMPLERS:
            raise UsageError(f"--sampler must be {' or '.join(FLOW_SAMPLERS)}, got {opts.sampler!r}")
        check_conditional_options(opts)
        unet_widths(opts)  # a width its GroupNorm cannot split is named before anything is written

    def fill_defaults(self, opts) -> None:
        super().fill_defaults(opts)
        fill_conditional_defaults(opts)

    def describe(self, opts) -> str:
        return f"{opts.time_sampling} t, {opts.sampler} x {opts.sample_steps}"

    def trajectory_labels(self, states: int, opts=None, settings=None) -> list[str]:
        """Times from 1 (noise) to 0 (image), evenly spaced as the solvers step."""
        return [f"t={1 - i / (states - 1):.2g}" for i in range(states)]

    def step_limits(self, opts) -> dict[str, int | None]:
        return {sampler: None for sampler in FLOW_SAMPLERS}  # any number of equal steps in t

    def loss_fn(self, opts):
        return partial(flow_loss, time_sampling=opts.time_sampling, label_dropout=opts.label_dropout or 0.0)

    def heldout(self, model, x, opts, labels=None) -> dict:
        """Velocity MSE at HELDOUT_TIMES evenly spaced t, each equally represented, with fixed
        noise (a conditional model's given the true labels). The same for every time sampling,
        so flows trained either way compare."""
        labels = labels if self.is_conditional(opts) else None
        parts = []
        for a, b in chunks(len(x)):
            x0 = mx.array(x[a:b])
            t = ((mx.arange(a, b) % HELDOUT_TIMES) + 0.5) / HELDOUT_TIMES
            noise = mx.random.normal(x0.shape, key=mx.random.key(EVAL_SEED + a))
            v = velocity(model, interpolate(x0, noise, t), t, labels_chunk(labels, a, b))
            parts.append((b - a, {"mse": mx.mean(mx.square(v - target_velocity(x0, noise)))}))
        return weighted_means(parts)

    def sampling(self, opts, overrides: dict) -> Sampling:
        """The run's --sampler, --sample-steps and --guidance, with a call's ``overrides``
        (sampler, steps, guidance; each value already range-checked)."""
        if "guidance" in overrides and not self.is_conditional(opts):
            raise UsageError("guidance applies to flow runs trained with --conditional, not this unconditional flow run")
        return Sampling(
            sampler=overrides.get("sampler", opts.sampler),
            steps=overrides.get("steps", opts.sample_steps),
            guidance=overrides.get("guidance", opts.guidance or 0.0),
        )

    def sample(self, model, opts, extras, n, key, labels=None, settings=None, trajectory=False,
               predictions=False):
        """Noise carried to t = 0 along the learned velocity; a conditional model draws each
        sample's label with classifier-free guidance."""
        settings = settings or self.sampling(opts, {})

        def chain(field, shape, key, x0s):
            states = flow_sample_loop(field, settings.sampler, settings.steps, shape, key, trajectory=True,
                                      predictions=x0s)
            if x0s is not None:
                x0s[:] = [mx.clip(x, -1.0, 1.0) for x in x0s]
            return states[:-1] + [mx.clip(states[-1], -1.0, 1.0)]

        return sample_in_batches(model, n, key, chain, labels, settings.guidance, time_scale=TIME_SCALE,
                                 trajectory=trajectory, predictions=predictions)

FAMILY = FlowFamily()
