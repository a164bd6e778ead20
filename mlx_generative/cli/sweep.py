"""bin/sweep KIND --flag V1,V2 ...: train every combination of settings, then write the report."""

from __future__ import annotations

import argparse

from ..experiments.sweep_spec import parse_values
from ..experiments.sweeps import DEFAULT_EVAL_SAMPLES, DEFAULT_OUT, sweep
from ..families import generative_names
from ..families.base import NOT_IN_SWEEPS
from ..training.options import OPTIONS
from .flags import add_option


def setup_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bin/sweep",
        description="Train a model at every combination of settings, one run directory each under "
        "OUT/NAME/, then write report.html and report.md there. A flag with comma-separated values "
        "is swept; a flag with one value is fixed for every run. Run the same command again to "
        "resume: finished runs are skipped, interrupted ones continue from their checkpoint.",
        epilog="examples (the guide's experiments):\n"
        "  bin/sweep ae --latent-dim 16,32,64,128\n"
        "  bin/sweep ae --loss mse,bce\n"
        "  bin/sweep vae --warmup-steps 0,200,600 --beta-max 0.5,1,4\n"
        "  bin/sweep ddpm --T 4,6,8 --schedule linear,cosine",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument("kind", choices=generative_names(), help="model family to sweep")
    s = p.add_argument_group("the sweep")
    s.add_argument("--name", help="sweep directory name (default: the model and swept flags, e.g. ae-latent_dim)")
    s.add_argument("--out", default=DEFAULT_OUT, help=f"parent folder of sweeps (default {DEFAULT_OUT})")
    s.add_argument("--eval-samples", type=int, default=DEFAULT_EVAL_SAMPLES, help="generated images per run for "
                   "the report's sample metrics (Frechet distance, confidence, ...); 0 skips them "
                   f"(default {DEFAULT_EVAL_SAMPLES})")
    s.add_argument("--no-report", dest="report", action="store_false", default=True,
                   help="train only; bin/report OUT/NAME writes the report later")
    g = p.add_argument_group("settings (bin/train's flags; V1,V2,... sweeps, one value fixes)")
    for option in OPTIONS.values():
        if option.sweep != NOT_IN_SWEEPS:  # a sweep names and places its runs itself
            add_option(g, option, as_text=True)
    return p


def main(argv: list[str]) -> int:
    args = vars(setup_arg_parser().parse_args(argv))
    kind, name, out = args.pop("kind"), args.pop("name", None), args.pop("out")
    eval_samples, report = args.pop("eval_samples"), args.pop("report")
    params, common = {}, {}
    for dest, text in args.items():
        if isinstance(text, bool):  # a switch
            common[dest] = text
            continue
        values = parse_values(dest, text, sweeping="," in text)
        if len(values) > 1:
            params[dest] = values
        else:
            common[dest] = values[0]
    sweep(kind, params, name=name, out=out, eval_samples=eval_samples, report=report, **common)
    return 0
