"""MLX's CPU kernel compiler: is there one, is this the first run, and making that run quick.

On the CPU, ``mx.compile`` turns each fused elementwise chain into C++ and builds it with
``g++ -O3`` into ``$TMPDIR/mlx/<version>/cpu/`` the first time it meets it (about 0.6 s a
kernel, some twenty kernels a model). Almost all of that time is g++ parsing the same
69,000-line preamble header every time. So on Linux we put a small ``g++`` in front of the
real one on PATH that adds an include folder holding that header *precompiled* (built once
per machine into the user cache, ~2.5 s): the same command, 0.6 -> 0.2 s a kernel. GCC
ignores a precompiled header that does not match and reads the plain one, so the worst case
is today's speed. Without any g++, MLX >= 0.32 silently runs uncompiled (slower): we say so.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import mlx.core as mx

PREAMBLE = "mlx/backend/cpu/compiled_preamble.h"
# What MLX's CPU JIT passes g++ (mlx/backend/cpu/jit_compiler.cpp); the header must be
# precompiled with the same language and code-generation flags to be used.
PCH_FLAGS = ("-std=c++17", "-O3", "-Wall", "-fPIC")
ENV_VAR = "MLX_GENERATIVE_PCH"  # "off": leave MLX's compiler calls alone

WRAPPER = """#!/bin/sh
# Written by mlx-generative (runtime/jit.py): MLX's kernel builds get the precompiled header.
real={real}
pch={pch}
case " $* " in
  *" -shared "*{include}*)
    if [ ! -f "$pch/{preamble}.gch" ]; then
      mkdir -p "$pch/{dirname}" && tmp="$pch/{preamble}.gch.$$" &&
      "$real" {flags} -I {include} -x c++-header {include}/{preamble} -o "$tmp" 2>/dev/null &&
      mv -f "$tmp" "$pch/{preamble}.gch"
      rm -f "$tmp"
    fi
    exec "$real" -I "$pch" "$@" ;;
esac
exec "$real" "$@"
"""


def compiler() -> str | None:
    """The g++ MLX compiles its CPU kernels with (it looks on PATH), or None."""
    return shutil.which("g++", path=_original_path())


def _original_path() -> str:
    ours = str(_wrapper_dir())
    return os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != ours)


def kernel_cache() -> Path:
    """Where MLX keeps the kernels it has built: ``$TMPDIR/mlx/<version>/cpu``."""
    return Path(tempfile.gettempdir()) / "mlx" / mx.__version__ / "cpu"


def first_run() -> bool:
    """True when MLX has built no CPU kernel yet on this machine (or since $TMPDIR was emptied)."""
    cache = kernel_cache()
    return not cache.is_dir() or not any(cache.glob("*.so"))


def _cache_root() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "mlx-generative" / "jit" / mx.__version__


def include_dir() -> Path:
    """MLX's installed headers, which its kernel sources include."""
    return Path(mx.__file__).parent / "include"


def _wrapper_dir() -> Path:
    """One wrapper per MLX installation (it names that installation's headers)."""
    return _cache_root() / "bin" / hashlib.sha256(str(include_dir()).encode()).hexdigest()[:12]


@functools.cache  # asked at import and by every prebuild thread: one g++ call
def header_dir(real: str) -> Path:
    """The include folder holding the precompiled preamble for this g++ (its ``.gch`` may not exist yet)."""
    version = subprocess.run([real, "-dumpfullversion"], capture_output=True, text=True).stdout.strip()
    return _cache_root() / f"gcc-{version or 'unknown'}"


def install_precompiled_header() -> str | None:
    """Put the g++ that adds the precompiled header first on this process's PATH; returns
    why not, or None when done. The header is built the first time a kernel is."""
    if not sys.platform.startswith("linux") or os.environ.get(ENV_VAR, "").lower() in ("off", "0", "no"):
        return "not on Linux, or turned off"
    real = compiler()
    include = include_dir()
    if real is None or not (include / PREAMBLE).is_file():
        return "no g++, or MLX ships no preamble header"
    pch = header_dir(real)
    script = WRAPPER.format(real=shlex.quote(real), pch=shlex.quote(str(pch)), include=shlex.quote(str(include)),
                            preamble=PREAMBLE, dirname=os.path.dirname(PREAMBLE), flags=" ".join(PCH_FLAGS))
    wrapper = _wrapper_dir() / "g++"
    try:
        if not wrapper.is_file() or wrapper.read_text() != script:
            wrapper.parent.mkdir(parents=True, exist_ok=True)
            tmp = wrapper.with_name(f".g++.{os.getpid()}")
            tmp.write_text(script)
            tmp.chmod(0o755)
            os.replace(tmp, wrapper)
    except OSError as e:
        return f"cannot write {wrapper} ({e.strerror})"
    os.environ["PATH"] = os.pathsep.join([str(wrapper.parent), _original_path()])
    return None


def warning_line() -> str | None:
    """One line for trainers when MLX has no compiler and runs its kernels uncompiled."""
    if compiler() is not None:
        return None
    return ("warning: no C++ compiler (g++) on PATH: MLX runs its CPU kernels uncompiled, about 15-25% "
            "slower (benchmarks/RESULTS.md). Fix: apt-get install g++ (Debian/Ubuntu)")
