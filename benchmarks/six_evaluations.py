"""Six network evaluations, five ways: the same sampling budget spent by a DDPM and a flow, at
the same training budget (by default the guide's: 800 steps, batch 128, the 9,000 training digits of
the shipped sample, seed 0).

    uv run python benchmarks/six_evaluations.py                 # about 25 min on 2 cores
    uv run python benchmarks/six_evaluations.py --n 2000        # a quicker, noisier look
    uv run python benchmarks/six_evaluations.py --steps 2000    # 10 minutes of training each

  1. DDPM, T = 6, all six reverse steps (the guide's model, with our defaults);
  2. DDPM trained at T = 1000 (cosine, v-prediction, min-SNR-5 weighting), DDIM in 6 steps;
  3. the same T = 1000 model, DPM-Solver++(2M) in 6 steps;
  4. flow, Euler in 6 steps;
  5. the same flow, Heun in 3 steps (two evaluations each).
Each is scored by `mlx_generative.evaluate` on --n samples against the real MNIST test split
(Frechet distance, classifier confidence, precision and recall); the grids go side by side into
docs/images/six-evaluations.png, and the table into benchmarks/RESULTS.md. Runs are kept under
--out and reused.
"""

# ruff: noqa: I001  (import order matters: mlx_generative loads the fast BLAS before mlx.core)
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import mlx_generative as mg  # noqa: E402
from mlx_generative.data.images import grid  # noqa: E402
from mlx_generative.training import checkpoint  # noqa: E402
from results_file import train_seconds, write_section  # noqa: E402  (beside this script)

BUDGET = dict(batch_size=128, limit_train=10_000, seed=0)
GUIDE_STEPS = 800
RUNS = {
    "ddpm-T6": ("ddpm", dict(T=6)),
    # T = 1000 with v-prediction and min-SNR-5 weighting: the best of four objectives measured at
    # 800 steps (benchmarks/RESULTS.md, "Training at a fixed budget").
    "ddpm-T1000": ("ddpm", dict(T=1000, schedule="cosine", prediction="v", min_snr_gamma=5.0)),
    "flow": ("flow", {}),
}
# (label, run, sampling settings): six network evaluations per sample each.
WAYS = [
    ("DDPM T = 6, its 6 steps (the guide)", "ddpm-T6", dict(sampler="ddpm")),
    ("DDPM T = 1000, DDIM 6 steps", "ddpm-T1000", dict(sampler="ddim", steps=6)),
    ("DDPM T = 1000, DPM-Solver++(2M) 6 steps", "ddpm-T1000", dict(sampler="dpmpp", steps=6)),
    ("flow, Euler 6 steps", "flow", dict(sampler="euler", steps=6)),
    ("flow, Heun 3 steps", "flow", dict(sampler="heun", steps=3)),
]


def marker(steps: int) -> str:
    """The RESULTS.md section's marker: one per training budget."""
    return "six-evaluations" if steps == GUIDE_STEPS else f"six-evaluations-{steps}"


def trained(name: str, out: Path, steps: int) -> mg.Run:
    kind, extra = RUNS[name]
    if (out / name / checkpoint.WEIGHTS).is_file():
        run = mg.load(out / name)
        if run.config.train.steps != steps:
            raise SystemExit(f"{out / name} was trained for {run.config.train.steps} steps, not {steps}: "
                             "give another --out")
        return run
    print(f"training {name} into {out / name}", flush=True)
    return mg.train(kind, out=str(out), name=name, progress=False, steps=steps, **BUDGET, **extra)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=GUIDE_STEPS, help="training steps of each model (2000: about "
                   "10 minutes each on 2 cores)")
    p.add_argument("--out", type=Path, help="where the runs are kept (default outputs/six-evaluations[-STEPS])")
    p.add_argument("--n", type=int, default=10_000, help="samples per way for the sample metrics")
    p.add_argument("--no-results", dest="results", action="store_false", help="do not write RESULTS.md")
    args = p.parse_args(argv)
    section = marker(args.steps)
    out = args.out or ROOT / "outputs" / section
    runs = {run: trained(run, out, args.steps) for run in RUNS}
    rows, grids = [], []
    for label, name, settings in WAYS:
        result = mg.evaluate(runs[name], n_samples=args.n, iwae=False, write=False, verbose=False, **settings)
        s = result["samples"]
        rows.append({"way": label, "run": name, **settings, "train_s": train_seconds(runs[name].run_dir),
                     "heldout": result["heldout"], "fd": s["frechet_distance"], "confidence": s["confidence"],
                     "precision": s["precision"], "recall": s["recall"], "n": s["n"]})
        print(json.dumps(rows[-1]), flush=True)
        grids.append(mg.sample(runs[name], n=64, seed=1, **settings))
    floor = result["reference"]["train_vs_test"]
    side_by_side(grids, ROOT / "docs" / "images" / f"{section}.png")
    body = table(rows, floor, args.n, args.steps)
    print(body)
    if args.results:
        title = "Six network evaluations, five ways (issue 23)" + (
            "" if args.steps == GUIDE_STEPS else f", {args.steps} training steps")
        write_section(ROOT / "benchmarks" / "RESULTS.md", title, f"<!-- {section}:begin -->",
                      f"<!-- {section}:end -->", body)
    return 0


def side_by_side(grids: list[np.ndarray], path: Path) -> None:
    """The ways' 8x8 grids in one row, left to right in WAYS's order, a white band between."""
    tiles = [grid(g, nrow=8) for g in grids]
    band = np.full((tiles[0].shape[0], 12), 255, np.uint8)
    picture = np.concatenate([part for tile in tiles for part in (tile, band)][:-1], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(picture)
    picture.resize((picture.width * 2, picture.height * 2), Image.NEAREST).save(path)


def table(rows: list[dict], floor: dict, n: int, steps: int) -> str:
    flags = f"--n {n}" + ("" if steps == GUIDE_STEPS else f" --steps {steps}")
    budget = "the guide's budget" if steps == GUIDE_STEPS else "the same budget"
    lines = [
        f"`uv run python benchmarks/six_evaluations.py {flags}`: each model trained for {budget} "
        f"({steps} steps, batch {BUDGET['batch_size']}, the shipped sample's 9,000 training digits, seed 0); "
        f"{n:,} samples per way against the MNIST test split. Six network evaluations per sample in every row.",
        "",
        "| way | training s | Frechet distance | confidence | precision | recall |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['way']} | {r['train_s']:.0f} | {r['fd']:.1f} | {r['confidence']:.3f} | "
                     f"{r['precision']:.3f} | {r['recall']:.3f} |")
    lines.append(f"| real training digits (floor, n={floor['n']:,}) | - | {floor['frechet_distance']:.1f} | "
                 f"{floor['confidence']:.3f} | {floor['precision']:.3f} | {floor['recall']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
