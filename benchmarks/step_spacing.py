"""Which of the T steps should a few-step sampler visit? DDIM and DPM-Solver++(2M) with their steps
evenly spaced in t ("uniform"), in log-SNR ("logsnr") or at EDM's noise levels ("edm", rho = 7).

    uv run python benchmarks/step_spacing.py --toy              # seconds: the exact-solution errors
    uv run python benchmarks/step_spacing.py RUN                # a T = 1000 ddpm run, ~10 min
    uv run python benchmarks/step_spacing.py RUN --n 10000

With --toy: RMS distance from the exact probability-flow solution on the toy Gaussian of
tests/families/test_dpm_solver.py (cosine schedule, T = 1000). With a run: the Frechet distance
of --n samples against the MNIST test split (`mlx_generative.evaluate`), for each sampler,
step count and spacing. Prints the tables; benchmarks/RESULTS.md ("Step spacing") keeps them.
"""

# ruff: noqa: I001  (import order matters: mlx_generative loads the fast BLAS before mlx.core)
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "families"))  # the toy and its exact solution

import mlx_generative as mg  # noqa: E402
from mlx_generative.families.ddpm.samplers import SPACINGS, DDIMSampler, DPMSolverSampler  # noqa: E402
from mlx_generative.families.ddpm.schedule import Schedule  # noqa: E402

TOY_STEPS = (5, 10, 20, 40, 80)
RUN_WAYS = [("dpmpp", 6), ("ddim", 6), ("dpmpp", 10), ("dpmpp", 20)]


def toy() -> None:
    import mlx.core as mx
    from test_dpm_solver import _error

    schedule, key = Schedule.create(1000, "cosine"), mx.random.key(0)
    print("| sampler, spacing | " + " | ".join(f"{n} steps" for n in TOY_STEPS) + " |")
    print("|---|" + "---|" * len(TOY_STEPS))
    for spacing in SPACINGS:
        errors = [_error(schedule, DPMSolverSampler(schedule, n, clip_x0=False, spacing=spacing), key)
                  for n in TOY_STEPS]
        print(f"| DPM-Solver++(2M), {spacing} | " + " | ".join(f"{e:.2g}" for e in errors) + " |")
    errors = [_error(schedule, DDIMSampler(schedule, n, clip_x0=False), key) for n in TOY_STEPS]
    print("| DDIM, uniform | " + " | ".join(f"{e:.2g}" for e in errors) + " |")


def digits(run_dir: str, n: int) -> None:
    run = mg.load(run_dir)
    if run.kind != "ddpm" or run.config.train.T < 100:
        raise SystemExit(f"{run_dir}: give a ddpm run trained with a large T (--T 1000), not a {run.kind} "
                         f"with T = {getattr(run.config.train, 'T', None)}")
    print("| sampler, steps | " + " | ".join(SPACINGS) + " |")
    print("|---|" + "---|" * len(SPACINGS))
    for sampler, steps in RUN_WAYS:
        fds = []
        for spacing in SPACINGS:
            result = mg.evaluate(run, n_samples=n, iwae=False, write=False, verbose=False, sampler=sampler,
                                 steps=steps, spacing=spacing)
            fds.append(result["samples"]["frechet_distance"])
        print(f"| {sampler}, {steps} | " + " | ".join(f"{fd:.1f}" for fd in fds) + " |", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", nargs="?", help="a ddpm run directory trained with --T 1000")
    p.add_argument("--toy", action="store_true", help="the toy's exact-solution errors instead")
    p.add_argument("--n", type=int, default=2000, help="samples per way (with a run)")
    args = p.parse_args(argv)
    if args.toy:
        toy()
    elif args.run:
        digits(args.run, args.n)
    else:
        p.error("give a run directory, or --toy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
