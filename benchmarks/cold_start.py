"""The first run against the second: the guide's commands with an empty kernel cache, then warm.

    uv run python benchmarks/cold_start.py [--models ae,vae,ddpm] [--rounds 3] [--first-ever]

Each command runs as a user runs it (`uv run bin/train ...`, the whole process timed). Cold:
`TMPDIR` points at a fresh empty folder, so MLX finds none of its compiled CPU kernels. Warm: a
folder that one untimed run has filled. Each round runs one of each, alternating which goes
first; medians. `--first-ever` also removes the precompiled kernel header from the user cache
before every cold run, as on a machine that never ran us.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
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
    p.add_argument("--rounds", type=int, default=3, help="cold and warm runs of each command (medians)")
    p.add_argument("--first-ever", action="store_true", help="also without the precompiled header")
    args = p.parse_args(argv)
    uv = shutil.which("uv") or "uv"
    user_cache = Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")) / "mlx-generative" / "jit"
    print("| command | cold s (median) | warm s (median) | cold overhead | rounds |\n|---|---|---|---|---|")
    for model in args.models.split(","):
        with tempfile.TemporaryDirectory() as warm_tmp, tempfile.TemporaryDirectory() as out:
            command = [uv, "run", "bin/train", *GUIDE[model].split(), "--out", out, "--no-progress"]
            timed(command, {**os.environ, "TMPDIR": warm_tmp})  # fills the warm kernel cache, untimed
            cold, warm = [], []
            for round_ in range(args.rounds):
                with tempfile.TemporaryDirectory() as cold_tmp:
                    if args.first_ever:
                        shutil.rmtree(user_cache, ignore_errors=True)
                    runs = [(cold, cold_tmp), (warm, warm_tmp)]
                    for times, tmp in runs if round_ % 2 == 0 else runs[::-1]:  # alternate which goes first
                        times.append(timed(command, {**os.environ, "TMPDIR": tmp}))
            c, w = statistics.median(cold), statistics.median(warm)
            spread = ", ".join(f"{a:.1f}/{b:.1f}" for a, b in zip(cold, warm))
            print(f"| {GUIDE[model]} | {c:.1f} | {w:.1f} | {100 * (c - w) / w:+.0f}% | {spread} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
