"""The path from data to noise: a straight line, and where on it training looks.

    x_t = (1 - t) x_0 + t eps,   t in [0, 1],   eps ~ N(0, I)                 (``interpolate``)
    d x_t / dt = eps - x_0                                                    (``target_velocity``)

At t = 0 the path is the image, at t = 1 pure noise. Each pair (x_0, eps) moves along its
own line at constant speed. Many lines pass through one x_t, so a network v_theta(x_t, t)
trained to regress eps - x_0 learns their average, E[eps - x_0 | x_t]. Carrying noise
along that average field from t = 1 back to t = 0 gives samples of the data (Lipman et
al. 2022, https://arxiv.org/abs/2210.02747; Liu et al. 2022, rectified flow,
https://arxiv.org/abs/2209.03003).

Compare ddpm/schedule.py: the DDPM's x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps
is a curve, and its coefficients need a schedule of betas; here they are t and 1 - t.

Where on the path training draws t matters: the middle, where x_t holds half image and
half noise, is where the average is hardest to learn. ``logit-normal`` draws t =
sigmoid(u), u ~ N(0, 1), which puts most draws there (Esser et al. 2024, Stable
Diffusion 3, https://arxiv.org/abs/2403.03206, sec. 3.1).
"""

from __future__ import annotations

import mlx.core as mx

TIME_SAMPLINGS = ("uniform", "logit-normal")
# The network's time input is 1000 t: its sinusoidal embedding then spans the same
# frequencies as the DDPM's integer timesteps 0..999 (the UNet is the DDPM's).
TIME_SCALE = 1000.0


def interpolate(x0: mx.array, noise: mx.array, t: mx.array) -> mx.array:
    """x_t = (1 - t) x_0 + t eps, with t (N,) broadcast over each sample's other axes."""
    t = t.reshape(t.shape + (1,) * (x0.ndim - 1))
    return (1.0 - t) * x0 + t * noise


def target_velocity(x0: mx.array, noise: mx.array) -> mx.array:
    """d x_t / dt along the line from x_0 to eps: eps - x_0."""
    return noise - x0


def sample_times(how: str, n: int) -> mx.array:
    """n training times in (0, 1): uniform, or logit-normal t = sigmoid(u), u ~ N(0, 1)."""
    if how == "uniform":
        return mx.random.uniform(shape=(n,))
    if how == "logit-normal":
        return mx.sigmoid(mx.random.normal((n,)))
    raise ValueError(f"time sampling must be one of {', '.join(TIME_SAMPLINGS)}, got {how!r}")
