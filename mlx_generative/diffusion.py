"""The diffusion process: noise schedules, forward noising and the DDPM sampler.

Separate from the network on purpose: the sampler needs only a callable
``denoise(x_t, t) -> predicted noise``, and the UNet never sees a beta.
Timesteps are indexed t = 0 .. T-1 here (index t is the paper's step t+1).

Ho, Jain & Abbeel 2020, "Denoising Diffusion Probabilistic Models":
https://arxiv.org/abs/2006.11239
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import mlx.core as mx
import numpy as np

SCHEDULES = ("linear", "cosine")
# Ho et al. (sec. 3.2) give two reverse-step variances: sigma_t^2 = beta_t (the
# guide's formula) and the posterior's beta~_t = beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t).
# They agree at T = 1000; with a handful of large betas, beta_t injects far more
# noise than the next step can remove (T = 6 linear: sigma_2 = 0.46 where beta~_2 gives 0.13).
SIGMAS = ("beta", "posterior")
SAMPLERS = ("ddpm", "ddim")
MAX_BETA = 0.999  # Nichol & Dhariwal clip betas here so the last step stays invertible.
# alpha_bar_T of Ho et al.'s schedule (betas 1e-4..0.02 over T = 1000): how close
# to pure noise x_T is. Our linear schedule ends there for every T it can.
TARGET_ALPHA_BAR_T = float(np.prod(1.0 - np.linspace(1e-4, 0.02, 1000)))


def linear_betas(T: int) -> np.ndarray:
    """Betas spaced linearly from 0.1/T to the end value that gives Ho et al.'s alpha_bar_T.

    Ho et al. use 1e-4..0.02 for T = 1000 (this function returns exactly that
    there). Those endpoints at tiny T leave x_T mostly signal (alpha_bar_8 =
    0.92), so sampling would start from the wrong distribution. We keep the
    start at 1e-4 * 1000/T and solve, by bisection, for the end beta that makes
    alpha_bar_T = 4.0e-5 as at T = 1000 (capped at 0.999, where small T cannot
    get that low: T <= 5 ends at 0.999; T = 6 gives betas 0.017 .. 0.9989).
    """
    start = min(0.1 / T, MAX_BETA)
    if T == 1:
        return np.array([MAX_BETA])

    def alpha_bar_end(end: float) -> float:
        return float(np.prod(1.0 - np.linspace(start, end, T)))

    lo, hi = start, MAX_BETA
    if alpha_bar_end(hi) > TARGET_ALPHA_BAR_T:
        return np.linspace(start, hi, T)
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if alpha_bar_end(mid) > TARGET_ALPHA_BAR_T else (lo, mid)
    return np.linspace(start, hi, T)


def cosine_betas(T: int, s: float = 0.008) -> np.ndarray:
    """Nichol & Dhariwal 2021 (https://arxiv.org/abs/2102.09672), eq. 17.

    alpha_bar(t) = f(t)/f(0), f(t) = cos^2(((t/T + s)/(1 + s)) * pi/2);
    beta_t = min(1 - alpha_bar_t/alpha_bar_{t-1}, 0.999).
    """
    steps = np.arange(T + 1, dtype=np.float64)
    f = np.cos(((steps / T + s) / (1 + s)) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    return np.minimum(1.0 - alpha_bar[1:] / alpha_bar[:-1], MAX_BETA)


def make_betas(T: int, schedule: str) -> np.ndarray:
    if T < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    if schedule == "linear":
        return linear_betas(T)
    if schedule == "cosine":
        return cosine_betas(T)
    raise ValueError(f"unknown schedule {schedule!r}; expected one of {', '.join(SCHEDULES)}")


def extract(values: mx.array, t: mx.array, ndim: int) -> mx.array:
    """values[t] reshaped to (N, 1, ..., 1) so it broadcasts against an ndim-d batch."""
    return values[t].reshape(-1, *([1] * (ndim - 1)))


@dataclass
class Schedule:
    """A noise schedule's coefficients, computed in float64 and stored as float32."""

    T: int
    kind: str
    betas: mx.array
    alphas: mx.array
    alphas_cumprod: mx.array
    sqrt_alphas_cumprod: mx.array
    sqrt_one_minus_alphas_cumprod: mx.array
    posterior_variance: mx.array  # beta~_t; equals beta_t at the first step

    @classmethod
    def create(cls, T: int, kind: str = "linear") -> "Schedule":
        betas = make_betas(T, kind)
        alphas = 1.0 - betas
        alphas_cumprod = np.cumprod(alphas)
        alphas_cumprod_prev = np.concatenate([[1.0], alphas_cumprod[:-1]])
        posterior_variance = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)

        def f32(a: np.ndarray) -> mx.array:
            return mx.array(a.astype(np.float32))

        return cls(
            T=T,
            kind=kind,
            betas=f32(betas),
            alphas=f32(alphas),
            alphas_cumprod=f32(alphas_cumprod),
            sqrt_alphas_cumprod=f32(np.sqrt(alphas_cumprod)),
            sqrt_one_minus_alphas_cumprod=f32(np.sqrt(1.0 - alphas_cumprod)),
            posterior_variance=f32(posterior_variance),
        )

    def add_noise(self, x0: mx.array, noise: mx.array, t: mx.array) -> mx.array:
        """Sample q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)."""
        return (
            extract(self.sqrt_alphas_cumprod, t, x0.ndim) * x0
            + extract(self.sqrt_one_minus_alphas_cumprod, t, x0.ndim) * noise
        )

    def step(
        self, eps: mx.array, t: int, x_t: mx.array, noise: mx.array | None, sigma: str = "beta"
    ) -> mx.array:
        """One DDPM reverse step x_t -> x_{t-1} (Ho et al., Algorithm 2).

        x_{t-1} = (x_t - (1 - alpha_t)/sqrt(1 - alpha_bar_t) * eps) / sqrt(alpha_t) + sigma_t z,
        sigma_t = sqrt(beta_t) (or sqrt(beta~_t) with sigma="posterior"); no noise
        at the last step (t = 0 here).
        """
        coef = (1.0 - self.alphas[t]) / self.sqrt_one_minus_alphas_cumprod[t]
        mean = (x_t - coef * eps) / mx.sqrt(self.alphas[t])
        if t == 0 or noise is None:
            return mean
        variance = self.betas[t] if sigma == "beta" else self.posterior_variance[t]
        return mean + mx.sqrt(variance) * noise


Denoiser = Callable[[mx.array, mx.array], mx.array]


def classifier_free_guidance(
    denoise: Callable[[mx.array, mx.array, mx.array], mx.array], labels: mx.array, null_label: int, weight: float
) -> Denoiser:
    """The guided noise of Ho & Salimans 2022 (https://arxiv.org/abs/2207.12598), eq. 6:
    eps = (1 + w) eps(x, t, y) - w eps(x, t, null).

    ``denoise(x, t, y)`` is a conditional network trained with label dropout. w = 0 is
    the plain conditional model; larger w trades diversity for images the label fits
    better. Both predictions come from one pass over a doubled batch.
    """
    if weight == 0:
        return lambda x, t: denoise(x, t, labels)
    both_labels = mx.concatenate([labels, mx.full(labels.shape, null_label, dtype=labels.dtype)])

    def guided(x: mx.array, t: mx.array) -> mx.array:
        eps = denoise(mx.concatenate([x, x]), mx.concatenate([t, t]), both_labels)
        conditional, unconditional = mx.split(eps, 2)
        return (1.0 + weight) * conditional - weight * unconditional

    return guided


def ddpm_sample(
    denoise: Denoiser,
    schedule: Schedule,
    shape: tuple[int, ...],
    key: mx.array,
    trajectory: bool = False,
    sigma: str = "beta",
) -> mx.array | list[mx.array]:
    """Run the reverse chain from x_T ~ N(0, I); returns x_0 in [-1, 1].

    With ``trajectory=True`` returns [x_T, ..., x_0] (x_0 clipped) for a denoising strip.
    """
    keys = mx.random.split(key, schedule.T + 1)
    x = mx.random.normal(shape, key=keys[0])
    states = [x]
    for t in reversed(range(schedule.T)):
        eps = denoise(x, mx.full((shape[0],), t, dtype=mx.int32))
        noise = mx.random.normal(shape, key=keys[t + 1]) if t > 0 else None
        x = schedule.step(eps, t, x, noise, sigma)
        mx.eval(x)
        states.append(x)
    states[-1] = mx.clip(states[-1], -1.0, 1.0)
    return states if trajectory else states[-1]


def ddim_timesteps(T: int, steps: int | None) -> list[int]:
    """``steps`` indices out of 0..T-1, evenly spaced, always including both ends, descending."""
    if steps is None or steps >= T:
        return list(reversed(range(T)))
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    chosen = np.unique(np.round(np.linspace(0, T - 1, steps)).astype(int))
    return [int(t) for t in chosen[::-1]]


def ddim_sample(
    denoise: Denoiser,
    schedule: Schedule,
    shape: tuple[int, ...],
    key: mx.array,
    steps: int | None = None,
    eta: float = 0.0,
    trajectory: bool = False,
    clip_x0: bool = True,
) -> mx.array | list[mx.array]:
    """DDIM (Song, Meng & Ermon 2020, eq. 12, https://arxiv.org/abs/2010.02502) over a subsequence of steps.

    x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t), clipped to [-1, 1];
    sigma = eta * sqrt((1 - alpha_bar_prev)/(1 - alpha_bar_t)) * sqrt(1 - alpha_bar_t/alpha_bar_prev);
    x_prev = sqrt(alpha_bar_prev) x0_hat + sqrt(1 - alpha_bar_prev - sigma^2) eps + sigma z.
    eta = 0 is deterministic given x_T; eta = 1 over all T steps is DDPM with the posterior variance.
    The noise keys follow ddpm_sample's (key t + 1 at step t), so the two can be compared draw for draw.
    """
    keys = mx.random.split(key, schedule.T + 1)
    x = mx.random.normal(shape, key=keys[0])
    states = [x]
    timesteps = ddim_timesteps(schedule.T, steps)
    for i, t in enumerate(timesteps):
        ab_t = schedule.alphas_cumprod[t]
        ab_prev = schedule.alphas_cumprod[timesteps[i + 1]] if i + 1 < len(timesteps) else mx.array(1.0)
        eps = denoise(x, mx.full((shape[0],), t, dtype=mx.int32))
        x0 = (x - mx.sqrt(1.0 - ab_t) * eps) / mx.sqrt(ab_t)
        if clip_x0:
            x0 = mx.clip(x0, -1.0, 1.0)
            eps = (x - mx.sqrt(ab_t) * x0) / mx.sqrt(1.0 - ab_t)  # the noise consistent with the clipped x0
        sigma = eta * mx.sqrt((1.0 - ab_prev) / (1.0 - ab_t) * (1.0 - ab_t / ab_prev))
        x = mx.sqrt(ab_prev) * x0 + mx.sqrt(mx.maximum(1.0 - ab_prev - sigma**2, 0.0)) * eps
        if i + 1 < len(timesteps) and eta > 0:
            x = x + sigma * mx.random.normal(shape, key=keys[t + 1])
        mx.eval(x)
        states.append(x)
    states[-1] = mx.clip(states[-1], -1.0, 1.0)
    return states if trajectory else states[-1]
