"""Where a training step's time goes: each layer of our models, forward and forward+backward.

    uv run python benchmarks/layer_profile.py [--batch 128] [--models ae,ddpm] [--reps 11]

Each layer is run alone at the shape it sees inside the model, compiled as
the training step is, and timed ``--reps`` times; the table gives the
*minimum* (this shared machine only ever adds time) and each layer's share of
the sum over layers. The sum leaves out the loss and the optimizer update,
which the full step (benchmarks/train_speed.py) includes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mlx_generative  # noqa: E402,F401  (loads the fast BLAS before mlx.core)
import mlx.core as mx  # noqa: E402
import mlx.nn as nn  # noqa: E402

from mlx_generative.families.ddpm.unet import ResBlock  # noqa: E402
from mlx_generative.nn.activations import silu  # noqa: E402
from mlx_generative.nn.conv import Conv2d  # noqa: E402
from mlx_generative.nn.layers import Down, Up  # noqa: E402


class _Fn(nn.Module):
    """A parameter-free function as a layer."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def __call__(self, x):
        return self.fn(x)


def layers(model: str, b: int) -> list[tuple[str, nn.Module, tuple, bool]]:
    """(name, layer, input shape, takes the time embedding) in the order the model runs them."""
    if model == "ae":  # the VAE differs only in its two heads (linear layers)
        return [
            ("down1 Down 1->32, 28->14", Down(1, 32), (b, 28, 28, 1), False),
            ("down2 Down 32->64, 14->7", Down(32, 64), (b, 14, 14, 32), False),
            ("to_latent Linear 3136->64", nn.Linear(3136, 64), (b, 3136), False),
            ("project Linear 64->3136", nn.Linear(64, 3136), (b, 64), False),
            ("up1 Up 64->32, 7->14", Up(64, 32), (b, 7, 7, 64), False),
            ("up2 Up 32->1, 14->28", Up(32, 1), (b, 14, 14, 32), False),
        ]
    return [
        ("stem Conv2d 1->16 @28", Conv2d(1, 16, 3, padding=1), (b, 28, 28, 1), False),
        ("silu @28x28x16", _Fn(silu), (b, 28, 28, 16), False),
        ("down1 Down 16->32, 28->14", Down(16, 32), (b, 28, 28, 16), False),
        ("enc2 ResBlock 32 @14", ResBlock(32, 32, 128, 8), (b, 14, 14, 32), True),
        ("down2 Down 32->64, 14->7", Down(32, 64), (b, 14, 14, 32), False),
        ("mid ResBlock 64 @7", ResBlock(64, 64, 128, 8), (b, 7, 7, 64), True),
        ("up2 Up 64->32, 7->14", Up(64, 32), (b, 7, 7, 64), False),
        ("dec2 ResBlock 64->32 @14", ResBlock(64, 32, 128, 8), (b, 14, 14, 64), True),
        ("up1 Up 32->16, 14->28", Up(32, 16), (b, 14, 14, 32), False),
        ("silu @28x28x32", _Fn(silu), (b, 28, 28, 32), False),
        ("out Conv2d 32->1 @28", Conv2d(32, 1, 3, padding=1), (b, 28, 28, 32), False),
    ]


def fastest_ms(fn, reps: int) -> float:
    for _ in range(3):
        mx.eval(fn())
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        mx.eval(fn())
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def profile(model: str, batch: int, reps: int) -> list[tuple[str, float, float]]:
    temb = mx.random.normal((batch, 128))
    rows = []
    for name, layer, shape, timed in layers(model, batch):
        x = mx.random.normal(shape)
        mx.eval(x, layer.parameters())

        def forward(x, layer=layer, timed=timed):
            return layer(x, temb) if timed else layer(x)

        def loss(x, forward=forward):
            return mx.sum(forward(x) ** 2)

        if layer.trainable_parameters():
            grad = nn.value_and_grad(layer, loss)
        else:
            grad = mx.value_and_grad(loss)
        fwd, both = mx.compile(forward), mx.compile(grad)
        rows.append((name, fastest_ms(lambda: fwd(x), reps), fastest_ms(lambda: both(x), reps)))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--models", default="ae,ddpm")
    p.add_argument("--reps", type=int, default=11)
    args = p.parse_args(argv)
    for model in args.models.split(","):
        rows = profile(model, args.batch, args.reps)
        total = sum(r[2] for r in rows)
        print(f"\n{model}, batch {args.batch} (minimum of {args.reps}; ms)\n")
        print("| layer | forward | forward+backward | share |")
        print("|---|---|---|---|")
        for name, fwd, both in rows:
            print(f"| {name} | {fwd:.1f} | {both:.1f} | {100 * both / total:.0f}% |")
        print(f"| sum | {sum(r[1] for r in rows):.1f} | {total:.1f} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
