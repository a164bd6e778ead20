"""The Python API and the CLI end to end, on a few steps of real digits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import mlx_generative as mg
from mlx_generative import checkpoint
from mlx_generative.cli import main as cli_main
from mlx_generative.errors import CheckpointError, UsageError

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(steps=4, batch_size=16, limit_train=64, log_every=1, eval_every=100, checkpoint_every=2, progress=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny trained run per kind, shared by the tests below."""
    out = tmp_path_factory.mktemp("runs")
    return {kind: mg.train(kind, out=str(out), name=kind, verbose=False, **TINY) for kind in ("ae", "vae", "ddpm")}


@pytest.mark.parametrize("kind", ["ae", "vae", "ddpm"])
def test_run_directory_has_everything(runs, kind):
    run_dir = runs[kind].run_dir
    for name in ("config.json", "model.safetensors", "metrics.jsonl", "samples.png"):
        assert (run_dir / name).is_file(), name
    config = json.loads((run_dir / "config.json").read_text())
    assert config["kind"] == kind and config["format_version"] == checkpoint.FORMAT_VERSION
    assert config["data"]["scale"] == ("symmetric" if kind == "ddpm" else "unit")
    records = checkpoint.read_metrics(run_dir)
    assert [r["step"] for r in records if r["split"] == "train"] == [1, 2, 3, 4]
    assert any(r["split"] == "test" and r["step"] == 4 for r in records)
    assert [p.name for p in checkpoint.list_checkpoints(run_dir)] == ["step-00000002", "step-00000004"]
    grid = Image.open(run_dir / "samples.png")
    assert grid.size[0] > 8 * 28
    if kind != "ddpm":
        assert (run_dir / "reconstructions.png").is_file()
    else:
        assert (run_dir / "denoising.png").is_file()
        assert (run_dir.parent / "ddpm_grid.png").is_file()  # where the guide says it goes


@pytest.mark.parametrize("kind", ["ae", "vae", "ddpm"])
def test_reloaded_run_samples_the_same_images(runs, kind):
    live = mg.sample(runs[kind], n=6, seed=11)
    reloaded = mg.sample(str(runs[kind].run_dir), n=6, seed=11)
    assert live.shape == (6, 28, 28) and live.dtype == np.uint8
    np.testing.assert_array_equal(live, reloaded)
    assert not np.array_equal(live, mg.sample(runs[kind], n=6, seed=12))
    model, config = mg.load(runs[kind].run_dir)  # unpacks as the issue promises
    assert config["kind"] == kind and model is not None


def test_reconstruct_and_encode(runs, digits):
    for kind, dim in (("ae", 64), ("vae", 32)):
        recon = mg.reconstruct(runs[kind], digits[:5])
        assert recon.shape == (5, 28, 28) and recon.dtype == np.uint8
        codes = mg.encode(runs[kind], digits[:5])
        assert codes.shape == (5, dim)
        np.testing.assert_allclose(codes, mg.encode(runs[kind], digits[:5].astype(np.float32) / 255), atol=1e-5)
    with pytest.raises(UsageError, match="no encoder"):
        mg.reconstruct(runs["ddpm"], digits[:2])


def test_ddpm_sigma_choice(runs):
    run = runs["ddpm"]
    assert run.config["diffusion"]["sigma"] == "posterior"  # the default
    beta = mg.sample(run, n=4, seed=3, sigma="beta")
    np.testing.assert_array_equal(beta, mg.sample(run, n=4, seed=3, sigma="beta"))
    assert not np.array_equal(beta, mg.sample(run, n=4, seed=3))
    with pytest.raises(UsageError, match="sigma"):
        mg.sample(runs["vae"], n=2, sigma="beta")


def test_denoising_trajectory(runs):
    strip = mg.denoising_trajectory(runs["ddpm"], n=3)
    assert strip.shape == (3, runs["ddpm"].config["diffusion"]["T"] + 1, 28, 28)


def test_training_is_deterministic(tmp_path):
    a = mg.train("vae", out=str(tmp_path), name="a", verbose=False, **TINY)
    b = mg.train("vae", out=str(tmp_path), name="b", verbose=False, **TINY)
    losses = lambda r: [m["loss"] for m in checkpoint.read_metrics(r.run_dir) if m["split"] == "train"]
    assert losses(a) == losses(b)
    np.testing.assert_array_equal(mg.sample(a, n=4), mg.sample(b, n=4))


def test_resume_continues_exactly(tmp_path):
    opts = dict(TINY, steps=6, checkpoint_every=3)
    full = mg.train("ddpm", out=str(tmp_path), name="full", verbose=False, **opts)
    part = mg.train("ddpm", out=str(tmp_path), name="part", verbose=False, **dict(opts, steps=3))
    resumed = mg.train("ddpm", resume=part.run_dir, steps=6, verbose=False)
    assert resumed.run_dir == part.run_dir
    train_losses = lambda d: [(m["step"], m["loss"]) for m in checkpoint.read_metrics(d) if m["split"] == "train"]
    got, want = train_losses(part.run_dir), train_losses(full.run_dir)
    assert [s for s, _ in got] == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose([l for _, l in got], [l for _, l in want], rtol=1e-5)
    np.testing.assert_array_equal(mg.sample(full, n=4), mg.sample(resumed, n=4))


def test_cli_trains_each_model_with_the_guides_flags(tmp_path):
    common = ["--batch-size", "16", "--limit-train", "10000", "--out", str(tmp_path), "--no-progress", "--eval-every", "100"]
    assert cli_main(["train", "ae", "--steps", "2", "--latent-dim", "16", "--loss", "bce", *common]) == 0
    assert cli_main(["train", "vae", "--steps", "2", "--warmup-steps", "1", "--beta-max", "0.5", "--latent-dim", "8", *common]) == 0
    assert cli_main(["train", "ddpm", "--steps", "2", "--T", "3", "--schedule", "cosine", "--sigma", "beta", *common]) == 0
    dirs = sorted(p.name.split("-")[0] for p in tmp_path.iterdir() if p.is_dir())
    assert dirs == ["ae", "ddpm", "vae"]
    ddpm_dir = next(p for p in tmp_path.iterdir() if p.is_dir() and p.name.startswith("ddpm"))
    config = json.loads((ddpm_dir / "config.json").read_text())
    assert config["diffusion"] == {"T": 3, "schedule": "cosine", "sigma": "beta"}


@pytest.mark.parametrize(
    "argv,message",
    [
        (["train", "gan"], "invalid choice"),
        (["train", "ae", "--steps", "-1"], "--steps must be >= 0"),
        (["train", "ddpm", "--T", "0"], "--T must be >= 1"),
        (["train", "vae", "--beta-max", "0"], "--beta-max must be > 0"),
        (["train", "ae", "--T", "4"], "--T applies to ddpm only"),
        (["train", "ae", "--batch-size", "100000", "--steps", "1"], "batch size"),
        (["train", "vae", "--resume", "/nonexistent/run"], "no such run directory"),
        (["sample", "/nonexistent/run"], "no such run directory"),
        (["frobnicate"], "unknown command"),
    ],
)
def test_cli_errors_are_one_line_with_status_2(argv, message, capsys, tmp_path):
    argv = argv + (["--out", str(tmp_path)] if argv[0] == "train" and "--resume" not in argv and len(argv) > 2 else [])
    try:
        status = cli_main(argv)
    except SystemExit as e:  # argparse's own errors
        status = e.code
    assert status == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_load_rejects_broken_runs(runs, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(runs["vae"].run_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        mg.load(broken)
    cfg = json.loads((broken / "config.json").read_text())
    cfg["model"]["latent_dim"] = 7
    (broken / "config.json").write_text(json.dumps(cfg))
    shutil.copy(runs["vae"].run_dir / "model.safetensors", broken / "model.safetensors")
    with pytest.raises(CheckpointError, match="shape"):
        mg.load(broken)
    cfg["format_version"] = 99
    (broken / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="format_version"):
        mg.load(broken)


def test_bin_launchers_and_python_m(tmp_path):
    env = {**os.environ, "PYTHONPATH": ""}
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
    run_dir = next(tmp_path.glob("vae-*"))
    sampled = subprocess.run([sys.executable, str(ROOT / "bin" / "sample"), str(run_dir), "--n", "4"],
                             capture_output=True, text=True, timeout=120)
    assert sampled.returncode == 0, sampled.stderr
    assert Path(sampled.stdout.strip()).is_file()


def test_sigint_checkpoints_and_resume_matches(tmp_path):
    """Ctrl-C mid-run: exit 130, a checkpoint at the finished step, and --resume ends where a full run does."""
    import signal
    import time

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
    losses = lambda d: [(m["step"], m["loss"]) for m in checkpoint.read_metrics(d) if m["split"] == "train"]
    got, want = losses(tmp_path / "cut"), losses(tmp_path / "whole")
    assert [s for s, _ in got] == list(range(1, 41))
    np.testing.assert_allclose([l for _, l in got], [l for _, l in want], rtol=1e-5)
    import mlx.core as mx

    cut_weights = mx.load(str(tmp_path / "cut" / "model.safetensors"))
    whole_weights = mx.load(str(tmp_path / "whole" / "model.safetensors"))
    assert cut_weights.keys() == whole_weights.keys()
    for name in cut_weights:
        np.testing.assert_allclose(np.array(cut_weights[name]), np.array(whole_weights[name]), rtol=1e-5, atol=1e-6)


def test_ddim_sampling_from_a_run(runs, capsys):
    run = runs["ddpm"]
    a = mg.sample(run, n=4, seed=5, sampler="ddim", steps=3)
    np.testing.assert_array_equal(a, mg.sample(run, n=4, seed=5, sampler="ddim", steps=3))
    assert a.shape == (4, 28, 28) and a.dtype == np.uint8
    assert not np.array_equal(a, mg.sample(run, n=4, seed=5, sampler="ddim", steps=3, eta=1.0))
    with pytest.raises(UsageError, match="apply to sampler='ddim' only"):
        mg.sample(run, n=2, steps=3)
    with pytest.raises(UsageError, match="ddpm runs only"):
        mg.sample(runs["ae"], n=2, sampler="ddim")
    with pytest.raises(UsageError, match="steps must be >= 1"):
        mg.sample(run, n=2, sampler="ddim", steps=0)
    assert cli_main(["sample", str(run.run_dir), "--n", "4", "--sampler", "ddim", "--steps", "2"]) == 0


def test_ema_weights_are_saved_sampled_and_resumed(tmp_path):
    import mlx.core as mx

    opts = dict(TINY, steps=6, checkpoint_every=3, ema_decay=0.9)
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


def test_a_run_trained_with_a_ddim_sampler_samples_that_way_by_default(tmp_path):
    run = mg.train("ddpm", out=str(tmp_path), name="ddim", verbose=False,
                   **dict(TINY, T=20, sampler="ddim", sample_steps=4))
    assert (run.config["train"]["sampler"], run.config["train"]["sample_steps"]) == ("ddim", 4)
    default = mg.sample(run, n=4)
    np.testing.assert_array_equal(default, mg.sample(run, n=4, sampler="ddim", steps=4))
    assert not np.array_equal(default, mg.sample(run, n=4, sampler="ddpm"))
    assert not np.array_equal(default, mg.sample(run, n=4, steps=10))  # steps alone: the run's DDIM
    assert mg.denoising_trajectory(run, n=2).shape == (2, 5, 28, 28)  # x_T and 4 steps
    reloaded = mg.load(run.run_dir)
    np.testing.assert_array_equal(mg.sample(reloaded, n=4), default)


def test_a_run_with_a_sample_eta_draws_with_that_noise_by_default(tmp_path):
    run = mg.train("ddpm", out=str(tmp_path), name="eta", verbose=False,
                   **dict(TINY, T=20, sampler="ddim", sample_steps=4, sample_eta=1.0))
    assert run.config["train"]["sample_eta"] == 1.0
    default = mg.sample(run, n=4)
    np.testing.assert_array_equal(default, mg.sample(run, n=4, eta=1.0))
    assert not np.array_equal(default, mg.sample(run, n=4, eta=0.0))
    np.testing.assert_array_equal(mg.sample(mg.load(run.run_dir), n=4), default)


@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_channels_set_the_conv_widths_and_survive_reload(tmp_path, kind):
    run = mg.train(kind, out=str(tmp_path), name=kind, verbose=False, channels=8, **TINY)
    saved = json.loads((run.run_dir / "config.json").read_text())
    assert saved["model"]["channels"] == [8, 16] and saved["train"]["channels"] == 8
    encoder = run.model.encoder
    assert encoder.down1.weight.shape[0] == 8 and encoder.down2.weight.shape == (16, 3, 3, 8)
    reloaded = mg.load(run.run_dir)
    assert reloaded.model.encoder.down2.weight.shape == (16, 3, 3, 8)
    np.testing.assert_array_equal(mg.sample(reloaded, n=4), mg.sample(run, n=4))


@pytest.mark.parametrize("kind, overrides, message", [
    ("ddpm", dict(channels=16), "--channels applies to ae and vae only"),
    ("vae", dict(channels=0), "--channels must be >= 1"),
    ("ddpm", dict(sample_eta=0.5), "--sample-eta applies to --sampler ddim"),
    ("ddpm", dict(sampler="ddim", sample_eta=-1.0), "--sample-eta must be >= 0"),
    ("vae", dict(attention=True), "--attention applies to ddpm only"),
    ("ddpm", dict(sample_steps=4), "--sample-steps applies to --sampler ddim"),
    ("ddpm", dict(sampler="ddim", sample_steps=0), "--sample-steps must be >= 1"),
    ("ddpm", dict(sampler="plms"), "--sampler must be ddpm or ddim"),
    ("vae", dict(sampler="ddim"), "--sampler applies to ddpm only"),
])
def test_bad_sampler_settings_are_refused(tmp_path, capsys, kind, overrides, message):
    with pytest.raises(UsageError, match=message):
        mg.train(kind, out=str(tmp_path), verbose=False, **dict(TINY, **overrides))
    if overrides.get("sampler") == "plms":
        return  # the CLI's argparse names the choices itself
    args = ["train", kind, "--out", str(tmp_path), "--no-progress", "--steps", "1"]
    for key, value in overrides.items():
        args += [f"--{key.replace('_', '-')}"] + ([] if value is True else [str(value)])
    assert cli_main(args) != 0
    assert message in capsys.readouterr().err
