"""When a process of a launch dies: the rest stop within a bounded time, saying why, and the
run resumes with the losses of a run that never stopped. Then a ring across two network
namespaces (two "machines") trains the weights one process trains."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

import mlx_generative as mg
from mlx_generative.training import checkpoint, distributed

ROOT = Path(__file__).resolve().parents[2]
BOUND_S = 60  # the others and the launcher must be gone this soon after a rank dies
# Long enough that a rank dies mid-run; an AE step at batch 8 takes milliseconds.
ARGS = ["--batch-size", "8", "--limit-train", "256", "--log-every", "1", "--eval-every", "100000",
        "--keep-checkpoints", "100", "--no-progress"]


def _rank_pids(launcher_pid: int) -> dict[int, int]:
    """rank -> pid of the processes mlx.launch started (its children, by their MLX_RANK)."""
    ranks = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        rank = [e for e in environ if e.startswith(b"MLX_RANK=")]
        if parent == launcher_pid and rank:
            ranks[int(rank[0].split(b"=")[1])] = int(proc.name)
    return ranks


def _losses(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in checkpoint.read_metrics(run_dir) if r["split"] == "train"}


def _launch(argv: list[str], cwd: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen(distributed.launch_command(2, argv), cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True, **kw)


def _launch_a_long_run(tmp_path: Path, checkpoint_every: int, until) -> subprocess.Popen:
    """A 2-rank AE launch into tmp_path/run that would train for hours, once ``until()`` holds."""
    launch = _launch(["train", "ae", "--steps", "1000000", "--checkpoint-every", str(checkpoint_every), *ARGS,
                      "--out", str(tmp_path), "--name", "run"], tmp_path)
    deadline = time.monotonic() + 240
    while not ((tmp_path / "run").is_dir() and until()):
        assert launch.poll() is None and time.monotonic() < deadline, launch.communicate()[0][-3000:]
        time.sleep(0.2)
    return launch


def _finish(proc: subprocess.Popen, timeout: float) -> str:
    try:
        return proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out = proc.communicate()[0]
        pytest.fail(f"still running after {timeout} s:\n{out[-3000:]}")


@pytest.mark.skipif(sys.platform != "linux", reason="finds the ranks through /proc")
def test_a_killed_rank_stops_the_launch_and_the_run_resumes_exactly(tmp_path):
    run_dir = tmp_path / "run"
    launch = _launch_a_long_run(tmp_path, 20, until=lambda: checkpoint.list_checkpoints(run_dir))  # well into it
    ranks = _rank_pids(launch.pid)
    assert sorted(ranks) == [0, 1], ranks
    os.kill(ranks[1], signal.SIGKILL)
    killed = time.monotonic()
    out = _finish(launch, timeout=BOUND_S + 30)
    took = time.monotonic() - killed
    print(f"the launch ended {took:.1f} s after rank 1 was killed")
    print(out[-1500:])
    assert took < BOUND_S  # (mlx.launch itself exits 0 whatever its ranks did)
    assert "Node with rank 1" in out  # mlx.launch names the lost rank ...
    said = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(said) == 1 and "rank 0 of 2 lost touch with the other ranks" in said[0], out[-3000:]  # ... and rank 0 says why
    assert f"--resume {run_dir}" in said[0]

    # Resume a few steps past the newest checkpoint: the losses of a launch that never stopped.
    newest = int(checkpoint.list_checkpoints(run_dir)[-1].name.split("-")[1])
    target = newest + 5
    resumed = _launch(["train", "ae", "--resume", str(run_dir), "--steps", str(target), "--no-progress"], tmp_path)
    assert resumed.wait(timeout=240) == 0, resumed.communicate()[0][-3000:]
    whole = _launch(["train", "ae", "--steps", str(target), "--checkpoint-every", "20", *ARGS,
                     "--out", str(tmp_path), "--name", "whole"], tmp_path)
    assert whole.wait(timeout=600) == 0, whole.communicate()[0][-3000:]
    got, want = _losses(run_dir), _losses(tmp_path / "whole")
    assert sorted(got) == list(range(1, target + 1))
    np.testing.assert_allclose([got[s] for s in range(1, target + 1)], [want[s] for s in range(1, target + 1)],
                               rtol=1e-6)


# ---- two "machines": network namespaces joined by a veth pair ------------------------------


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _can_make_namespaces() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    name = f"mgprobe{os.getpid()}"
    try:
        _ip("netns", "add", name)
    except subprocess.CalledProcessError:
        return False
    _ip("netns", "delete", name)
    return True


@pytest.fixture
def two_machines():
    """Two network namespaces with addresses 10.213.0.1 and .2 on a veth pair; removed after."""
    if not _can_make_namespaces():
        pytest.skip("needs root and `ip netns` (iproute2)")
    tag = uuid.uuid4().hex[:6]
    names, links = [f"mg{tag}a", f"mg{tag}b"], [f"mg{tag}0", f"mg{tag}1"]
    addresses = ["10.213.0.1", "10.213.0.2"]
    try:
        try:
            for ns in names:
                _ip("netns", "add", ns)
            _ip("link", "add", links[0], "type", "veth", "peer", "name", links[1])
            for ns, link, address in zip(names, links, addresses):
                _ip("link", "set", link, "netns", ns)
                _ip("-n", ns, "addr", "add", f"{address}/24", "dev", link)
                _ip("-n", ns, "link", "set", link, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
        except subprocess.CalledProcessError as e:  # e.g. a container without veth support
            pytest.skip(f"cannot build the namespaces: {' '.join(e.cmd)}: {e.stderr.decode().strip()}")
        yield list(zip(names, addresses))
    finally:
        for ns in names:
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)


def test_a_ring_across_two_machines_trains_the_weights_of_one_process(two_machines, tmp_path):
    options = ["--steps", "6", "--limit-train", "96", "--log-every", "1", "--eval-every", "100", "--no-progress"]
    hostfile = tmp_path / "hosts.json"
    hostfile.write_text(json.dumps([[f"{address}:{40100 + i}"] for i, (_, address) in enumerate(two_machines)]))
    started = time.monotonic()
    procs = []
    for rank, (ns, _) in enumerate(two_machines):
        env = {**os.environ, "MLX_RANK": str(rank), "MLX_HOSTFILE": str(hostfile), "OPENBLAS_NUM_THREADS": "1"}
        procs.append(subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "mlx_generative", "train", "ae", "--batch-size", "8",
             *options, "--out", str(tmp_path), "--name", "ring"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    print(f"two-namespace ring: {time.monotonic() - started:.1f} s")
    alone = mg.train("ae", out=str(tmp_path), name="one", verbose=False, batch_size=16, steps=6, limit_train=96,
                     log_every=1, eval_every=100, progress=False)
    ring = {k: np.array(v) for k, v in mx.load(str(tmp_path / "ring" / checkpoint.WEIGHTS)).items()}
    one = {k: np.array(v) for k, v in mx.load(str(alone.run_dir / checkpoint.WEIGHTS)).items()}
    assert ring.keys() == one.keys() and mg.load(tmp_path / "ring").config.ranks == 2
    for key in one:
        np.testing.assert_allclose(ring[key], one[key], rtol=1e-4, atol=2e-6, err_msg=key)


def test_bin_train_ranks_fails_when_a_rank_failed(capfd):
    """mlx.launch exits 0 whatever its ranks did; bin/train --ranks must not."""
    def launcher(says: str) -> list[str]:
        return [sys.executable, "-c", f"import sys; sys.stderr.write({says!r})"]

    assert distributed.run_launch(launcher("[WARN] Node with rank 1 exited with code 143 \n")) == 143
    assert distributed.run_launch(launcher("[WARN] Node with rank 1 exited with code -9 \n")) == 1
    assert distributed.run_launch(launcher("[WARN] Node with rank 0 was killed\n")) == 1
    assert distributed.run_launch(launcher("step 3/3 loss 0.1\n")) == 0
    assert "Node with rank 1 exited with code 143" in capfd.readouterr().err  # passed through


@pytest.mark.skipif(sys.platform != "linux", reason="finds the ranks through /proc")
def test_a_signal_to_one_rank_stops_every_rank_after_the_same_step(tmp_path):
    """Ctrl-C or SIGTERM reaching one rank: the group agrees on the step, rank 0 checkpoints it."""
    run_dir = tmp_path / "run"
    launch = _launch_a_long_run(tmp_path, 1_000_000, until=lambda: len(checkpoint.read_metrics(run_dir)) >= 20)
    os.kill(_rank_pids(launch.pid)[1], signal.SIGTERM)
    signalled = time.monotonic()
    out = _finish(launch, timeout=BOUND_S)
    print(f"the launch ended {time.monotonic() - signalled:.1f} s after SIGTERM reached rank 1")
    assert time.monotonic() - signalled < 10, out[-3000:]  # no rank waited out the 15 s grace
    stopped = re.search(r"interrupted by SIGTERM after step (\d+): checkpoint written", out)
    assert stopped, out[-3000:]
    assert (checkpoint.list_checkpoints(run_dir)[-1].name == f"step-{int(stopped.group(1)):08d}")
    assert "lost touch" not in out
