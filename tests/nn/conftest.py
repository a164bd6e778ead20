"""A fixture for the native-kernel tests: run a test once per instruction set this CPU runs
(the extension's loops differ per vector width). No parameters, so no runs, without it."""

from __future__ import annotations

import pytest

try:
    import mlx_generative_kernels as _kernels

    _INSTRUCTION_SETS = _kernels.available_instruction_sets().split(", ")
except ImportError:
    _kernels, _INSTRUCTION_SETS = None, []


@pytest.fixture(params=_INSTRUCTION_SETS)
def instruction_set(request):
    previous = _kernels.instruction_set()
    _kernels.use_instruction_set(request.param)
    yield request.param
    _kernels.use_instruction_set(previous)
