"""Our speed against PyTorch's on this machine, measured so that it cannot flatter us.

    uv pip install torch --index-url https://download.pytorch.org/whl/cpu   # the peer; not a dependency
    uv run python benchmarks/train_speed.py [--models ae,vae,ddpm] [--rounds 7] [--quality-rounds N]

Every measurement runs in its own process (engine_mlx.py, engine_torch.py), one engine at a
time, never both in one: PyTorch's OpenMP threads and OpenBLAS's workers keep spinning
after each call and slow the other engine (benchmarks/RESULTS.md says by how much). Rounds
alternate the engines and flip which goes first; we report medians and their ratio, and
beside it the median of each round's own ratio (the two engines of a round run within seconds
of each other, so a busy minute on this shared VM slows both). The GEMM peak is measured at the
start and at the end: if they differ by more than 15%, the machine changed under us and the
run says so.

  1. Training step: ms per step at batch 128, each engine at its own default threading.
  2. Time to quality: the whole command, from process start until its held-out figure first
     reaches the target, evaluated every 25 steps by both: `bin/train` against engine_torch.py's
     plain implementation of the same recipe (architecture, initialisation, learning rate,
     data order, KL warm-up, EMA). Start-up, data loading, compilation and evaluation count.
  3. DDPM sampling: images/s at T = 6 (all steps), and DDIM in 50 of T = 1000.
Ratios are PyTorch's time over ours: above 1, we are faster.
"""

from __future__ import annotations

import argparse
import json
import queue
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
ENGINES = {"mlx": HERE / "engine_mlx.py", "torch": HERE / "engine_torch.py"}
# Held-out targets each recipe reaches well within its guide step count (RESULTS.md).
TARGETS = {"ae": ("mse", 0.0060), "vae": ("neg_elbo", 115.0), "ddpm": ("mse", 0.045)}
MAX_STEPS = {"ae": 2000, "vae": 2000, "ddpm": 3000}
# Rounds of time to quality: the AE and VAE take ~20 s a command, so five rounds are cheap;
# the DDPM's ~150 s allow three in a half-hour run.
QUALITY_ROUNDS = {"ae": 5, "vae": 5, "ddpm": 3}
GEMM_DRIFT = 0.15
EVAL_EVERY = 25


def worker(engine: str, *args: str) -> dict:
    """Run one measurement in a fresh process of ``engine``; its JSON line."""
    out = subprocess.run([sys.executable, str(ENGINES[engine]), *args], capture_output=True, text=True,
                         timeout=1800, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"{engine} {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def alternate(rounds: int, args_of: dict[str, list[str]]) -> dict[str, list[dict]]:
    """Each engine's results over ``rounds``, alternating engines and which goes first."""
    results = {engine: [] for engine in args_of}
    for r in range(rounds):
        order = list(args_of) if r % 2 == 0 else list(reversed(args_of))
        for engine in order:
            results[engine].append(worker(engine, *args_of[engine]))
    return results


def time_to_target(command: list[str], figure: str, target: float, timeout: float) -> tuple[float | None, int | None]:
    """Seconds from starting ``command`` until a "step N: held-out ... FIGURE VALUE" line with
    VALUE <= target (and N); (None, None) if none comes within ``timeout`` seconds."""
    pattern = re.compile(rf"step (\d+): held-out .*?\b{figure} ([0-9.eE+-]+)")
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    lines: queue.Queue = queue.Queue()  # read in a thread, so a silent command cannot outlast the timeout

    def read():
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)  # the command ended

    threading.Thread(target=read, daemon=True).start()
    try:
        while (left := timeout - (time.perf_counter() - started)) > 0:
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            match = pattern.search(line)
            if match and float(match.group(2)) <= target:
                return time.perf_counter() - started, int(match.group(1))
        return None, None
    finally:
        proc.kill()
        proc.wait()


def quality_commands(model: str, out: str) -> dict[str, list[str]]:
    steps = str(MAX_STEPS[model])
    return {
        "mlx": [sys.executable, str(ROOT / "bin" / "train"), model, "--limit-train", "10000", "--steps", steps,
                "--eval-every", str(EVAL_EVERY), "--out", out, "--no-progress"],
        "torch": [sys.executable, str(ENGINES["torch"]), "train", "--model", model, "--max-steps", steps,
                  "--eval-every", str(EVAL_EVERY)],
    }


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="ae,vae,ddpm")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--rounds", type=int, default=7, help="alternating rounds of the step and sampling timings")
    p.add_argument("--quality-rounds", type=int, default=None,
                   help=f"alternating rounds of time to quality (0 skips; default {QUALITY_ROUNDS})")
    p.add_argument("--no-sampling", dest="sampling", action="store_false")
    p.add_argument("--json", metavar="PATH", help="also write every measurement here")
    args = p.parse_args(argv)
    try:
        worker("torch", "sample", "--T", "1", "--n", "1", "--repeats", "1")
    except SystemExit:
        print("PyTorch is not installed: this benchmark measures us against it. Install its CPU build into "
              "the project venv (README, 'Benchmarks'), then run again.", file=sys.stderr)
        return 2
    models = args.models.split(",")
    report = {"gemm": worker("mlx", "gemm"), "steps": {}, "quality": {}, "sampling": {}}
    print(f"GEMM peak (MLX, float32 1024^3): {report['gemm']['gemm_gflops']:.0f} GFLOP/s; BLAS: {report['gemm']['blas']}",
          flush=True)

    for model in models:
        step = ["step", "--model", model, "--batch", str(args.batch)]
        report["steps"][model] = alternate(args.rounds, {"mlx": step, "torch": step})
        print(f"step {model}: " + ", ".join(
            f"{e} {median([r['ms_per_step'] for r in rs]):.1f} ms" for e, rs in report["steps"][model].items()), flush=True)

    for model in models if args.quality_rounds != 0 else []:
        figure, target = TARGETS[model]
        runs = {"mlx": [], "torch": []}
        for r in range(args.quality_rounds or QUALITY_ROUNDS[model]):
            with tempfile.TemporaryDirectory() as out:
                commands = quality_commands(model, out)
                for engine in (["mlx", "torch"] if r % 2 == 0 else ["torch", "mlx"]):
                    runs[engine].append(time_to_target(commands[engine], figure, target, timeout=3600))
        report["quality"][model] = runs
        print(f"quality {model}: " + ", ".join(f"{e} {median([s for s, _ in rs])} s" for e, rs in runs.items()),
              flush=True)

    for T, ddim in ([(6, 0), (1000, 50)] if args.sampling else []):
        sample = ["sample", "--T", str(T), "--ddim", str(ddim), "--n", "128"]
        report["sampling"][f"T={T} ddim={ddim}"] = alternate(args.rounds, {"mlx": sample, "torch": sample})

    report["gemm_end"] = worker("mlx", "gemm")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    print_tables(report, args)
    return 0


def ratios(report_runs: dict, key: str, theirs_over_ours: bool) -> tuple[float, float]:
    """(ratio of the medians, median of the per-round ratios) of ``key``; per round, the two
    engines' measurements of that round are paired."""
    ours, theirs = ([r[key] for r in report_runs[e]] for e in ("mlx", "torch"))
    per_round = [t / o if theirs_over_ours else o / t for o, t in zip(ours, theirs)]
    of_medians = median(theirs) / median(ours) if theirs_over_ours else median(ours) / median(theirs)
    return of_medians, median(per_round)


def print_tables(report: dict, args) -> None:
    gemm, gemm_end = report["gemm"]["gemm_gflops"], report["gemm_end"]["gemm_gflops"]
    print(f"\nGEMM peak {gemm:.0f} GFLOP/s at the start, {gemm_end:.0f} at the end.")
    if abs(gemm_end - gemm) > GEMM_DRIFT * max(gemm, gemm_end):
        print(f"WARNING: the GEMM peak moved by more than {GEMM_DRIFT:.0%} during the run: something else was "
              "using this machine, and these figures are not comparable with a quiet run's.")
    print(f"\nMedians of {args.rounds} alternating rounds, each measurement in its own process (each the "
          f"median step of its process); ratio = PyTorch's time / ours (above 1: we are faster); "
          f"per round = the median of each round's own ratio.\n")
    print("| model | batch | MLX ms/step | PyTorch ms/step | ratio | per round | MLX GFLOP/s (% of GEMM peak) "
          "| threads |")
    print("|---|---|---|---|---|---|---|---|")
    for model, runs in report["steps"].items():
        ours, theirs = (median([r["ms_per_step"] for r in runs[e]]) for e in ("mlx", "torch"))
        _, per_round = ratios(runs, "ms_per_step", theirs_over_ours=True)
        flops = runs["torch"][0]["gflop_per_step"]
        m, t = runs["mlx"][0], runs["torch"][0]
        assert m["params"] == t["params"], f"{model}: the twin has {t['params']} parameters, ours {m['params']}"
        print(f"| {model} | {args.batch} | {ours:.1f} | {theirs:.1f} | {theirs / ours:.2f} | {per_round:.2f} | "
              f"{flops / ours * 1e3:.0f} ({100 * flops / ours * 1e3 / gemm:.0f}%) | MLX {m['shards']} shards x "
              f"{m['blas_threads_per_shard']} BLAS thread; PyTorch {t['torch_threads']} threads |")
    if report["quality"]:
        rounds = args.quality_rounds or ", ".join(f"{m} {n}" for m, n in QUALITY_ROUNDS.items())
        print(f"\nTime to quality: whole command until the held-out figure reaches the target (evaluated every "
              f"{EVAL_EVERY} steps), medians of rounds ({rounds}).\n")
        print("| model | target | MLX s (steps) | PyTorch s (steps) | ratio | per round |")
        print("|---|---|---|---|---|---|")
        for model, runs in report["quality"].items():
            figure, target = TARGETS[model]
            (ours, our_steps), (theirs, their_steps) = (
                (median([s for s, _ in runs[e]]), median([n for _, n in runs[e]])) for e in ("mlx", "torch"))
            ratio = f"{theirs / ours:.2f}" if ours and theirs else "-"
            paired = median([t / o for (o, _), (t, _) in zip(runs["mlx"], runs["torch"]) if o and t])
            per_round = f"{paired:.2f}" if paired else "-"
            show = lambda s, n: f"{s:.1f} ({n:.0f})" if s else "not reached"  # noqa: E731
            print(f"| {model} | {figure} <= {target:g} | {show(ours, our_steps)} | {show(theirs, their_steps)} | "
                  f"{ratio} | {per_round} |")
    if report["sampling"]:
        print("\n| DDPM sampling, 128 images | MLX img/s | PyTorch img/s | ratio | per round |")
        print("|---|---|---|---|---|")
        for name, runs in report["sampling"].items():
            ours, theirs = (median([r["images_per_s"] for r in runs[e]]) for e in ("mlx", "torch"))
            _, per_round = ratios(runs, "images_per_s", theirs_over_ours=False)
            print(f"| {name} | {ours:.0f} | {theirs:.0f} | {ours / theirs:.2f} | {per_round:.2f} |")


if __name__ == "__main__":
    sys.exit(main())
