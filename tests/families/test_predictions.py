"""The clean image each denoising state points at (the explorer's "predicted x_0"): exact
when the network is exact. With every training image the same point c, the ideal noise
prediction and velocity are known in closed form, and each state's prediction must be c
itself, from the first, pure-noise state on."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from mlx_generative.families.ddpm.samplers import DDIMSampler, DDPMSampler, DPMSolverSampler, sample_loop
from mlx_generative.families.ddpm.schedule import Schedule
from mlx_generative.families.flow.samplers import flow_sample_loop, flow_times

SHAPE = (8, 5)
C = mx.array(np.linspace(-0.8, 0.6, SHAPE[1], dtype=np.float32))  # the one "image"


def _exact_noise(schedule: Schedule):
    """eps(x_t, t) for data that is always C: x_t = sqrt(ab) C + sqrt(1 - ab) eps, solved for eps."""

    def denoise(x, t):
        ab = schedule.alphas_cumprod[t][:, None]
        return (x - mx.sqrt(ab) * C) / mx.sqrt(1.0 - ab)

    return denoise


@pytest.mark.parametrize("make", [
    lambda s: DDPMSampler(s, "posterior"),
    lambda s: DDIMSampler(s, steps=4),
    lambda s: DPMSolverSampler(s, steps=5),
], ids=["ddpm", "ddim", "dpmpp"])
def test_each_diffusion_state_predicts_the_image_an_exact_network_implies(make):
    schedule = Schedule.create(20, "cosine")
    sampler = make(schedule)
    predictions = []
    states = sample_loop(_exact_noise(schedule), sampler, SHAPE, mx.random.key(3), trajectory=True,
                         predictions=predictions)
    assert len(predictions) == len(sampler.timesteps()) == len(states) - 1  # one per step
    for x0 in predictions:
        np.testing.assert_allclose(np.array(x0), np.broadcast_to(np.array(C), SHAPE), atol=2e-4)


def test_a_wrong_network_gives_a_wrong_prediction():
    """The check above can fail: a network that predicts no noise points at x_t / sqrt(ab)."""
    schedule = Schedule.create(20, "cosine")
    predictions = []
    states = sample_loop(lambda x, t: mx.zeros_like(x), DDIMSampler(schedule, steps=4), SHAPE, mx.random.key(3),
                         trajectory=True, predictions=predictions)
    first = np.array(predictions[0])
    expected = np.clip(np.array(states[0]) / np.sqrt(float(schedule.alphas_cumprod[19])), -1, 1)
    np.testing.assert_allclose(first, expected, atol=1e-5)
    assert np.abs(first - np.array(C)).max() > 0.1


@pytest.mark.parametrize("sampler", ["euler", "heun"])
def test_each_flow_state_predicts_x_minus_t_v(sampler):
    """For data always C, v(x, t) = (x - C) / t, and x - t v = C at every state. (Heun's second
    evaluation of the last step is at t = 0, where this field is 0 / 0: only the predictions,
    made at t > 0, are compared.)"""
    predictions = []
    states = flow_sample_loop(lambda x, t: (x - C) / t[:, None], sampler, 4, SHAPE, mx.random.key(1),
                              trajectory=True, predictions=predictions)
    assert len(predictions) == len(flow_times(4)) - 1 == len(states) - 1
    for x0 in predictions:
        np.testing.assert_allclose(np.array(x0), np.broadcast_to(np.array(C), SHAPE), atol=1e-5)
