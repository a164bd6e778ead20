"""bin/info: platform, MLX version and device, the BLAS in use and a GEMM measurement."""

from __future__ import annotations

import argparse
import json

from ..runtime import blas, jit
from ..runtime.info import collect


def setup_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mlx_generative info",
        description="Print platform, MLX version and device, the BLAS in use and a "
        "one-second float32 GEMM measurement.",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-gemm", action="store_true", help="skip the GEMM measurement")
    return parser


def main(argv: list[str]) -> int:
    args = setup_arg_parser().parse_args(argv)
    facts = collect(measure=not args.no_gemm)
    if args.json:
        print(json.dumps(facts))
        return 0
    labels = {"gemm_gflops": "float32 GEMM (1024^3)", "shards_per_batch": "shards (batch 128)"}
    for key, value in facts.items():
        suffix = " GFLOP/s" if key == "gemm_gflops" else ""
        print(f"{labels.get(key, key):>22}: {value}{suffix}")
    for hint in (blas.warning_line(), jit.warning_line()):
        if hint:
            print(hint)
    return 0
