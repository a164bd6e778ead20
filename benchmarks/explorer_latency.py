"""How fast the explorer answers: each panel's request timed from a separate client process.

    uv run python benchmarks/explorer_latency.py              # the shipped pretrained runs
    uv run python benchmarks/explorer_latency.py --repeats 200 RUN ...

Starts `bin/explore --no-browser` as its own process (as a user would), waits for it to
say it is ready (that start-up time is reported too), then sends each kind of request
``--repeats`` times over one keep-alive connection, alternating the kinds, and prints
the median and 95th percentile per kind. Targets (issue 24): every AE/VAE interaction
within 100 ms at the 95th percentile; a whole 6-step DDPM trajectory within 1 s.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def stroke(rng: np.random.Generator, size: int = 56) -> dict:
    """A random thick polyline, as the page sends a drawing (56x56 averages of the canvas)."""
    canvas = np.zeros((size, size), np.float32)
    points = rng.uniform(8, size - 8, (4, 2))
    for (y0, x0), (y1, x1) in zip(points, points[1:]):
        for s in np.linspace(0, 1, 60):
            y, x = int(y0 + s * (y1 - y0)), int(x0 + s * (x1 - x0))
            canvas[max(0, y - 2) : y + 2, max(0, x - 2) : x + 2] = 1.0
    return {"width": size, "height": size, "pixels": canvas.ravel().tolist()}


def requests(info: dict, rng: np.random.Generator) -> dict:
    """Each kind of request the page makes, as (path, body) factories."""
    kinds = {
        "draw (AE + VAE + classifier)": lambda: ("/api/draw", stroke(rng)),
        "AE decode (hover)": lambda: ("/api/decode", {"model": "ae", "points": [rng.uniform(-2, 2, 2).tolist()]}),
        "VAE decode (hover)": lambda: ("/api/decode", {"model": "vae", "points": [rng.uniform(-2, 2, 2).tolist()]}),
        "VAE strip of 8 (drag)": lambda: ("/api/interpolate", {"model": "vae", "start": rng.uniform(-2, 2, 2).tolist(),
                                                              "end": rng.uniform(-2, 2, 2).tolist(), "steps": 8}),
        "VAE sliders": lambda: ("/api/slide", {"values": rng.uniform(-3, 3, info["sliders"]).round(1).tolist()}),
    }
    for d in info["denoisers"]:
        seed = lambda: int(rng.integers(0, 10_000))  # noqa: E731
        label = {"label": 3, "guidance": d["guidance"]} if d["conditional"] else {}
        if d["kind"] == "ddpm":
            kinds[f"{d['name']}: DDPM, all 6 steps"] = (
                lambda d=d, label=label: ("/api/denoise", {"run": d["name"], "seed": seed(), "sampler": "ddpm", **label}))
            kinds[f"{d['name']}: DDIM, 6 steps"] = (
                lambda d=d, label=label: ("/api/denoise", {"run": d["name"], "seed": seed(), "sampler": "ddim",
                                                           "steps": 6, **label}))
        else:
            kinds[f"{d['name']}: Euler, 6 steps"] = (
                lambda d=d, label=label: ("/api/denoise", {"run": d["name"], "seed": seed(), "sampler": "euler",
                                                           "steps": 6, **label}))
    return kinds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="*", help="runs to explore (default: the shipped pretrained runs)")
    p.add_argument("--repeats", type=int, default=100, help="requests of each kind (default 100)")
    args = p.parse_args(argv)
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, str(ROOT / "bin" / "explore"), "--no-browser", *args.runs],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        line = ""
        while "ready" not in line:
            line = server.stdout.readline()
            if not line:
                print("bin/explore stopped before it was ready", file=sys.stderr)
                return 1
        ready = time.perf_counter() - started
        host, port = re.search(r"http://([\d.]+):(\d+)/", line).groups()
        connection = http.client.HTTPConnection(host, int(port), timeout=60)

        def call(path: str, body=None) -> tuple[float, dict]:
            t = time.perf_counter()
            if body is None:
                connection.request("GET", path)
            else:
                connection.request("POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            answer = json.loads(response.read())
            if response.status != 200:
                raise RuntimeError(f"{path}: {response.status} {answer}")
            return (time.perf_counter() - t) * 1000.0, answer

        _, info = call("/api/info")
        kinds = requests(info, np.random.default_rng(0))
        times = {name: [] for name in kinds}
        for _ in range(args.repeats):  # alternate the kinds, as a user's clicks would
            for name, make in kinds.items():
                times[name].append(call(*make())[0])
        print(f"bin/explore ready {ready:.1f} s after it was started (loading, PCA of the codes, warm-up)")
        print(f"{'request':<34} {'median ms':>10} {'p95 ms':>8}   ({args.repeats} each)")
        for name, ms in times.items():
            print(f"{name:<34} {np.median(ms):>10.1f} {np.percentile(ms, 95):>8.1f}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
