"""training/adam.py without the native kernels is mlx.optimizers.Adam(bias_correction=True),
exactly: the same state, the same arithmetic (the native path is tests/nn/test_native_adam.py)."""

from __future__ import annotations

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np

from mlx_generative.runtime import native
from mlx_generative.training.adam import Adam


def test_without_the_kernels_it_is_mlx_adam_with_bias_correction(monkeypatch):
    monkeypatch.setattr(native, "adam_for", lambda *arrays: None)
    mx.random.seed(0)
    params = {"w": mx.random.normal((6, 5)), "b": mx.random.normal((5,))}
    ours, theirs = Adam(1e-2), optim.Adam(1e-2, bias_correction=True)
    assert (ours.betas, ours.eps, ours.bias_correction) == (theirs.betas, theirs.eps, True)
    p, q = params, params
    for _ in range(3):
        g = {k: mx.random.normal(v.shape) for k, v in params.items()}
        p, q = ours.apply_gradients(g, p), theirs.apply_gradients(g, q)
    for k in params:
        np.testing.assert_array_equal(np.array(p[k]), np.array(q[k]))
        np.testing.assert_array_equal(np.array(ours.state[k]["v"]), np.array(theirs.state[k]["v"]))
