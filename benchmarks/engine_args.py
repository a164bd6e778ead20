"""The command line both engine workers share (engine_mlx.py, engine_torch.py), so that
train_speed.py can ask each the same question. Imports neither engine."""

from __future__ import annotations

import argparse


def parser(description: str, models: list[str]) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    p = argparse.ArgumentParser(description=description)
    sub = p.add_subparsers(dest="command", required=True)
    step = sub.add_parser("step", help="ms per training step at the model's default recipe")
    step.add_argument("--model", required=True, choices=models)
    step.add_argument("--batch", type=int, default=128)
    step.add_argument("--warmup", type=int, default=5)
    step.add_argument("--steps", type=int, default=30)
    sample = sub.add_parser("sample", help="images/s of DDPM sampling: all T steps, or DDIM over --ddim")
    sample.add_argument("--T", type=int, default=6)
    sample.add_argument("--ddim", type=int, default=0)
    sample.add_argument("--n", type=int, default=128)
    sample.add_argument("--repeats", type=int, default=3)
    return p, sub
