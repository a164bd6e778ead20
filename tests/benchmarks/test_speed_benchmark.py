"""The speed benchmark's own machinery (benchmarks/train_speed.py): our engine's worker runs in a
process of its own and reports JSON, and time to quality is read from a command's own lines.
PyTorch's side needs PyTorch, which the project does not depend on: it runs where installed."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _worker(engine: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, str(BENCHMARKS / f"engine_{engine}.py"), *args], capture_output=True,
                         text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_our_engine_times_a_training_step_and_sampling_in_its_own_process():
    step = _worker("mlx", "step", "--model", "vae", "--batch", "16", "--warmup", "1", "--steps", "2")
    assert step["ms_per_step"] > 0 and step["params"] == 356_385 and step["shards"] >= 1
    sample = _worker("mlx", "sample", "--T", "3", "--n", "4", "--repeats", "1")
    assert sample["images_per_s"] > 0


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed (a benchmark peer)")
def test_the_pytorch_twins_have_our_parameter_counts():
    for model, params in (("ae", 456_737), ("vae", 356_385), ("ddpm", 222_513)):
        got = _worker("torch", "step", "--model", model, "--batch", "8", "--warmup", "1", "--steps", "1")
        assert got["params"] == params, model


def test_time_to_target_stops_at_the_first_line_that_reaches_it():
    speed = _load("train_speed")
    lines = "step 25: held-out mse 0.009  bce 0.1\\nstep 50: held-out mse 0.0061\\nstep 75: held-out mse 0.0059"
    command = [sys.executable, "-c", f"import time; print('{lines}', flush=True); time.sleep(60)"]
    seconds, step = speed.time_to_target(command, "mse", 0.006, timeout=30)
    assert step == 75 and seconds < 30  # the command is stopped, not waited for
    assert speed.time_to_target(command, "mse", 0.001, timeout=2) == (None, None)


def test_ratios_pair_each_rounds_two_engines():
    speed = _load("train_speed")
    # A busy minute slows both engines of round 2 alike: the per-round ratio ignores it, the
    # ratio of medians does not need to.
    runs = {"mlx": [{"ms": 50.0}, {"ms": 100.0}, {"ms": 52.0}], "torch": [{"ms": 25.0}, {"ms": 50.0}, {"ms": 27.0}]}
    of_medians, per_round = speed.ratios(runs, "ms", theirs_over_ours=True)
    assert of_medians == pytest.approx(27.0 / 52.0)
    assert per_round == pytest.approx(0.5)  # the rounds' own ratios: 0.5, 0.5, 0.519
    rates = {"mlx": [{"img": 100.0}, {"img": 120.0}], "torch": [{"img": 200.0}, {"img": 200.0}]}
    assert speed.ratios(rates, "img", theirs_over_ours=False) == (pytest.approx(0.55), pytest.approx(0.55))
