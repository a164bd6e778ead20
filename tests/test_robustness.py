"""Every bad input we know of, and the one-line error it must produce.

Three tables (command-line arguments, broken run directories, broken data
files) plus fuzzing of the IDX reader and the checkpoint loader: random
truncations, bit flips and header edits must end in the project's own error
type (or a successful load), never a crash or a hang.
"""

from __future__ import annotations

import gzip
import json
import shutil
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlx_generative as mg
from mlx_generative import api
from mlx_generative.cli import main as cli_main
from mlx_generative.errors import CheckpointError, DataError, IdxError, MlxGenerativeError
from mlx_generative.idx import read_idx, write_idx

TINY = ["--steps", "1", "--batch-size", "8", "--limit-train", "16", "--no-progress", "--eval-every", "100"]

# ---- command-line arguments: exit status 2 and one line naming the flag -------------

BadArgs = namedtuple("BadArgs", "argv message")
BAD_ARGS = [
    BadArgs(["train", "gan"], "invalid choice: 'gan'"),
    BadArgs(["train", "ddpm", "--T", "0"], "--T must be >= 1"),
    BadArgs(["train", "ae", "--latent-dim", "0"], "--latent-dim must be >= 1"),
    BadArgs(["train", "ae", "--batch-size", "0"], "--batch-size must be >= 1"),
    BadArgs(["train", "ae", "--batch-size", "17", "--limit-train", "16"], "batch size must be between 1 and the number of training images (16)"),
    BadArgs(["train", "ae", "--steps", "-1"], "--steps must be >= 0"),
    BadArgs(["train", "vae", "--warmup-steps", "-5"], "--warmup-steps must be >= 0"),
    BadArgs(["train", "vae", "--beta-max", "0"], "--beta-max must be > 0"),
    BadArgs(["train", "vae", "--beta-max", "-1"], "--beta-max must be > 0"),
    BadArgs(["train", "ae", "--lr", "0"], "--lr must be > 0"),
    BadArgs(["train", "ae", "--limit-train", "0"], "--limit-train must be >= 1"),
    BadArgs(["train", "ae", "--keep-checkpoints", "0"], "--keep-checkpoints must be >= 1"),
    BadArgs(["train", "ae", "--clip-grad-norm", "0"], "--clip-grad-norm must be > 0"),
    BadArgs(["train", "ddpm", "--schedule", "quadratic"], "invalid choice: 'quadratic'"),
    BadArgs(["train", "ae", "--steps", "ten"], "invalid int value: 'ten'"),
    BadArgs(["train", "ae", "--T", "4"], "--T applies to ddpm only, not ae"),
    BadArgs(["train", "ddpm", "--beta-max", "2"], "--beta-max applies to vae only, not ddpm"),
    BadArgs(["train", "ae", "--dataset", "cifar"], "unknown data set 'cifar'"),
    BadArgs(["sample", "/nonexistent/run"], "/nonexistent/run: no such run directory"),
    BadArgs(["nonsense"], "unknown command 'nonsense'"),
]


def _status_and_stderr(argv, capsys):
    try:
        status = cli_main(argv)
    except SystemExit as e:  # argparse exits by itself
        status = e.code
    return status, capsys.readouterr().err


@pytest.mark.parametrize("case", BAD_ARGS, ids=lambda c: " ".join(c.argv[:4]))
def test_bad_arguments(case, capsys, tmp_path):
    argv = case.argv + (["--out", str(tmp_path)] if case.argv[0] == "train" and len(case.argv) > 2 else [])
    status, err = _status_and_stderr(argv, capsys)
    assert status == 2
    assert case.message in err
    assert "Traceback" not in err
    assert not any(tmp_path.iterdir()), "no run directory may be left by a rejected command"


def test_unwritable_output_directory(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    status, err = _status_and_stderr(["train", "ae", *TINY, "--out", str(blocker / "runs")], capsys)
    assert status == 2 and "cannot create a run directory" in err and str(blocker) in err


def test_full_disk_is_caught_before_training(capsys, tmp_path, monkeypatch):
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(api.shutil, "disk_usage", lambda path: Usage(10**9, 10**9 - 1000, 1000))
    status, err = _status_and_stderr(["train", "vae", *TINY, "--out", str(tmp_path)], capsys)
    assert status == 2 and "MB free, a run needs about" in err
    assert not any(tmp_path.iterdir())


def test_disk_full_during_a_checkpoint_keeps_the_old_one(tmp_path, monkeypatch):
    run = mg.train("vae", out=str(tmp_path), name="r", verbose=False, steps=2, batch_size=8,
                   limit_train=16, eval_every=100, checkpoint_every=1, progress=False)
    before = sorted(p.name for p in (run.run_dir / "checkpoints").iterdir())
    from mlx_generative import checkpoint

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.mx, "save_safetensors", no_space)
    with pytest.raises(CheckpointError, match="No space left on device"):
        checkpoint.save_checkpoint(run.run_dir, 3, run.model, __import__("mlx.optimizers").optimizers.Adam(1e-3))
    assert sorted(p.name for p in (run.run_dir / "checkpoints").iterdir()) == before
    mg.load(run.run_dir)  # still loadable


# ---- broken run directories: CheckpointError naming the file ---------------------------


@pytest.fixture(scope="module")
def good_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("good")
    opts = dict(steps=1, batch_size=8, limit_train=16, eval_every=100, progress=False, verbose=False, out=str(out))
    return {kind: mg.train(kind, name=kind, **opts).run_dir for kind in ("ae", "vae", "ddpm")}


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
    BadRun("future format", "vae", lambda d: _edit_config(d, lambda c: c.update(format_version=2)), "format_version 2 is not supported"),
    BadRun("no format version", "vae", lambda d: _edit_config(d, lambda c: c.pop("format_version")), "format_version None"),
    BadRun("weights of another kind", "ae", lambda d: _edit_config(d, lambda c: c.update(kind="vae")), "weights do not fit this model"),
    BadRun("shape mismatch", "vae", lambda d: _edit_config(d, lambda c: c["model"].update(latent_dim=7)), "has shape"),
    BadRun("bad model value", "vae", lambda d: _edit_config(d, lambda c: c["model"].update(image_size=30)), "invalid model settings"),
    BadRun("ddpm without diffusion", "ddpm", lambda d: _edit_config(d, lambda c: c.pop("diffusion")), "missing key 'diffusion'"),
    BadRun("ddpm with T=0", "ddpm", lambda d: _edit_config(d, lambda c: c["diffusion"].update(T=0)), "invalid diffusion settings"),
    BadRun("truncated weights", "vae", lambda d: _truncate(d / "model.safetensors", 100), "not a readable safetensors file"),
    BadRun("empty weights", "ddpm", lambda d: (d / "model.safetensors").write_bytes(b""), "not a readable safetensors file"),
    BadRun("corrupt AE extras", "ae", lambda d: (d / "extras.safetensors").write_bytes(b"\x00" * 9), "extras.safetensors"),
]


def _truncate(path: Path, drop: int) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - drop])


@pytest.mark.parametrize("case", BAD_RUNS, ids=lambda c: c.name)
def test_broken_run_directories(case, good_runs, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(good_runs[case.kind], run_dir)
    case.damage(run_dir)
    with pytest.raises(CheckpointError) as error:
        mg.load(run_dir)
    assert case.message in str(error.value)
    assert str(run_dir) in str(error.value)
    status, err = _status_and_stderr(["sample", str(run_dir)], capsys)
    assert status == 2 and case.message in err and "Traceback" not in err


def test_resume_of_a_run_without_checkpoints(good_runs, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(good_runs["vae"], run_dir)
    shutil.rmtree(run_dir / "checkpoints")
    with pytest.raises(CheckpointError, match="no complete checkpoint to resume from"):
        mg.train("vae", resume=run_dir, verbose=False)


# ---- broken data files -------------------------------------------------------------------


def _fashion_like(directory: Path) -> Path:
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True)
    write_idx(directory / "img.gz", rng.integers(0, 256, (10, 28, 28), dtype=np.uint8))
    return directory / "img.gz"


BadIdx = namedtuple("BadIdx", "name damage message")
BAD_IDX = [
    BadIdx("truncated gzip", lambda raw: raw[:-30], "gzip"),
    BadIdx("truncated payload", lambda raw: gzip.compress(gzip.decompress(raw)[:-7]), "truncated by 7 bytes"),
    BadIdx("trailing bytes", lambda raw: gzip.compress(gzip.decompress(raw) + b"xyz"), "3 trailing bytes"),
    BadIdx("bad magic", lambda raw: gzip.compress(b"\x01" + gzip.decompress(raw)[1:]), "magic"),
    BadIdx("unknown dtype", lambda raw: gzip.compress(b"\x00\x00\x07" + gzip.decompress(raw)[3:]), "dtype"),
    BadIdx("empty file", lambda raw: b"", "IDX"),
]


@pytest.mark.parametrize("case", BAD_IDX, ids=lambda c: c.name)
def test_broken_idx_files(case, tmp_path):
    path = _fashion_like(tmp_path / "d")
    path.write_bytes(case.damage(path.read_bytes()))
    with pytest.raises(IdxError) as error:
        read_idx(path)
    assert str(path) in str(error.value)
    assert case.message.lower() in str(error.value).lower()
    assert "\n" not in str(error.value)


# ---- fuzzing --------------------------------------------------------------------------------

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
Mutation = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(0, 7)),
    st.tuples(st.just("header"), st.integers(0, 63), st.integers(0, 255)),
)


def _mutate(data: bytes, mutation) -> bytes:
    b = bytearray(data)
    if mutation[0] == "truncate":
        return bytes(b[: int(mutation[1] * len(b))])
    if mutation[0] == "flip":
        i = min(int(mutation[1] * len(b)), len(b) - 1)
        b[i] ^= 1 << mutation[2]
        return bytes(b)
    b[min(mutation[1], len(b) - 1)] = mutation[2]
    return bytes(b)


@pytest.fixture(scope="module")
def idx_samples(tmp_path_factory):
    d = tmp_path_factory.mktemp("idx")
    arrays = {"raw": d / "a", "gz": d / "a.gz"}
    data = np.arange(3 * 5 * 4, dtype=np.uint8).reshape(3, 5, 4)
    for path in arrays.values():
        write_idx(path, data)
    return {k: (p, p.read_bytes()) for k, p in arrays.items()}


@FUZZ
@given(which=st.sampled_from(["raw", "gz"]), mutation=Mutation)
def test_fuzz_idx_reader(idx_samples, which, mutation, tmp_path_factory):
    path, original = idx_samples[which]
    target = path.with_name(path.name.replace("a", "fuzzed"))
    target.write_bytes(_mutate(original, mutation))
    try:
        array = read_idx(target)
    except IdxError as e:
        assert str(target) in str(e)
    else:
        assert isinstance(array, np.ndarray)


def _fuzzed_copy(run_dir: Path, target: Path, damaged: str, mutation) -> Path:
    """Copy a run's config and weights into ``target`` and apply ``mutation`` to one of them."""
    for name in ("config.json", "model.safetensors"):
        shutil.copy(run_dir / name, target / name)
    (target / damaged).write_bytes(_mutate((target / damaged).read_bytes(), mutation))
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
