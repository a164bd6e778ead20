"""Run directories on disk: config, weights, resumable checkpoints, metrics.

    RUN_DIR/
      config.json                     what the run is (runconfig.py reads and writes it)
      model.safetensors               latest weights (what load() and sample() use)
      extras.safetensors              fitted statistics some kinds need (AE latent Gaussian)
      metrics.jsonl                   one JSON record per log / evaluation
      checkpoints/step-00000500/      model + optimizer + state.json, to --resume from

Every file is written to a temporary name in the same directory, fsynced and
renamed, so a crash never leaves a half-written file under a real name.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_unflatten

from ..errors import CheckpointError

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
EXTRAS = "extras.safetensors"
OPTIMIZER = "optimizer.safetensors"
EMA = "ema.safetensors"
STATE = "state.json"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"


def _atomic_write(path: Path, write) -> None:
    """Call write(tmp_path), fsync, then rename over ``path``.

    A failure (a full disk, a vanished directory) leaves ``path`` as it was and
    raises CheckpointError naming it, never a half-written file.
    """
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
        os.close(fd)
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise CheckpointError(f"{path}: could not be written ({e.strerror or e}); the previous version is intact") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: Path, data: dict) -> None:
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")

    _atomic_write(Path(path), write)


def write_arrays(path: Path, arrays: dict[str, mx.array], metadata: dict | None = None) -> None:
    # mx.save_safetensors appends ".safetensors" to names without it; our temp names end in it.
    _atomic_write(Path(path), lambda tmp: mx.save_safetensors(tmp, arrays, metadata or {}))


def save_weights(path: Path, model: nn.Module) -> None:
    write_arrays(path, dict(tree_flatten(model.parameters())), {"format": "mlx"})


def read_json(path: Path) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: not found") from None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable JSON file ({e})") from None


def read_arrays(path: Path) -> dict[str, mx.array]:
    if not Path(path).is_file():
        raise CheckpointError(f"{path}: not found")
    try:
        return mx.load(str(path))
    except Exception as e:  # mlx raises RuntimeError/ValueError with C++ messages
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None


def load_weights(path: Path, model: nn.Module) -> None:
    """Load weights into ``model``, checking every name and shape first (no partial loads)."""
    weights = read_arrays(path)
    expected = dict(tree_flatten(model.parameters()))
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not fit this model (missing: {', '.join(missing[:5]) or 'none'}; "
            f"unexpected: {', '.join(unexpected[:5]) or 'none'})"
        )
    for name, value in weights.items():
        if value.shape != expected[name].shape:
            raise CheckpointError(
                f"{path}: {name} has shape {tuple(value.shape)}, the model expects {tuple(expected[name].shape)}"
            )
    model.load_weights(list(weights.items()), strict=True)
    mx.eval(model.parameters())


def append_metrics(run_dir: Path, record: dict) -> None:
    with open(Path(run_dir) / METRICS, "a") as f:
        f.write(json.dumps(record) + "\n")


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def truncate_metrics(run_dir: Path, step: int) -> None:
    """Drop records after ``step``: a resumed run re-logs them, so no step appears twice."""
    records = [r for r in read_metrics(run_dir) if r.get("step", 0) <= step]

    def write(tmp):
        with open(tmp, "w") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")

    _atomic_write(Path(run_dir) / METRICS, write)


# ---- resumable checkpoints -------------------------------------------------------


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"step-{step:08d}"


def save_checkpoint(run_dir: Path, step: int, model: nn.Module, optimizer, keep: int = 2, ema: dict | None = None) -> Path:
    """Write a complete checkpoint directory atomically, then prune to the newest ``keep``.

    ``ema``: the moving average of the weights, when training keeps one."""
    final = checkpoint_dir(run_dir, step)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
    except OSError as e:
        raise CheckpointError(f"{final.parent}: cannot write a checkpoint ({e.strerror or e})") from None
    try:
        save_weights(tmp / WEIGHTS, model)
        write_arrays(tmp / OPTIMIZER, dict(tree_flatten(optimizer.state)))
        if ema is not None:
            write_arrays(tmp / EMA, dict(tree_flatten(ema)))
        write_json(tmp / STATE, {"step": step})
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(f"{final}: could not be written ({e.strerror or e}); older checkpoints are intact") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoint directories, oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step-*") if (p / STATE).exists())


def load_checkpoint(path: Path, model: nn.Module, optimizer) -> tuple[int, dict | None]:
    """Restore model and optimizer from a checkpoint directory; returns (step, EMA weights or None)."""
    step = read_json(Path(path) / STATE).get("step")
    if not isinstance(step, int) or step < 0:
        raise CheckpointError(f"{Path(path) / STATE}: 'step' must be a non-negative integer")
    ema = None
    if (Path(path) / EMA).exists():
        ema = read_arrays(Path(path) / EMA)
        expected = dict(tree_flatten(model.trainable_parameters()))
        if ema.keys() != expected.keys() or any(ema[k].shape != expected[k].shape for k in ema):
            raise CheckpointError(f"{Path(path) / EMA}: EMA weights do not fit this model")
        ema = tree_unflatten(list(ema.items()))
    load_weights(Path(path) / WEIGHTS, model)
    optimizer.state = tree_unflatten(list(read_arrays(Path(path) / OPTIMIZER).items()))
    return step, ema
