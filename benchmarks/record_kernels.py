"""Record the CPU kernels MLX builds for the guide's commands, for runtime/prebuild.py.

    uv run python benchmarks/record_kernels.py

Runs each command as a user would, with an empty kernel cache (its own TMPDIR) and the
prebuild off, and keeps the C++ sources MLX wrote, in the order it wrote them, into
``mlx_generative/runtime/kernels/mlx-<version>.json.gz``. Run it again after upgrading MLX:
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

import mlx.core as mx

from cold_start import GUIDE

ROOT = Path(__file__).resolve().parent.parent
# Each family's guide command, and its defaults (a few steps: the kernels do not depend on how many).
COMMANDS = {f"train {kind}": [f"train {flags}", f"train {kind} --steps 30"] for kind, flags in GUIDE.items()}


def kernels_built(arguments: str) -> list[tuple[str, str]]:
    """(file name, C++) of each kernel MLX writes while ``python -m mlx_generative ARGUMENTS``
    runs, oldest first."""
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "TMPDIR": tmp, "MLX_GENERATIVE_PREBUILD": "off"}
        command = [sys.executable, "-m", "mlx_generative", *arguments.split(), "--out", out, "--no-progress"]
        subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
        cache = Path(tmp) / "mlx" / mx.__version__ / "cpu"
        sources = sorted(cache.glob("*.cpp"), key=lambda p: p.stat().st_mtime_ns)
        return [(p.stem, p.read_text()) for p in sources]


def main() -> int:
    record = {"mlx": mx.__version__, "commands": {}, "sources": {}}
    for group, runs in COMMANDS.items():
        names = []
        for arguments in runs:
            for name, source in kernels_built(arguments):
                record["sources"][name] = source
                if name not in names:
                    names.append(name)
            print(f"{arguments}: {len(names)} kernels so far for '{group}'", flush=True)
        record["commands"][group] = names
    path = ROOT / "mlx_generative" / "runtime" / "kernels" / f"mlx-{mx.__version__}.json.gz"
    path.parent.mkdir(exist_ok=True)
    with gzip.GzipFile(path, "wb", mtime=0) as f:  # mtime 0: the same record gives the same bytes
        f.write(json.dumps(record, indent=0, sort_keys=True).encode())
    print(f"{len(record['sources'])} kernel sources -> {path.relative_to(ROOT)} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
