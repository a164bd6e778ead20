"""What this machine gives MLX, measured: the platform, the BLAS in use, the cores and a GEMM rate."""

from __future__ import annotations

import os
import platform
import sys
import time

import mlx.core as mx

from . import blas, jit, native, parallel


def gemm_gflops(size: int = 1024, seconds: float = 1.0) -> float:
    """Float32 GEMM rate in GFLOP/s, measured for about ``seconds``.

    One warm-up product first so the timing excludes allocation and dispatch set-up.
    """
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
    facts = {
        "platform": f"{platform.system()} {platform.machine()} ({platform.platform()})",
        "python": sys.version.split()[0],
        "mlx": mx.__version__,
        "device": str(mx.default_device()),
        "blas": blas.status().describe(),
        "native_kernels": native.describe(),
        # What the trainer does with the cores (parallel.py): shards of a batch-128 step.
        "cpu_cores": parallel.cpu_cores(),
        "shards_per_batch": parallel.default_shards(128),
        "mlx_bfs_max_width": os.environ.get("MLX_BFS_MAX_WIDTH", "20 (MLX's default)"),
        # mx.compile builds CPU kernels with g++; without one MLX runs them uncompiled, slower.
        "cpu_compiler": jit.compiler() or "none: kernels run uncompiled",
        "kernel_cache": f"{jit.kernel_cache()} ({len(list(jit.kernel_cache().glob('*.so')))} kernels)",
    }
    if measure:
        facts["gemm_gflops"] = round(gemm_gflops(), 1)
    return facts
