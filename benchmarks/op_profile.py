"""Where MLX's CPU time goes: single operations at the shapes our models use.

    uv run python benchmarks/op_profile.py [--batch 128]

Prints the median milliseconds of each operation (forward, and forward +
backward where it matters) on (B, 28, 28, 32) and (B, 14, 14, 64) float32
activations, next to the GEMM that a 3x3 convolution of that shape reduces
to, so the share of time spent outside the GEMM is visible.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mlx_generative  # noqa: E402,F401  (loads the fast BLAS before mlx.core)
import mlx.core as mx  # noqa: E402
import mlx.nn as nn  # noqa: E402


def median_ms(fn, *args, repeats: int = 7) -> float:
    mx.eval(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        mx.eval(fn(*args))
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Time single MLX operations at the models' shapes.")
    p.add_argument("--batch", type=int, default=128)
    args = p.parse_args(argv)
    print(f"MLX {mx.__version__}, {mlx_generative.runtime.blas.status().describe()}, batch {args.batch}\n")
    print("| shape | operation | ms |")
    print("|---|---|---|")
    for size, c in ((28, 32), (14, 64)):
        x = mx.random.normal((args.batch, size, size, c))
        w = mx.random.normal((c, 3, 3, c))
        gn = nn.GroupNorm(8, c, pytorch_compatible=True)
        cols = mx.random.normal((args.batch * size * size, 9 * c))
        wmat = mx.random.normal((9 * c, c))
        conv = lambda x, w: mx.conv2d(x, w, padding=1)
        rows = [
            ("x * 2 (elementwise, no transcendental)", lambda x: x * 2, (x,)),
            ("exp", mx.exp, (x,)),
            ("silu", nn.silu, (x,)),
            ("silu, compiled fwd+bwd", mx.compile(mx.grad(lambda x: mx.sum(nn.silu(x)))), (x,)),
            ("GroupNorm(8) fwd", gn, (x,)),
            ("GroupNorm(8) fwd+bwd (input)", mx.grad(lambda x: mx.sum(gn(x) ** 2)), (x,)),
            ("transpose copy (0, 2, 1, 3)", lambda x: mx.contiguous(x.transpose(0, 2, 1, 3)), (x,)),
            ("concatenate 9 copies on channels", lambda x: mx.concatenate([x] * 9, axis=-1), (x,)),
            ("conv2d 3x3 s1 fwd", conv, (x, w)),
            ("conv2d 3x3 s1 fwd+bwd (input, weight)",
             mx.grad(lambda x, w: mx.sum(conv(x, w) ** 2), argnums=(0, 1)), (x, w)),
            ("its GEMM alone: (B*H*W, 9C) @ (9C, C)", lambda a, b: a @ b, (cols, wmat)),
        ]
        for name, fn, inputs in rows:
            print(f"| {args.batch}x{size}x{size}x{c} | {name} | {median_ms(fn, *inputs):.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
