"""Data-parallel training with MLX's own distributed layer (`mx.distributed`, `mlx.launch`).

Under ``mlx.launch -n N python -m mlx_generative train ...`` every process joins one
group. Each rank builds the same initial weights (same seed), takes its shard of every
global batch (the global batch is ``--batch-size`` x N), and the compiled step averages
the gradients with ``nn.average_gradients``. Only rank 0 prints and writes the run.
Outside a launch the group has one member and nothing here does any work.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import socket
import subprocess
import sys

import mlx.core as mx
from mlx.utils import tree_map

from ..errors import UsageError
from ..runtime.blas import THREAD_VARIABLES, thread_share

_GROUP = None


def group():
    """The global group: every launched process, or this process alone."""
    global _GROUP
    if _GROUP is None:
        _GROUP = mx.distributed.init()  # a size-1 group when not started by mlx.launch
    return _GROUP


def rank_and_size() -> tuple[int, int]:
    g = group()
    return g.rank(), g.size()


def shard(batch, rank: int, size: int):
    """This rank's equal slice of a global batch (an array or a tuple of arrays)."""
    if size == 1:
        return batch
    if isinstance(batch, tuple):
        return tuple(shard(part, rank, size) for part in batch)
    per_rank = batch.shape[0] // size
    return batch[rank * per_rank : (rank + 1) * per_rank]


def mean_over_ranks(tree, size: int):
    """Average arrays over the group (the logged loss and metrics of the global batch)."""
    if size == 1:
        return tree
    return tree_map(lambda x: mx.distributed.all_sum(x) / size, tree)


# ---- --ranks N: start mlx.launch on this machine ------------------------------------


def free_port_range(count: int, start: int = 20000, stop: int = 60000) -> int:
    """A first port p such that p .. p + count - 1 are all free on 127.0.0.1 (the ring
    backend listens on one port per rank)."""
    for _ in range(200):
        first = random.randrange(start, stop - count)
        sockets = []
        try:
            for port in range(first, first + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise UsageError("--ranks: found no free range of local ports for the ring backend")


def launched() -> bool:
    """True inside a process that mlx.launch started (it sets MLX_RANK)."""
    return "MLX_RANK" in os.environ


def launch_command(ranks: int, argv: list[str], port: int | None = None) -> list[str]:
    """mlx.launch on localhost with ``ranks`` processes of ``python -m mlx_generative argv``."""
    launcher = shutil.which("mlx.launch") or os.path.join(os.path.dirname(sys.executable), "mlx.launch")
    if not os.path.exists(launcher):
        raise UsageError("--ranks needs MLX's launcher, mlx.launch, which comes with the mlx package")
    port = port or free_port_range(ranks)
    return [launcher, "-n", str(ranks), "--backend", "ring", "--starting-port", str(port), "--cwd", os.getcwd(),
            *(f"--env={name}={value}" for name, value in thread_share(ranks).items()),
            "--", sys.executable, "-m", "mlx_generative", *argv]


# How mlx.launch reports a rank that failed (it then stops the others, and exits 0 itself).
_RANK_FAILED = re.compile(rb"Node with rank (\d+) (?:exited with code (-?\d+)|was killed)")


def run_launch(command: list[str]) -> int:
    """Run ``launch_command``'s command, passing its output through; its exit status is the
    first failed rank's (1 for a rank killed by a signal), 0 only when every rank succeeded."""
    proc = subprocess.Popen(command, stderr=subprocess.PIPE)
    fd, tail, status = proc.stderr.fileno(), b"", 0
    while True:
        try:
            chunk = os.read(fd, 65536)
        except KeyboardInterrupt:  # the ranks got Ctrl-C too: they checkpoint and stop; wait for them
            continue
        if not chunk:
            break
        sys.stderr.buffer.write(chunk)
        sys.stderr.buffer.flush()
        tail = (tail + chunk)[-4096:]
        if not status and (failed := _RANK_FAILED.search(tail)):
            code = int(failed.group(2)) if failed.group(2) else 1
            status = code if code > 0 else 1
    return proc.wait() or status


def oversubscription_warning(size: int) -> str | None:
    """A hint when a launch may run several processes per machine with all-core BLAS each
    (a launch across machines, where _blas cannot tell which ranks share one)."""
    if size > 1 and not any(name in os.environ for name in THREAD_VARIABLES):
        return (f"note: {size} processes and no OPENBLAS_NUM_THREADS: processes sharing a machine each start "
                "a BLAS thread per core and slow each other down (7x on 2 cores); give each its share, "
                "e.g. mlx.launch --env OPENBLAS_NUM_THREADS=1 (bin/train --ranks does this)")
    return None
