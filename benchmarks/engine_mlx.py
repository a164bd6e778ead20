# ruff: noqa: I001  (import order matters: mlx_generative loads the fast BLAS before mlx.core)
"""Our side of the speed benchmark, run in its own process (train_speed.py starts it).

Never imports PyTorch: two engines in one process slow each other. Builds the models as
training does (the family registry: network, loss, scalars; the trainer's compiled step,
split over the CPU streams the trainer would use). Prints one JSON object.

    python benchmarks/engine_mlx.py step --model ae --batch 128 [--warmup 5 --steps 30]
    python benchmarks/engine_mlx.py sample --T 6 --n 128 [--ddim 50]
    python benchmarks/engine_mlx.py gemm
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mlx_generative  # noqa: E402,F401  (loads the fast BLAS before mlx.core: keep it first)
import mlx.core as mx  # noqa: E402
import numpy as np  # noqa: E402
from mlx.utils import tree_flatten  # noqa: E402

import engine_args  # noqa: E402  (beside this script)
from mlx_generative.families import FAMILIES  # noqa: E402
from mlx_generative.runtime import blas, native, parallel  # noqa: E402
from mlx_generative.runtime.info import gemm_gflops  # noqa: E402
from mlx_generative.training.adam import Adam  # noqa: E402
from mlx_generative.training.options import TrainOptions, resolve  # noqa: E402
from mlx_generative.training.trainer import make_train_step  # noqa: E402


def threads(shards: int) -> dict:
    return {"shards": shards, "blas_threads_per_shard": 1 if shards > 1 else "all",
            "blas": blas.status().describe(), "MLX_BFS_MAX_WIDTH": os.environ.get("MLX_BFS_MAX_WIDTH"),
            "native_kernels": native.describe()}


def step_command(args) -> dict:
    """ms per training step of the family's model at its defaults (the guide's recipe)."""
    family = FAMILIES[args.model]
    opts = resolve(args.model, TrainOptions(batch_size=args.batch))
    shards = parallel.default_shards(args.batch)  # as training decides
    mx.random.seed(0)
    model = family.build(family.model_args(opts))
    scalars = {k: mx.array(v, dtype=mx.float32) for k, v in family.scalars_at(opts)(args.warmup).items()}
    step, state = make_train_step(model, Adam(opts.lr), family.loss_fn(opts),
                                  shards=shards)
    x = np.random.default_rng(0).random((args.batch, 28, 28, 1), dtype=np.float32)
    batch = mx.array(x * 2 - 1 if family.scale == "symmetric" else x)
    parallel.keep_freed_buffers()  # as the trainer does

    def run():
        mx.eval(step(batch, scalars), state)

    with parallel.blas_threads_for(shards):
        for _ in range(args.warmup):
            run()
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    # The median step, not the mean: one step slowed by another tenant of this VM should not move it.
    return {"engine": "mlx", "model": args.model, "batch": args.batch, "ms_per_step": float(np.median(times)) * 1e3,
            "ms_per_step_mean": float(np.mean(times)) * 1e3,
            "params": sum(v.size for _, v in tree_flatten(model.parameters())), **threads(shards)}


def sample_command(args) -> dict:
    """Images per second of the DDPM family's own sampling: all T steps, or DDIM over --ddim."""
    family = FAMILIES["ddpm"]
    ddim = {"sampler": "ddim", "sample_steps": args.ddim} if args.ddim else {}
    opts = resolve("ddpm", TrainOptions(T=args.T, **ddim))
    mx.random.seed(0)
    model = family.build(family.model_args(opts))
    family.sample(model, opts, {}, args.n, mx.random.key(0))  # warm-up: compiles
    times = []
    for i in range(args.repeats):
        start = time.perf_counter()
        family.sample(model, opts, {}, args.n, mx.random.key(i + 1))
        times.append(time.perf_counter() - start)
    return {"engine": "mlx", "T": args.T, "ddim": args.ddim, "n": args.n,
            "images_per_s": args.n / float(np.median(times)), **threads(parallel.default_shards(args.n))}


def main(argv=None) -> int:
    p, sub = engine_args.parser(__doc__.split("\n\n")[0], ["ae", "vae", "ddpm"])
    sub.add_parser("gemm", help="GFLOP/s of a float32 GEMM")
    args = p.parse_args(argv)
    if args.command == "step":
        result = step_command(args)
    elif args.command == "sample":
        result = sample_command(args)
    else:
        result = {"engine": "mlx", "gemm_gflops": gemm_gflops(seconds=2.0), "blas": blas.status().describe()}
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
