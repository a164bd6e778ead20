"""bin/train KIND [flags]: train a model family into a run directory.

Every flag but --ranks and --resume is a declared training option (training/options.py
and each family's), so the parser, the help text and the defaults cannot disagree.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import UsageError
from ..families import FAMILIES
from ..training import distributed
from ..training.options import OPTIONS, TrainOptions, check_owned
from ..training.train_run import train
from .flags import add_option, none_to_python

GROUPS = ("training", "model", "data and output")


def setup_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bin/train",
        description="Train an autoencoder (ae), a VAE (vae), a tiny DDPM (ddpm) or a flow-matching "
        "model (flow) on MNIST-style images. Each run gets its own directory under --out with config.json, "
        "model.safetensors, metrics.jsonl, checkpoints/ and PNG grids.",
        epilog="examples:\n"
        "  bin/train ae --steps 500 --latent-dim 64 --limit-train 10000\n"
        "  bin/train vae --steps 600 --warmup-steps 200 --latent-dim 32 --limit-train 10000\n"
        "  bin/train ddpm --steps 800 --T 6 --batch-size 128 --limit-train 10000\n"
        "  bin/train flow                               # then: bin/sample RUN_DIR --sampler euler --steps 6\n"
        "  bin/train vae --conditional                  # then: bin/sample RUN_DIR --labels 7\n"
        "  bin/train classifier --dataset mnist",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,  # so we know which flags were given
    )
    p.add_argument("kind", choices=list(FAMILIES), help="model family to train; 'classifier' trains the "
                   "CNN whose features bin/eval's sample metrics use")
    groups = {name: p.add_argument_group(name) for name in GROUPS}
    for option in OPTIONS.values():
        add_option(groups[option.group], option)
    groups["training"].add_argument(
        "--ranks", type=int, metavar="N", help="data-parallel over N processes on this machine: starts "
        "`mlx.launch -n N` (ring backend, free local ports) for you; --batch-size is per process, the global "
        "batch N times it (see the README for several machines)")
    groups["training"].add_argument("--resume", metavar="RUN_DIR", help="continue a run from its newest "
                                    "checkpoint (its saved settings are used; --steps may be raised)")
    return p


def main(argv: list[str]) -> int:
    args = vars(setup_arg_parser().parse_args(argv))
    ranks = args.pop("ranks", None)
    if ranks is not None:
        return launch(ranks, argv)
    kind, resume = args.pop("kind"), args.pop("resume", None)
    check_owned(kind, args)  # a flag given for another family, even at its default value
    train(kind, TrainOptions(**none_to_python(args)), resume=resume)
    return 0


def launch(ranks: int, argv: list[str]) -> int:
    """--ranks N: run this same command under mlx.launch, N processes on this machine."""
    if ranks < 1:
        raise UsageError(f"--ranks must be >= 1, got {ranks}")
    if distributed.launched():
        raise UsageError("--ranks starts mlx.launch itself; inside an mlx.launch group leave it out")
    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--ranks":
            skip = True
        elif not arg.startswith("--ranks="):
            rest.append(arg)
    command = distributed.launch_command(ranks, ["train", *rest])
    print("launching: " + " ".join(command), file=sys.stderr, flush=True)
    return distributed.run_launch(command)
