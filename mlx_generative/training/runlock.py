"""One training process per run directory at a time.

Two processes writing one run would interleave their checkpoints and metrics into a run
that neither trained. A new run gets a directory no one else has (``mkdir`` is atomic);
``--resume`` of a run that is still training is refused while the other process holds
this lock.

The lock is ``flock`` on ``RUN_DIR/.lock``: the kernel releases it when its holder exits,
however it dies, so a crashed run never leaves it stale. The file itself may stay
behind; it holds the holder's pid and command, for the message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from ..errors import UsageError

LOCK_FILE = ".lock"


@contextlib.contextmanager
def held(run_dir: Path | None) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the block (None: nothing to lock, e.g. ranks other than 0).

    Raises:
        UsageError: another live process holds it; the message names that process.
    """
    if run_dir is None:
        yield
        return
    path = Path(run_dir) / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 1024, 0).decode(errors="replace").strip() or "another process"
            raise UsageError(f"{run_dir}: another training process is writing this run ({holder}); "
                             "wait for it to finish, or stop it first") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {' '.join(sys.argv)[:900]}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock
