"""Shared fixtures: small data so model and CLI tests stay fast on 2 cores."""

from __future__ import annotations

import numpy as np
import pytest

import mlx_generative  # noqa: F401  (loads the fast BLAS before mlx.core)


@pytest.fixture
def digits() -> np.ndarray:
    """64 real digits from the shipped sample as uint8 (64, 28, 28)."""
    from mlx_generative.datasets import load_dataset

    return np.array(load_dataset("mnist-sample", "train").images[:64])


@pytest.fixture
def unit_batch(digits) -> np.ndarray:
    """16 digits as float32 NHWC in [0, 1]."""
    return digits[:16, :, :, None].astype(np.float32) / 255.0
