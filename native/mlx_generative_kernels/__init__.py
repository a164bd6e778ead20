"""Native CPU kernels for mlx-generative, as MLX primitives with their gradients: a tap
convolution (the package's every convolution, with the ReLU after it), a fused GroupNorm + SiLU
and SiLU alone (the UNet's), and Adam's update. Optional: mlx_generative.runtime.native uses them when this is installed, and the
pure-MLX layers otherwise.

    uv sync --extra fast      # builds this (CMake >= 3.24, a C++20 compiler)
"""

import mlx.core as mx  # before _ext: it links against the libmlx this loads

from ._ext import (  # noqa: E402
    adam_update,
    available_instruction_sets,
    group_norm_silu,
    instruction_set,
    set_threads,
    silu,
    tap_conv,
    threads,
    use_instruction_set,
)

__all__ = ["adam_update", "available_instruction_sets", "group_norm_silu", "instruction_set", "set_threads", "silu",
           "tap_conv", "threads", "use_instruction_set"]


def _check_abi() -> None:
    # nanobind modules of different ABIs load side by side, then reject each other's types; a
    # build from older sources lacks the arguments this package passes.
    try:
        tap_conv(mx.zeros((1, 1, 1, 1)), mx.zeros((1, 1, 1)), [(0, 0)], 0, (0, 0, 0, 0), None, 1, True)
    except TypeError as e:
        raise ImportError(f"mlx_generative_kernels was built for another MLX (mlx {mx.__version__} is installed) "
                          f"or from older sources: rebuild it with "
                          f"`uv sync --extra fast --reinstall-package mlx-generative-kernels` ({e})")


_check_abi()
