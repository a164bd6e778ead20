"""The animations every run gets: denoising.gif (noise to samples), progress.gif (the sample
grid at each checkpoint), and bin/sample --gif."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageSequence

import mlx_generative as mg
from mlx_generative.cli import main as cli
from mlx_generative.errors import UsageError
from mlx_generative.training.pictures import MAX_GIF_FRAMES, gif_frames

GRID = 2 * (8 * (28 + 2) + 2)  # 8 images a row, 2 pixels apart, shown 2x


def _frames(path) -> list[np.ndarray]:
    with Image.open(path) as gif:
        assert gif.format == "GIF"
        return [np.asarray(frame.convert("L")) for frame in ImageSequence.Iterator(gif)]


def test_a_ddpm_run_animates_its_samples_from_noise(tiny_runs):
    run = tiny_runs["ddpm"]  # T = 6: x_T and 6 steps
    frames = _frames(run.run_dir / "denoising.gif")
    assert len(frames) == run.config.train.T + 1
    assert frames[0].shape == (GRID, GRID)
    np.testing.assert_array_equal(frames[-1], np.asarray(Image.open(run.run_dir / "samples.png").convert("L")))
    assert np.abs(frames[0].astype(int) - frames[-1]).mean() > 5  # noise first, not the samples


def test_progress_has_a_frame_per_checkpoint_ending_at_the_samples(tiny_runs):
    run = tiny_runs["vae"]  # 4 steps, a checkpoint every 2: frames at steps 2 and 4
    frames = _frames(run.run_dir / "progress.gif")
    assert len(frames) == 2 and frames[0].shape == (GRID, GRID)
    assert sorted(p.name for p in (run.run_dir / "progress").iterdir()) == ["step-000002.png", "step-000004.png"]
    np.testing.assert_array_equal(frames[-1], np.asarray(Image.open(run.run_dir / "samples.png").convert("L")))
    assert not np.array_equal(frames[0], frames[1])  # two steps of training changed the samples


def test_an_ae_progress_frame_samples_its_codes_gaussian(tiny_runs):
    """An AE samples through a Gaussian fitted to its codes; each checkpoint's frame fits its own."""
    frames = _frames(tiny_runs["ae"].run_dir / "progress.gif")
    assert len(frames) == 2 and frames[0].std() > 5


def test_a_long_chain_is_shown_through_at_most_40_states():
    shown = gif_frames(1001)
    assert len(shown) == MAX_GIF_FRAMES and shown[0] == 0 and shown[-1] == 1000
    assert gif_frames(7) == list(range(7))


def test_bin_sample_gif_animates_the_same_grid(tiny_runs, tmp_path, capsys):
    run = tiny_runs["ddpm"]
    png, gif = tmp_path / "s.png", tmp_path / "s.gif"
    assert cli(["sample", str(run.run_dir), "--n", "16", "--seed", "3", "--sampler", "ddim", "--steps", "3",
                "--out", str(png), "--gif", str(gif)]) == 0
    frames = _frames(gif)
    assert len(frames) == 3 + 1
    np.testing.assert_array_equal(frames[-1], np.asarray(Image.open(png).convert("L")))


def test_bin_sample_gif_of_a_vae_is_refused(tiny_runs, tmp_path, capsys):
    assert cli(["sample", str(tiny_runs["vae"].run_dir), "--gif", str(tmp_path / "x.gif")]) == 2
    assert "--gif animates a ddpm or flow run's denoising" in capsys.readouterr().err
    assert not (tmp_path / "x.gif").exists()


def test_trajectory_predictions_end_at_the_sample(tiny_runs):
    run = tiny_runs["ddpm"]
    states, x0s = mg.denoising_trajectory(run, n=3, seed=2, predictions=True, sampler="ddim", steps=3)
    assert states.shape == x0s.shape == (3, 4, 28, 28)
    np.testing.assert_array_equal(x0s[:, -1], states[:, -1])
    np.testing.assert_array_equal(states[:, -1], mg.sample(run, n=3, seed=2, sampler="ddim", steps=3))


@pytest.mark.parametrize("bad", [dict(sampler="rk4"), dict(steps=0, sampler="ddim")])
def test_trajectory_settings_are_checked(tiny_runs, bad):
    with pytest.raises(UsageError, match="sampler must be one of|steps must be"):
        mg.denoising_trajectory(tiny_runs["ddpm"], n=2, **bad)
