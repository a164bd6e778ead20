"""Shared fixtures: small real data, and tiny trained runs made once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import mlx_generative as mg  # loads the fast BLAS before mlx.core
from mlx_generative.data.datasets import load_dataset

# A few steps on 64 real digits: every code path of a run, in seconds.
TINY = dict(steps=4, batch_size=16, limit_train=64, log_every=1, eval_every=100, checkpoint_every=2, progress=False)

# The session's tiny runs: name -> (family, options beyond TINY).
TINY_RUNS = {
    "ae": ("ae", {}),
    "vae": ("vae", {}),
    "ddpm": ("ddpm", {}),
    "vae-conditional": ("vae", {"conditional": True}),
    "ddpm-conditional": ("ddpm", {"conditional": True}),
    "vae-binary": ("vae", {"binarize": "dynamic"}),
    "classifier": ("classifier", {}),
    "flow": ("flow", {}),
}


@pytest.fixture(scope="session")
def tiny() -> dict:
    """The options of a tiny run (a copy: change it freely)."""
    return dict(TINY)


class TinyRuns:
    """``runs["vae"]``: a ``Run`` trained with TINY the first time it is asked for. Shared by
    every test of the session, so treat it as read-only; ``copy_run`` gives one to change."""

    def __init__(self, out: Path):
        self.out, self.trained = out, {}

    def __getitem__(self, name: str) -> mg.Run:
        if name not in self.trained:
            kind, extra = TINY_RUNS[name]
            self.trained[name] = mg.train(kind, out=str(self.out), name=name, verbose=False, **TINY, **extra)
        return self.trained[name]


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> TinyRuns:
    return TinyRuns(tmp_path_factory.mktemp("tiny-runs"))


@pytest.fixture
def copy_run(tiny_runs, tmp_path):
    """``copy_run("vae")``: a private copy of a session run's directory, to damage or extend."""

    def copy(name: str, to: str = "run") -> Path:
        target = tmp_path / to
        shutil.copytree(tiny_runs[name].run_dir, target)
        return target

    return copy


@pytest.fixture
def cli(capsys):
    """``cli(argv) -> (exit status, stderr)``: a command as a user runs it, argparse's exits included."""
    from mlx_generative.cli import main

    def run(argv: list[str]) -> tuple[int, str]:
        try:
            status = main(argv)
        except SystemExit as e:  # argparse exits by itself
            status = e.code
        return status, capsys.readouterr().err

    return run


@pytest.fixture
def digits() -> np.ndarray:
    """64 real digits from the shipped sample as uint8 (64, 28, 28)."""
    return np.array(load_dataset("mnist-sample", "train").images[:64])


@pytest.fixture
def unit_batch(digits) -> np.ndarray:
    """16 digits as float32 NHWC in [0, 1]."""
    return digits[:16, :, :, None].astype(np.float32) / 255.0
