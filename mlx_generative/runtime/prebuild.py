"""Build the CPU kernels a command is known to need before it needs them, many per g++ call.

MLX builds each fused kernel the first time it meets one: one ``g++`` per kernel, one at a
time (it holds a lock), about 0.15 s each even with the precompiled header (jit.py), and a
guide command meets 36 to 85 of them. Most of those 0.15 s are g++ starting and instantiating
the preamble's templates, the same work for every kernel. So for the commands we know, whose
kernel sources are recorded per MLX version in ``kernels/mlx-<version>.json.gz`` (by
``benchmarks/record_kernels.py``), we compile all of a command's kernels in one g++ call per
core, into one library each, and give every kernel the file MLX looks for, a symlink
``lib<kernel>.so`` to that library. MLX then loads them instead of building them. A kernel the
record lacks (other settings, another MLX version) is built by MLX as before.

With the optional native kernels installed (native.py) the compiled graphs differ (no padding
copies, no GroupNorm or SiLU loops): those kernels are recorded under the command's name
followed by " native" (``record_key``).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import mlx.core as mx

from . import jit, native

RECORDS = Path(__file__).parent / "kernels"
ENV_VAR = "MLX_GENERATIVE_PREBUILD"  # "off": let MLX build every kernel itself
INCLUDE_LINE = f'#include "{jit.PREAMBLE}"'
KERNELS_PER_CALL = 8  # below this a second g++ costs more than it saves


def record_path(version: str = mx.__version__) -> Path:
    return RECORDS / f"mlx-{version}.json.gz"


def load_record(version: str = mx.__version__) -> dict | None:
    """``{"mlx": version, "sources": {file name: C++}, "commands": {"train ae": [file names]}}``."""
    path = record_path(version)
    if not path.is_file():
        return None
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return json.load(f)


class Prebuild:
    """Kernels being built in background threads; ``wait()`` before the first compiled call."""

    def __init__(self):
        self._threads: list[threading.Thread] = []
        self.built: list[str] = []  # kernel file names now in the cache, filled in by the threads

    def wait(self) -> list[str]:
        for thread in self._threads:
            thread.join()
        return self.built


def record_key(command: str) -> str:
    """The record's name for ``command``'s kernels with the native kernels as now installed."""
    return f"{command} native" if native.kernels() is not None else command


def start(command: str) -> Prebuild:
    """Start building, in the background, the recorded kernels of ``command`` (``"train vae"``)
    that the kernel cache lacks. Does nothing without a record, a g++ or Linux."""
    if os.environ.get(ENV_VAR, "").lower() in ("off", "0", "no") or not sys.platform.startswith("linux"):
        return Prebuild()
    real = jit.compiler()
    record = load_record() if real else None
    if record is None:
        return Prebuild()
    cache = jit.kernel_cache()
    missing = [name for name in record["commands"].get(record_key(command), [])
               if not (cache / f"lib{name}.so").exists() and name in record["sources"]]
    if not missing:
        return Prebuild()
    cache.mkdir(parents=True, exist_ok=True)
    calls = max(1, min(os.cpu_count() or 1, math.ceil(len(missing) / KERNELS_PER_CALL)))
    prebuild = Prebuild()
    for names in (missing[i::calls] for i in range(calls)):
        thread = threading.Thread(target=_build, args=(real, cache, names, record["sources"], prebuild.built),
                                  daemon=True, name="mlx-generative kernel prebuild")
        thread.start()
        prebuild._threads.append(thread)
    return prebuild


def combined_source(names: list[str], sources: dict[str, str]) -> str:
    """One translation unit holding every kernel: MLX's sources each start by including the
    preamble, which may be included once, first (it is what the precompiled header replaces)."""
    bodies = []
    for name in names:
        first, _, body = sources[name].partition("\n")
        if first.strip() != INCLUDE_LINE:
            raise ValueError(f"kernel {name}: its source does not start with {INCLUDE_LINE}")
        bodies.append(body)
    return "\n".join([INCLUDE_LINE, *bodies])


def build_command(real: str, source: Path, library: Path) -> list[str]:
    """MLX's own command for one kernel (jit.PCH_FLAGS, -shared, its headers), and the
    precompiled header's folder when that header exists (g++ checks that it matches)."""
    pch = jit.header_dir(real)
    header = ["-I", str(pch)] if (pch / f"{jit.PREAMBLE}.gch").is_file() else []
    return [real, *jit.PCH_FLAGS, "-shared", *header, "-I", str(jit.include_dir()), str(source), "-o", str(library)]


def _build(real: str, cache: Path, names: list[str], sources: dict[str, str], built: list[str]) -> None:
    try:
        source = combined_source(names, sources)
    except ValueError:
        return
    digest = hashlib.sha256(f"{real}\n{jit.PCH_FLAGS}\n{source}".encode()).hexdigest()[:16]
    library = cache / f"mlx-generative-{digest}.so"
    if not library.is_file():
        # Private names until the library is whole: a half-written one is never loaded.
        tmp_source = cache / f".mlx-generative-{digest}.{os.getpid()}.cpp"
        tmp_library = cache / f".mlx-generative-{digest}.{os.getpid()}.so"
        try:
            tmp_source.write_text(source)
            done = subprocess.run(build_command(real, tmp_source, tmp_library), capture_output=True, timeout=600)
            if done.returncode != 0:
                return  # MLX builds these kernels itself, as it would have anyway
            os.replace(tmp_library, library)
        except (OSError, subprocess.SubprocessError):
            return
        finally:
            for tmp in (tmp_source, tmp_library):
                tmp.unlink(missing_ok=True)
    for name in names:
        try:
            os.symlink(library.name, cache / f"lib{name}.so")  # relative: the cache folder may move
        except FileExistsError:
            continue  # MLX (or another process) got there first: the same kernel, left alone
        except OSError:
            return
        built.append(name)
