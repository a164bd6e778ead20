"""Read and write IDX files, the format of MNIST and its look-alikes.

An IDX file is a 4-byte magic number (two zero bytes, a dtype code, the rank),
one big-endian uint32 per dimension, then the values in C order, big-endian.
Files may be gzip-compressed; we tell by the gzip magic bytes, not the suffix,
because mirrors and users rename files freely.

Every malformed file raises `IdxError` whose one-line message starts with the
file's path and says what is wrong; no numpy, zlib, gzip or struct exception
escapes.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import os
import struct
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import IdxError, UsageError

# dtype code -> big-endian dtype as stored in the file.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
# Ranks above 4 exist in no IDX data set we know of; a larger byte almost
# certainly means the file is not IDX at all.
MAX_RANK = 4
GZIP_MAGIC = b"\x1f\x8b"
# Dimensions are 4-byte integers; keep to the signed range so that readers
# which treat them as int32 (as LeCun's description does) agree with us.
_MAX_DIM = 2**31 - 1


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into an array in native byte order.

    The whole file is read once. uint8 and int8 results are read-only
    `np.frombuffer` views of the bytes read, so loading costs no extra copy;
    call `.copy()` if you need to write to them. Wider types are converted from
    big-endian to native order (one copy on little-endian machines).

    Raises:
        IdxError: the file cannot be read or is not a well-formed IDX file.
    """
    return decode_idx(read_idx_bytes(path), path)


def read_idx_bytes(path: str | os.PathLike[str]) -> bytes:
    """The IDX bytes of a file, gunzipped if it starts with the gzip magic.

    Useful to checksum the payload and then `decode_idx` it without reading
    the file twice.

    Raises:
        IdxError: the file cannot be read or its gzip stream is corrupt.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise IdxError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return decompress_idx(raw, path)


def decompress_idx(raw: bytes, source: str | os.PathLike[str]) -> bytes:
    """Gunzip `raw` if it starts with the gzip magic, else return it unchanged.

    `source` names the data in error messages (a path or a URL).
    """
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError as exc:
        raise IdxError(f"{source}: gzip stream is truncated ({exc})") from exc
    except (OSError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise IdxError(f"{source}: corrupt gzip data: {exc}") from exc


def decode_idx(data: bytes, source: str | os.PathLike[str]) -> np.ndarray:
    """Decode IDX bytes (gzip-compressed or not) into an array in native byte order.

    `source` names the data in error messages (a path or a URL). uint8 and
    int8 results are read-only views of `data`.
    """
    data = decompress_idx(data, source)
    dtype, dims, header_size = _parse_header(source, data)
    _check_payload_size(source, dims, dtype, len(data) - header_size)
    array = np.frombuffer(data, dtype=dtype, count=math.prod(dims), offset=header_size)
    array = array.reshape(dims)
    if not dtype.isnative:
        array = array.astype(dtype.newbyteorder("="))
    return array


def read_idx_pair(
    images_path: str | os.PathLike[str], labels_path: str | os.PathLike[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Read an images file and its labels file: uint8 (N, H, W) and uint8 (N,).

    Raises:
        IdxError: either file is malformed, has the wrong rank or dtype, or
            the two files disagree on the number of items.
    """
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    check_idx_pair(images, labels, images_path, labels_path)
    return images, labels


def check_idx_pair(
    images: np.ndarray,
    labels: np.ndarray,
    images_source: str | os.PathLike[str],
    labels_source: str | os.PathLike[str],
) -> None:
    """Raise `IdxError` unless `images` is uint8 (N, H, W) and `labels` uint8 (N,)."""
    _expect(images_source, images, rank=3, what="images (N, H, W)")
    _expect(labels_source, labels, rank=1, what="labels (N,)")
    if len(images) != len(labels):
        raise IdxError(
            f"{images_source} and {labels_source} disagree: "
            f"{len(images):,} images but {len(labels):,} labels"
        )


def write_idx(
    path: str | os.PathLike[str], array: np.ndarray, compress: bool | None = None
) -> None:
    """Write `array` as an IDX file, atomically.

    `compress` defaults to whether `path` ends in `.gz`. Gzip output has
    mtime 0 and no embedded file name, so the same array gives the same bytes
    on every run (for a given zlib). The file appears under its final name only
    once complete: it is written to a temporary file in the same directory and
    moved into place with `os.replace`.

    Raises:
        UsageError: the array's dtype or rank cannot be stored in IDX.
    """
    array = np.asarray(array)
    code = _dtype_code(array.dtype)
    if not 1 <= array.ndim <= MAX_RANK:
        raise UsageError(f"{path}: IDX stores ranks 1..{MAX_RANK}, not {array.ndim}")
    if any(d > _MAX_DIM for d in array.shape):
        raise UsageError(f"{path}: dimension too large for IDX: {array.shape}")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = np.ascontiguousarray(array, dtype=IDX_DTYPES[code])
    if compress is None:
        compress = str(path).endswith(".gz")
    with atomic_writer(path) as out:
        if compress:
            # filename="" keeps the temporary file's name out of the gzip header.
            with gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=9, mtime=0) as gz:
                gz.write(header)
                gz.write(memoryview(payload).cast("B"))
        else:
            out.write(header)
            out.write(memoryview(payload).cast("B"))


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open a temporary file next to `path`; on success move it onto `path`.

    On any exception the temporary file is removed, so a failed write never
    leaves anything under the final name.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp_name, 0o644)  # mkstemp makes 0600; data files are meant to be shared
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def _parse_header(path: str | os.PathLike[str], data: bytes) -> tuple[np.dtype, tuple[int, ...], int]:
    """Validate the magic number and dimensions; return (dtype, dims, header size)."""
    if len(data) < 4:
        raise IdxError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0:
        raise IdxError(
            f"{path}: bad magic number 0x{data[:4].hex()}: "
            "an IDX file starts with two zero bytes (is this an IDX file?)"
        )
    code, rank = data[2], data[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise IdxError(f"{path}: unsupported dtype code 0x{code:02X} (known: {known})")
    if not 1 <= rank <= MAX_RANK:
        raise IdxError(f"{path}: bad rank {rank}: expected 1..{MAX_RANK}")
    header_size = 4 + 4 * rank
    if len(data) < header_size:
        raise IdxError(
            f"{path}: truncated header: rank {rank} needs {header_size} bytes "
            f"but the file has {len(data)}"
        )
    dims = struct.unpack_from(f">{rank}I", data, 4)
    for axis, size in enumerate(dims):
        if size > _MAX_DIM:
            raise IdxError(f"{path}: bad dimension {axis}: {size} is out of range")
    return IDX_DTYPES[code], dims, header_size


def _check_payload_size(
    path: str | os.PathLike[str], dims: tuple[int, ...], dtype: np.dtype, actual: int
) -> None:
    expected = math.prod(dims) * dtype.itemsize
    if actual == expected:
        return
    shape = "x".join(str(d) for d in dims)
    says = f"header says {shape} {dtype.newbyteorder('=').name} ({expected} bytes) but the payload has {actual}"
    if actual < expected:
        raise IdxError(f"{path}: truncated by {expected - actual} bytes: {says}")
    raise IdxError(f"{path}: {actual - expected} trailing bytes: {says}")


def _dtype_code(dtype: np.dtype) -> int:
    for code, stored in IDX_DTYPES.items():
        if dtype.newbyteorder("=") == stored.newbyteorder("="):
            return code
    names = ", ".join(d.newbyteorder("=").name for d in IDX_DTYPES.values())
    raise UsageError(f"IDX cannot store dtype {dtype}; use one of {names}")


def _expect(path: str | os.PathLike[str], array: np.ndarray, rank: int, what: str) -> None:
    if array.ndim != rank:
        raise IdxError(f"{path}: expected {what} of rank {rank} but the file has shape {array.shape}")
    if array.dtype != np.uint8:
        raise IdxError(f"{path}: expected uint8 {what} but the file holds {array.dtype}")
