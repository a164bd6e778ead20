"""bin/sample RUN_DIR: draw samples from a trained run into a PNG grid (and a .npy, an animated GIF)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..data.images import save_grid
from ..errors import UsageError
from ..families import names_of
from ..families.base import NUM_CLASSES
from ..training.inference import sample
from ..training.pictures import grid_states, save_denoising_gif
from ..training.runs import load, output_dir
from .flags import add_sampling_options, sampling_arguments


def setup_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bin/sample", description="Draw samples from a trained run into a PNG grid.")
    p.add_argument("run_dir", help="a run directory written by bin/train, or a shipped one: pretrained/ae, "
                   "pretrained/vae, pretrained/ddpm, ...")
    p.add_argument("--n", type=int, default=None, help="number of samples (default 64; a conditional "
                   "run without --labels: 8 per class, one row each)")
    p.add_argument("--seed", type=int, default=0, help="same seed, same images (default 0)")
    p.add_argument("--out", default=None, help="PNG path (default RUN_DIR/samples-seed<seed>.png; for a shipped "
                   "run outputs/pretrained/NAME/...)")
    p.add_argument("--npy", default=None, help="also save the uint8 (n, 28, 28) array here")
    p.add_argument("--gif", nargs="?", const="", default=None, metavar="PATH",
                   help="ddpm, flow: also animate the same grid from noise to image (default PATH "
                   "RUN_DIR/denoising-seed<seed>.gif)")
    p.add_argument("--labels", default=None, help="conditional runs: the class of each sample, comma-"
                   "separated (one per sample, or one for all), e.g. --labels 7 --n 16")
    add_sampling_options(p)
    return p


def main(argv: list[str]) -> int:
    args = setup_arg_parser().parse_args(argv)
    run = load(args.run_dir)
    labels = parse_labels(args.labels)
    if args.gif is not None and not run.family.denoises:
        raise UsageError(f"--gif animates a {names_of(lambda f: f.denoises)} run's denoising; {args.run_dir} "
                         f"is a {run.kind} run")
    states = None
    if args.gif is not None:  # the grid is the chain's last state: one chain draws both
        states = grid_states(run, n=args.n, seed=args.seed, labels=labels, **sampling_arguments(args))
    images = states[:, -1] if states is not None else sample(run, n=args.n, seed=args.seed, labels=labels,
                                                              **sampling_arguments(args))
    out = Path(args.out or output_dir(run.run_dir) / f"samples-seed{args.seed}.png")
    # A conditional run's default labels are every class in turn: one row per class.
    per_class = len(images) // NUM_CLASSES if run.conditional and labels is None and len(images) % NUM_CLASSES == 0 else None
    save_grid(images, out, nrow=per_class)
    if args.npy:
        np.save(args.npy, images)
    print(out)
    if states is not None:
        print(save_denoising_gif(states, args.gif or output_dir(run.run_dir) / f"denoising-seed{args.seed}.gif",
                                 nrow=per_class))
    return 0


def parse_labels(text: str | None):
    if text is None:
        return None
    try:
        return [int(item) for item in text.split(",")]
    except ValueError:
        raise UsageError(f"--labels {text!r}: expected comma-separated class numbers, e.g. 3,5,7") from None
