"""Every picture in README.md and docs/, made by one command from the guide's three runs and
the flow family's default run.

    uv run python docs/figures.py            # trains the runs it lacks (about 10 min on 2 cores)
    uv run python docs/figures.py --runs DIR # where the runs are kept (default outputs/docs)
    uv run python docs/figures.py --only flow

The runs are the guide's recipes, exactly as the README's table gives them, and `bin/train flow`
at its defaults, so the pictures show what a newcomer's own commands produce. Runs already
trained are reused; delete them to retrain. Figures go to docs/images/ (matplotlib: the dev
group, installed by `uv run`).
"""

# ruff: noqa: I001  (the order matters: mlx_generative loads the fast BLAS before mlx.core)
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import mlx_generative as mg  # noqa: E402
from mlx_generative.training import checkpoint  # noqa: E402

IMAGES = ROOT / "docs" / "images"
# The guide's three commands (README, "Train each model"), as API keywords.
RECIPES = {
    "ae": dict(steps=500, latent_dim=64, limit_train=10000),
    "vae": dict(steps=600, warmup_steps=200, latent_dim=32, limit_train=10000),
    "ddpm": dict(steps=800, T=6, batch_size=128, limit_train=10000),
    "flow": dict(),  # bin/train flow, at its defaults
}


def guide_run(kind: str, runs: Path) -> mg.Run:
    """The guide's run of ``kind`` under ``runs``: trained now unless it is there already."""
    if (runs / kind / checkpoint.WEIGHTS).is_file():
        return mg.load(runs / kind)
    shutil.rmtree(runs / kind, ignore_errors=True)  # an unfinished one
    print(f"training the guide's {kind} (seed 0) into {runs / kind}", flush=True)
    return mg.train(kind, out=str(runs), name=kind, progress=False, **RECIPES[kind])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=Path, default=ROOT / "outputs" / "docs", help="where the guide's runs are kept")
    p.add_argument("--only", help=f"comma-separated runs whose pictures to redraw, of {', '.join(RECIPES)} "
                   "(default all)")
    args = p.parse_args(argv)
    if not mg.plots.matplotlib_available():
        print("needs matplotlib: run it with `uv run` in a checkout (the dev group)", file=sys.stderr)
        return 2
    IMAGES.mkdir(parents=True, exist_ok=True)
    kinds = args.only.split(",") if args.only else list(RECIPES)
    unknown = [k for k in kinds if k not in RECIPES]
    if unknown:
        print(f"--only: unknown {', '.join(unknown)}; choose from {', '.join(RECIPES)}", file=sys.stderr)
        return 2
    runs = {kind: guide_run(kind, args.runs) for kind in kinds}
    written = []
    for name, run in runs.items():  # the runs' own grids, as bin/train wrote them
        for grid in ("samples", "reconstructions"):
            if (run.run_dir / f"{grid}.png").is_file():
                written.append(shutil.copyfile(run.run_dir / f"{grid}.png", IMAGES / f"{name}-{grid}.png"))
    figures = {}
    if {"ae", "vae"} <= set(runs):
        ae, vae = runs["ae"], runs["vae"]
        figures["ae-vs-vae-latent-map"] = mg.plots.latent_map([ae, vae], names=["AE, latent 64", "VAE, latent 32"])
        figures["ae-vs-vae-interpolation"] = mg.plots.interpolation_grid([ae, vae], names=["AE", "VAE"])
        figures["ae-vs-vae-reconstructions"] = mg.plots.reconstruction_rows([ae, vae], names=["AE", "VAE"])
    if "ddpm" in runs:
        figures["ddpm-denoising-strip"] = mg.plots.denoising_strip([runs["ddpm"]], names=["DDPM, T = 6"])
    if "flow" in runs:
        figures["flow-denoising-strip"] = mg.plots.denoising_strip([runs["flow"]], names=["flow, Heun"])
    if {"ae", "vae", "ddpm"} <= set(runs):
        figures["loss-curves"] = mg.plots.loss_curves([runs["ae"], runs["vae"], runs["ddpm"]],
                                                      names=["AE", "VAE", "DDPM"])
    for name, fig in figures.items():
        written.append(mg.plots.save_figure(fig, IMAGES / f"{name}.png"))
    for path in written:
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
