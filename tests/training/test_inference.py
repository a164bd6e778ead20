"""Using a trained run: load it, sample it, reconstruct and encode with it, watch it denoise."""

from __future__ import annotations

import json

import mlx.core as mx
import numpy as np
import pytest

import mlx_generative as mg
from mlx_generative.cli import main as cli_main
from mlx_generative.data.images import to_uint8
from mlx_generative.errors import CheckpointError, UsageError
from mlx_generative.families.ddpm.samplers import DDIMSampler, DDPMSampler, DPMSolverSampler
from mlx_generative.families.ddpm.schedule import Schedule


def test_reconstruct_and_encode(tiny_runs, digits):
    for kind, dim in (("ae", 64), ("vae", 32)):
        recon = mg.reconstruct(tiny_runs[kind], digits[:5])
        assert recon.shape == (5, 28, 28) and recon.dtype == np.uint8
        codes = mg.encode(tiny_runs[kind], digits[:5])
        assert codes.shape == (5, dim)
        np.testing.assert_allclose(codes, mg.encode(tiny_runs[kind], digits[:5].astype(np.float32) / 255), atol=1e-5)
        assert not np.allclose(codes[0], codes[1])  # the code depends on the image
    with pytest.raises(UsageError, match="no encoder"):
        mg.reconstruct(tiny_runs["ddpm"], digits[:2])


def test_ddpm_sigma_choice(tiny_runs):
    run = tiny_runs["ddpm"]
    assert run.config.train.sigma == "posterior"  # the default
    beta = mg.sample(run, n=4, seed=3, sigma="beta")
    np.testing.assert_array_equal(beta, mg.sample(run, n=4, seed=3, sigma="beta"))
    assert not np.array_equal(beta, mg.sample(run, n=4, seed=3))
    with pytest.raises(UsageError, match="sigma applies to ddpm runs only, not vae"):
        mg.sample(tiny_runs["vae"], n=2, sigma="beta")


def _replayed_trajectory(run, sampler, n: int, seed: int) -> list[np.ndarray]:
    """The states x_T ... x_0 a run's network and ``sampler`` pass through, step by step here."""
    key = mx.random.split(mx.random.key(seed), 1)[0]  # the first (only) batch's key
    keys = mx.random.split(key, sampler.schedule.T + 1)
    x = mx.random.normal((n, 28, 28, 1), key=keys[0])
    states = [x]
    timesteps = sampler.timesteps()
    for i, t in enumerate(timesteps):
        eps = run.model(x, mx.full((n,), t, dtype=mx.int32))
        noise = mx.random.normal(x.shape, key=keys[t + 1]) if sampler.adds_noise and i + 1 < len(timesteps) else None
        x = sampler.step(eps, t, x, noise)
        states.append(x)
    states[-1] = mx.clip(states[-1], -1.0, 1.0)
    return [to_uint8(np.array((s + 1.0) / 2.0)) for s in states]


def test_denoising_trajectory_is_the_samplers_states(tiny_runs):
    run = tiny_runs["ddpm"]
    strip = mg.denoising_trajectory(run, n=3, seed=5)
    T = run.config.train.T
    assert strip.shape == (3, T + 1, 28, 28)
    expected = _replayed_trajectory(run, DDPMSampler(Schedule.create(T, run.config.train.schedule), "posterior"), 3, 5)
    for t, state in enumerate(expected):
        # Off by one grey level at most: the compiled network rounds differently from this replay.
        assert np.abs(strip[:, t].astype(int) - state.astype(int)).max() <= 1, f"state {t}"
    np.testing.assert_array_equal(strip[:, -1], mg.sample(run, n=3, seed=5))  # the trajectory ends at the sample
    assert all(not np.array_equal(strip[:, t], strip[:, t + 1]) for t in range(T))


def test_ddim_sampling_from_a_run(tiny_runs):
    run = tiny_runs["ddpm"]
    a = mg.sample(run, n=4, seed=5, sampler="ddim", steps=3)
    np.testing.assert_array_equal(a, mg.sample(run, n=4, seed=5, sampler="ddim", steps=3))
    assert a.shape == (4, 28, 28) and a.dtype == np.uint8
    assert not np.array_equal(a, mg.sample(run, n=4, seed=5, sampler="ddim", steps=3, eta=1.0))
    assert not np.array_equal(a, mg.sample(run, n=4, seed=5, sampler="ddim", steps=2))
    replay = _replayed_trajectory(run, DDIMSampler(Schedule.create(6, "cosine"), steps=3), 4, 5)[-1]
    assert np.abs(a.astype(int) - replay.astype(int)).max() <= 1
    with pytest.raises(UsageError, match="steps applies to sampler='ddim' or 'dpmpp' only"):
        mg.sample(run, n=2, steps=3)
    with pytest.raises(UsageError, match="eta applies to sampler='ddim' only"):
        mg.sample(run, n=2, sampler="dpmpp", eta=0.5)
    dpm = mg.sample(run, n=4, seed=5, sampler="dpmpp", steps=4)  # deterministic, and not DDIM's
    assert dpm.shape == (4, 28, 28) and np.array_equal(dpm, mg.sample(run, n=4, seed=5, sampler="dpmpp", steps=4))
    # (in 3 steps it would be: its first and last steps are DDIM's, and 3 steps are only those)
    assert not np.array_equal(dpm, mg.sample(run, n=4, seed=5, sampler="ddim", steps=4))
    logsnr = mg.sample(run, n=4, seed=5, sampler="dpmpp", steps=3, spacing="logsnr")
    assert not np.array_equal(logsnr, mg.sample(run, n=4, seed=5, sampler="dpmpp", steps=3))  # 5, 4, 0, not 5, 2, 0
    replay = _replayed_trajectory(run, DPMSolverSampler(Schedule.create(6, "cosine"), 3, spacing="logsnr"), 4, 5)[-1]
    assert np.abs(logsnr.astype(int) - replay.astype(int)).max() <= 1  # the spacing asked for reaches the sampler
    with pytest.raises(UsageError, match="spacing applies to sampler='ddim' or 'dpmpp' only"):
        mg.sample(run, n=2, spacing="edm")
    with pytest.raises(UsageError, match="spacing must be one of uniform, logsnr, edm, got 'karras'"):
        mg.sample(run, n=2, sampler="ddim", spacing="karras")
    with pytest.raises(UsageError, match="ddpm or flow runs only"):
        mg.sample(tiny_runs["ae"], n=2, sampler="ddim")
    with pytest.raises(UsageError, match="steps must be >= 1"):
        mg.sample(run, n=2, sampler="ddim", steps=0)
    assert cli_main(["sample", str(run.run_dir), "--n", "4", "--sampler", "ddim", "--steps", "2"]) == 0


def test_a_run_trained_with_a_ddim_sampler_samples_that_way_by_default(tmp_path, tiny):
    run = mg.train("ddpm", out=str(tmp_path), name="ddim", verbose=False,
                   **dict(tiny, T=20, sampler="ddim", sample_steps=4))
    assert (run.config.train.sampler, run.config.train.sample_steps) == ("ddim", 4)
    default = mg.sample(run, n=4)
    np.testing.assert_array_equal(default, mg.sample(run, n=4, sampler="ddim", steps=4))
    assert not np.array_equal(default, mg.sample(run, n=4, sampler="ddpm"))
    assert not np.array_equal(default, mg.sample(run, n=4, steps=10))  # steps alone: the run's DDIM


def test_a_run_trained_with_a_spacing_samples_with_it_and_another_sampler_with_its_own(tmp_path, tiny):
    run = mg.train("ddpm", out=str(tmp_path), name="edm", verbose=False,
                   **dict(tiny, T=20, sampler="dpmpp", sample_steps=4, sample_spacing="edm"))
    default = mg.sample(run, n=4)
    np.testing.assert_array_equal(default, mg.sample(run, n=4, sampler="dpmpp", steps=4, spacing="edm"))
    assert not np.array_equal(default, mg.sample(run, n=4, sampler="dpmpp", steps=4, spacing="logsnr"))
    # DDIM was not what the spacing was chosen for: DDIM's own, evenly in t
    np.testing.assert_array_equal(mg.sample(run, n=4, sampler="ddim", steps=4),
                                  mg.sample(run, n=4, sampler="ddim", steps=4, spacing="uniform"))
    assert mg.denoising_trajectory(run, n=2).shape == (2, 5, 28, 28)  # x_T and 4 steps
    reloaded = mg.load(run.run_dir)
    np.testing.assert_array_equal(mg.sample(reloaded, n=4), default)


def test_a_run_with_a_sample_eta_draws_with_that_noise_by_default(tmp_path, tiny):
    run = mg.train("ddpm", out=str(tmp_path), name="eta", verbose=False,
                   **dict(tiny, T=20, sampler="ddim", sample_steps=4, sample_eta=1.0))
    assert run.config.train.sample_eta == 1.0
    default = mg.sample(run, n=4)
    np.testing.assert_array_equal(default, mg.sample(run, n=4, eta=1.0))
    assert not np.array_equal(default, mg.sample(run, n=4, eta=0.0))
    np.testing.assert_array_equal(mg.sample(mg.load(run.run_dir), n=4), default)


def test_a_model_and_config_pair_samples_like_its_run(tiny_runs):
    run = tiny_runs["vae"]
    as_pair = (run.model, json.loads((run.run_dir / "config.json").read_text()))
    np.testing.assert_array_equal(mg.sample(as_pair, n=3, seed=2), mg.sample(run, n=3, seed=2))


def test_load_rejects_broken_runs(copy_run):
    broken = copy_run("vae")
    good_weights = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        mg.load(broken)
    cfg = json.loads((broken / "config.json").read_text())
    cfg["model"]["latent_dim"] = 7
    (broken / "config.json").write_text(json.dumps(cfg))
    (broken / "model.safetensors").write_bytes(good_weights)
    with pytest.raises(CheckpointError, match="shape"):
        mg.load(broken)
    cfg["format_version"] = 99
    (broken / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="format_version"):
        mg.load(broken)
