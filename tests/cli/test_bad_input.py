"""Where a run cannot go: an output folder that cannot be written, a disk too full for it."""

from __future__ import annotations

from collections import namedtuple

import mlx.optimizers as optim
import pytest

import mlx_generative as mg
from mlx_generative.errors import CheckpointError
from mlx_generative.training import checkpoint, train_run

TINY = ["--steps", "1", "--batch-size", "8", "--limit-train", "16", "--no-progress", "--eval-every", "100"]


def test_unwritable_output_directory(cli, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    status, err = cli(["train", "ae", *TINY, "--out", str(blocker / "runs")])
    assert status == 2 and "cannot create a run directory" in err and str(blocker) in err


def test_full_disk_is_caught_before_training(cli, tmp_path, monkeypatch):
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(train_run.shutil, "disk_usage", lambda path: Usage(10**9, 10**9 - 1000, 1000))
    status, err = cli(["train", "vae", *TINY, "--out", str(tmp_path)])
    assert status == 2 and "MB free, a run needs about" in err
    assert not any(tmp_path.iterdir())


def test_disk_full_during_a_checkpoint_keeps_the_old_one(tmp_path, monkeypatch):
    run = mg.train("vae", out=str(tmp_path), name="r", verbose=False, steps=2, batch_size=8,
                   limit_train=16, eval_every=100, checkpoint_every=1, progress=False)
    before = sorted(p.name for p in (run.run_dir / "checkpoints").iterdir())

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.mx, "save_safetensors", no_space)
    with pytest.raises(CheckpointError, match="No space left on device"):
        checkpoint.save_checkpoint(run.run_dir, 3, run.model, optim.Adam(1e-3))
    assert sorted(p.name for p in (run.run_dir / "checkpoints").iterdir()) == before
    mg.load(run.run_dir)  # still loadable


