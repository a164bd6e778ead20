"""The multiply-add SiLU matches MLX's exact one, in value and gradient."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from mlx_generative.nn import activations


def test_tanh_and_sigmoid_match_exact_ones_over_the_whole_range():
    x = mx.linspace(-40, 40, 200001)
    np.testing.assert_allclose(np.array(activations.tanh(x)), np.tanh(np.array(x)), atol=3e-6)
    np.testing.assert_allclose(np.array(activations.sigmoid(x)), np.array(mx.sigmoid(x)), atol=2e-6)


def test_silu_matches_nn_silu_and_its_gradient():
    mx.random.seed(0)
    x = mx.random.normal((64, 7, 7, 8)) * 4
    probe = mx.random.normal(x.shape)
    np.testing.assert_allclose(np.array(activations.silu(x)), np.array(nn.silu(x)), atol=2e-5)
    ours = mx.grad(lambda x: mx.sum(activations.silu(x) * probe))(x)
    ref = mx.grad(lambda x: mx.sum(nn.silu(x) * probe))(x)
    np.testing.assert_allclose(np.array(ours), np.array(ref), atol=2e-5 * float(mx.abs(probe).max()))


def test_silu_compiles_and_differentiates_under_compile():
    x = mx.linspace(-8, 8, 1001)
    grad = mx.compile(mx.grad(lambda x: mx.sum(activations.silu(x))))
    np.testing.assert_allclose(np.array(grad(x)), np.array(mx.grad(lambda x: mx.sum(nn.silu(x)))(x)), atol=2e-5)
