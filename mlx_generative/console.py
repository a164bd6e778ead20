"""Progress lines for people, on stderr (stdout is left to what a command prints as its result)."""

from __future__ import annotations

import sys


class Speaker:
    """``say(message)``: a line on stderr, or silence when not verbose."""

    def __init__(self, verbose: bool):
        self.verbose = verbose

    def __call__(self, message: str) -> None:
        if self.verbose:
            print(message, file=sys.stderr, flush=True)
