"""How a training run stops on Ctrl-C (SIGINT) or SIGTERM.

Between steps: the signal becomes a flag that the loop checks after each step, so no
step is cut in half and a checkpoint is written before it stops (``deferred``).

A step that never ends: under ``mlx.launch``, when one rank dies, the others wait in
the step's gradient all-reduce forever. Python runs signal handlers only between
bytecodes, so a rank blocked there never even sees the flag; and ``mlx.launch``, which
answers a dead rank by SIGTERMing the others and waiting for them, waits forever too.
So in a group of processes a watcher thread learns of each signal through
``signal.set_wakeup_fd`` (written by the C-level handler, whatever the main thread is
doing). If the loop has not stopped ``grace_s`` seconds later, the watcher says so in
one line and ends the process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def deferred(grace_s: float | None = None, explain: Callable[[], str] = lambda: "") -> Iterator[list[int]]:
    """SIGINT/SIGTERM append their number to the yielded list, checked between steps. A
    second SIGINT means "now" (KeyboardInterrupt). ``grace_s``: also end the process if
    the loop has not stopped that long after a signal (a group of processes; see the
    module docstring); ``explain()`` is added to what is printed then."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received  # handlers can only be installed from the main thread
        return
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def handler(signum, frame):
        if received:  # a second Ctrl-C means "now"
            signal.signal(signal.SIGINT, previous[signal.SIGINT])
            raise KeyboardInterrupt
        received.append(signum)

    for sig in previous:
        signal.signal(sig, handler)
    watcher = _StuckStepWatcher(grace_s, explain) if grace_s is not None else None
    try:
        yield received
    finally:
        if watcher is not None:
            watcher.close()
        for sig, old in previous.items():
            signal.signal(sig, old)


class _StuckStepWatcher:
    """Ends the process ``grace_s`` after a stop signal unless ``close()`` comes first."""

    def __init__(self, grace_s: float, explain: Callable[[], str]):
        self.grace_s, self.explain = grace_s, explain
        self.stopped = threading.Event()
        self.reader, self.writer = socket.socketpair()
        self.writer.setblocking(False)  # the C handler must never block
        self.previous_fd = signal.set_wakeup_fd(self.writer.fileno(), warn_on_full_buffer=False)
        self.thread = threading.Thread(target=self._watch, name="stuck-step-watcher", daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while True:
            data = self.reader.recv(64)
            if self.stopped.is_set() or not data:
                return
            signums = [s for s in data if s in STOP_SIGNALS]
            if signums and not self.stopped.wait(self.grace_s):
                name = signal.Signals(signums[0]).name
                print(f"error: {name} came, and the step in progress had not ended {self.grace_s:g} s later: "
                      f"{self.explain()}; stopping now", file=sys.stderr, flush=True)
                os._exit(128 + signums[0])

    def close(self) -> None:
        self.stopped.set()
        signal.set_wakeup_fd(self.previous_fd)
        with contextlib.suppress(OSError):
            self.writer.send(b"\0")  # wakes the watcher, which sees `stopped`
        self.thread.join(timeout=5)
        self.reader.close()
        self.writer.close()
