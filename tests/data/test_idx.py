"""IDX reading and writing: round trips, and one clear IdxError per kind of damage."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mlx_generative.data.idx import read_idx, read_idx_pair, write_idx
from mlx_generative.errors import IdxError, UsageError

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(code: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + payload


def write_raw(path: Path, data: bytes, compress: bool = False) -> Path:
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return path


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4), (2, 1, 3, 2)])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip_every_dtype_and_rank(tmp_path, dtype, shape, suffix):
    array = (np.arange(np.prod(shape)) * 37 - 50).astype(dtype).reshape(shape)
    path = tmp_path / f"a.idx{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, array)
    assert path.read_bytes().startswith(b"\x1f\x8b") == (suffix == ".gz")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    array=st.sampled_from(DTYPES).flatmap(
        lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=1, max_dims=4, max_side=5))
    ),
    compress=st.booleans(),
)
def test_round_trip_property(tmp_path, array, compress):
    path = tmp_path / "p.idx"
    write_idx(path, array, compress=compress)
    back = read_idx(path)
    assert back.shape == array.shape and back.dtype == array.dtype
    # Byte comparison: NaNs and -0.0 must survive too.
    assert back.tobytes() == array.tobytes()


def test_header_is_big_endian_idx(tmp_path):
    path = tmp_path / "x.idx"
    write_idx(path, np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int16))
    assert path.read_bytes() == idx_bytes(0x0B, (2, 3), np.arange(1, 7, dtype=">i2").tobytes())


def test_gzip_is_detected_by_magic_not_suffix(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    gz_named_plain = tmp_path / "plain.gz"
    write_idx(gz_named_plain, array, compress=False)
    plain_named_gz = tmp_path / "compressed.idx"
    write_idx(plain_named_gz, array, compress=True)
    np.testing.assert_array_equal(read_idx(gz_named_plain), array)
    np.testing.assert_array_equal(read_idx(plain_named_gz), array)


def test_gzip_output_is_reproducible(tmp_path):
    array = np.arange(600, dtype=np.uint8)
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "b.gz", array)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


def test_write_leaves_no_temporary_files(tmp_path):
    write_idx(tmp_path / "a.gz", np.zeros(3, np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["a.gz"]


def test_uint8_is_a_view_of_the_bytes_read(tmp_path):
    path = tmp_path / "u8"
    write_idx(path, np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    array = read_idx(path)
    assert not array.flags.owndata and isinstance(array.base, (bytes, np.ndarray))
    assert not array.flags.writeable  # shared bytes must not be mutated by callers


def test_write_rejects_unsupported_arrays(tmp_path):
    with pytest.raises(UsageError, match="dtype"):
        write_idx(tmp_path / "b", np.zeros(3, dtype=bool))
    with pytest.raises(UsageError, match="rank"):
        write_idx(tmp_path / "s", np.zeros((1, 1, 1, 1, 1), np.uint8))


# --- corruption: each case names the file and says what is wrong -----------------


def assert_idx_error(path: Path, *words: str) -> str:
    with pytest.raises(IdxError) as info:
        read_idx(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert "\n" not in message
    for word in words:
        assert word in message, message
    return message


@pytest.mark.parametrize("compress", [False, True])
def test_bad_magic(tmp_path, compress):
    path = write_raw(tmp_path / "bad", b"\x01\x00\x08\x01" + b"\0\0\0\1" + b"x", compress)
    assert_idx_error(path, "bad magic")


def test_unsupported_dtype(tmp_path):
    path = write_raw(tmp_path / "dt", idx_bytes(0x0A, (1,), b"x"))
    assert_idx_error(path, "unsupported dtype code 0x0A")


@pytest.mark.parametrize("rank", [0, 5, 200])
def test_bad_rank(tmp_path, rank):
    path = write_raw(tmp_path / "r", bytes([0, 0, 8, rank]) + b"\0" * 64)
    assert_idx_error(path, f"bad rank {rank}")


def test_too_short_and_truncated_header(tmp_path):
    assert_idx_error(write_raw(tmp_path / "short", b"\0\0"), "too short")
    assert_idx_error(write_raw(tmp_path / "hdr", b"\0\0\x08\x03" + b"\0\0\0\1"), "truncated header")


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_payload_says_by_how_much(tmp_path, compress):
    data = idx_bytes(0x08, (10, 28, 28), bytes(7840 - 213))
    path = write_raw(tmp_path / "x.gz", data, compress)
    message = assert_idx_error(path, "truncated by 213 bytes", "10x28x28 uint8 (7840 bytes)", "payload has 7627")
    assert message == (
        f"{path}: truncated by 213 bytes: header says 10x28x28 uint8 (7840 bytes) but the payload has 7627"
    )


def test_truncated_wide_dtype_counts_bytes(tmp_path):
    path = write_raw(tmp_path / "f", idx_bytes(0x0E, (3,), bytes(20)))
    assert_idx_error(path, "truncated by 4 bytes", "float64 (24 bytes)")


def test_trailing_bytes(tmp_path):
    path = write_raw(tmp_path / "t", idx_bytes(0x08, (2, 2), bytes(4 + 7)))
    assert_idx_error(path, "7 trailing bytes")


def test_gzip_truncated_stream(tmp_path):
    good = gzip.compress(idx_bytes(0x08, (100,), bytes(range(100))), mtime=0)
    path = tmp_path / "cut.gz"
    path.write_bytes(good[: len(good) // 2])
    assert_idx_error(path, "gzip")


def test_gzip_crc_trailer_corrupted(tmp_path):
    good = bytearray(gzip.compress(idx_bytes(0x08, (100,), bytes(range(100))), mtime=0))
    good[-8] ^= 0xFF  # first byte of the CRC-32 trailer
    path = tmp_path / "crc.gz"
    path.write_bytes(bytes(good))
    assert_idx_error(path, "CRC")


def test_gzip_deflate_stream_corrupted(tmp_path):
    good = bytearray(gzip.compress(idx_bytes(0x08, (1000,), bytes(range(250)) * 4), mtime=0))
    good[len(good) // 2] ^= 0x55  # inside the deflate data
    path = tmp_path / "flip.gz"
    path.write_bytes(bytes(good))
    assert_idx_error(path, "gzip")


def test_missing_file(tmp_path):
    assert_idx_error(tmp_path / "nope.gz", "cannot read")


# --- pairs --------------------------------------------------------------------------


def test_read_pair(tmp_path):
    write_idx(tmp_path / "i.gz", np.zeros((4, 2, 2), np.uint8))
    write_idx(tmp_path / "l.gz", np.arange(4, dtype=np.uint8))
    images, labels = read_idx_pair(tmp_path / "i.gz", tmp_path / "l.gz")
    assert images.shape == (4, 2, 2) and labels.tolist() == [0, 1, 2, 3]


def test_read_pair_count_mismatch_names_both_files(tmp_path):
    images, labels = tmp_path / "i.gz", tmp_path / "l.gz"
    write_idx(images, np.zeros((4, 2, 2), np.uint8))
    write_idx(labels, np.zeros(5, np.uint8))
    with pytest.raises(IdxError, match="4 images but 5 labels") as info:
        read_idx_pair(images, labels)
    assert str(images) in str(info.value) and str(labels) in str(info.value)


def test_read_pair_checks_rank_and_dtype(tmp_path):
    write_idx(tmp_path / "flat", np.zeros((4, 4), np.uint8))
    write_idx(tmp_path / "wide", np.zeros(4, np.int32))
    write_idx(tmp_path / "l", np.zeros(4, np.uint8))
    write_idx(tmp_path / "i", np.zeros((4, 2, 2), np.uint8))
    with pytest.raises(IdxError, match="rank 3"):
        read_idx_pair(tmp_path / "flat", tmp_path / "l")
    with pytest.raises(IdxError, match="uint8"):
        read_idx_pair(tmp_path / "i", tmp_path / "wide")
