"""The BLAS loader (found, not found, opted out) and `info`'s GEMM measurement."""

from __future__ import annotations

import ctypes.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlx_generative.runtime import blas

ROOT = Path(__file__).resolve().parents[2]


def _openblas_installed() -> bool:
    try:
        ctypes.CDLL("libopenblas.so.0")
        return True
    except OSError:
        return ctypes.util.find_library("openblas") is not None


def test_opt_out():
    status = blas.find_and_load(environ={blas.ENV_VAR: "off"}, platform="linux")
    assert status.library is None and "opted out" in status.reason
    assert not status.optimized
    assert "reference BLAS" in status.describe()


def test_not_found_gives_the_fix():
    status = blas.find_and_load(environ={}, platform="linux", candidates=("libno-such-blas.so.9",))
    assert status.library is None and "no OpenBLAS or MKL" in status.reason


def test_explicit_path_that_does_not_load():
    status = blas.find_and_load(environ={blas.ENV_VAR: "/nonexistent/libblas.so"}, platform="linux")
    assert status.library is None and "could not be loaded" in status.reason


def test_macos_needs_nothing():
    status = blas.find_and_load(environ={}, platform="darwin")
    assert status.optimized and "Accelerate" in status.describe()


@pytest.mark.skipif(not sys.platform.startswith("linux") or not _openblas_installed(), reason="OpenBLAS not installed")
def test_found_openblas():
    status = blas.find_and_load(environ={}, platform="linux")
    assert status.library and "openblas" in status.library.lower()


def _info(env_extra: dict) -> dict:
    import os

    env = {**os.environ, **env_extra}
    out = subprocess.run(
        [sys.executable, "-m", "mlx_generative", "info", "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True,
    )
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux") or not _openblas_installed(), reason="OpenBLAS not installed")
def test_info_reports_a_fast_gemm_with_openblas():
    facts = _info({})
    assert "openblas" in facts["blas"].lower()
    assert facts["gemm_gflops"] > 50, facts


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux-only loader")
def test_info_and_training_warning_when_opted_out():
    facts = _info({blas.ENV_VAR: "off"})
    assert "reference BLAS" in facts["blas"]
    out = subprocess.run(
        [sys.executable, "-c", "import mlx_generative.runtime.blas as b, mlx_generative; print(b.warning_line())"],
        cwd=ROOT, env={**__import__("os").environ, blas.ENV_VAR: "off"}, capture_output=True, text=True, timeout=60,
    )
    assert "apt-get install libopenblas0-pthread" in out.stdout
