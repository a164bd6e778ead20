"""`sweep(kind, {"latent_dim": [16, 32]})`: train every combination of settings, then report.

Each combination is one ordinary run directory under ``outputs/sweeps/<name>/`` (named
after its settings, e.g. ``latent_dim=16``), so `load`, `sample`, `bin/eval` and
`bin/report` work on it as on any run. The data is read once for all runs. A sweep is
resumable: run the same command again and finished runs are skipped, interrupted ones
continue from their newest checkpoint. ``sweep.json`` records what the sweep is.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..console import Speaker
from ..errors import UsageError
from ..evaluation.evaluate import EVAL_FILE, evaluate
from ..families import generative_names, get_family
from ..families.base import FIXED, NOT_IN_SWEEPS, SAMPLING
from ..training import checkpoint, runconfig
from ..training.options import OPTIONS, TrainOptions, check_owned, resolve, sweep_role
from ..training.pictures import write_grids
from ..training.runs import load
from ..training.train_run import load_training_data, train
from ..training.trainer import TrainingInterrupted
from .reports import summarize, write_sweep_report
from .sweep_spec import SWEEP_FILE, combinations, default_name, flag, format_value, run_name

DEFAULT_OUT = "outputs/sweeps"
DEFAULT_EVAL_SAMPLES = 2000  # enough for a Frechet distance that ranks runs; 10k is bin/eval's


def compared(name: str) -> bool:
    """Whether runs of a sweep must agree on ``name`` (what they learn, or how they sample);
    the others say where and how a run is shown or computed, and may differ on a resume."""
    return sweep_role(name) not in (FIXED, NOT_IN_SWEEPS)


@dataclass
class SweepRun:
    name: str  # its directory name, made from its settings
    settings: dict  # the swept values of this run
    run_dir: Path
    status: str = "new"  # new | partial (has a checkpoint) | done
    trained_by: "SweepRun | None" = None  # an earlier run with the same training settings

    @property
    def training_settings(self) -> tuple:
        """The swept values that change what is learned: runs that share them share one training."""
        return tuple((k, v) for k, v in self.settings.items() if sweep_role(k) != SAMPLING)


def plan(kind: str, params: dict[str, list], common: dict, sweep_dir: Path) -> list[tuple[SweepRun, TrainOptions]]:
    """Check every combination before anything trains, and find what is already done.
    Returns each run with its options resolved (the family's defaults filled in)."""
    if not params:
        raise UsageError("give at least one setting to sweep, e.g. --latent-dim 16,32,64")
    unknown = [k for k in [*params, *common] if k not in OPTIONS]
    if unknown:
        raise UsageError(f"sweep: unknown option {unknown[0]!r}")
    check_owned(kind, [*params, *common])
    for param, values in params.items():
        if param in common:
            raise UsageError(f"{flag(param)} is both swept and fixed; give it once")
        if not values:
            raise UsageError(f"{flag(param)}: no values to sweep")
    planned = []
    trainers: dict[tuple, SweepRun] = {}  # training settings -> the run that trains them
    for settings in combinations(params):
        name = run_name(settings)
        resolved = resolve(kind, TrainOptions(**{**common, **settings, "out": str(sweep_dir), "name": name}))
        run = SweepRun(name, settings, sweep_dir / name)
        run.status = _status(run.run_dir, kind, resolved)
        trainer = trainers.setdefault(run.training_settings, run)
        run.trained_by = trainer if trainer is not run else None
        planned.append((run, resolved))
    return planned


def _status(run_dir: Path, kind: str, resolved: TrainOptions) -> str:
    if not (run_dir / checkpoint.CONFIG).is_file():
        if run_dir.exists() and any(run_dir.iterdir()):
            raise UsageError(f"{run_dir}: exists but holds no run (no {checkpoint.CONFIG}); move it away")
        return "new"
    config = runconfig.read(run_dir)
    saved, wanted = config.train.to_dict(), resolved.to_dict()
    differ = [k for k in wanted if compared(k) and saved[k] != wanted[k]]
    if config.family is not get_family(kind) or differ:
        what = ", ".join(f"{k} {saved[k]!r} there, {wanted[k]!r} now" for k in differ) or f"kind {config.kind}"
        raise UsageError(
            f"{run_dir}: trained with other settings ({what}); "
            "give the sweep another --name, or remove that directory"
        )
    if (run_dir / checkpoint.WEIGHTS).is_file() and _finished(run_dir, resolved.steps):
        return "done"
    return "partial" if checkpoint.list_checkpoints(run_dir) else "new"


def _finished(run_dir: Path, steps: int) -> bool:
    return any(r.get("split") == "wall" and r.get("step") == steps for r in checkpoint.read_metrics(run_dir))


def sweep(
    kind: str,
    params: dict[str, list],
    *,
    name: str | None = None,
    out: str | Path = DEFAULT_OUT,
    eval_samples: int = DEFAULT_EVAL_SAMPLES,
    report: bool = True,
    verbose: bool = True,
    **common,
) -> Path:
    """Train ``kind`` at every combination of ``params``; returns the sweep directory.

    ``params``: {"latent_dim": [16, 32, 64]} (several keys: their Cartesian product).
    ``common``: TrainOptions shared by every run (steps=..., dataset=...).
    ``eval_samples``: generated images scored by `evaluate` for the report's sample
        metrics (Frechet distance, confidence, ...); 0 skips them.
    ``report``: write report.html and report.md into the sweep directory at the end.
    """
    if not get_family(kind).generative:
        raise UsageError(f"sweep trains {', '.join(generative_names())}, not {kind!r}")
    if eval_samples != 0 and eval_samples < 4:
        raise UsageError(f"eval_samples must be 0 (skip) or >= 4, got {eval_samples}")
    say = Speaker(verbose)
    params = {k: list(v) for k, v in params.items()}
    sweep_dir = Path(out) / (name or default_name(kind, params))
    planned = plan(kind, params, common, sweep_dir)
    _check_sweep_file(sweep_dir, kind, params, common)
    loaded = {}  # (dataset, data_dir) -> the (train, test) pair, read once for every run
    for run, options in planned:  # before anything is written: bad data leaves nothing behind
        source = (options.dataset, options.data_dir)
        if run.status != "done" and source not in loaded:
            loaded[source] = load_training_data(*source)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    checkpoint.write_json(
        sweep_dir / SWEEP_FILE,
        # params as [name, values] pairs: write_json sorts keys, and the order names the runs.
        {"kind": kind, "params": list(params.items()), "common": common, "runs": [run.name for run, _ in planned]},
    )

    todo = sum(run.status != "done" for run, _ in planned)
    say(f"sweep {sweep_dir}: {len(planned)} runs ({len(planned) - todo} already done)")
    for i, (run, options) in enumerate(planned, 1):
        head = f"[{i}/{len(planned)}] {kind} " + " ".join(f"{k}={format_value(v)}" for k, v in run.settings.items())
        source = (options.dataset, options.data_dir)
        if run.status != "done" and run.trained_by is not None:
            say(f"{head}: sampling the model of {run.trained_by.name}")
            _share_training(run.trained_by.run_dir, run.run_dir, options, loaded[source][1])
            took = f"shares the training of {run.trained_by.name}"
        elif run.status != "done":
            say(f"{head}: training {options.steps} steps" + (" (resuming)" if run.status == "partial" else ""))
            if run.status == "new" and run.run_dir.exists():
                # Stopped before its first checkpoint: nothing to keep, and train() would
                # otherwise pick a fresh name ("...-2") that the report never looks at.
                shutil.rmtree(run.run_dir)
            started = time.perf_counter()
            try:
                train(kind, options, resume=run.run_dir if run.status == "partial" else None,
                      verbose=False, data=loaded[source])
            except TrainingInterrupted as stop:
                say(f"{head}: {stop}; checkpoint written. Run the same command again to resume the sweep.")
                raise
            took = f"trained in {time.perf_counter() - started:.0f} s"
        else:
            took = "done earlier"
        if eval_samples and not _evaluated(run.run_dir, eval_samples):
            evaluate(run.run_dir, n_samples=eval_samples, iwae=False, verbose=False)
        say(f"{head}: {took}; {_headline(run.run_dir)}")

    if report:
        paths = write_sweep_report(sweep_dir, verbose=False)
        say(f"report: {paths[0]}\n        {paths[1]}")
    return sweep_dir


def _share_training(trained_dir: Path, run_dir: Path, options: TrainOptions, test_data) -> None:
    """A run that differs from a trained one only in how it samples: copy the trained run
    (not its checkpoints or evaluation), record this run's settings, draw its grids."""
    # Built beside its place and renamed when complete: a sweep stopped half-way through the
    # copy never leaves a run directory whose config says the other run's settings.
    building = run_dir.with_name(run_dir.name + ".partial")
    for stale in (building, run_dir):
        if stale.exists():
            shutil.rmtree(stale)
    shutil.copytree(trained_dir, building, ignore=shutil.ignore_patterns(
        checkpoint.CHECKPOINTS, EVAL_FILE, "*.png", "*.gif", "progress", "report.*", "figures"))
    config = runconfig.read(building)
    # This run's settings; the shards (noise draws) are those the shared training used.
    config.train = dataclasses.replace(options, shards=options.shards or config.train.shards)
    config.shares_training_of = trained_dir.name
    runconfig.write(building, config)
    run = load(building)
    write_grids(run, test_data.images, heldout_labels=test_data.labels)
    building.rename(run_dir)


def _check_sweep_file(sweep_dir: Path, kind: str, params: dict, common: dict) -> None:
    """A sweep directory belongs to one model and one set of fixed settings."""
    path = sweep_dir / SWEEP_FILE
    if not path.is_file():
        return
    saved = checkpoint.read_json(path)
    fixed = {k: v for k, v in common.items() if compared(k)}
    saved_fixed = {k: v for k, v in saved.get("common", {}).items() if k in OPTIONS and compared(k)}
    if saved.get("kind") != kind or saved_fixed != fixed:
        raise UsageError(
            f"{path}: that sweep trains {saved.get('kind')} with {saved_fixed or 'the defaults'}, "
            f"not {kind} with {fixed or 'the defaults'}; give this one another --name"
        )


def _evaluated(run_dir: Path, n: int) -> bool:
    path = run_dir / EVAL_FILE
    if not path.is_file():
        return False
    samples = checkpoint.read_json(path).get("samples") or {}
    return samples.get("n", 0) >= n


def _headline(run_dir: Path) -> str:
    """The run's final held-out metrics and Frechet distance, for the progress line."""
    summary = summarize(run_dir)
    parts = [f"held-out {k} {v:.4g}" for k, v in summary.heldout.items()]
    if summary.samples:
        parts.append(f"FD {summary.samples['frechet_distance']:.1f}")
        if "label_accuracy" in summary.samples:
            parts.append(f"label accuracy {summary.samples['label_accuracy']:.1%}")
    return ", ".join(parts)
