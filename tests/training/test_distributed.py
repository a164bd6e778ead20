"""Data-parallel training under mlx.launch: the same updates as one process at the global batch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

import mlx_generative as mg
from mlx_generative.cli import main as cli_main
from mlx_generative.errors import UsageError
from mlx_generative.training import checkpoint, distributed
from mlx_generative.training.trainer import step_seed

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve().parent / "distributed_worker.py"
LAUNCH_TIMEOUT_S = 240  # the ring backend has a reported rare deadlock: a hang fails the test
OPTIONS = dict(steps=6, limit_train=96, log_every=1, eval_every=100, checkpoint_every=3, progress=False)


def _run_under_launch(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run with a hard timeout; on a hang kill the whole process group and fail."""
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=LAUNCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"mlx.launch did not finish in {LAUNCH_TIMEOUT_S} s: {' '.join(command)}")
    return subprocess.CompletedProcess(command, proc.returncode, out, "")


def _launch_worker(ranks: int, out: Path, name: str, kind: str, options: dict):
    command = distributed.launch_command(ranks, [])  # the launcher, a free port of its own
    command = command[: command.index("--") + 1] + [sys.executable, str(WORKER), str(out), name, kind,
                                                    json.dumps(options)]
    result = _run_under_launch(command, out)
    assert result.returncode == 0, result.stdout[-3000:]
    return result


def _weights(path: Path) -> dict:
    return {k: np.array(v) for k, v in mx.load(str(path)).items()}


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """An AE trained by 2 processes x batch 8, and by 1 process x batch 16."""
    out = tmp_path_factory.mktemp("dist")
    _launch_worker(2, out, "two", "ae", {**OPTIONS, "batch_size": 8})
    single = mg.train("ae", out=str(out), name="one", verbose=False, batch_size=16, **OPTIONS)
    return out, single


def test_two_ranks_match_one_process_at_the_global_batch(two_ranks):
    out, single = two_ranks
    launched = _weights(out / "two" / checkpoint.WEIGHTS)
    alone = _weights(single.run_dir / checkpoint.WEIGHTS)
    assert launched.keys() == alone.keys()
    for key in alone:
        np.testing.assert_allclose(launched[key], alone[key], rtol=1e-4, atol=2e-6, err_msg=key)
    # The logged loss is the whole global batch's, as one process logs it.
    losses = [[r["loss"] for r in checkpoint.read_metrics(d) if r["split"] == "train"]
              for d in (out / "two", single.run_dir)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)
    assert not np.allclose(losses[0][0], losses[0][-1])  # it trained


def test_every_rank_ends_with_the_same_weights(two_ranks):
    out, _ = two_ranks
    rank0, rank1 = _weights(out / "two-rank0.safetensors"), _weights(out / "two-rank1.safetensors")
    for key in rank0:
        np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)


def test_only_rank_0_writes_and_its_run_loads_in_one_process(two_ranks):
    out, _ = two_ranks
    runs = sorted(p.name for p in out.iterdir() if (p / checkpoint.CONFIG).is_file())
    assert runs == ["one", "two"]  # one directory for the launch, none per rank
    run = mg.load(out / "two")
    assert (run.config.ranks, run.config.train.batch_size) == (2, 8)  # 8 per process, 16 in all
    assert mg.load(out / "one").config.ranks == 1
    images = mg.sample(run, n=4, seed=0)
    assert images.shape == (4, 28, 28) and images.std() > 0
    with pytest.raises(UsageError, match="trained on 2 process"):
        mg.train("ae", resume=out / "two", steps=8, verbose=False)


def test_ranks_draw_their_own_noise():
    assert step_seed(0, 5) == step_seed(0, 5, rank=0)  # rank 0 draws what one process draws
    assert len({step_seed(0, 5, rank=r) for r in range(4)}) == 4


def test_shard_splits_the_global_batch_evenly():
    batch = (np.arange(12).reshape(6, 2), np.arange(6))
    parts = [distributed.shard(batch, r, 3) for r in range(3)]
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), batch[0])
    np.testing.assert_array_equal(parts[2][1], [4, 5])
    assert distributed.shard(batch, 0, 1) is batch


def test_bin_train_ranks_starts_mlx_launch(tmp_path):
    command = [sys.executable, str(ROOT / "bin" / "train"), "vae", "--ranks", "2", "--steps", "3",
               "--batch-size", "8", "--limit-train", "64", "--out", str(tmp_path), "--name", "v", "--no-progress"]
    result = _run_under_launch(command, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "launching: " in result.stdout and "-n 2" in result.stdout
    assert "batch 8 per process x 2 processes" in result.stdout
    assert result.stdout.count("done in") == 1  # only rank 0 speaks
    config = mg.load(tmp_path / "v").config
    assert config.ranks * config.train.batch_size == 16


def test_ranks_must_be_positive(capsys):
    assert cli_main(["train", "ae", "--ranks", "0"]) == 2
    assert "--ranks must be >= 1" in capsys.readouterr().err


def test_ranks_on_one_machine_share_its_cores(monkeypatch):
    for name in distributed.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    command = distributed.launch_command(4, ["train", "ae"], port=40000)
    assert "--env=OPENBLAS_NUM_THREADS=2" in command and "--env=OMP_NUM_THREADS=2" in command
    assert command[command.index("--") + 1 :] == [sys.executable, "-m", "mlx_generative", "train", "ae"]
    assert distributed.oversubscription_warning(4) is not None and distributed.oversubscription_warning(1) is None
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")  # the user's choice is kept
    assert "--env=OPENBLAS_NUM_THREADS=2" not in distributed.launch_command(4, [], port=40000)


def test_a_launch_on_one_machine_shares_the_cores_before_blas_loads(tmp_path, monkeypatch):
    from mlx_generative.runtime.blas import share_cores_among_local_ranks

    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    hostfile = tmp_path / "hosts.json"
    hostfile.write_text(json.dumps([["127.0.0.1:5000"], ["127.0.0.1:5001"], ["127.0.0.1:5002"], ["127.0.0.1:5003"]]))
    env = {"MLX_RANK": "1", "MLX_HOSTFILE": str(hostfile), "OMP_NUM_THREADS": "3"}
    assert share_cores_among_local_ranks(env) == 2
    assert env["OPENBLAS_NUM_THREADS"] == "2" and env["OMP_NUM_THREADS"] == "3"  # the user's value kept
    hostfile.write_text(json.dumps([["10.0.0.1:5000"], ["10.0.0.2:5000"]]))  # two machines: theirs to choose
    env = {"MLX_RANK": "0", "MLX_HOSTFILE": str(hostfile)}
    assert share_cores_among_local_ranks(env) is None and "OPENBLAS_NUM_THREADS" not in env
    assert share_cores_among_local_ranks({}) is None  # not launched
