"""--dataset idx: a folder of one's own IDX files, found by name, checked by structure."""

from __future__ import annotations

import numpy as np
import pytest

from mlx_generative.data import idx_folder
from mlx_generative.data.datasets import find_dataset, load_dataset, load_heldout
from mlx_generative.data.idx import write_idx
from mlx_generative.errors import DataError, UsageError
from mlx_generative.families import FAMILIES


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def test_emnist_style_names_with_their_own_test_split(tmp_path):
    """EMNIST's files carry a prefix and say "test" where MNIST says "t10k"; raw or gzip."""
    train, test = _images(20), _images(5, seed=1)
    write_idx(tmp_path / "emnist-digits-train-images-idx3-ubyte.gz", train)
    write_idx(tmp_path / "emnist-digits-train-labels-idx1-ubyte.gz", np.arange(20, dtype=np.uint8) % 10)
    write_idx(tmp_path / "emnist-digits-test-images-idx3-ubyte", test)
    write_idx(tmp_path / "emnist-digits-test-labels-idx1-ubyte", np.arange(5, dtype=np.uint8))
    got_train, got_test = load_dataset("idx", "train", tmp_path), load_dataset("idx", "test", tmp_path)
    np.testing.assert_array_equal(got_train.images, train)
    np.testing.assert_array_equal(got_test.images, test)
    assert got_test.labels.tolist() == [0, 1, 2, 3, 4]
    assert got_train.name == "idx" and got_train.source == tmp_path.resolve()
    assert "emnist-digits-test-images-idx3-ubyte" in got_test.note
    assert find_dataset("idx", tmp_path) == tmp_path.resolve()
    assert load_heldout("idx", tmp_path).images.shape == (5, 28, 28)


def test_without_a_test_file_the_last_tenth_is_held_out(tmp_path):
    images = _images(50)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    train, test = load_dataset("idx", "train", tmp_path), load_dataset("idx", "test", tmp_path)
    np.testing.assert_array_equal(train.images, images[:45])
    np.testing.assert_array_equal(test.images, images[45:])
    assert train.labels is None and test.labels is None  # labels are optional
    assert "held-out last 5 images" in test.note and "no t10k file" in test.note


def test_the_held_out_tail_is_capped_at_10000(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((120_000, 28, 28), np.uint8))
    assert len(load_dataset("idx", "test", tmp_path).images) == 10_000


def test_a_damaged_test_file_fails_when_training_starts(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", _images(8))
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + bytes(8))
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte: truncated header"):
        load_dataset("idx", "train", tmp_path)


def test_idx_needs_a_folder():
    with pytest.raises(UsageError, match="--dataset idx needs --data-dir"):
        load_dataset("idx")


def test_the_size_checked_is_the_size_every_family_builds_for():
    sizes = {name: family.args_cls().image_size for name, family in FAMILIES.items()}
    assert set(sizes.values()) == {idx_folder.IMAGE_SIZE}, sizes
