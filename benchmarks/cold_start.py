"""The first run against the second: the guide's commands with an empty kernel cache, then warm.

    uv run python benchmarks/cold_start.py [--models ae,vae,ddpm] [--first-ever]

Each command runs as a user runs it (`uv run bin/train ...`, the whole process timed) with
`TMPDIR` pointing at a fresh empty folder, so MLX finds none of its compiled CPU kernels
(cold), then once more with the same folder (warm). `--first-ever` also removes the
precompiled kernel header from the user cache first, as on a machine that never ran us.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUIDE = {
    "ae": "ae --steps 500 --latent-dim 64 --limit-train 10000",
    "vae": "vae --steps 600 --warmup-steps 200 --latent-dim 32 --limit-train 10000",
    "ddpm": "ddpm --steps 800 --T 6 --batch-size 128 --limit-train 10000",
}


def timed(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="ae,vae,ddpm")
    p.add_argument("--first-ever", action="store_true", help="also without the precompiled header")
    args = p.parse_args(argv)
    uv = shutil.which("uv") or "uv"
    print("| command | cold s | warm s | cold overhead |\n|---|---|---|---|")
    for model in args.models.split(","):
        with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as out:
            env = {**os.environ, "TMPDIR": tmp}
            if args.first_ever:
                cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
                shutil.rmtree(Path(cache) / "mlx-generative" / "jit", ignore_errors=True)
            command = [uv, "run", "bin/train", *GUIDE[model].split(), "--out", out, "--no-progress"]
            cold, warm = timed(command, env), timed(command, env)
            print(f"| {GUIDE[model]} | {cold:.1f} | {warm:.1f} | {100 * (cold - warm) / warm:+.0f}% |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
