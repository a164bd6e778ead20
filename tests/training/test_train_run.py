"""Training a run end to end: what its directory holds, determinism, resume, the EMA, Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from PIL import Image

import mlx_generative as mg
from mlx_generative.cli import main as cli_main
from mlx_generative.training import checkpoint
from mlx_generative.training.options import owned_by
from mlx_generative.training.runconfig import FORMAT_VERSION

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("kind", ["ae", "vae", "ddpm"])
def test_run_directory_has_everything(tiny_runs, kind):
    run_dir = tiny_runs[kind].run_dir
    for name in ("config.json", "model.safetensors", "metrics.jsonl", "samples.png"):
        assert (run_dir / name).is_file(), name
    config = json.loads((run_dir / "config.json").read_text())
    assert config["kind"] == kind and config["format_version"] == FORMAT_VERSION
    assert set(config["data"]) == {"dataset", "train_images", "heldout"} and config["data"]["train_images"] == 64
    # Each setting is said once, in "train", and only where it applies to the family.
    assert sorted(config["train"]) == sorted(owned_by(kind)) and "diffusion" not in config
    assert ("T" in config["train"]) == (kind == "ddpm") and ("latent_dim" in config["train"]) == (kind != "ddpm")
    records = checkpoint.read_metrics(run_dir)
    assert [r["step"] for r in records if r["split"] == "train"] == [1, 2, 3, 4]
    assert any(r["split"] == "test" and r["step"] == 4 for r in records)
    assert [p.name for p in checkpoint.list_checkpoints(run_dir)] == ["step-00000002", "step-00000004"]
    grid = Image.open(run_dir / "samples.png")
    assert grid.size[0] > 8 * 28
    assert (run_dir / "reconstructions.png").is_file() == (kind != "ddpm")
    assert (run_dir / "denoising.png").is_file() == (kind == "ddpm")
    if kind == "ddpm":
        assert (run_dir.parent / "ddpm_grid.png").is_file()  # where the guide says it goes


@pytest.mark.parametrize("kind", ["ae", "vae", "ddpm"])
def test_reloaded_run_samples_the_same_images(tiny_runs, kind):
    live = mg.sample(tiny_runs[kind], n=6, seed=11)
    reloaded = mg.sample(str(tiny_runs[kind].run_dir), n=6, seed=11)
    assert live.shape == (6, 28, 28) and live.dtype == np.uint8
    np.testing.assert_array_equal(live, reloaded)
    assert not np.array_equal(live, mg.sample(tiny_runs[kind], n=6, seed=12))
    model, config = mg.load(tiny_runs[kind].run_dir)  # unpacks as (model, config)
    assert config.kind == kind and config["kind"] == kind and model is not None


def test_training_is_deterministic(tmp_path, tiny):
    a = mg.train("vae", out=str(tmp_path), name="a", verbose=False, **tiny)
    b = mg.train("vae", out=str(tmp_path), name="b", verbose=False, **tiny)
    losses = lambda r: [m["loss"] for m in checkpoint.read_metrics(r.run_dir) if m["split"] == "train"]  # noqa: E731
    assert losses(a) == losses(b)
    assert (a.run_dir / "model.safetensors").read_bytes() == (b.run_dir / "model.safetensors").read_bytes()
    np.testing.assert_array_equal(mg.sample(a, n=4), mg.sample(b, n=4))


def _train_losses(run_dir):
    return [(m["step"], m["loss"]) for m in checkpoint.read_metrics(run_dir) if m["split"] == "train"]


def test_resume_continues_exactly(tmp_path, tiny):
    opts = dict(tiny, steps=6, checkpoint_every=3)
    full = mg.train("ddpm", out=str(tmp_path), name="full", verbose=False, **opts)
    part = mg.train("ddpm", out=str(tmp_path), name="part", verbose=False, **dict(opts, steps=3))
    resumed = mg.train("ddpm", resume=part.run_dir, steps=6, verbose=False)
    assert resumed.run_dir == part.run_dir
    got, want = _train_losses(part.run_dir), _train_losses(full.run_dir)
    assert [s for s, _ in got] == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose([l for _, l in got], [l for _, l in want], rtol=1e-5)
    np.testing.assert_array_equal(mg.sample(full, n=4), mg.sample(resumed, n=4))


def test_shards_are_decided_where_training_starts_and_recorded(tmp_path, tiny, monkeypatch):
    """Resolving options probes no hardware; the run records the shards it trained with."""
    from mlx_generative.training.options import resolve

    assert resolve("vae", mg.TrainOptions(**tiny)).shards is None
    monkeypatch.setenv("MLX_GENERATIVE_SHARDS", "2")
    run = mg.train("vae", out=str(tmp_path), name="s", verbose=False, **dict(tiny, batch_size=32))
    assert run.config.train.shards == 2 and json.loads((run.run_dir / "config.json").read_text())["train"]["shards"] == 2


def test_ema_weights_are_saved_sampled_and_resumed(tmp_path, tiny):
    opts = dict(tiny, steps=6, checkpoint_every=3, ema_decay=0.9)
    full = mg.train("ddpm", out=str(tmp_path), name="full", verbose=False, **opts)
    # model.safetensors holds the EMA, which differs from the raw weights in the last checkpoint.
    raw = mx.load(str(checkpoint.list_checkpoints(full.run_dir)[-1] / "model.safetensors"))
    ema = mx.load(str(checkpoint.list_checkpoints(full.run_dir)[-1] / "ema.safetensors"))
    saved = mx.load(str(full.run_dir / "model.safetensors"))
    name = "out.weight"
    np.testing.assert_array_equal(np.array(saved[name]), np.array(ema[name]))
    assert not np.allclose(np.array(raw[name]), np.array(ema[name]))
    np.testing.assert_array_equal(mg.sample(full, n=3), mg.sample(full.run_dir, n=3))
    # Resuming restores the EMA too: the final EMA equals the uninterrupted run's.
    part = mg.train("ddpm", out=str(tmp_path), name="part", verbose=False, **dict(opts, steps=3))
    resumed = mg.train("ddpm", resume=part.run_dir, steps=6, verbose=False)
    resumed_saved = mx.load(str(resumed.run_dir / "model.safetensors"))
    for key in saved:
        np.testing.assert_allclose(np.array(resumed_saved[key]), np.array(saved[key]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_channels_set_the_conv_widths_and_survive_reload(tmp_path, tiny, kind):
    run = mg.train(kind, out=str(tmp_path), name=kind, verbose=False, channels=8, **tiny)
    saved = json.loads((run.run_dir / "config.json").read_text())
    assert saved["model"]["channels"] == [8, 16] and saved["train"]["channels"] == 8
    encoder = run.model.encoder
    assert encoder.down1.weight.shape[0] == 8 and encoder.down2.weight.shape == (16, 3, 3, 8)
    reloaded = mg.load(run.run_dir)
    assert reloaded.model.encoder.down2.weight.shape == (16, 3, 3, 8)
    np.testing.assert_array_equal(mg.sample(reloaded, n=4), mg.sample(run, n=4))


def test_cli_trains_each_model_with_the_guides_flags(tmp_path):
    common = ["--batch-size", "16", "--limit-train", "10000", "--out", str(tmp_path), "--no-progress", "--eval-every", "100"]
    assert cli_main(["train", "ae", "--steps", "2", "--latent-dim", "16", "--loss", "bce", *common]) == 0
    assert cli_main(["train", "vae", "--steps", "2", "--warmup-steps", "1", "--beta-max", "0.5", "--latent-dim", "8", *common]) == 0
    assert cli_main(["train", "ddpm", "--steps", "2", "--T", "3", "--schedule", "cosine", "--sigma", "beta", *common]) == 0
    dirs = sorted(p.name.split("-")[0] for p in tmp_path.iterdir() if p.is_dir())
    assert dirs == ["ae", "ddpm", "vae"]
    configs = {p.name.split("-")[0]: json.loads((p / "config.json").read_text()) for p in tmp_path.iterdir() if p.is_dir()}
    assert (configs["ae"]["train"]["latent_dim"], configs["ae"]["train"]["loss"]) == (16, "bce")
    assert (configs["vae"]["train"]["warmup_steps"], configs["vae"]["train"]["beta_max"]) == (1, 0.5)
    assert {k: configs["ddpm"]["train"][k] for k in ("T", "schedule", "sigma")} == {"T": 3, "schedule": "cosine", "sigma": "beta"}


def test_bin_launchers_and_python_m(tmp_path):
    env = {**__import__("os").environ, "PYTHONPATH": ""}
    out = subprocess.run(
        [sys.executable, str(ROOT / "bin" / "train"), "vae", "--steps", "1", "--batch-size", "8",
         "--limit-train", "16", "--out", str(tmp_path), "--no-progress", "--eval-every", "100"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "held-out" in out.stderr
    help_text = subprocess.run([sys.executable, "-m", "mlx_generative", "train", "--help"],
                               cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
    for flag in ("--steps", "--batch-size", "--lr", "--latent-dim", "--limit-train", "--warmup-steps",
                 "--beta-max", "--T", "--schedule", "--seed", "--dataset", "--data-dir", "--out", "--resume"):
        assert flag in help_text
    assert "(default: ae 500, vae 600, ddpm/flow 800, classifier 2000)" in " ".join(help_text.split())  # from the families
    run_dir = next(tmp_path.glob("vae-*"))
    sampled = subprocess.run([sys.executable, str(ROOT / "bin" / "sample"), str(run_dir), "--n", "4"],
                             capture_output=True, text=True, timeout=120)
    assert sampled.returncode == 0, sampled.stderr
    assert Path(sampled.stdout.strip()).is_file()


def test_sigint_checkpoints_and_resume_matches(tmp_path):
    """Ctrl-C mid-run: exit 130, a checkpoint at the finished step, and --resume ends where a full run does."""
    args = ["--steps", "40", "--batch-size", "16", "--limit-train", "256", "--out", str(tmp_path),
            "--eval-every", "1000", "--checkpoint-every", "1000", "--log-every", "1", "--no-progress"]
    proc = subprocess.Popen([sys.executable, str(ROOT / "bin" / "train"), "vae", "--name", "cut", *args],
                            stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "cut" / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 130, err
    assert "resume with: bin/train vae --resume" in err
    saved = checkpoint.list_checkpoints(tmp_path / "cut")
    assert saved, "an interrupted run must leave a checkpoint"
    cut_at = int(saved[-1].name.split("-")[1])
    assert 3 <= cut_at < 40
    assert cli_main(["train", "vae", "--resume", str(tmp_path / "cut"), "--no-progress"]) == 0
    assert cli_main(["train", "vae", "--name", "whole", *args]) == 0
    got, want = _train_losses(tmp_path / "cut"), _train_losses(tmp_path / "whole")
    assert [s for s, _ in got] == list(range(1, 41))
    np.testing.assert_allclose([l for _, l in got], [l for _, l in want], rtol=1e-5)
    cut_weights = mx.load(str(tmp_path / "cut" / "model.safetensors"))
    whole_weights = mx.load(str(tmp_path / "whole" / "model.safetensors"))
    assert cut_weights.keys() == whole_weights.keys()
    for name in cut_weights:
        np.testing.assert_allclose(np.array(cut_weights[name]), np.array(whole_weights[name]), rtol=1e-5, atol=1e-6)
