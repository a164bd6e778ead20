"""A trained run: its network, its typed config and the statistics fitted beside it.

``load`` rebuilds one from its directory: config.json -> the family's argument
dataclass -> the network -> model.safetensors (every name and shape checked first).
A directory may also be named ``pretrained/NAME``: one of the runs shipped in the
checkout's data/pretrained/ (data/build_pretrained.py rebuilds them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import mlx.nn as nn

from ..data.datasets import REPO_DATA_DIR
from ..errors import CheckpointError, UsageError
from ..families.base import Family
from . import checkpoint, runconfig
from .runconfig import RunConfig


@dataclass
class Run:
    """A trained model with its config; unpacks as ``model, config = load(run_dir)``."""

    model: nn.Module
    config: RunConfig
    run_dir: Path | None = None
    extras: dict = field(default_factory=dict)  # fitted statistics, e.g. the AE's latent Gaussian

    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def family(self) -> Family:
        return self.config.family

    @property
    def conditional(self) -> bool:
        """Trained with --conditional: samples, encodings and reconstructions take labels."""
        return self.config.conditional

    def __iter__(self):
        yield self.model
        yield self.config


def build_model(config: RunConfig, run_dir) -> nn.Module:
    """The network a run's config.json describes; CheckpointError if it cannot be built."""
    try:
        return config.family.build(config.model)
    except Exception as e:  # bad types or values surface from mlx as TypeError/ValueError/RuntimeError
        raise CheckpointError(f"{Path(run_dir) / checkpoint.CONFIG}: invalid model settings ({e})") from None


PRETRAINED_DIR = REPO_DATA_DIR / "pretrained"
PRETRAINED = "pretrained/"  # the short names' prefix: pretrained/vae
PRETRAINED_OUT = Path("outputs") / "pretrained"  # where files made from a shipped run go


def pretrained_names() -> list[str]:
    """The shipped pretrained runs, by short name (without the prefix)."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(d.name for d in PRETRAINED_DIR.iterdir() if (d / checkpoint.CONFIG).is_file())


def resolve_run_dir(run_dir) -> Path:
    """The directory ``run_dir`` names: itself, or for ``pretrained/NAME`` (when no run
    directory of that path exists here) the shipped run of that name."""
    path = Path(run_dir)
    text = str(run_dir).replace("\\", "/")
    if not text.startswith(PRETRAINED) or (path / checkpoint.CONFIG).is_file():
        return path
    name = text[len(PRETRAINED):].strip("/")
    names = pretrained_names()
    if name in names:
        return PRETRAINED_DIR / name
    shipped = ", ".join(PRETRAINED + n for n in names) or f"none in this installation (no {PRETRAINED_DIR})"
    raise UsageError(f"{run_dir}: no such pretrained run; the shipped ones are {shipped}")


def is_pretrained(run_dir) -> bool:
    return run_dir is not None and Path(run_dir).resolve().parent == PRETRAINED_DIR.resolve()


def output_dir(run_dir) -> Path:
    """Where files made from a run (samples, evaluations, reports) go: its own directory, or
    for a shipped pretrained run, which stays as it was built, outputs/pretrained/NAME."""
    run_dir = Path(run_dir)
    return PRETRAINED_OUT / run_dir.name if is_pretrained(run_dir) else run_dir


def load(run_dir) -> Run:
    """Rebuild a trained model from a run directory (config.json + model.safetensors), or a
    shipped pretrained run by its short name (``load("pretrained/vae")``)."""
    run_dir = resolve_run_dir(run_dir)
    config = runconfig.read(run_dir)
    model = build_model(config, run_dir)
    checkpoint.load_weights(run_dir / checkpoint.WEIGHTS, model)
    extras_path = run_dir / checkpoint.EXTRAS
    extras = checkpoint.read_arrays(extras_path) if extras_path.exists() else {}
    return Run(model=model, config=config, run_dir=run_dir, extras=extras)


def as_run(run) -> Run:
    """A run directory, a ``Run`` or a ``(model, config)`` pair, as a ``Run``."""
    if isinstance(run, Run):
        return run
    if isinstance(run, (str, Path)):
        return load(run)
    if isinstance(run, tuple) and len(run) == 2:
        model, config = run
        if isinstance(config, dict):  # a config.json object; one without a version is format 1
            config = RunConfig.from_dict({"format_version": 1, **config}, "the config given")
        return Run(model=model, config=config)
    raise UsageError(f"expected a run directory, a Run or a (model, config) pair, got {type(run).__name__}")
