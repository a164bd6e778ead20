"""The DDPM family's diffusion pieces against their formulas: schedules, forward noising, and
the samplers (one interface, one loop)."""

from __future__ import annotations

import math

import mlx.core as mx
import numpy as np
import pytest

from mlx_generative.families.ddpm.samplers import (
    DDIMSampler,
    DDPMSampler,
    ddim_timesteps,
    sample_loop,
)
from mlx_generative.families.ddpm.schedule import Schedule, cosine_betas, linear_betas, make_betas
from mlx_generative.families.guidance import classifier_free_guidance


def ddpm_sample(denoise, schedule, shape, key, trajectory=False, sigma="beta"):
    return sample_loop(denoise, DDPMSampler(schedule, sigma), shape, key, trajectory)


def ddim_sample(denoise, schedule, shape, key, steps=None, eta=0.0, trajectory=False, clip_x0=True):
    return sample_loop(denoise, DDIMSampler(schedule, steps, eta, clip_x0), shape, key, trajectory)


@pytest.mark.parametrize("T", [1, 2, 4, 6, 8, 50, 1000])
@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_schedules_end_near_pure_noise(T, kind):
    betas = make_betas(T, kind)
    assert betas.shape == (T,)
    assert np.all(betas > 0) and np.all(betas <= 0.999)
    alpha_bar = np.cumprod(1 - betas)
    assert np.all(np.diff(alpha_bar) < 0)
    assert alpha_bar[-1] <= 1e-3 + 1e-12  # x_T is noise, for tiny T too (1e-4..0.02 would leave 0.92 at T=8)


def test_linear_is_ho_et_al_at_T_1000():
    np.testing.assert_allclose(linear_betas(1000), np.linspace(1e-4, 0.02, 1000), rtol=1e-6)


def test_linear_betas_are_evenly_spaced():
    betas = linear_betas(6)
    assert np.allclose(np.diff(betas), np.diff(betas)[0])


def test_cosine_matches_nichol_dhariwal():
    T, s = 10, 0.008
    f = lambda t: math.cos(((t / T + s) / (1 + s)) * math.pi / 2) ** 2
    expected = [min(1 - (f(t) / f(0)) / (f(t - 1) / f(0)), 0.999) for t in range(1, T + 1)]
    np.testing.assert_allclose(cosine_betas(T), expected, rtol=1e-9)


def test_bad_arguments():
    with pytest.raises(ValueError, match="T must be >= 1"):
        make_betas(0, "linear")
    with pytest.raises(ValueError, match="unknown schedule"):
        make_betas(6, "quadratic")


def test_add_noise_matches_closed_form():
    sched = Schedule.create(6, "cosine")
    x0, noise = mx.ones((2, 2, 2, 1)), mx.full((2, 2, 2, 1), 2.0)
    xt = sched.add_noise(x0, noise, mx.array([0, 5]))
    ab = np.cumprod(1 - cosine_betas(6))
    np.testing.assert_allclose(np.array(xt[0]), math.sqrt(ab[0]) + 2 * math.sqrt(1 - ab[0]), rtol=1e-5)
    np.testing.assert_allclose(np.array(xt[1]), math.sqrt(ab[5]) + 2 * math.sqrt(1 - ab[5]), rtol=1e-5)


def test_reverse_step_formula_and_no_noise_at_the_end():
    sched = Schedule.create(4, "linear")
    b = linear_betas(4)
    a, ab = 1 - b, np.cumprod(1 - b)
    x, eps, z = mx.full((1, 3), 0.5), mx.full((1, 3), 0.2), mx.full((1, 3), 1.0)
    for t in (3, 0):
        mean = (0.5 - (1 - a[t]) / math.sqrt(1 - ab[t]) * 0.2) / math.sqrt(a[t])
        expected = mean + (math.sqrt(b[t]) if t > 0 else 0.0)
        np.testing.assert_allclose(np.array(DDPMSampler(sched, "beta").step(eps, t, x, z)), expected, rtol=1e-5)


def test_perfect_denoiser_recovers_the_data():
    """If eps_theta returned the true noise, the chain would land on x0 exactly (T=1)."""
    sched = Schedule.create(1, "linear")
    x0 = mx.full((2, 4, 4, 1), 0.3)
    key = mx.random.key(0)
    x_T = mx.random.normal(x0.shape, key=mx.random.split(key, 2)[0])
    ab = sched.alphas_cumprod[0]
    true_eps = lambda x, t: (x - mx.sqrt(ab) * x0) / mx.sqrt(1 - ab)
    out = ddpm_sample(true_eps, sched, x0.shape, key)
    np.testing.assert_allclose(np.array(out), 0.3, atol=1e-4)
    assert x_T.shape == out.shape


def test_sampling_is_seeded():
    sched = Schedule.create(3, "cosine")
    denoise = lambda x, t: 0.1 * x
    a = ddpm_sample(denoise, sched, (2, 4, 4, 1), mx.random.key(7))
    b = ddpm_sample(denoise, sched, (2, 4, 4, 1), mx.random.key(7))
    c = ddpm_sample(denoise, sched, (2, 4, 4, 1), mx.random.key(8))
    np.testing.assert_array_equal(np.array(a), np.array(b))
    assert not np.allclose(np.array(a), np.array(c))
    traj = ddpm_sample(denoise, sched, (2, 4, 4, 1), mx.random.key(7), trajectory=True)
    assert len(traj) == 4
    np.testing.assert_array_equal(np.array(traj[-1]), np.array(a))


def test_posterior_variance_is_beta_tilde():
    sched = Schedule.create(6, "linear")
    b = linear_betas(6)
    ab = np.cumprod(1 - b)
    expected = b[1:] * (1 - ab[:-1]) / (1 - ab[1:])
    np.testing.assert_allclose(np.array(sched.posterior_variance[1:]), expected, rtol=1e-5)
    assert np.all(np.array(sched.posterior_variance) <= np.array(sched.betas) + 1e-7)
    x, eps, z = mx.zeros((1, 2)), mx.zeros((1, 2)), mx.ones((1, 2))
    np.testing.assert_allclose(np.array(DDPMSampler(sched, "posterior").step(eps, 2, x, z)), math.sqrt(expected[1]),
                               rtol=1e-5)


def test_ddim_timesteps():
    assert ddim_timesteps(6, None) == [5, 4, 3, 2, 1, 0]
    assert ddim_timesteps(1000, 6) == [999, 799, 599, 400, 200, 0]
    assert ddim_timesteps(10, 1) == [0]
    assert ddim_timesteps(4, 10) == [3, 2, 1, 0]


def test_ddim_with_eta_1_over_all_steps_is_ddpm_with_posterior_variance():
    sched = Schedule.create(5, "cosine")
    denoise = lambda x, t: 0.3 * x + 0.01 * t.astype(mx.float32).reshape(-1, 1, 1, 1)
    key = mx.random.key(4)
    ddpm = ddpm_sample(denoise, sched, (3, 4, 4, 1), key, trajectory=True, sigma="posterior")
    ddim = ddim_sample(denoise, sched, (3, 4, 4, 1), key, eta=1.0, trajectory=True, clip_x0=False)
    for a, b in zip(ddpm, ddim):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-4, atol=1e-5)


def test_ddim_is_deterministic_at_eta_0_and_exact_for_a_perfect_denoiser():
    sched = Schedule.create(50, "linear")
    x0 = mx.full((2, 4, 4, 1), -0.4)

    def true_eps(x, t):  # the noise that takes x0 to x: what a perfect model predicts
        ab = sched.alphas_cumprod[t].reshape(-1, 1, 1, 1)
        return (x - mx.sqrt(ab) * x0) / mx.sqrt(1 - ab)

    for steps in (1, 6, 50):
        out = ddim_sample(true_eps, sched, x0.shape, mx.random.key(0), steps=steps)
        np.testing.assert_allclose(np.array(out), -0.4, atol=1e-4)
    a = ddim_sample(lambda x, t: 0.5 * x, sched, (2, 3), mx.random.key(1), steps=10)
    b = ddim_sample(lambda x, t: 0.5 * x, sched, (2, 3), mx.random.key(1), steps=10)
    np.testing.assert_array_equal(np.array(a), np.array(b))


def test_every_sampler_has_the_same_interface_and_visits_its_timesteps_in_order():
    schedule = Schedule.create(10, "cosine")
    for sampler, expected in ((DDPMSampler(schedule), list(range(9, -1, -1))),
                              (DDIMSampler(schedule, steps=4), [9, 6, 3, 0])):
        assert sampler.timesteps() == expected
        seen = []

        def denoise(x, t):
            seen.append(int(t[0]))
            return 0.1 * x

        sample_loop(denoise, sampler, (2, 3), mx.random.key(0))
        assert seen == expected


def test_the_loop_draws_noise_only_where_the_sampler_adds_it():
    """DDIM at eta 0 is deterministic in x_T: the same key's x_T gives the same sample whatever
    the noise keys would have drawn; DDPM's samples differ with the keys past x_T."""
    schedule = Schedule.create(5, "linear")
    key = mx.random.key(3)
    assert not DDIMSampler(schedule, eta=0.0).adds_noise and DDIMSampler(schedule, eta=0.5).adds_noise
    traj = sample_loop(lambda x, t: 0.2 * x, DDPMSampler(schedule), (2, 3), key, trajectory=True)
    assert len(traj) == 6 and not np.allclose(np.array(traj[1]), np.array(traj[0]))


def test_guidance_wraps_the_denoiser_not_the_loop():
    """A guided denoiser is an ordinary denoise(x, t): the same loop samples with it."""
    schedule = Schedule.create(4, "cosine")
    net = lambda x, t, y: 0.1 * x + 0.01 * y.astype(mx.float32).reshape(-1, 1)  # noqa: E731
    guided = classifier_free_guidance(net, mx.array([1, 2]), null_label=9, weight=2.0)
    plain = classifier_free_guidance(net, mx.array([1, 2]), null_label=9, weight=0.0)
    a = sample_loop(guided, DDPMSampler(schedule), (2, 3), mx.random.key(0), trajectory=True)
    b = sample_loop(plain, DDPMSampler(schedule), (2, 3), mx.random.key(0), trajectory=True)
    np.testing.assert_array_equal(np.array(a[0]), np.array(b[0]))  # the same x_T
    assert not np.allclose(np.array(a[1]), np.array(b[1]))  # then the guided noise leads elsewhere


def test_v_prediction_target_and_the_noise_it_implies():
    schedule = Schedule.create(1000, "cosine")
    rng = np.random.default_rng(0)
    x0, noise = (mx.array(rng.normal(size=(5, 4, 4, 1)).astype(np.float32)) for _ in range(2))
    t = mx.array([0, 10, 500, 900, 999])
    x_t = schedule.add_noise(x0, noise, t)
    v = schedule.velocity(x0, noise, t)
    np.testing.assert_allclose(np.array(schedule.noise_from_velocity(v, x_t, t)), np.array(noise), atol=2e-5)
    a = np.sqrt(np.array(schedule.alphas_cumprod))[np.array(t)].reshape(-1, 1, 1, 1)
    np.testing.assert_allclose(np.array(v), a * np.array(noise) - np.sqrt(1 - a**2) * np.array(x0), atol=5e-5)
    snr = np.array(schedule.snr(t))
    # (at t = 0, 1 - alpha_bar is 4e-5, and float32 keeps about three of its digits)
    np.testing.assert_allclose(snr, a.ravel() ** 2 / (1 - a.ravel() ** 2), rtol=3e-3)


def test_min_snr_weighting_caps_the_easy_timesteps():
    """With a network that predicts zeros, eps-MSE is 1 at every t; min-SNR-5 weights it by
    min(SNR, 5) / SNR: 5 / SNR where the image is nearly clean, 1 where it is noisy."""
    from mlx_generative.families.ddpm.family import ddpm_loss

    class Zero:
        null_label = None

        def __call__(self, x, t, y=None):
            return mx.zeros_like(x)

    schedule = Schedule.create(1000, "cosine")
    x0 = mx.zeros((4096, 4, 4, 1))
    mx.random.seed(0)
    plain, metrics = ddpm_loss(Zero(), x0, {}, schedule)
    mx.random.seed(0)
    weighted, _ = ddpm_loss(Zero(), x0, {}, schedule, min_snr_gamma=5.0)
    assert abs(float(plain) - 1.0) < 0.01 and abs(float(metrics["mse"]) - 1.0) < 0.01
    ab = np.array(schedule.alphas_cumprod, dtype=np.float64)
    snr = ab / (1 - ab)
    expected = np.mean(np.minimum(snr, 5.0) / snr)  # t is drawn uniformly
    assert abs(float(weighted) - expected) < 0.03, (float(weighted), expected)
