"""One training process per run directory: a second writer is refused or gets its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import mlx_generative as mg
from mlx_generative.errors import UsageError
from mlx_generative.training import runlock
from mlx_generative.training.checkpoint import read_metrics

ROOT = Path(__file__).resolve().parents[2]
TINY = dict(steps=2, batch_size=8, limit_train=16, eval_every=100, progress=False)


def test_resuming_a_run_another_process_is_writing_is_refused(copy_run):
    run_dir = copy_run("vae")
    before = (run_dir / "metrics.jsonl").read_bytes()
    with runlock.held(run_dir):  # as a live training process holds it
        with pytest.raises(UsageError, match="another training process is writing this run") as error:
            mg.train("vae", resume=run_dir, verbose=False, steps=6)
        assert f"pid {os.getpid()}" in str(error.value)
    assert (run_dir / "metrics.jsonl").read_bytes() == before  # nothing written by the refused run
    mg.train("vae", resume=run_dir, verbose=False, steps=6)  # free again once released


def test_a_crashed_holder_leaves_no_stale_lock(copy_run):
    run_dir = copy_run("ae")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from mlx_generative.training import runlock\n"
         "with runlock.held(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)", str(run_dir)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UsageError, match="another training process"):
            with runlock.held(run_dir):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with runlock.held(run_dir):  # the kernel released it with its holder
        pass


def test_a_taken_name_gets_its_own_directory_and_says_so(tmp_path, capsys):
    first = mg.train("ae", out=str(tmp_path), name="same", **TINY)
    second = mg.train("ae", out=str(tmp_path), name="same", **TINY)
    assert first.run_dir == tmp_path / "same" and second.run_dir == tmp_path / "same-2"
    assert f"note: {tmp_path / 'same'} already exists; this run is {tmp_path / 'same-2'}" in capsys.readouterr().err


def test_two_trainings_started_at_once_never_share_a_directory(tmp_path):
    command = [sys.executable, "-m", "mlx_generative", "train", "ae", "--steps", "3", "--batch-size", "8",
               "--limit-train", "16", "--eval-every", "100", "--no-progress", "--out", str(tmp_path), "--name", "same"]
    procs = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    runs = sorted(p.name for p in tmp_path.iterdir())
    assert runs == ["same", "same-2"]
    for name in runs:  # each a whole run of its own: 3 steps logged once each
        steps = [r["step"] for r in read_metrics(tmp_path / name) if "loss" in r]
        assert steps == sorted(set(steps)) and steps[-1] == 3
