"""bin/fetch-data NAME [--dest DIR] [--mirror URL ...]: download a data set, verified by SHA-256."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..data.datasets import DATASETS
from ..data.download import download


def setup_arg_parser() -> argparse.ArgumentParser:
    downloadable = [name for name, spec in DATASETS.items() if spec.mirrors]
    parser = argparse.ArgumentParser(
        prog="fetch-data",
        description="Download a data set's IDX files, verified by SHA-256, into the user cache "
        "(or --dest), where training looks for them.",
    )
    parser.add_argument("name", choices=downloadable, metavar="NAME", help=", ".join(downloadable))
    parser.add_argument("--dest", type=Path, metavar="DIR", help="directory to write to (default: ~/.cache/mlx-generative/NAME)")
    parser.add_argument("--mirror", action="append", dest="mirrors", metavar="URL",
                        help="base URL to try instead of the built-in mirrors; repeat for several")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Prints the directory written to. Errors from the package propagate (as
    ``MlxGenerativeError``s) for the CLI to print as one line."""
    args = setup_arg_parser().parse_args(argv)
    directory = download(args.name, dest=args.dest, mirrors=args.mirrors, progress=not args.quiet)
    print(f"{args.name}: {directory}")
    return 0
