"""Damaged run directories: each gives a CheckpointError naming the file and what is wrong,
from the API and from bin/sample; random damage (fuzzing) never ends in anything else."""

from __future__ import annotations

import json
import shutil
from collections import namedtuple
from pathlib import Path

import pytest
from hypothesis import given
from mutations import FUZZ, Mutation, mutate

import mlx_generative as mg
from mlx_generative.errors import CheckpointError, DataError, MlxGenerativeError


@pytest.fixture
def good_runs(tiny_runs):
    """The session's tiny runs (the tests damage copies of them)."""
    return {kind: tiny_runs[kind].run_dir for kind in ("ae", "vae", "ddpm")}


def _edit_config(run_dir: Path, change) -> None:
    config = json.loads((run_dir / "config.json").read_text())
    change(config)
    (run_dir / "config.json").write_text(json.dumps(config))


BadRun = namedtuple("BadRun", "name kind damage message")
BAD_RUNS = [
    BadRun("missing weights", "vae", lambda d: (d / "model.safetensors").unlink(), "model.safetensors: not found"),
    BadRun("missing config", "vae", lambda d: (d / "config.json").unlink(), "config.json: not found"),
    BadRun("config not JSON", "vae", lambda d: (d / "config.json").write_text("{oops"), "config.json: not a readable JSON file"),
    BadRun("config without kind", "vae", lambda d: _edit_config(d, lambda c: c.pop("kind")), "missing key 'kind'"),
    BadRun("config without model", "ae", lambda d: _edit_config(d, lambda c: c.pop("model")), "missing key 'model'"),
    BadRun("unknown kind", "vae", lambda d: _edit_config(d, lambda c: c.update(kind="gan")), "unknown model kind 'gan'"),
    BadRun("future format", "vae", lambda d: _edit_config(d, lambda c: c.update(format_version=3)), "format_version 3 is not supported"),
    BadRun("no format version", "vae", lambda d: _edit_config(d, lambda c: c.pop("format_version")), "format_version None"),
    BadRun("weights of another kind", "ae", lambda d: _edit_config(d, lambda c: c.update(kind="vae")), "weights do not fit this model"),
    BadRun("shape mismatch", "vae", lambda d: _edit_config(d, lambda c: c["model"].update(latent_dim=7)), "has shape"),
    BadRun("bad model value", "vae", lambda d: _edit_config(d, lambda c: c["model"].update(image_size=30)), "invalid model settings"),
    BadRun("ddpm without train", "ddpm", lambda d: _edit_config(d, lambda c: c.pop("train")), "missing key 'train'"),
    BadRun("ddpm with T=0", "ddpm", lambda d: _edit_config(d, lambda c: c["train"].update(T=0)), "invalid training settings (--T must be >= 1, got 0)"),
    BadRun("a setting of the wrong type", "vae", lambda d: _edit_config(d, lambda c: c["train"].update(latent_dim="32")), "'train' 'latent_dim' must be int"),
    BadRun("data without its set", "ae", lambda d: _edit_config(d, lambda c: c["data"].pop("dataset")), "'data' 'dataset' must be str"),
    BadRun("truncated weights", "vae", lambda d: _truncate(d / "model.safetensors", 100), "not a readable safetensors file"),
    BadRun("empty weights", "ddpm", lambda d: (d / "model.safetensors").write_bytes(b""), "not a readable safetensors file"),
    BadRun("corrupt AE extras", "ae", lambda d: (d / "extras.safetensors").write_bytes(b"\x00" * 9), "extras.safetensors"),
]


# Damage that --resume never sees: it reads config.json and the newest checkpoint, not the
# final weights or the AE's extras (and a config naming another kind is its own error).
NOT_READ_BY_RESUME = {"missing weights", "weights of another kind", "truncated weights", "empty weights",
                      "corrupt AE extras"}


def _truncate(path: Path, drop: int) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - drop])


@pytest.mark.parametrize("case", BAD_RUNS, ids=lambda c: c.name)
def test_broken_run_directories(case, good_runs, tmp_path, cli):
    run_dir = tmp_path / "run"
    shutil.copytree(good_runs[case.kind], run_dir)
    case.damage(run_dir)
    with pytest.raises(CheckpointError) as error:
        mg.load(run_dir)
    assert case.message in str(error.value)
    assert str(run_dir) in str(error.value)
    # Every command that reads a run: one line naming it, exit status 2.
    for command in (["sample", str(run_dir)], ["eval", str(run_dir), "--n-samples", "8", "--iwae-k", "2"],
                    ["report", str(run_dir), "--out", str(tmp_path / "report")]):
        status, err = cli(command)
        assert status == 2 and case.message in err and "Traceback" not in err, (command, err)
    # --resume reads config.json and the newest checkpoint, not the final weights or extras.
    status, err = cli(["train", case.kind, "--resume", str(run_dir), "--steps", "9", "--no-progress"])
    assert "Traceback" not in err
    if case.name not in NOT_READ_BY_RESUME:
        assert status == 2 and case.message in err, err


def test_resume_of_a_run_without_checkpoints(good_runs, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(good_runs["vae"], run_dir)
    shutil.rmtree(run_dir / "checkpoints")
    with pytest.raises(CheckpointError, match="no complete checkpoint to resume from"):
        mg.train("vae", resume=run_dir, verbose=False)


def _fuzzed_copy(run_dir: Path, target: Path, damaged: str, mutation) -> Path:
    """Copy a run's config and weights into ``target`` and apply ``mutation`` to one of them."""
    for name in ("config.json", "model.safetensors"):
        shutil.copy(run_dir / name, target / name)
    (target / damaged).write_bytes(mutate((target / damaged).read_bytes(), mutation))
    return target


@FUZZ
@given(mutation=Mutation)
def test_fuzz_checkpoint_loader(good_runs, mutation, tmp_path_factory):
    run_dir = _fuzzed_copy(good_runs["vae"], tmp_path_factory.mktemp("fuzzrun"), "model.safetensors", mutation)
    try:
        mg.load(run_dir)
    except CheckpointError as e:
        assert str(run_dir) in str(e)


@FUZZ
@given(mutation=Mutation)
def test_fuzz_config(good_runs, mutation, tmp_path_factory):
    run_dir = _fuzzed_copy(good_runs["ddpm"], tmp_path_factory.mktemp("fuzzcfg"), "config.json", mutation)
    try:
        mg.load(run_dir)
    except MlxGenerativeError as e:
        assert isinstance(e, (CheckpointError, DataError))
