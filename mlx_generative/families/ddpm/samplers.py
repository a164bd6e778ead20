"""The reverse process: samplers that turn noise x_T into a sample x_0.

Every sampler has the same two methods, like diffusers' schedulers:
  - ``timesteps()``: the t it visits, from the noisiest down to 0;
  - ``step(eps, t, x_t, noise)``: one reverse step from x_t, given the network's noise
    prediction eps and fresh Gaussian ``noise`` (None at the last step, or when the
    sampler adds none).
``sample_loop`` is the one loop they share. A sampler needs only a callable
``denoise(x_t, t) -> eps``; classifier-free guidance (../guidance.py) wraps that callable,
not the loop.
"""

from __future__ import annotations

from collections.abc import Callable

import mlx.core as mx
import numpy as np

from .schedule import Schedule

SAMPLERS = ("ddpm", "ddim", "dpmpp")
# Ho et al. (sec. 3.2) give two reverse-step variances: sigma_t^2 = beta_t (the guide's) and
# the posterior's beta~_t. They agree at T = 1000; with a handful of large betas, beta_t injects
# more noise than the following steps can remove (benchmarks/RESULTS.md).
SIGMAS = ("beta", "posterior")

Denoiser = Callable[[mx.array, mx.array], mx.array]


class DDPMSampler:
    """Ancestral sampling over all T steps (Ho et al. 2020, Algorithm 2):

        x_{t-1} = (x_t - (1 - alpha_t) / sqrt(1 - alpha_bar_t) * eps) / sqrt(alpha_t) + sigma_t z,

    sigma_t = sqrt(beta_t) (``sigma="beta"``, the guide's) or sqrt(beta~_t) ("posterior"),
    and no noise at the last step.
    """

    def __init__(self, schedule: Schedule, sigma: str = "posterior"):
        if sigma not in SIGMAS:
            raise ValueError(f"sigma must be one of {', '.join(SIGMAS)}, got {sigma!r}")
        self.schedule, self.sigma = schedule, sigma
        self.adds_noise = True

    def timesteps(self) -> list[int]:
        return list(reversed(range(self.schedule.T)))

    def step(self, eps: mx.array, t: int, x_t: mx.array, noise: mx.array | None) -> mx.array:
        s = self.schedule
        coef = (1.0 - s.alphas[t]) / s.sqrt_one_minus_alphas_cumprod[t]
        # (x_t - (1 - alpha_t) / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t)
        mean = (x_t - coef * eps) / mx.sqrt(s.alphas[t])
        if t == 0 or noise is None:
            return mean
        variance = s.betas[t] if self.sigma == "beta" else s.posterior_variance[t]
        return mean + mx.sqrt(variance) * noise  # + sigma_t z


def _every_step(T: int, steps: int | None) -> list[int] | None:
    """All T steps, descending, when ``steps`` asks for them (None, or T or more); else None."""
    if steps is None or steps >= T:
        return list(reversed(range(T)))
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return None


def ddim_timesteps(T: int, steps: int | None) -> list[int]:
    """``steps`` indices out of 0..T-1, evenly spaced, always including both ends, descending."""
    every = _every_step(T, steps)
    if every is not None:
        return every
    chosen = np.unique(np.round(np.linspace(0, T - 1, steps)).astype(int))
    return [int(t) for t in chosen[::-1]]


class DDIMSampler:
    """DDIM (Song, Meng & Ermon 2020, eq. 12, https://arxiv.org/abs/2010.02502) over a
    subsequence of ``steps`` of the T steps:

        x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t), clipped to [-1, 1]
        sigma  = eta * sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) * sqrt(1 - alpha_bar_t / alpha_bar_prev)
        x_prev = sqrt(alpha_bar_prev) x0_hat + sqrt(1 - alpha_bar_prev - sigma^2) eps + sigma z

    eta = 0 is deterministic given x_T; eta = 1 over all T steps is DDPM with the posterior variance.
    """

    def __init__(self, schedule: Schedule, steps: int | None = None, eta: float = 0.0, clip_x0: bool = True,
                 spacing: str = "uniform"):
        self.schedule, self.eta, self.clip_x0 = schedule, eta, clip_x0
        self._timesteps = spaced_timesteps(schedule, steps, spacing)
        self._previous = dict(zip(self._timesteps, self._timesteps[1:]))  # t -> the next t visited
        self.adds_noise = eta > 0

    def timesteps(self) -> list[int]:
        return list(self._timesteps)

    def step(self, eps: mx.array, t: int, x_t: mx.array, noise: mx.array | None) -> mx.array:
        ab = self.schedule.alphas_cumprod
        ab_t = ab[t]
        ab_prev = ab[self._previous[t]] if t in self._previous else mx.array(1.0)  # alpha_bar before t = 0 is 1
        x0 = (x_t - mx.sqrt(1.0 - ab_t) * eps) / mx.sqrt(ab_t)  # x0_hat
        if self.clip_x0:
            x0 = mx.clip(x0, -1.0, 1.0)
            eps = (x_t - mx.sqrt(ab_t) * x0) / mx.sqrt(1.0 - ab_t)  # the noise consistent with the clipped x0
        sigma = self.eta * mx.sqrt((1.0 - ab_prev) / (1.0 - ab_t) * (1.0 - ab_t / ab_prev))
        x = mx.sqrt(ab_prev) * x0 + mx.sqrt(mx.maximum(1.0 - ab_prev - sigma**2, 0.0)) * eps  # x_prev, less its noise
        return x if noise is None else x + sigma * noise


LAMBDA_MIN = -5.1  # the noisy end of the log-SNR grid (diffusers' lambda_min_clipped for cosine)
EDM_RHO = 7.0  # Karras et al. 2022, eq. 5: the exponent that crowds EDM's steps towards low noise
# How a stepped sampler (DDIM, DPM-Solver++) picks its steps out of 0..T-1.
SPACINGS = ("uniform", "logsnr", "edm")


def log_snr(schedule: Schedule) -> np.ndarray:
    """lambda_t = log(sqrt(alpha_bar_t) / sqrt(1 - alpha_bar_t)) for t = 0..T-1, decreasing in t."""
    ab = np.array(schedule.alphas_cumprod, dtype=np.float64)
    return 0.5 * np.log(ab) - 0.5 * np.log1p(-ab)


def _nearest_steps(lam: np.ndarray, wanted: np.ndarray) -> list[int]:
    """T - 1, then for each of wanted[1:] the index whose lambda is nearest (the grid's first
    point stands for T - 1, where sampling starts), ending at 0: descending, and as many as
    wanted. Where two land on one index (many steps at the flat, noisy end), the later moves
    one step on."""
    visited = [len(lam) - 1] + [int(np.argmin(np.abs(lam - w))) for w in wanted[1:-1]] + [0]
    for i in range(1, len(visited)):  # strictly descending ...
        visited[i] = min(visited[i], visited[i - 1] - 1)
    visited[-1] = 0
    for i in range(len(visited) - 2, -1, -1):  # ... and still ending at 0
        visited[i] = max(visited[i], visited[i + 1] + 1)
    return visited


def _noisy_end(lam: np.ndarray) -> float:
    """Where a log-SNR or EDM grid starts: lambda_{T-1}, or LAMBDA_MIN where that is lower."""
    return max(float(lam[-1]), LAMBDA_MIN)


def logsnr_timesteps(schedule: Schedule, steps: int | None) -> list[int]:
    """``steps`` indices of 0..T-1 evenly spaced in log-SNR lambda_t, both ends included,
    descending; each the index nearest its lambda. Even in log-SNR, not in t: most of an image
    forms in a narrow band of noise levels, which evenly spaced t would cross in one or two
    steps (Lu et al. 2022, sec. 3.3)."""
    every = _every_step(schedule.T, steps)
    if every is not None:
        return every
    lam = log_snr(schedule)
    # The grid runs from lambda = LAMBDA_MIN up, and sampling starts at T - 1 in its first point's
    # place. The cosine schedule's clipped last betas put lambda_{T-1} near -10, and a grid from
    # there would spend its first steps where x is still pure noise (999, 998, 994 of 10 steps).
    return _nearest_steps(lam, np.linspace(_noisy_end(lam), lam[0], steps))


def edm_timesteps(schedule: Schedule, steps: int | None, rho: float = EDM_RHO) -> list[int]:
    """``steps`` indices of 0..T-1 at Karras et al.'s noise levels (EDM, eq. 5): with the
    noise-to-signal ratio sigma_t = sqrt(1 - alpha_bar_t) / sqrt(alpha_bar_t) = e^-lambda_t,

        sigma_i = (sigma_max^(1/rho) + i / (n - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho,

    evenly spaced in sigma^(1/rho). With rho = 7 the steps crowd towards low noise, where fine
    detail forms; between log-SNR's even spacing (rho -> infinity) and time's. sigma_max is
    log-SNR's LAMBDA_MIN end, and sampling starts at T - 1 as there."""
    every = _every_step(schedule.T, steps)
    if every is not None:
        return every
    lam = log_snr(schedule)
    sigma_max, sigma_min = np.exp(-_noisy_end(lam)), np.exp(-lam[0])
    ramp = np.linspace(0.0, 1.0, steps)
    sigmas = (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return _nearest_steps(lam, -np.log(sigmas))


def spaced_timesteps(schedule: Schedule, steps: int | None, spacing: str) -> list[int]:
    """The steps a stepped sampler visits, descending from T - 1 to 0, under ``spacing``."""
    if spacing == "uniform":
        return ddim_timesteps(schedule.T, steps)
    if spacing == "logsnr":
        return logsnr_timesteps(schedule, steps)
    if spacing == "edm":
        return edm_timesteps(schedule, steps)
    raise ValueError(f"spacing must be one of {', '.join(SPACINGS)}, got {spacing!r}")


class DPMSolverSampler:
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2, https://arxiv.org/abs/2211.01095): a
    second-order multistep solver of the diffusion ODE in data-prediction form, for a network
    that predicts the noise. With alpha_t = sqrt(alpha_bar_t), sigma_t = sqrt(1 - alpha_bar_t),
    lambda_t = log(alpha_t / sigma_t) and h = lambda_s - lambda_t from t to the next s:

        x0_t = (x_t - sigma_t eps) / alpha_t                         (clipped to [-1, 1])
        D    = x0_t                                                  (first step: DDIM's step)
        D    = (1 + 1/(2r)) x0_t - 1/(2r) x0_prev,  r = h_prev / h   (later steps)
        x_s  = (sigma_s / sigma_t) x_t - alpha_s (e^-h - 1) D

    The last step returns x0 (first order to sigma = 0, as DDIM's last step). Deterministic.
    """

    def __init__(self, schedule: Schedule, steps: int | None = None, order: int = 2, clip_x0: bool = True,
                 spacing: str = "uniform"):
        if order not in (1, 2):
            raise ValueError(f"order must be 1 or 2, got {order}")
        self.schedule, self.order, self.clip_x0 = schedule, order, clip_x0
        self._timesteps = spaced_timesteps(schedule, steps, spacing)
        self._next = dict(zip(self._timesteps, self._timesteps[1:]))  # t -> the next t visited
        self.adds_noise = False
        self._previous: tuple[mx.array, mx.array] | None = None  # (x0, lambda) of the step before

    def timesteps(self) -> list[int]:
        return list(self._timesteps)

    def _terms(self, t: int) -> tuple[mx.array, mx.array, mx.array]:
        ab = self.schedule.alphas_cumprod[t]
        alpha, sigma = mx.sqrt(ab), mx.sqrt(1.0 - ab)
        return alpha, sigma, mx.log(alpha) - mx.log(sigma)

    def step(self, eps: mx.array, t: int, x_t: mx.array, noise: mx.array | None) -> mx.array:
        if t == self._timesteps[0]:
            self._previous = None  # a new sample (sample() reuses the sampler for each batch)
        alpha_t, sigma_t, lam_t = self._terms(t)
        x0 = (x_t - sigma_t * eps) / alpha_t  # x0_t, the data prediction
        if self.clip_x0:
            x0 = mx.clip(x0, -1.0, 1.0)
        if t not in self._next:  # the last step: to sigma = 0, where x is x0
            return x0
        alpha_s, sigma_s, lam_s = self._terms(self._next[t])
        h = lam_s - lam_t
        d = x0
        # Second order but into the last timestep: that step is long in log-SNR (lambda_0 is far
        # from its neighbours), and extrapolating x0 across it overshoots (diffusers'
        # "lower_order_final"; benchmarks/RESULTS.md has the toy Gaussian's errors with and without).
        final = self._next[t] == self._timesteps[-1]
        if self.order == 2 and self._previous is not None and not final:
            x0_prev, lam_prev = self._previous
            r = (lam_t - lam_prev) / h
            d = (1.0 + 0.5 / r) * x0 - (0.5 / r) * x0_prev
        self._previous = (x0, lam_t)
        return (sigma_s / sigma_t) * x_t - alpha_s * (mx.exp(-h) - 1.0) * d


Sampler = DDPMSampler | DDIMSampler | DPMSolverSampler


def sample_loop(
    denoise: Denoiser, sampler: Sampler, shape: tuple[int, ...], key: mx.array, trajectory: bool = False,
    predictions: list | None = None,
) -> mx.array | list[mx.array]:
    """Run ``sampler`` from x_T ~ N(0, I); returns x_0 in [-1, 1], or with ``trajectory``
    the list [x_T, ..., x_0] (x_0 clipped).

    ``predictions``, a list, receives each step's estimate of the clean image, x0_hat(x_t, eps)
    clipped to [-1, 1], as DDIM and DPM-Solver++ use it: one per step.

    The noise of the step at t comes from key t + 1 of the split ``key``, whichever
    sampler runs, so two samplers can be compared draw for draw.
    """
    keys = mx.random.split(key, sampler.schedule.T + 1)
    x = mx.random.normal(shape, key=keys[0])
    states = [x]
    timesteps = sampler.timesteps()
    for i, t in enumerate(timesteps):
        eps = denoise(x, mx.full((shape[0],), t, dtype=mx.int32))
        if predictions is not None:
            predictions.append(mx.clip(sampler.schedule.predict_x0(x, eps, t), -1.0, 1.0))
        last = i + 1 == len(timesteps)
        noise = mx.random.normal(shape, key=keys[t + 1]) if sampler.adds_noise and not last else None
        x = sampler.step(eps, t, x, noise)
        mx.eval(x)
        states.append(x)
    states[-1] = mx.clip(states[-1], -1.0, 1.0)
    return states if trajectory else states[-1]

