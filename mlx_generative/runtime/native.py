"""The optional native kernels: a C++ convolution built separately from ``native/``.

    uv sync --extra fast        # CMake >= 3.24 and a C++20 compiler; see README, "Speed"

When the extension (the ``mlx-generative-kernels`` distribution) is installed, every
convolution in ``nn/`` that runs on a CPU stream in float32 (with the ReLU after it when there
is one), the UNet's GroupNorm + SiLU and SiLU, and Adam's update (training/adam.py) go through
its MLX primitives: vectorised loops (AVX-512, AVX2 or SSE2, chosen at run time; NEON on ARM)
with their gradients written out by hand. Without it, the pure-MLX layers in ``nn/conv.py``,
``nn/norm.py`` and ``nn/activations.py`` and MLX's own Adam run, as they always can: nothing in
the package needs a compiler.

Environment:
  MLX_GENERATIVE_NATIVE=0      the pure-MLX layers even where the extension is installed
  MLX_GENERATIVE_NATIVE=1      the extension, or an error saying how to build it
  (unset, or "auto")           the extension when it is installed
"""

from __future__ import annotations

import functools
import os
import warnings

import mlx.core as mx

from ..errors import UsageError

ENV_VAR = "MLX_GENERATIVE_NATIVE"
BUILD_HINT = "build them with `uv sync --extra fast` (needs CMake >= 3.24 and a C++20 compiler)"


def _setting() -> str:
    value = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if value not in ("0", "1", "auto"):
        raise UsageError(f"{ENV_VAR} must be 0, 1 or auto, got {os.environ[ENV_VAR]!r}")
    return value


@functools.lru_cache(maxsize=None)
def kernels():
    """The extension module, or None (not installed, or turned off by MLX_GENERATIVE_NATIVE=0)."""
    setting = _setting()
    if setting == "0":
        return None
    try:
        import mlx_generative_kernels
    except ModuleNotFoundError as e:
        if e.name != "mlx_generative_kernels":
            raise
        if setting == "1":
            raise UsageError(f"{ENV_VAR}=1, but the native kernels are not installed: {BUILD_HINT}") from None
        return None
    except ImportError as e:  # installed but unusable (built for another MLX): say so, never pass silently
        if setting == "1":
            raise UsageError(f"{ENV_VAR}=1, but the native kernels do not load: {e}") from None
        warnings.warn(f"the native kernels are installed but do not load, using the pure-MLX layers: {e}",
                      stacklevel=2)
        return None
    if hasattr(os, "sched_getaffinity"):  # the cores this process may use, not all the machine's
        mlx_generative_kernels.set_threads(len(os.sched_getaffinity(0)))
    return mlx_generative_kernels


def _runs(*arrays: mx.array):
    """The extension, if its kernels can take these arrays here: float32 on a CPU stream (on a
    GPU, Metal or CUDA, MLX's own kernels are used); else None."""
    native = kernels()
    if native is None or any(a.dtype != mx.float32 for a in arrays) or mx.default_device() != mx.cpu:
        return None
    return native


def conv_for(x: mx.array, w: mx.array):
    """The native ``tap_conv(x, w, taps, margin, pad)`` when it can run this product, else None."""
    native = _runs(x, w)
    return native.tap_conv if native else None


def group_norm_silu_for(x: mx.array, weight: mx.array):
    """The native ``group_norm_silu(x, weight, bias, groups, eps)`` when it can run, else None."""
    native = _runs(x, weight)
    return native.group_norm_silu if native else None


def silu_for(x: mx.array):
    """The native ``silu(x)`` when it can run, else None."""
    native = _runs(x)
    return native.silu if native else None


def adam_for(*arrays: mx.array):
    """The native ``adam_update(k, p, g, m, v)`` when it can run on these arrays, else None."""
    native = _runs(*arrays)
    return native.adam_update if native else None


def describe() -> str:
    """One line for `bin/info`: which loops run, or how to get them."""
    native = kernels()
    if native is None:
        off = _setting() == "0"
        return f"off ({ENV_VAR}=0)" if off else f"not installed (optional: {BUILD_HINT})"
    return (f"{native.__name__}: {native.instruction_set()} loops (CPU runs {native.available_instruction_sets()}), "
            f"up to {native.threads()} threads")


def set_threads(count: int) -> int | None:
    """Threads a native convolution may use; returns the previous count (None without the extension)."""
    native = kernels()
    if native is None:
        return None
    previous = native.threads()
    native.set_threads(count)
    return previous
