"""Rebuild the pretrained runs shipped in data/pretrained/, each by its own bin/train command.

    uv run python data/build_pretrained.py               # all six, about 13 minutes on 2 cores
    uv run python data/build_pretrained.py --only vae,ae # some of them

Each run trains on the shipped 10,000-digit sample (`--dataset mnist-sample`: its first 9,000
digits; the held-out figures are on its last 1,000) at seed 0. The run directory is kept as
bin/train wrote it, less what only a resume needs and the GIFs (NOT_SHIPPED), plus
PROVENANCE.json: the exact command, the commit it ran at, the seed, the wall time, the
machine and the SHA-256 of the weights. `mg.load("pretrained/vae")` and
`bin/sample pretrained/ddpm` find them by these names.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRETRAINED = ROOT / "data" / "pretrained"
SEED = 0
# name -> bin/train arguments. The first three are the guide's commands (README, "A
# five-minute tour"); the others are each family's defaults.
RECIPES = {
    "ae": ["ae", "--steps", "500", "--latent-dim", "64", "--limit-train", "10000"],
    "vae": ["vae", "--steps", "600", "--warmup-steps", "200", "--latent-dim", "32", "--limit-train", "10000"],
    "ddpm": ["ddpm", "--steps", "800", "--T", "6", "--batch-size", "128", "--limit-train", "10000"],
    "vae-conditional": ["vae", "--conditional"],
    "ddpm-conditional": ["ddpm", "--conditional"],
    "flow": ["flow"],
}
# Left out: what only a resume needs (checkpoints/, the progress/ frames), the lock a live run holds,
# and the GIFs (about 2 MB a run; `bin/sample pretrained/ddpm --gif` draws one).
NOT_SHIPPED = ("checkpoints", "progress", ".lock", "*.gif")


def command_for(name: str, out: Path) -> list[str]:
    return ["bin/train", *RECIPES[name], "--dataset", "mnist-sample", "--seed", str(SEED),
            "--out", str(out), "--name", name, "--no-progress"]


def git_commit() -> str:
    """HEAD, marked "-dirty" when tracked files differ from it (the run then used uncommitted code)."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return (head or "unknown") + ("-dirty" if dirty else "")


def train_seconds(run_dir: Path) -> float:
    """Training time as bin/train recorded it (the "wall" records of metrics.jsonl)."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return round(sum(r["seconds"] for r in records if r.get("split") == "wall"), 1)


def build(name: str, scratch: Path) -> dict:
    command = command_for(name, scratch)
    print(f"[{name}] uv run {shlex.join(command)}", flush=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, *command], cwd=ROOT, check=True)
    wall = time.perf_counter() - started
    trained = scratch / name
    target = PRETRAINED / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(trained, target, ignore=shutil.ignore_patterns(*NOT_SHIPPED))
    import mlx.core as mx  # the version that trained (bin/train ran in this environment)

    provenance = {
        "name": name,
        "command": "uv run " + shlex.join(["bin/train", *RECIPES[name], "--dataset", "mnist-sample",
                                           "--seed", str(SEED)]),
        "rebuild": f"uv run python data/build_pretrained.py --only {name}",
        "commit": git_commit(),
        "seed": SEED,
        "train_seconds": train_seconds(trained),
        "command_seconds": round(wall, 1),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": f"{platform.machine()}, {platform.system()}, {_cpu_count()} cores",
        "mlx": mx.__version__,
        "python": platform.python_version(),
        "model_sha256": hashlib.sha256((target / "model.safetensors").read_bytes()).hexdigest(),
    }
    (target / "PROVENANCE.json").write_text(json.dumps(provenance, indent=2) + "\n")
    print(f"[{name}] {provenance['train_seconds']} s training, {wall:.0f} s in all -> {target}", flush=True)
    return provenance


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", help=f"comma-separated names, of {', '.join(RECIPES)} (default all)")
    args = p.parse_args(argv)
    names = args.only.split(",") if args.only else list(RECIPES)
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        print(f"--only: unknown {', '.join(unknown)}; choose from {', '.join(RECIPES)}", file=sys.stderr)
        return 2
    PRETRAINED.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pretrained-") as scratch:
        for name in names:
            build(name, Path(scratch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
