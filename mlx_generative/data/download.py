"""Download a data set's IDX files from its mirrors, verified, with urllib only.

Each file is checked by the SHA-256 of its *decompressed* payload, so a mirror
that recompressed the files (or Debian's copy) still verifies, and it must parse
as IDX. A file reaches its final name only once verified (temporary file, then
`os.replace`); a mirror that fails in any way is skipped for the next one.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from ..errors import DataError, DownloadError, UsageError
from .datasets import DataFile, get_spec, user_cache_dir
from .idx import atomic_writer, decode_idx, decompress_idx, read_idx_bytes

# Seconds to wait for a connection or for the next block of data; a stalled
# mirror should give way to the next one, not hang the command.
TIMEOUT = 30.0
_CHUNK = 1 << 16
_USER_AGENT = "mlx-generative (python urllib)"


class _MirrorFailed(Exception):
    """One mirror could not deliver one file; the message says why."""


def download(
    name: str,
    dest: str | os.PathLike[str] | None = None,
    mirrors: list[str] | tuple[str, ...] | None = None,
    progress: bool = True,
) -> Path:
    """Fetch data set `name`'s files into `dest` and return `dest`.

    `dest` defaults to the user cache, `~/.cache/mlx-generative/<name>/`
    (honouring `XDG_CACHE_HOME`), where `load_dataset` looks. `mirrors` (base
    URLs) default to the registry's. Files already in `dest` that verify are
    not fetched again. Shows a tqdm bar per file on stderr when `progress`.

    Raises:
        UsageError: unknown data set, or one that cannot be downloaded.
        DownloadError: every mirror failed for some file; the message lists
            each mirror and why.
    """
    spec = get_spec(name)
    mirrors = tuple(mirrors) if mirrors else spec.mirrors
    if not mirrors:
        raise UsageError(f"{name} has no download mirrors; {spec.how_to_get}")
    target_dir = Path(dest) if dest is not None else user_cache_dir(name)
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create {target_dir}: {exc.strerror or exc}") from exc
    for file in spec.files:
        if _already_present(target_dir, file):
            continue
        _fetch_from_any(name, file, mirrors, target_dir / file.name, progress)
    return target_dir


def _already_present(directory: Path, file: DataFile) -> bool:
    """True if `directory` holds `file` (compressed or not) and it verifies."""
    for candidate in file.names:
        path = directory / candidate
        if path.is_file():
            try:
                if hashlib.sha256(read_idx_bytes(path)).hexdigest() == file.sha256:
                    return True
            except DataError:
                pass  # corrupt: fetch it again, replacing it atomically
    return False


def _fetch_from_any(
    name: str, file: DataFile, mirrors: tuple[str, ...], path: Path, progress: bool
) -> None:
    failures: list[str] = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + file.name
        try:
            raw = _fetch(url, progress)
            _verify(raw, url, file)
        except _MirrorFailed as exc:
            failures.append(f"{url}: {exc}")
            continue
        try:
            with atomic_writer(path) as out:
                out.write(raw)
        except OSError as exc:
            raise DownloadError(f"cannot write {path}: {exc.strerror or exc}") from exc
        return
    raise DownloadError(f"could not download {name}'s {file.name}; tried {'; '.join(failures)}")


def _fetch(url: str, progress: bool) -> bytes:
    """The body at `url`, in memory (the largest file is ~26 MB)."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            expected = response.length  # None when the server sends no Content-Length
            body = bytearray()
            with tqdm(
                total=expected,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=url.rsplit("/", 1)[-1],
                disable=not progress,
                leave=False,
            ) as bar:
                while chunk := response.read(_CHUNK):
                    body += chunk
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        raise _MirrorFailed(f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise _MirrorFailed(f"timed out after {TIMEOUT:g} s") from exc
        raise _MirrorFailed(f"{getattr(reason, 'strerror', None) or reason}") from exc
    except (TimeoutError, socket.timeout) as exc:
        raise _MirrorFailed(f"timed out after {TIMEOUT:g} s") from exc
    except http.client.IncompleteRead as exc:
        raise _MirrorFailed(f"connection closed after {len(exc.partial):,} bytes") from exc
    except (http.client.HTTPException, OSError, ValueError) as exc:
        raise _MirrorFailed(f"{type(exc).__name__}: {exc}") from exc
    if expected is not None and len(body) < expected:
        raise _MirrorFailed(f"connection closed after {len(body):,} of {expected:,} bytes")
    return bytes(body)


def _verify(raw: bytes, url: str, file: DataFile) -> None:
    """Raise `_MirrorFailed` unless `raw` is `file`: right checksum, valid IDX."""
    try:
        payload = decompress_idx(raw, url)
        digest = hashlib.sha256(payload).hexdigest()
        if digest != file.sha256:
            raise _MirrorFailed(
                f"checksum mismatch (SHA-256 of the decompressed data is {digest[:16]}..., "
                f"expected {file.sha256[:16]}...)"
            )
        decode_idx(payload, url)
    except DataError as exc:
        raise _MirrorFailed(str(exc).removeprefix(f"{url}: ")) from exc
