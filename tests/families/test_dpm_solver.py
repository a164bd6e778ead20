"""DPM-Solver++(2M): its first order is DDIM step for step, and its second order converges at
second order on a toy data set whose exact denoiser and exact ODE solution are known."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from mlx_generative.families.ddpm.samplers import (
    SPACINGS,
    DDIMSampler,
    DPMSolverSampler,
    edm_timesteps,
    log_snr,
    logsnr_timesteps,
    sample_loop,
    spaced_timesteps,
)
from mlx_generative.families.ddpm.schedule import Schedule

MU, S = 0.3, 0.2  # the toy data: x0 ~ N(MU, S^2) in every coordinate
SHAPE = (512, 16)


def _exact_denoiser(schedule: Schedule):
    """The best possible noise prediction for the toy data: E[eps | x_t] in closed form."""
    ab = schedule.alphas_cumprod

    def denoise(x, t):
        a, s = mx.sqrt(ab[t])[:, None], mx.sqrt(1.0 - ab[t])[:, None]
        mean_x0 = MU + a * S**2 / (a**2 * S**2 + s**2) * (x - a * MU)
        return (x - a * mean_x0) / s

    return denoise


def _exact_sample(schedule: Schedule, key) -> mx.array:
    """Where the probability-flow ODE takes sample_loop's x_T, then the final x0 prediction.
    The marginals are Gaussian, so the flow keeps each point's standardised value."""
    ab = schedule.alphas_cumprod
    x_T = mx.random.normal(SHAPE, key=mx.random.split(key, schedule.T + 1)[0])  # as sample_loop draws it
    (a_T, s_T), (a_0, s_0) = [(mx.sqrt(ab[t]), mx.sqrt(1.0 - ab[t])) for t in (schedule.T - 1, 0)]
    z = (x_T - a_T * MU) / mx.sqrt(a_T**2 * S**2 + s_T**2)
    x_0 = a_0 * MU + z * mx.sqrt(a_0**2 * S**2 + s_0**2)
    return MU + a_0 * S**2 / (a_0**2 * S**2 + s_0**2) * (x_0 - a_0 * MU)


def _error(schedule, sampler, key) -> float:
    got = sample_loop(_exact_denoiser(schedule), sampler, SHAPE, key)
    return float(mx.sqrt(mx.mean((got - _exact_sample(schedule, key)) ** 2)))


@pytest.mark.parametrize("steps", [3, 10, 50])
def test_first_order_is_ddim_step_for_step(steps):
    schedule = Schedule.create(1000, "cosine")
    rng = np.random.default_rng(0)
    weight = mx.array(rng.normal(0, 0.5, (16, 16)).astype(np.float32))
    denoise = lambda x, t: mx.tanh(x @ weight) * (1 + t[:, None] / 1000)  # noqa: E731  any network will do
    key = mx.random.key(1)
    ddim = sample_loop(denoise, DDIMSampler(schedule, steps, eta=0.0), SHAPE, key, trajectory=True)
    dpm = sample_loop(denoise, DPMSolverSampler(schedule, steps, order=1, spacing="uniform"), SHAPE, key,
                      trajectory=True)
    assert len(ddim) == len(dpm) == steps + 1
    for a, b in zip(ddim, dpm):
        np.testing.assert_allclose(np.array(a), np.array(b), atol=2e-5)


@pytest.mark.parametrize("kind", ["cosine", "linear"])
def test_second_order_converges_to_the_exact_solution(kind):
    schedule, key = Schedule.create(1000, kind), mx.random.key(0)
    # From 20 steps on: below that, on this toy, the errors of the steps change sign and partly
    # cancel (10 steps can land closer than 20), which says nothing about the order.
    dpm = [_error(schedule, DPMSolverSampler(schedule, n, clip_x0=False, spacing="logsnr"), key) for n in (20, 40, 80)]
    ddim = [_error(schedule, DDIMSampler(schedule, n, clip_x0=False), key) for n in (20, 40, 80)]
    print(f"{kind}: DPM-Solver++ {dpm}, DDIM {ddim}")
    assert dpm[0] > dpm[1] > dpm[2]
    assert dpm[1] / dpm[2] >= 3.0  # second order: 4x smaller for twice the steps; DDIM, first order: 2x
    assert ddim[1] / ddim[2] < 2.5
    assert all(d * 5 < e for d, e in zip(dpm, ddim))  # at every step count, several times closer
    assert _error(schedule, DPMSolverSampler(schedule, None, clip_x0=False, spacing="logsnr"), key) < 1e-4  # all 1000 steps


def test_logsnr_steps_skip_the_pure_noise_end_of_the_cosine_schedule():
    steps = logsnr_timesteps(Schedule.create(1000, "cosine"), 10)
    assert steps[0] == 999 and steps[-1] == 0 and steps == sorted(set(steps), reverse=True)
    assert steps[1] < 990  # not 998, 994, ...: the clipped last betas leave x pure noise there
    assert logsnr_timesteps(Schedule.create(6, "cosine"), None) == [5, 4, 3, 2, 1, 0]


@pytest.mark.parametrize("kind", ["cosine", "linear"])
@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("steps", [2, 3, 6, 10, 50])
def test_every_spacing_takes_the_steps_asked_for_from_T_minus_1_to_0(kind, spacing, steps):
    visited = spaced_timesteps(Schedule.create(1000, kind), steps, spacing)
    assert len(visited) == steps
    assert visited[0] == 999 and visited[-1] == 0 and visited == sorted(set(visited), reverse=True)


def test_logsnr_spacing_is_even_in_log_snr_and_edm_crowds_towards_low_noise():
    schedule = Schedule.create(1000, "cosine")
    lam = log_snr(schedule)
    gaps = np.diff(lam[logsnr_timesteps(schedule, 10)][1:])  # after the start at T - 1
    np.testing.assert_allclose(gaps, gaps.mean(), rtol=0.1)
    edm = np.diff(lam[edm_timesteps(schedule, 10)][1:])
    assert np.all(np.diff(edm) > 0)  # each step a longer stride in log-SNR than the one before:
    # short steps at high noise, long ones at the end, where sigma is small


def test_a_spacing_that_does_not_exist_is_named():
    with pytest.raises(ValueError, match="spacing must be one of uniform, logsnr, edm, got 'karras'"):
        DPMSolverSampler(Schedule.create(1000, "cosine"), 10, spacing="karras")
