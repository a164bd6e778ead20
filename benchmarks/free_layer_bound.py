"""How much faster could a training step get if one kind of layer cost nothing?

    uv run python benchmarks/free_layer_bound.py [--rounds 7]

The speed of light of a native kernel, measured before writing one: the DDPM's compiled
training step (benchmarks/engine_mlx.py, batch 128) timed in its own process as it is, with
GroupNorm's normalisation made free (the affine weight * x + bias kept: a fused kernel must
still compute it), and with SiLU made free as well (identity). The rounds alternate the
variants; medians, and the median of each round's own ratio. A kernel that replaces those
layers can at best reach the "free" time: if even that is not 1.3x faster, the kernel cannot
pass issue 25's go/no-go threshold, however well it is written.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANTS = {"as is": "", "GroupNorm free": "gn", "GroupNorm + SiLU free": "gn,silu"}
ENV = "FREE_LAYERS"


def patch(free: str) -> None:
    """In the child: make the named layers free before the model is built."""
    from mlx_generative.families.ddpm import unet
    from mlx_generative.nn import norm

    if "gn" in free:
        norm.GroupNorm.__call__ = lambda self, x: self.weight * x + self.bias
    if "silu" in free:
        unet.silu = lambda x: x  # the UNet's; the AE and VAE have neither layer


def child(argv: list[str]) -> int:
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE.parent))
    import mlx_generative  # noqa: F401  (the fast BLAS before mlx.core)

    patch(os.environ.get(ENV, ""))
    import engine_mlx

    return engine_mlx.main(argv)


def measure(model: str, free: str) -> float:
    out = subprocess.run([sys.executable, __file__, "--child", "step", "--model", model, "--batch", "128"],
                         env={**os.environ, ENV: free}, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["ms_per_step"]


def main(argv=None) -> int:
    if argv is None and sys.argv[1:2] == ["--child"]:
        return child(sys.argv[2:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--models", default="ddpm", help="engine_mlx.py models, comma-separated (only the UNet has both layers)")
    args = p.parse_args(argv)
    for model in args.models.split(","):
        times = {name: [] for name in VARIANTS}
        for _ in range(args.rounds):
            for name, free in VARIANTS.items():
                times[name].append(measure(model, free))
        base = times["as is"]
        print(f"\n{model}: ms per training step, batch 128, median of {args.rounds} alternating rounds")
        print(f"{'variant':<24} {'median ms':>10} {'speed-up':>9} {'per round':>10}")
        for name, ms in times.items():
            per_round = statistics.median(b / m for b, m in zip(base, ms))
            print(f"{name:<24} {statistics.median(ms):>10.1f} {statistics.median(base) / statistics.median(ms):>8.2f}x"
                  f" {per_round:>9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
