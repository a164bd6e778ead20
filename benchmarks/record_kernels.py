"""Record the CPU kernels MLX builds for the guide's commands, for runtime/prebuild.py.

    uv run python benchmarks/record_kernels.py

Runs each command as a user would, with an empty kernel cache (its own TMPDIR) and the
prebuild off, and keeps the C++ sources MLX wrote, in the order it wrote them, into
``mlx_generative/runtime/kernels/mlx-<version>.json.gz``. Where the optional native kernels
are installed (``uv sync --extra fast``), each command runs a second time with them, recorded
as "train ae native" and so on; without them the record's native entries are kept as they were. Run it again after upgrading MLX:
tests/runtime/test_prebuild.py fails while the installed version has no record, or a stale one.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from mlx_generative.runtime import native  # first: the package loads its BLAS before mlx.core

import mlx.core as mx  # noqa: I001

from cold_start import GUIDE

ROOT = Path(__file__).resolve().parent.parent
# Each family's guide command, and its defaults (a few steps: the kernels do not depend on how many).
COMMANDS = {f"train {kind}": [f"train {flags}", f"train {kind} --steps 30"] for kind, flags in GUIDE.items()}


def kernels_built(arguments: str, native: str) -> list[tuple[str, str]]:
    """(file name, C++) of each kernel MLX writes while ``python -m mlx_generative ARGUMENTS``
    runs with MLX_GENERATIVE_NATIVE=native, oldest first."""
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "TMPDIR": tmp, "MLX_GENERATIVE_PREBUILD": "off", "MLX_GENERATIVE_NATIVE": native}
        command = [sys.executable, "-m", "mlx_generative", *arguments.split(), "--out", out, "--no-progress"]
        subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
        cache = Path(tmp) / "mlx" / mx.__version__ / "cpu"
        sources = sorted(cache.glob("*.cpp"), key=lambda p: p.stat().st_mtime_ns)
        return [(p.stem, p.read_text()) for p in sources]


def main() -> int:
    path = ROOT / "mlx_generative" / "runtime" / "kernels" / f"mlx-{mx.__version__}.json.gz"
    record = {"mlx": mx.__version__, "commands": {}, "sources": {}}
    variants = {"": "0"}
    if native.kernels() is not None:
        variants[" native"] = "1"
    elif path.is_file():  # keep what a machine with the extension recorded
        with gzip.open(path, "rt", encoding="utf-8") as f:
            old = json.load(f)
        for group, names in old["commands"].items():
            if group.endswith(" native"):
                record["commands"][group] = names
                record["sources"].update({name: old["sources"][name] for name in names})
        print(f"native kernels not installed: kept the record's {sum(g.endswith(' native') for g in old['commands'])} "
              "native entries", flush=True)
    for suffix, setting in variants.items():
        for group, runs in COMMANDS.items():
            names = []
            for arguments in runs:
                for name, source in kernels_built(arguments, setting):
                    record["sources"][name] = source
                    if name not in names:
                        names.append(name)
                print(f"{arguments}{suffix}: {len(names)} kernels so far for '{group}{suffix}'", flush=True)
            record["commands"][group + suffix] = names
    path.parent.mkdir(exist_ok=True)
    with gzip.GzipFile(path, "wb", mtime=0) as f:  # mtime 0: the same record gives the same bytes
        f.write(json.dumps(record, indent=0, sort_keys=True).encode())
    print(f"{len(record['sources'])} kernel sources -> {path.relative_to(ROOT)} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
