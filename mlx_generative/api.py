"""The Python API: the verbs a user calls. The CLI (cli/) is a thin layer over it, and
``mlx_generative`` re-exports it.

    train(kind, **options) -> Run        train a run                training/train_run.py
    load(run_dir) -> Run                 rebuild a trained run      training/runs.py
    sample, reconstruct, encode, posterior, interpolate, denoising_trajectory  training/inference.py
    evaluate(run) -> dict                held-out and sample figures  evaluation/evaluate.py
    sweep(kind, {option: values})        one run per setting, then a report  experiments/sweeps.py
    report(paths)                        report.html and report.md  experiments/reports.py
    plots                                matplotlib figures         experiments/plots.py
    explore(runs)                        the browser explorer       explorer/
"""

from .data.datasets import load_dataset
from .data.images import save_grid
from .evaluation.evaluate import evaluate
from .experiments import plots
from .experiments.reports import report
from .experiments.sweeps import sweep
from .explorer import explore
from .training.inference import denoising_trajectory, encode, interpolate, posterior, reconstruct, sample
from .training.options import TrainOptions
from .training.runs import Run, load
from .training.train_run import train
from .version import __version__

__all__ = [
    "train",
    "load",
    "sample",
    "reconstruct",
    "encode",
    "posterior",
    "denoising_trajectory",
    "interpolate",
    "evaluate",
    "sweep",
    "report",
    "explore",
    "plots",
    "save_grid",
    "load_dataset",
    "Run",
    "TrainOptions",
    "__version__",
]
