"""config.json: what a run directory is, typed and versioned, read and written here only.

    {
      "format_version": 2,
      "kind": "vae",                  the family (families/__init__.py)
      "model": {...},                 the network's arguments: what rebuilds it
      "train": {...},                 the options it trained with that apply to its family
      "data": {"dataset": ..., "train_images": ..., "heldout": ...},
      "ranks": 1,                     processes that trained it together (mlx.launch)
      "shares_training_of": null,     a sweep run that copied another run's training
      "version": "0.1.0"              the package that wrote it
    }

Every field has one home. Format 1 (written until 2026-12-02) kept the diffusion
settings twice and the pixel scale beside the family that implies it; ``migrate``
reads it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError, UsageError
from ..families import FAMILIES
from ..families.base import BaseModelArgs, Family
from ..version import __version__
from . import checkpoint
from .options import OPTIONS, TrainOptions, check_values, owned_by

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


@dataclass
class DataInfo:
    dataset: str  # the data set trained on (mnist-sample when mnist fell back to it)
    train_images: int  # how many training images the batches were drawn from
    heldout: str  # what the held-out figures logged during training were computed on


@dataclass
class RunConfig:
    kind: str
    model: BaseModelArgs
    train: TrainOptions
    data: DataInfo
    ranks: int = 1
    shares_training_of: str | None = None
    version: str = __version__

    @property
    def family(self) -> Family:
        return FAMILIES[self.kind]

    @property
    def conditional(self) -> bool:
        """Trained with --conditional: samples, encodings and reconstructions take labels."""
        return self.family.is_conditional(self.train)

    def to_dict(self) -> dict:
        """The JSON object written to config.json."""
        return {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "model": self.model.to_dict(),
            "train": {name: getattr(self.train, name) for name in owned_by(self.kind)},
            "data": dataclasses.asdict(self.data),
            "ranks": self.ranks,
            "shares_training_of": self.shares_training_of,
            "version": self.version,
        }

    def __getitem__(self, key: str):
        """config["train"] and the like read the JSON view, as before the config was typed."""
        return self.to_dict()[key]

    @classmethod
    def from_dict(cls, raw: dict, path: Path | str = checkpoint.CONFIG) -> "RunConfig":
        """Check and type a config.json object of any readable format; CheckpointError names ``path``."""
        raw = migrate(raw, path)
        family = FAMILIES.get(raw["kind"]) if isinstance(raw["kind"], str) else None
        if family is None:
            raise CheckpointError(f"{path}: unknown model kind {raw['kind']!r} (expected one of {', '.join(FAMILIES)})")
        try:
            model = family.args_cls.from_dict(_object(raw, "model", path))
        except TypeError as e:
            raise CheckpointError(f"{path}: invalid model settings ({e})") from None
        data = _object(raw, "data", path)
        for name, expected in (("dataset", str), ("train_images", int), ("heldout", str)):
            if not isinstance(data.get(name), expected):
                raise CheckpointError(f"{path}: 'data' {name!r} must be {expected.__name__}, got {data.get(name)!r}")
        info = DataInfo(**{f.name: data[f.name] for f in dataclasses.fields(DataInfo)})
        shares = raw.get("shares_training_of")
        if shares is not None and not isinstance(shares, str):
            raise CheckpointError(f"{path}: 'shares_training_of' must be a run name, got {shares!r}")
        ranks = raw.get("ranks", 1)
        if not isinstance(ranks, int) or isinstance(ranks, bool) or ranks < 1:
            raise CheckpointError(f"{path}: 'ranks' must be a whole number >= 1, got {ranks!r}")
        return cls(
            kind=raw["kind"], model=model, train=_train_options(raw["kind"], _object(raw, "train", path), path),
            data=info, ranks=ranks, shares_training_of=shares,
            version=str(raw.get("version", "unknown")),
        )


def _object(raw: dict, key: str, path) -> dict:
    value = raw.get(key)
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: missing key {key!r}" if value is None else f"{path}: {key!r} must be an object")
    return value


# Options newer than some runs whose family default is not what those runs did.
BEFORE_THE_OPTION = {"lr_warmup": 0}


def _train_options(kind: str, saved: dict, path) -> TrainOptions:
    """The saved options of ``kind``, type- and range-checked; the rest at their declared defaults."""
    values = {}
    for name in owned_by(kind):
        if name not in saved:
            if name in BEFORE_THE_OPTION:
                values[name] = BEFORE_THE_OPTION[name]  # (a resumed run goes on as it began)
            continue  # an option newer than the run: its default is what the run did
        value, option = saved[name], OPTIONS[name]
        ok = value is None or (isinstance(value, option.type) and not (option.type is int and isinstance(value, bool)))
        if option.type is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise CheckpointError(f"{path}: 'train' {name!r} must be {option.type.__name__}, got {value!r}")
        values[name] = value
    options = TrainOptions(**values)
    try:
        check_values(options)
    except UsageError as e:
        raise CheckpointError(f"{path}: invalid training settings ({e})") from None
    return options


def migrate(raw: dict, path) -> dict:
    """A config.json object of any readable format as format 2, with nothing said twice."""
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: not a JSON object")
    version = raw.get("format_version")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise CheckpointError(
            f"{path}: format_version {version!r} is not supported (this version reads "
            f"{' and '.join(map(str, READABLE_VERSIONS))})"
        )
    for key in ("kind", "model"):
        if key not in raw:
            raise CheckpointError(f"{path}: missing key {key!r}")
    if version == 2:
        return raw
    # Format 1: the DDPM's T, schedule and sigma sat in "diffusion" (what sampling read) as
    # well as in "train"; the pixel scale and binarization in "data" as well as implied by
    # the family and "train"; the ranks in "distributed" with two derived batch sizes.
    raw = {**raw, "train": dict(_object(raw, "train", path)), "format_version": 2}
    diffusion = raw.pop("diffusion", None)  # written for DDPM runs only
    if diffusion is not None:
        if not isinstance(diffusion, dict) or "T" not in diffusion or "schedule" not in diffusion:
            raise CheckpointError(f"{path}: 'diffusion' must hold 'T' and 'schedule'")
        # Runs from before --sigma sampled with the guide's sqrt(beta_t): that is what they did.
        raw["train"].update(T=diffusion["T"], schedule=diffusion["schedule"], sigma=diffusion.get("sigma", "beta"))
    # Runs from before sharding and the EMA trained with neither.
    raw["train"].setdefault("shards", 1)
    raw["train"].setdefault("ema_decay", 0.0)
    raw["ranks"] = (raw.pop("distributed", None) or {}).get("ranks", 1)
    return raw


def read(run_dir) -> RunConfig:
    """The run directory's config.json, typed (CheckpointError naming the file if it is not one)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: no such run directory")
    path = run_dir / checkpoint.CONFIG
    return RunConfig.from_dict(checkpoint.read_json(path), path)


def write(run_dir, config: RunConfig) -> None:
    checkpoint.write_json(Path(run_dir) / checkpoint.CONFIG, config.to_dict())
