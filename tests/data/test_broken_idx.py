"""Damaged IDX files: one line naming the file and the damage; fuzzed files never crash the reader."""

from __future__ import annotations

import gzip
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from mutations import FUZZ, Mutation, mutate

from mlx_generative.data.idx import read_idx, write_idx
from mlx_generative.errors import IdxError


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
    target.write_bytes(mutate(original, mutation))
    try:
        array = read_idx(target)
    except IdxError as e:
        assert str(target) in str(e)
    else:
        assert isinstance(array, np.ndarray)


