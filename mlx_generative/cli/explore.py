"""bin/explore [RUN ...]: the explorer's page on 127.0.0.1, for the shipped pretrained runs or yours."""

from __future__ import annotations

import argparse

from ..explorer import DEFAULT_RUNS, explore


def setup_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bin/explore",
        description="Look inside trained models in the browser: draw a digit, walk the latent maps, move "
        "the VAE's sliders, play the denoising chain. Serves a page on 127.0.0.1 only.")
    p.add_argument("runs", nargs="*", help="run directories (one AE, one VAE, any DDPM and flow runs); default "
                   + " ".join(DEFAULT_RUNS))
    p.add_argument("--port", type=int, default=0, help="port to serve on (default: a free one, printed)")
    p.add_argument("--no-browser", action="store_true", help="print the address; do not open a browser")
    return p


def main(argv: list[str]) -> int:
    args = setup_arg_parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        setup_arg_parser().error(f"--port must lie in 0..65535, got {args.port}")
    explore(args.runs or None, port=args.port, open_browser=not args.no_browser)
    return 0
