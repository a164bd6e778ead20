"""`python -m mlx_generative info`: what this machine gives MLX, measured."""

from __future__ import annotations

import os
import platform
import sys
import time

from . import _blas, parallel


def gemm_gflops(size: int = 1024, seconds: float = 1.0) -> float:
    """Float32 GEMM rate in GFLOP/s, measured for about ``seconds``.

    One warm-up product first so the timing excludes allocation and dispatch set-up.
    """
    import mlx.core as mx

    a = mx.random.normal((size, size))
    b = mx.random.normal((size, size))
    mx.eval(a @ b)
    products = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or products == 0:
        mx.eval(a @ b)
        products += 1
    return products * 2 * size**3 / elapsed / 1e9


def collect(measure: bool = True) -> dict:
    """Platform, MLX version and device, the BLAS in use and (optionally) the GEMM rate."""
    import mlx.core as mx

    facts = {
        "platform": f"{platform.system()} {platform.machine()} ({platform.platform()})",
        "python": sys.version.split()[0],
        "mlx": mx.__version__,
        "device": str(mx.default_device()),
        "blas": _blas.status().describe(),
        # What the trainer does with the cores (parallel.py): shards of a batch-128 step.
        "cpu_cores": parallel.cpu_cores(),
        "shards_per_batch": parallel.default_shards(128),
        "mlx_bfs_max_width": os.environ.get("MLX_BFS_MAX_WIDTH", "20 (MLX's default)"),
    }
    if measure:
        facts["gemm_gflops"] = round(gemm_gflops(), 1)
    return facts


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    parser = argparse.ArgumentParser(
        prog="python -m mlx_generative info",
        description="Print platform, MLX version and device, the BLAS in use and a "
        "one-second float32 GEMM measurement.",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-gemm", action="store_true", help="skip the GEMM measurement")
    args = parser.parse_args(argv)
    facts = collect(measure=not args.no_gemm)
    if args.json:
        print(json.dumps(facts))
    else:
        labels = {"gemm_gflops": "float32 GEMM (1024^3)", "shards_per_batch": "shards (batch 128)"}
        for key, value in facts.items():
            suffix = " GFLOP/s" if key == "gemm_gflops" else ""
            print(f"{labels.get(key, key):>22}: {value}{suffix}")
        hint = _blas.warning_line()
        if hint:
            print(hint)
    return 0
