"""MLX's CPU kernel compiler: found or missing, the first run announced, and the g++ in front
of it that lends MLX's kernel builds a precompiled header."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlx_generative.runtime import jit

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--steps", "2", "--batch-size", "8", "--limit-train", "16", "--no-progress", "--eval-every", "100"]
needs_gxx = pytest.mark.skipif(shutil.which("g++", path=jit._original_path()) is None or
                               not sys.platform.startswith("linux"), reason="no g++ (Linux)")


def _fresh(tmp_path: Path, **extra) -> dict:
    """An environment with an empty kernel cache (TMPDIR) and an empty user cache."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return {**os.environ, "TMPDIR": str(tmp_path / "tmp"), "XDG_CACHE_HOME": str(tmp_path / "cache"), **extra}


@needs_gxx
def test_the_first_run_is_announced_and_builds_the_header_once(tmp_path):
    env = _fresh(tmp_path)
    first = subprocess.run([sys.executable, "-m", "mlx_generative", "train", "ae", *TINY, "--out", str(tmp_path)],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stderr.count("MLX builds its CPU kernels") == 1
    kernels = list((tmp_path / "tmp").rglob("*.so"))
    headers = list((tmp_path / "cache").rglob("compiled_preamble.h.gch"))
    assert kernels and len(headers) == 1, "the kernels were built, through the precompiled header"
    second = subprocess.run([sys.executable, "-m", "mlx_generative", "train", "ae", *TINY, "--out", str(tmp_path)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0 and "MLX builds its CPU kernels" not in second.stderr
    assert list((tmp_path / "cache").rglob("compiled_preamble.h.gch")) == headers


@needs_gxx
def test_the_wrapper_changes_nothing_but_mlx_kernel_builds(tmp_path):
    code = "import mlx_generative, shutil, subprocess; print(shutil.which('g++')); " \
           "print(subprocess.run(['g++', '--version'], capture_output=True, text=True).stdout.splitlines()[0])"
    out = subprocess.run([sys.executable, "-c", code], env=_fresh(tmp_path), capture_output=True, text=True,
                         timeout=120, check=True).stdout.splitlines()
    assert out[0].startswith(str(tmp_path / "cache")), "our g++ comes first on PATH"
    real = subprocess.run(["g++", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    assert out[1] == real
    off = subprocess.run([sys.executable, "-c", code], env=_fresh(tmp_path, MLX_GENERATIVE_PCH="off"),
                         capture_output=True, text=True, timeout=120, check=True).stdout.splitlines()
    assert not off[0].startswith(str(tmp_path / "cache"))


def test_without_a_compiler_training_says_what_it_costs(tmp_path):
    python_only = str(Path(sys.executable).parent)  # PATH without g++ (nor anything else)
    run = subprocess.run([sys.executable, "-m", "mlx_generative", "train", "ae", *TINY, "--out", str(tmp_path)],
                         cwd=ROOT, env=_fresh(tmp_path, PATH=python_only), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stderr.count("no C++ compiler (g++)") == 1 and "slower" in run.stderr
    info = subprocess.run([sys.executable, "-m", "mlx_generative", "info", "--json", "--no-gemm"], cwd=ROOT,
                          env=_fresh(tmp_path, PATH=python_only), capture_output=True, text=True, timeout=120)
    assert json.loads(info.stdout)["cpu_compiler"].startswith("none")


def test_first_run_reads_the_kernel_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(jit.tempfile, "gettempdir", lambda: str(tmp_path))
    assert jit.first_run()
    jit.kernel_cache().mkdir(parents=True)
    (jit.kernel_cache() / "libkernel.so").write_bytes(b"")
    assert not jit.first_run()
