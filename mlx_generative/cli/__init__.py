"""Command line: `python -m mlx_generative train|sample|eval|sweep|report|explore|info|fetch-data ...`
and the bin/ launchers.

One module per subcommand, each with ``setup_arg_parser()`` and ``main(argv)``, which
only parses arguments and calls the library. Errors the package raises on purpose
print as one line (exit status 2), never a traceback.
"""

from __future__ import annotations

import sys

from ..errors import MlxGenerativeError
from ..training.trainer import NonFiniteLossError, RankLostError, TrainingInterrupted
from . import evaluate, explore, fetch_data, info, report, sample, sweep, train

COMMANDS = {
    "train": train,
    "sample": sample,
    "eval": evaluate,
    "sweep": sweep,
    "report": report,
    "explore": explore,
    "info": info,
    "fetch-data": fetch_data,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        if argv and argv[0] not in ("-h", "--help"):
            print(f"error: unknown command {argv[0]!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        print("usage: python -m mlx_generative {" + ",".join(COMMANDS) + "} ...", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    command, rest = argv[0], argv[1:]
    try:
        return COMMANDS[command].main(rest)
    except TrainingInterrupted as stop:
        return 128 + stop.signum  # 130 for SIGINT, 143 for SIGTERM, as shells expect
    except MlxGenerativeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1 if isinstance(e, (NonFiniteLossError, RankLostError)) else 2  # a failed run, not bad input
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
