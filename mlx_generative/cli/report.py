"""bin/report RUN_OR_SWEEP_DIR...: write report.html and report.md for a run, a sweep or several runs."""

from __future__ import annotations

import argparse

from ..experiments.reports import report


def setup_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bin/report",
        description="Write report.html and report.md: a table of settings vs held-out metrics vs training "
        "time, sample and reconstruction grids, loss curves, latent maps, interpolations, denoising strips.",
        epilog="examples:\n"
        "  bin/report outputs/vae-20261124-101500           # one run: written into the run\n"
        "  bin/report outputs/sweeps/ae-latent_dim          # a sweep: written into the sweep\n"
        "  bin/report outputs/ae-... outputs/vae-... --out outputs/reports/ae-vs-vae",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="RUN_OR_SWEEP_DIR", help="a run, a sweep, or several runs to compare")
    p.add_argument("--out", default=None, help="where a report on several runs goes (required for several)")
    p.add_argument("--title", default=None, help="the report's title (several runs)")
    p.add_argument("--tsne", action="store_true", help="latent maps by t-SNE instead of PCA (needs scikit-learn)")
    return p


def main(argv: list[str]) -> int:
    args = setup_arg_parser().parse_args(argv)
    report(args.paths, out=args.out, title=args.title, latent_method="tsne" if args.tsne else "pca")
    return 0
