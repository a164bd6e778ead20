"""The forward process: a noise schedule and q(x_t | x_0).

    alpha_t = 1 - beta_t,   alpha_bar_t = prod_{s <= t} alpha_s
    x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps,   eps ~ N(0, I)      (``Schedule.add_noise``)

The schedule owns the betas and every coefficient derived from them; the samplers
(samplers.py) read them, and the UNet never sees one. Timesteps are indexed
t = 0 .. T-1 here (index t is the paper's step t+1).

Ho, Jain & Abbeel 2020, "Denoising Diffusion Probabilistic Models":
https://arxiv.org/abs/2006.11239
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mlx.core as mx
import numpy as np

SCHEDULES = ("linear", "cosine")
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
    # beta~_t = beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t), the variance of q(x_{t-1} | x_t, x_0)
    posterior_variance: mx.array

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

    def snr(self, t: mx.array) -> mx.array:
        """The signal-to-noise ratio of x_t, alpha_bar_t / (1 - alpha_bar_t)."""
        ab = self.alphas_cumprod[t]
        return ab / (1.0 - ab)

    def velocity(self, x0: mx.array, noise: mx.array, t: mx.array) -> mx.array:
        """v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0 (Salimans & Ho 2022, sec. 4):
        the rate x_t moves at as the noise angle turns, the v-prediction target."""
        a, s = (extract(c, t, x0.ndim) for c in (self.sqrt_alphas_cumprod, self.sqrt_one_minus_alphas_cumprod))
        return a * noise - s * x0

    def noise_from_velocity(self, v: mx.array, x_t: mx.array, t: mx.array) -> mx.array:
        """eps = sqrt(alpha_bar_t) v + sqrt(1 - alpha_bar_t) x_t, the noise a v-prediction implies
        (substitute x_t and v; alpha_bar_t + (1 - alpha_bar_t) = 1)."""
        a, s = (extract(c, t, x_t.ndim) for c in (self.sqrt_alphas_cumprod, self.sqrt_one_minus_alphas_cumprod))
        return a * v + s * x_t

    def predict_x0(self, x_t: mx.array, eps: mx.array, t: int) -> mx.array:
        """x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t): add_noise solved for
        x_0, the clean image a noise prediction at step t implies."""
        return (x_t - self.sqrt_one_minus_alphas_cumprod[t] * eps) / self.sqrt_alphas_cumprod[t]

    def add_noise(self, x0: mx.array, noise: mx.array, t: mx.array) -> mx.array:
        """Sample q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)."""
        # x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps
        return (
            extract(self.sqrt_alphas_cumprod, t, x0.ndim) * x0
            + extract(self.sqrt_one_minus_alphas_cumprod, t, x0.ndim) * noise
        )
