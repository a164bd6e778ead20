"""Sweeps: one command per experiment, every combination checked before anything trains,
resumable, and runs that differ only in sampling sharing one training."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import mlx_generative as mg
from mlx_generative.errors import UsageError
from mlx_generative.experiments import sweeps
from mlx_generative.experiments.sweep_spec import combinations, parse_values, run_name
from mlx_generative.experiments.sweeps import plan
from mlx_generative.training import checkpoint
from mlx_generative.training.trainer import TrainingInterrupted

# ---- the grid -------------------------------------------------------------------------


def test_values_are_typed_like_the_flag():
    assert parse_values("latent_dim", "16,32,64") == [16, 32, 64]
    assert parse_values("beta_max", "0.5,1,4") == [0.5, 1.0, 4.0]
    assert parse_values("schedule", "linear,cosine") == ["linear", "cosine"]
    assert parse_values("binarize", "none,dynamic") == [None, "dynamic"]
    assert combinations({"a": [1, 2], "b": ["x", "y"]}) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}
    ]
    assert run_name({"warmup_steps": 200, "beta_max": 0.5}) == "warmup_steps=200_beta_max=0.5"


@pytest.mark.parametrize(
    "param, text, message",
    [
        ("latent_dim", "16,x", "expected integers, got 'x'"),
        ("latent_dim", "16,,32", "comma-separated"),
        ("latent_dim", "16,16", "repeated"),
        ("out", "a,b", "cannot be swept"),
        ("no_such_flag", "1,2", "cannot be swept"),
    ],
)
def test_bad_values_name_the_flag(param, text, message):
    with pytest.raises(UsageError, match=message):
        parse_values(param, text)


def test_every_combination_is_checked_before_anything_trains(tmp_path):
    with pytest.raises(UsageError, match="--latent-dim must be >= 1, got 0"):
        plan("ae", {"latent_dim": [8, 0]}, {}, tmp_path)
    with pytest.raises(UsageError, match="--T applies to ddpm only, not ae"):
        plan("ae", {"T": [4, 6]}, {}, tmp_path)
    with pytest.raises(UsageError, match="both swept and fixed"):
        plan("ae", {"latent_dim": [4, 8]}, {"latent_dim": 4}, tmp_path)
    assert not any(tmp_path.iterdir())  # nothing was created


# ---- the sweep ------------------------------------------------------------------------


def test_sweep_makes_one_run_per_combination(ae_sweep):
    spec = checkpoint.read_json(ae_sweep / "sweep.json")
    assert spec["runs"] == ["latent_dim=4", "latent_dim=8"]
    for name, latent in (("latent_dim=4", 4), ("latent_dim=8", 8)):
        run = mg.load(ae_sweep / name)
        assert run.config["model"]["latent_dim"] == latent
        assert run.config["train"]["steps"] == 4
        assert mg.encode(run, np.zeros((1, 28, 28), np.uint8)).shape == (1, latent)
        assert checkpoint.read_json(ae_sweep / name / "eval.json")["samples"]["n"] == 40


def test_rerunning_a_sweep_trains_nothing(ae_sweep, capsys, sweep_options):
    weights = ae_sweep / "latent_dim=4" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    mg.sweep("ae", {"latent_dim": [4, 8]}, out=ae_sweep.parent, eval_samples=40, report=False, **sweep_options)
    err = capsys.readouterr().err
    assert "2 runs (2 already done)" in err
    assert err.count("done earlier") == 2 and "training" not in err
    assert weights.stat().st_mtime_ns == before


def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path, capsys, sweep_options):
    out = tmp_path / "sweeps"
    # Two swept flags, given out of alphabetical order: the order names the runs and the columns.
    params = {"warmup_steps": [2], "beta_max": [0.5, 1.0]}
    sweep_dir = mg.sweep("vae", params, out=out, eval_samples=0, report=False, verbose=False, **sweep_options)
    finished = checkpoint.read_metrics(sweep_dir / "warmup_steps=2_beta_max=1")
    # Make the second run look killed after its step-2 checkpoint.
    run_dir = sweep_dir / "warmup_steps=2_beta_max=1"
    (run_dir / "model.safetensors").unlink()
    shutil.rmtree(run_dir / "checkpoints" / "step-00000004")
    checkpoint.truncate_metrics(run_dir, 2)
    mg.sweep("vae", params, out=out, eval_samples=0, **sweep_options)
    err = capsys.readouterr().err
    assert "beta_max=0.5: done earlier" in err and "beta_max=1: training 4 steps (resuming)" in err
    assert "| warmup_steps | beta_max | held-out -ELBO (nats)" in (sweep_dir / "report.md").read_text()
    resumed = checkpoint.read_metrics(run_dir)
    train = lambda records: [r["loss"] for r in records if r["split"] == "train"]  # noqa: E731
    assert train(resumed) == pytest.approx(train(finished), rel=1e-5)  # same batches, same noise


def test_a_run_stopped_before_its_first_checkpoint_starts_over_in_place(tmp_path, sweep_options):
    params = {"latent_dim": [4]}
    sweep_dir = mg.sweep("ae", params, out=tmp_path, eval_samples=0, report=False, verbose=False, **sweep_options)
    run_dir = sweep_dir / "latent_dim=4"
    for leftover in ("checkpoints", "model.safetensors", "extras.safetensors"):
        path = run_dir / leftover
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    mg.sweep("ae", params, out=tmp_path, eval_samples=0, verbose=False, **sweep_options)
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == ["figures", "latent_dim=4"]
    assert (run_dir / "model.safetensors").is_file() and (sweep_dir / "report.html").is_file()


def test_other_settings_under_the_same_name_are_refused(ae_sweep, sweep_options):
    with pytest.raises(UsageError, match="another --name"):
        mg.sweep("ae", {"latent_dim": [4, 8]}, out=ae_sweep.parent, eval_samples=0, **{**sweep_options, "steps": 5})
    with pytest.raises(UsageError, match="another --name"):
        mg.sweep("vae", {"latent_dim": [4, 8]}, out=ae_sweep.parent, name=ae_sweep.name, eval_samples=0, **sweep_options)


def test_an_interrupted_sweep_says_how_to_resume(tmp_path, monkeypatch, capsys, sweep_options):
    def stopped(*args, **kwargs):
        raise TrainingInterrupted(3, 15)

    monkeypatch.setattr(sweeps, "train", stopped)
    with pytest.raises(TrainingInterrupted):
        mg.sweep("ae", {"latent_dim": [4, 8]}, out=tmp_path, eval_samples=0, **sweep_options)
    err = capsys.readouterr().err
    assert "[1/2] ae latent_dim=4" in err and "Run the same command again to resume" in err
    assert "[2/2]" not in err  # the sweep stops with the run
