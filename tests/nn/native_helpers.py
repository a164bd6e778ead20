"""What the native-kernel tests share: the extension (or a skip of the whole module)."""

from __future__ import annotations

import numpy as np
import pytest

kernels = pytest.importorskip("mlx_generative_kernels", reason="native kernels not built (uv sync --extra fast)")
INSTRUCTION_SETS = kernels.available_instruction_sets().split(", ")


def close(a, b, tol=2e-4):
    a, b = np.array(a), np.array(b)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, float(np.abs(b).max())))
