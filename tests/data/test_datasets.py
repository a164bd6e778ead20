"""Data set resolution order, the mnist -> mnist-sample fallback, and the shipped sample."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from mlx_generative.data import datasets
from mlx_generative.data.datasets import (
    DATASETS,
    DataFile,
    DatasetSpec,
    dataset_names,
    find_dataset,
    load_dataset,
)
from mlx_generative.data.idx import read_idx_bytes, write_idx
from mlx_generative.errors import DataError, DatasetNotFoundError, UsageError

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "data" / "mnist-sample"
SAMPLE_CLASS_COUNTS = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
FILE_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def toy_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        FILE_NAMES[0]: rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        FILE_NAMES[1]: np.arange(6, dtype=np.uint8),
        FILE_NAMES[2]: rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        FILE_NAMES[3]: np.array([7, 8, 9], dtype=np.uint8),
    }


def write_toy(directory: Path, compressed: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in toy_arrays().items():
        write_idx(directory / (name if compressed else name.removesuffix(".gz")), array, compress=compressed)
    return directory


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Point every search location at empty folders under tmp_path; register a `toy` data set."""
    roots = {key: tmp_path / key for key in ("arg", "env", "repo", "shared", "cache", "system")}
    monkeypatch.setattr(datasets, "REPO_DATA_DIR", roots["repo"])
    monkeypatch.setattr(datasets, "SHARED_DATA_DIR", roots["shared"])
    monkeypatch.setenv("XDG_CACHE_HOME", str(roots["cache"]))
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    monkeypatch.setattr(datasets, "_fallback_noted", False)

    digests = {}
    scratch = tmp_path / "scratch"
    write_toy(scratch)
    for name in FILE_NAMES:
        digests[name] = hashlib.sha256(read_idx_bytes(scratch / name)).hexdigest()
    files = [DataFile(name, digests[name]) for name in FILE_NAMES]
    spec = DatasetSpec(
        name="toy",
        title="Toy",
        train_images=files[0],
        train_labels=files[1],
        test_images=files[2],
        test_labels=files[3],
        mirrors=(),
        system_dirs=(roots["system"] / "toy",),
        how_to_get="get it with: bin/fetch-data toy",
    )
    monkeypatch.setitem(DATASETS, "toy", spec)
    return roots


def test_resolution_order(isolated, monkeypatch):
    places = {
        "env": write_toy(isolated["env"] / "toy"),
        "repo": write_toy(isolated["repo"] / "toy"),
        "cache": write_toy(isolated["cache"] / "mlx-generative" / "toy"),
        "system": write_toy(isolated["system"] / "toy"),
    }
    monkeypatch.setenv(datasets.ENV_VAR, str(isolated["env"]))
    assert find_dataset("toy") == places["env"]
    # Each winner removed in turn reveals the next one in line.
    for winner, runner_up in [("env", "repo"), ("repo", "cache"), ("cache", "system")]:
        shutil.rmtree(places[winner])
        assert find_dataset("toy") == places[runner_up]
    shutil.rmtree(places["system"])
    with pytest.raises(DatasetNotFoundError):
        find_dataset("toy")


def test_an_explicit_data_dir_is_the_only_place_looked(isolated, monkeypatch):
    """A user who points at a folder must never get results from another copy."""
    monkeypatch.setenv(datasets.ENV_VAR, str(write_toy(isolated["env"] / "toy").parent))
    chosen = write_toy(isolated["arg"] / "toy")
    assert find_dataset("toy", data_dir=isolated["arg"]) == chosen
    shutil.rmtree(chosen)
    with pytest.raises(DatasetNotFoundError) as info:
        find_dataset("toy", data_dir=isolated["arg"])
    assert str(isolated["arg"]) in str(info.value) and "missing train-images-idx3-ubyte.gz" in str(info.value)
    assert str(isolated["env"]) not in str(info.value)


def test_explicit_dir_and_env_may_hold_the_files_directly(isolated, monkeypatch):
    direct = write_toy(isolated["arg"])
    assert find_dataset("toy", data_dir=direct) == direct
    monkeypatch.setenv(datasets.ENV_VAR, str(direct))
    assert find_dataset("toy") == direct


def test_uncompressed_files_are_accepted(isolated):
    directory = write_toy(isolated["repo"] / "toy", compressed=False)
    loaded = load_dataset("toy", "test")
    assert loaded.source == directory
    np.testing.assert_array_equal(loaded.labels, [7, 8, 9])


def test_load_returns_the_split(isolated):
    write_toy(isolated["repo"] / "toy")
    train, test = load_dataset("toy", "train"), load_dataset("toy", "test")
    arrays = toy_arrays()
    np.testing.assert_array_equal(train.images, arrays[FILE_NAMES[0]])
    np.testing.assert_array_equal(test.images, arrays[FILE_NAMES[2]])
    assert (train.name, train.split, test.split) == ("toy", "train", "test")


def test_look_alike_files_are_skipped(isolated, monkeypatch):
    """A folder holding another data set's files (other label checksums) is not this one."""
    impostor = write_toy(isolated["env"])
    write_idx(impostor / FILE_NAMES[1], np.zeros(6, np.uint8))
    monkeypatch.setenv(datasets.ENV_VAR, str(impostor))
    real = write_toy(isolated["cache"] / "mlx-generative" / "toy")
    assert find_dataset("toy") == real


def test_corrupt_images_fail_the_checksum_on_load(isolated):
    directory = write_toy(isolated["repo"] / "toy")
    write_idx(directory / FILE_NAMES[0], np.ones((6, 28, 28), np.uint8))
    with pytest.raises(DataError, match="checksum mismatch") as info:
        load_dataset("toy")
    assert str(directory / FILE_NAMES[0]) in str(info.value)


def test_not_found_lists_every_place_and_how_to_get_it(isolated, monkeypatch):
    monkeypatch.setenv(datasets.ENV_VAR, str(isolated["env"]))
    with pytest.raises(DatasetNotFoundError) as info:
        find_dataset("toy")
    message = str(info.value)
    assert "\n" not in message
    for place in [
        isolated["env"] / "toy",
        isolated["env"],
        isolated["repo"] / "toy",
        isolated["cache"] / "mlx-generative" / "toy",
        isolated["system"] / "toy",
    ]:
        assert str(place) in message
    assert "bin/fetch-data toy" in message


def test_fashion_not_found_mentions_debian_package(isolated, monkeypatch):
    monkeypatch.setitem(DATASETS, "fashion-mnist", dataclasses.replace(DATASETS["fashion-mnist"], system_dirs=()))
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        find_dataset("fashion-mnist")


def test_mnist_falls_back_to_the_sample_once(isolated, capsys):
    (isolated["repo"]).mkdir()
    (isolated["repo"] / "mnist-sample").symlink_to(SAMPLE_DIR)
    first = load_dataset("mnist")
    second = load_dataset("mnist", "test")
    assert first.name == second.name == "mnist-sample"
    assert find_dataset("mnist") == isolated["repo"] / "mnist-sample"
    err = capsys.readouterr().err
    assert err.count("no full MNIST copy found") == 1
    assert "bin/fetch-data mnist" in err


def test_unknown_name_or_split():
    with pytest.raises(UsageError, match="unknown data set"):
        load_dataset("cifar")
    with pytest.raises(UsageError, match="unknown split"):
        load_dataset("mnist-sample", "validation")


def test_registry_names():
    assert {"mnist", "fashion-mnist", "mnist-sample"} <= set(dataset_names())
    for spec in DATASETS.values():
        assert all(len(f.sha256) == 64 for f in spec.files)


def test_shipped_sample_splits():
    train = load_dataset("mnist-sample", "train")
    test = load_dataset("mnist-sample", "test")
    assert train.images.shape == (9_000, 28, 28) and test.images.shape == (1_000, 28, 28)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.uint8
    assert train.labels.max() <= 9 and test.labels.max() <= 9
    counts = np.bincount(np.concatenate([train.labels, test.labels]), minlength=10)
    assert counts.tolist() == SAMPLE_CLASS_COUNTS
    assert len(np.unique(test.labels)) == 10  # the held-out part mixes every class
    for split in (train, test):
        assert not split.images.flags.owndata and not split.labels.flags.owndata  # views, no copy
    assert "held-out last 1,000" in test.note
    assert train.source == SAMPLE_DIR


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_debian(monkeypatch, tmp_path):
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(datasets, "REPO_DATA_DIR", tmp_path)
    train = load_dataset("fashion-mnist", "train")
    test = load_dataset("fashion-mnist", "test")
    assert train.source == DEBIAN_FASHION
    assert train.images.shape == (60_000, 28, 28) and test.images.shape == (10_000, 28, 28)
    assert train.labels.shape == (60_000,) and test.labels.shape == (10_000,)


def test_a_lone_test_split_serves_evaluation_but_not_training(isolated):
    shared = isolated["shared"] / "toy"
    shared.mkdir(parents=True)
    for name in FILE_NAMES[2:]:  # t10k images and labels only, as in ../shared/datasets/mnist
        shutil.copyfile(write_toy(isolated["arg"] / "scratch") / name, shared / name)
    heldout = datasets.load_heldout("toy")
    assert heldout.source == shared and heldout.labels.tolist() == [7, 8, 9]
    with pytest.raises(DatasetNotFoundError):
        load_dataset("toy", "train")


def test_load_heldout_of_the_sample_is_its_last_1000_digits():
    heldout = datasets.load_heldout("mnist-sample")
    assert len(heldout.images) == 1000 and "held-out" in heldout.note
