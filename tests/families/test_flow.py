"""The flow-matching family: its path, its solvers' orders of convergence on a field whose exact
solution is known, a trained flow that reproduces a 2-D Gaussian mixture, and the family
through training, sampling and the command line."""

from __future__ import annotations

from functools import partial

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest

import mlx_generative as mg
from mlx_generative.errors import UsageError
from mlx_generative.families.flow.family import flow_loss
from mlx_generative.families.flow.path import TIME_SCALE, interpolate, sample_times, target_velocity
from mlx_generative.families.flow.samplers import evaluations, flow_sample_loop, flow_times

# ---- the path ---------------------------------------------------------------------------


def test_the_path_runs_from_the_image_to_the_noise_at_the_target_velocity():
    x0 = mx.random.normal((4, 3, 3, 1), key=mx.random.key(0))
    noise = mx.random.normal((4, 3, 3, 1), key=mx.random.key(1))
    ends = [interpolate(x0, noise, mx.full((4,), t)) for t in (0.0, 1.0)]
    np.testing.assert_allclose(np.array(ends[0]), np.array(x0), atol=1e-6)
    np.testing.assert_allclose(np.array(ends[1]), np.array(noise), atol=1e-6)
    t, h = mx.array([0.2, 0.4, 0.6, 0.8]), 1e-2  # the derivative along t, by central differences
    slope = (interpolate(x0, noise, t + h) - interpolate(x0, noise, t - h)) / (2 * h)
    np.testing.assert_allclose(np.array(slope), np.array(target_velocity(x0, noise)), atol=1e-3)


def test_logit_normal_times_gather_in_the_middle_of_the_path():
    mx.random.seed(0)
    uniform, logit_normal = (np.array(sample_times(how, 20_000)) for how in ("uniform", "logit-normal"))
    assert 0 < logit_normal.min() and logit_normal.max() < 1
    middle = lambda t: np.mean((t > 0.25) & (t < 0.75))  # noqa: E731
    assert middle(uniform) == pytest.approx(0.5, abs=0.02)
    assert middle(logit_normal) == pytest.approx(0.728, abs=0.02)  # P(|u| < logit(0.75)), u ~ N(0, 1)
    with pytest.raises(ValueError, match="uniform, logit-normal"):
        sample_times("beta", 4)


# ---- the solvers, on data whose velocity field and ODE solution are exact ---------------

MU, S = 0.3, 0.2  # the toy data: x0 ~ N(MU, S^2) in every coordinate
SHAPE = (512, 16)


def _exact_velocity(x, t):
    """E[eps - x0 | x_t] for the toy data: x_t is Gaussian, so both conditional means are linear."""
    t = t[:, None]
    variance = (1 - t) ** 2 * S**2 + t**2
    centred = x - (1 - t) * MU
    return t / variance * centred - (MU + (1 - t) * S**2 / variance * centred)


def _error(sampler: str, steps: int) -> float:
    key = mx.random.key(3)
    got = flow_sample_loop(_exact_velocity, sampler, steps, SHAPE, key)
    exact = MU + S * mx.random.normal(SHAPE, key=key)  # the flow keeps each point's standardised value
    return float(mx.sqrt(mx.mean((got - exact) ** 2)))


@pytest.mark.parametrize("sampler, order", [("euler", 1), ("heun", 2)])
def test_each_solver_converges_at_its_order(sampler, order):
    errors = [_error(sampler, steps) for steps in (16, 32, 64, 128)]
    rates = [np.log2(a / b) for a, b in zip(errors, errors[1:])]
    assert all(abs(rate - order) < 0.2 for rate in rates), (errors, rates)


def test_heun_beats_euler_at_an_equal_number_of_network_evaluations():
    assert evaluations("heun", 3) == evaluations("euler", 6) == 6
    assert _error("heun", 3) < _error("euler", 6)


def test_the_times_run_from_noise_to_image_and_the_trajectory_has_one_state_per_time():
    assert flow_times(4) == [1.0, 0.75, 0.5, 0.25, 0.0]
    states = flow_sample_loop(_exact_velocity, "heun", 4, (2, 16), mx.random.key(0), trajectory=True)
    assert len(states) == 5
    with pytest.raises(ValueError, match="euler, heun"):
        flow_sample_loop(_exact_velocity, "rk4", 4, (2, 16), mx.random.key(0))
    with pytest.raises(ValueError, match="steps must be >= 1"):
        flow_times(0)


# ---- a trained flow reproduces a 2-D Gaussian mixture -----------------------------------

CENTRES = np.array([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]], dtype=np.float32)
WEIGHTS = np.array([0.5, 0.3, 0.2])
SPREAD = 0.3


def _mixture(n: int, rng) -> np.ndarray:
    which = rng.choice(len(CENTRES), size=n, p=WEIGHTS)
    return (CENTRES[which] + SPREAD * rng.standard_normal((n, 2))).astype(np.float32)


class _VelocityMLP(nn.Module):
    """v(x, t) for points in the plane; called as the family calls its UNet, with time 1000 t."""

    def __init__(self, width: int = 128):
        super().__init__()
        self.layers = [nn.Linear(2 + 16, width), nn.Linear(width, width), nn.Linear(width, width),
                       nn.Linear(width, 2)]

    def __call__(self, x, time, y=None):
        t = (time / TIME_SCALE)[:, None]
        features = [x] + [f(np.pi * k * t) for k in range(1, 9) for f in (mx.sin, mx.cos)]
        h = mx.concatenate(features, axis=-1)
        for layer in self.layers[:-1]:
            h = nn.silu(layer(h))
        return self.layers[-1](h)


@pytest.mark.parametrize("time_sampling", ["uniform", "logit-normal"])
def test_a_trained_flow_samples_the_mixtures_moments_and_modes(time_sampling):
    mx.random.seed(0)
    rng = np.random.default_rng(0)
    model = _VelocityMLP()
    steps = 3000  # ~17 s; with a constant rate the modes' weights were still 0.47/0.32/0.21
    optimizer = optim.Adam(learning_rate=optim.cosine_decay(3e-3, steps, 1e-5))
    loss_and_grad = nn.value_and_grad(model, lambda m, x: flow_loss(m, x, {}, time_sampling=time_sampling)[0])

    state = [model.state, optimizer.state, mx.random.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def step(x):
        loss, grads = loss_and_grad(model, x)
        optimizer.update(model, grads)
        return loss

    for _ in range(steps):
        step(mx.array(_mixture(512, rng)))
        mx.eval(state)

    velocity = lambda x, t: model(x, t * TIME_SCALE)  # noqa: E731
    samples = np.array(flow_sample_loop(velocity, "heun", 20, (6000, 2), mx.random.key(1)))
    data = _mixture(200_000, rng)
    np.testing.assert_allclose(samples.mean(0), data.mean(0), atol=0.1)
    np.testing.assert_allclose(np.cov(samples.T), np.cov(data.T), atol=0.2)
    nearest = np.argmin(((samples[:, None] - CENTRES[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_allclose(np.bincount(nearest, minlength=3) / len(samples), WEIGHTS, atol=0.05)
    near_a_centre = np.min(np.linalg.norm(samples[:, None] - CENTRES[None], axis=-1), axis=1) < 3 * SPREAD
    assert near_a_centre.mean() > 0.95  # not smeared between the modes


# ---- the family through training, sampling and the command line -------------------------


@pytest.fixture(scope="module")
def flow_runs(tmp_path_factory, tiny):
    out = tmp_path_factory.mktemp("flow-runs")
    return {
        "flow": mg.train("flow", out=str(out), name="flow", verbose=False, **tiny),
        "conditional": mg.train("flow", out=str(out), name="conditional", conditional=True, verbose=False, **tiny),
    }


def test_a_flow_run_records_its_sampler_and_draws_images_with_it(flow_runs):
    run = flow_runs["flow"]
    train = run.config.train
    assert (train.sampler, train.sample_steps, train.time_sampling) == ("heun", 10, "logit-normal")
    assert (run.run_dir / "samples.png").is_file() and (run.run_dir / "denoising.png").is_file()
    images = mg.sample(run, n=5, seed=2)
    assert images.shape == (5, 28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, mg.sample(run, n=5, seed=2))  # deterministic given the seed
    assert not np.array_equal(images, mg.sample(run, n=5, seed=2, sampler="euler", steps=6))
    states = mg.denoising_trajectory(run, n=2)
    assert states.shape == (2, 11, 28, 28)  # x_1 and the 10 Heun steps


def test_a_conditional_flow_draws_each_label_with_guidance(flow_runs):
    run = flow_runs["conditional"]
    assert (run.config.train.label_dropout, run.config.train.guidance) == (0.1, 3.0)
    plain = mg.sample(run, n=4, seed=0, labels=[3], guidance=0.0)
    guided = mg.sample(run, n=4, seed=0, labels=[3], guidance=5.0)
    assert plain.shape == guided.shape == (4, 28, 28) and not np.array_equal(plain, guided)
    with pytest.raises(UsageError, match="guidance applies to flow runs trained with --conditional"):
        mg.sample(flow_runs["flow"], n=2, guidance=1.0)


@pytest.mark.parametrize("call, message", [
    (lambda runs: mg.sample(runs["flow"], n=2, sampler="ddim"), "sampler must be one of euler, heun, got 'ddim'"),
    (lambda runs: mg.sample(runs["flow"], n=2, eta=0.5), "eta applies to ddpm runs only, not flow"),
    (lambda runs: mg.sample(runs["flow"], n=2, steps=0), "steps must be >= 1, got 0"),
])
def test_a_flow_run_refuses_another_familys_sampling(flow_runs, call, message):
    with pytest.raises(UsageError, match=message):
        call(flow_runs)


@pytest.mark.parametrize("argv, message", [
    (["train", "flow", "--sampler", "ddim"], "--sampler must be euler or heun, got 'ddim'"),
    (["train", "ddpm", "--sampler", "heun"], "--sampler must be ddpm, ddim or dpmpp, got 'heun'"),
    (["train", "ddpm", "--time-sampling", "uniform"], "--time-sampling applies to flow only, not ddpm"),
    (["train", "flow", "--T", "10"], "--T applies to ddpm only, not flow"),
    (["train", "flow", "--guidance", "2"], "--guidance applies to conditional models: add --conditional"),
    (["train", "flow", "--time-sampling", "beta"], "argument --time-sampling: invalid choice: 'beta'"),
])
def test_bad_flow_settings_are_named(cli, argv, message):
    status, err = cli(argv)
    assert status == 2 and message in err


def test_bin_sample_takes_a_flows_sampler_and_steps(cli, flow_runs, tmp_path):
    out = tmp_path / "grid.png"
    status, err = cli(["sample", str(flow_runs["flow"].run_dir), "--sampler", "euler", "--steps", "4", "--n", "8",
                       "--out", str(out)])
    assert status == 0, err
    assert out.is_file()
    status, err = cli(["sample", str(flow_runs["flow"].run_dir), "--sampler", "dpmpp", "--n", "8"])
    assert status == 2 and "sampler must be one of euler, heun, got 'dpmpp'" in err
