"""Where a training step's time goes, by kind of kernel: `perf` samples of one step's process.

    uv run python benchmarks/step_profile.py [--models ae,vae,ddpm] [--steps 60]

Each model's step (engine_mlx.py, the trainer's compiled step at batch 128, split over the
CPU streams training uses) runs in its own process under `perf record` (Debian: linux-perf),
after a warm-up run that fills the kernel cache; a second run of one step is subtracted, so the
counts are of the steps alone. Every CPU sample is put in one class by the
library and function it fell in, and each class's share of all samples is printed with the
functions that weigh most in it. Samples count both cores: a share is of the CPU time.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENGINE = HERE / "engine_mlx.py"

# (class, library pattern, function pattern): the first match wins.
CLASSES = [
    ("GEMM (OpenBLAS: sgemm kernels and packing)", r"openblas", r""),
    ("native kernels (convolution, GroupNorm + SiLU, SiLU; uv sync --extra fast)", r"^_ext\.", r""),
    ("Python, C library and OS", r"python|^libc[.-]|^libm[.-]|^ld-linux|^libstdc|kernel\.kallsyms|^\[", r""),
    ("copies (pad, slice, transpose, concatenate)", r"libmlx", r"copy|Copy|concatenate|pad|slice"),
    ("reductions (sums, means, norms)", r"libmlx", r"reduc|Reduc|sum|Sum|strided_reduce"),
    ("elementwise outside mx.compile", r"libmlx", r"binary|Binary|unary|Unary|ternary|Select"),
    ("MLX scheduling and memory", r"libmlx", r""),
    # What is left are the kernels mx.compile built into the kernel cache (lib<kernel>.so).
    ("fused elementwise (mx.compile's JIT kernels)", r"", r""),
]


def perf_samples(model: str, steps: int) -> collections.Counter:
    """(library, function) -> samples of ``steps`` steps of ``model``: a run of 1 + ``steps``
    steps less a run of 1, so that start-up, data and the warm-up steps cancel."""
    engine = [sys.executable, str(ENGINE), "step", "--model", model, "--warmup", "3"]
    subprocess.run([*engine, "--steps", "1"], check=True, capture_output=True)  # fills the kernel cache
    counts = recorded([*engine, "--steps", str(1 + steps)])
    counts.subtract(recorded([*engine, "--steps", "1"]))
    return +counts  # drops what went negative (sampling noise)


def recorded(command: list[str]) -> collections.Counter:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "perf.data"
        subprocess.run(["perf", "record", "-q", "-F", "499", "-o", str(data), "--", *command],
                       check=True, capture_output=True)
        report = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "-q", "--no-children",
                                 "--sort", "dso,sym", "-F", "sample,dso,sym", "-t", "|"], check=True, capture_output=True,
                                text=True).stdout
    counts = collections.Counter()
    for line in report.splitlines():
        parts = [part.strip() for part in line.split("|", 2)]
        if len(parts) == 3 and parts[0].isdigit():
            counts[(parts[1], re.sub(r"^\[[.k]\]\s*", "", parts[2]))] += int(parts[0])
    return counts


def classify(library: str, function: str) -> str:
    for name, library_pattern, function_pattern in CLASSES:
        if re.search(library_pattern, library) and re.search(function_pattern, function):
            return name
    return CLASSES[-1][0]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="ae,vae,ddpm")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--top", type=int, default=3, help="functions listed per class")
    args = p.parse_args(argv)
    if shutil.which("perf") is None:
        raise SystemExit("needs perf (Debian: apt-get install linux-perf)")
    for model in args.models.split(","):
        counts = perf_samples(model, args.steps)
        total = sum(counts.values())
        by_class = collections.defaultdict(collections.Counter)
        for (library, function), n in counts.items():
            by_class[classify(library, function)][f"{function} ({library})"] += n
        print(f"\n{model}: {total} samples, {args.steps} steps at batch 128\n\n| share | class | heaviest functions |\n|---|---|---|")
        for name, functions in sorted(by_class.items(), key=lambda kv: -sum(kv[1].values())):
            top = "; ".join(f"{f[:70]} {100 * n / total:.1f}%" for f, n in functions.most_common(args.top))
            print(f"| {100 * sum(functions.values()) / total:.1f}% | {name} | {top} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
