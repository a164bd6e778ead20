"""`sweep(kind, {"latent_dim": [16, 32]})`: train every combination of settings, then report.

Each combination is one ordinary run directory under ``outputs/sweeps/<name>/`` (named
after its settings, e.g. ``latent_dim=16``), so `load`, `sample`, `bin/eval` and
`bin/report` work on it as on any run. The data is read once for all runs. A sweep is
resumable: run the same command again and finished runs are skipped, interrupted ones
continue from their newest checkpoint. ``sweep.json`` records what the sweep is.
"""

from __future__ import annotations

import dataclasses
import itertools
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from . import checkpoint
from .api import _say
from .errors import UsageError
from .options import TrainOptions, check_kind_only
from .trainer import TrainingInterrupted

SWEEP_FILE = "sweep.json"
DEFAULT_OUT = "outputs/sweeps"
DEFAULT_EVAL_SAMPLES = 2000  # enough for a Frechet distance that ranks runs; 10k is bin/eval's
# Options that say where or how a run is shown or computed, not what it learns: never swept,
# and free to differ when a sweep is resumed (shards: on a machine with other cores).
NOT_SWEPT = ("out", "name", "progress", "data_dir", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints",
             "shards")
# Options that change only how a trained model samples: runs that differ in nothing else
# share one training (the first trains; the others copy its weights and sample their way).
SAMPLING_ONLY = ("guidance", "sampler", "sample_steps", "sample_eta")


@dataclass
class SweepRun:
    name: str  # its directory name, made from its settings
    settings: dict  # the swept values of this run
    run_dir: Path
    status: str = "new"  # new | partial (has a checkpoint) | done
    trained_by: "SweepRun | None" = None  # an earlier run with the same training settings

    @property
    def training_settings(self) -> tuple:
        return tuple((k, v) for k, v in self.settings.items() if k not in SAMPLING_ONLY)


def sweepable() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainOptions) if f.name not in NOT_SWEPT]


def parse_values(param: str, text: str, sweeping: bool = True) -> list:
    """'16,32,64' -> [16, 32, 64], typed as TrainOptions' field ``param``."""
    field = {f.name: f for f in dataclasses.fields(TrainOptions)}.get(param)
    if field is None or (sweeping and param in NOT_SWEPT):
        raise UsageError(f"--{_flag(param)} cannot be swept; sweepable: {', '.join('--' + _flag(p) for p in sweepable())}")
    kind_of = str(field.type)
    values = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise UsageError(f"--{_flag(param)} {text!r}: expected comma-separated values, e.g. 16,32,64")
        try:
            if item.lower() == "none":
                values.append(None)
            elif kind_of.startswith("int"):
                values.append(int(item))
            elif kind_of.startswith("float"):
                values.append(float(item))
            else:
                values.append(item)
        except ValueError:
            expected = "integers" if kind_of.startswith("int") else "numbers"
            raise UsageError(f"--{_flag(param)} {text!r}: expected {expected}, got {item!r}") from None
    if len(set(map(repr, values))) != len(values):
        raise UsageError(f"--{_flag(param)} {text!r}: a value is repeated")
    return values


def _flag(param: str) -> str:
    return param.replace("_", "-")


def _format_value(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def run_name(settings: dict) -> str:
    """The directory name of one combination: 'warmup_steps=200_beta_max=4'."""
    return "_".join(f"{k}={_format_value(v)}" for k, v in settings.items())


def swept_params(spec: dict) -> dict[str, list]:
    """sweep.json's swept settings, in the order given on the command line."""
    return dict(spec["params"])


def command_line(spec: dict) -> str:
    """The bin/sweep command that makes (or resumes) the sweep sweep.json describes."""
    args = [f"--{_flag(k)} {','.join(map(_format_value, v))}" for k, v in swept_params(spec).items()]
    args += [f"--{_flag(k)} {_format_value(v)}" for k, v in spec["common"].items()
             if v is not None and not isinstance(v, bool)]
    # Switches such as --conditional (a False one, --no-progress, changes nothing the runs learn).
    args += [f"--{_flag(k)}" for k, v in spec["common"].items() if v is True]
    return " ".join(["bin/sweep", spec["kind"], *args])


def combinations(params: dict[str, list]) -> list[dict]:
    """The Cartesian product, the first parameter varying slowest."""
    names = list(params)
    return [dict(zip(names, values)) for values in itertools.product(*(params[n] for n in names))]


def default_name(kind: str, params: dict) -> str:
    return "-".join([kind, *params])


def plan(kind: str, params: dict[str, list], common: dict, sweep_dir: Path) -> list[tuple[SweepRun, TrainOptions]]:
    """Check every combination before anything trains, and find what is already done.
    Returns each run with its options resolved (the kind's defaults filled in)."""
    if not params:
        raise UsageError("give at least one setting to sweep, e.g. --latent-dim 16,32,64")
    check_kind_only(kind, [*params, *common])
    for param, values in params.items():
        if param in common:
            raise UsageError(f"--{_flag(param)} is both swept and fixed; give it once")
        if not values:
            raise UsageError(f"--{_flag(param)}: no values to sweep")
    planned = []
    trainers: dict[tuple, SweepRun] = {}  # training settings -> the run that trains them
    for settings in combinations(params):
        name = run_name(settings)
        try:
            options = TrainOptions(**{**common, **settings, "out": str(sweep_dir), "name": name})
        except TypeError as e:
            raise UsageError(f"sweep: {e}") from None
        resolved = options.resolved(kind)  # a bad value fails here, before any training
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
    config = checkpoint.load_config(run_dir)
    # A setting newer than the run was trained without it: its default then.
    saved = {**TrainOptions().to_dict(), **config.get("train", {})}
    wanted = resolved.to_dict()
    differ = [k for k in wanted if k not in NOT_SWEPT and saved.get(k) != wanted[k]]
    if config.get("kind") != kind or differ:
        what = ", ".join(f"{k} {saved.get(k)!r} there, {wanted[k]!r} now" for k in differ) or f"kind {config.get('kind')}"
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
    from . import api, evaluation

    if kind not in ("ae", "vae", "ddpm"):
        raise UsageError(f"sweep trains ae, vae or ddpm, not {kind!r}")
    if eval_samples != 0 and eval_samples < 4:
        raise UsageError(f"eval_samples must be 0 (skip) or >= 4, got {eval_samples}")
    params = {k: list(v) for k, v in params.items()}
    sweep_dir = Path(out) / (name or default_name(kind, params))
    planned = plan(kind, params, common, sweep_dir)
    _check_sweep_file(sweep_dir, kind, params, common)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    checkpoint.write_json(
        sweep_dir / SWEEP_FILE,
        # params as [name, values] pairs: write_json sorts keys, and the order names the runs.
        {"kind": kind, "params": list(params.items()), "common": common, "runs": [run.name for run, _ in planned]},
    )

    loaded = {}  # (dataset, data_dir) -> the (train, test) pair, read once for every run
    todo = sum(run.status != "done" for run, _ in planned)
    _say(f"sweep {sweep_dir}: {len(planned)} runs ({len(planned) - todo} already done)", verbose)
    for i, (run, options) in enumerate(planned, 1):
        head = f"[{i}/{len(planned)}] {kind} " + " ".join(f"{k}={_format_value(v)}" for k, v in run.settings.items())
        source = (options.dataset, options.data_dir)
        if run.status != "done" and source not in loaded:
            loaded[source] = api.load_training_data(*source)
        if run.status != "done" and run.trained_by is not None:
            _say(f"{head}: sampling the model of {run.trained_by.name}", verbose)
            _share_training(run.trained_by.run_dir, run.run_dir, options, loaded[source][1])
            took = f"shares the training of {run.trained_by.name}"
        elif run.status != "done":
            data = loaded[source]
            _say(f"{head}: training {options.steps} steps"
                 + (" (resuming)" if run.status == "partial" else ""), verbose)
            if run.status == "new" and run.run_dir.exists():
                # Stopped before its first checkpoint: nothing to keep, and train() would
                # otherwise pick a fresh name ("...-2") that the report never looks at.
                shutil.rmtree(run.run_dir)
            started = time.perf_counter()
            try:
                api.train(kind, options, resume=run.run_dir if run.status == "partial" else None,
                          verbose=False, data=data)
            except TrainingInterrupted as stop:
                _say(f"{head}: {stop}; checkpoint written. Run the same command again to resume the sweep.", verbose)
                raise
            took = f"trained in {time.perf_counter() - started:.0f} s"
        else:
            took = "done earlier"
        if eval_samples and not _evaluated(run.run_dir, eval_samples):
            evaluation.evaluate(run.run_dir, n_samples=eval_samples, iwae=False, verbose=False)
        _say(f"{head}: {took}; {_headline(run.run_dir)}", verbose)

    if report:
        from .reports import write_sweep_report

        paths = write_sweep_report(sweep_dir, verbose=False)
        _say(f"report: {paths[0]}\n        {paths[1]}", verbose)
    return sweep_dir


def _share_training(trained_dir: Path, run_dir: Path, options: TrainOptions, test_data) -> None:
    """A run that differs from a trained one only in how it samples: copy the trained run
    (not its checkpoints or evaluation), record this run's settings, draw its grids."""
    from . import api

    # Built beside its place and renamed when complete: a sweep stopped half-way through the
    # copy never leaves a run directory whose config says the other run's settings.
    building = run_dir.with_name(run_dir.name + ".partial")
    for stale in (building, run_dir):
        if stale.exists():
            shutil.rmtree(stale)
    shutil.copytree(trained_dir, building, ignore=shutil.ignore_patterns(
        checkpoint.CHECKPOINTS, "eval.json", "*.png", "report.*", "figures"))
    config = checkpoint.load_config(building)
    config["train"] = options.to_dict()
    config["shares_training_of"] = trained_dir.name
    checkpoint.save_config(building, config)
    run = api.load(building)
    run.run_dir = building
    api.write_grids(run, test_data.images, heldout_labels=test_data.labels)
    building.rename(run_dir)


def _check_sweep_file(sweep_dir: Path, kind: str, params: dict, common: dict) -> None:
    """A sweep directory belongs to one model and one set of fixed settings."""
    path = sweep_dir / SWEEP_FILE
    if not path.is_file():
        return
    saved = checkpoint.read_json(path)
    fixed = {k: v for k, v in common.items() if k not in NOT_SWEPT}
    saved_fixed = {k: v for k, v in saved.get("common", {}).items() if k not in NOT_SWEPT}
    if saved.get("kind") != kind or saved_fixed != fixed:
        raise UsageError(
            f"{path}: that sweep trains {saved.get('kind')} with {saved_fixed or 'the defaults'}, "
            f"not {kind} with {fixed or 'the defaults'}; give this one another --name"
        )


def _evaluated(run_dir: Path, n: int) -> bool:
    path = run_dir / "eval.json"
    if not path.is_file():
        return False
    samples = checkpoint.read_json(path).get("samples") or {}
    return samples.get("n", 0) >= n


def _headline(run_dir: Path) -> str:
    """The run's final held-out metrics and Frechet distance, for the progress line."""
    from .reports import summarize

    summary = summarize(run_dir)
    parts = [f"held-out {k} {v:.4g}" for k, v in summary.heldout.items()]
    if summary.samples:
        parts.append(f"FD {summary.samples['frechet_distance']:.1f}")
        if "label_accuracy" in summary.samples:
            parts.append(f"label accuracy {summary.samples['label_accuracy']:.1%}")
    return ", ".join(parts)
