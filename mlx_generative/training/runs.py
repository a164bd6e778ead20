"""A trained run: its network, its typed config and the statistics fitted beside it.

``load`` rebuilds one from its directory: config.json -> the family's argument
dataclass -> the network -> model.safetensors (every name and shape checked first).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import mlx.nn as nn

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


def load(run_dir) -> Run:
    """Rebuild a trained model from a run directory (config.json + model.safetensors)."""
    run_dir = Path(run_dir)
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
