"""Down/Up compute exactly a strided Conv2d and a k4 s2 ConvTranspose2d (shared weights)."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from mlx_generative.nn.layers import Down, Up, space_to_depth, timestep_embedding
from mlx_generative.runtime import native


def _grads(layer, x):
    def f(params, x):
        layer.update(params)
        return mx.sum(layer(x) ** 2)

    return mx.grad(f, argnums=(0, 1))(layer.parameters(), x)


@pytest.mark.parametrize("size,cin,cout", [(28, 1, 32), (14, 32, 64), (8, 3, 5)])
def test_down_equals_strided_conv(size, cin, cout):
    mx.random.seed(0)
    x = mx.random.normal((2, size, size, cin))
    down = Down(cin, cout)
    ref = nn.Conv2d(cin, cout, 3, stride=2, padding=1)
    ref.update(down.parameters())
    np.testing.assert_allclose(np.array(down(x)), np.array(ref(x)), atol=1e-5)
    (gp, gx), (rp, rx) = _grads(down, x), _grads(ref, x)
    np.testing.assert_allclose(np.array(gx), np.array(rx), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.array(gp["weight"]), np.array(rp["weight"]), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("native_kernels", [True, False])
def test_down_refuses_an_odd_size_clearly(native_kernels, monkeypatch):
    if not native_kernels:
        monkeypatch.setattr(native, "conv_for", lambda x, w: None)
    with pytest.raises(ValueError, match="Down halves H and W, so they must be even: got 7 x 8"):
        Down(3, 4)(mx.zeros((1, 7, 8, 3)))


@pytest.mark.parametrize("size,cin,cout", [(7, 64, 32), (14, 32, 1), (4, 3, 5)])
def test_up_equals_transposed_conv(size, cin, cout):
    mx.random.seed(1)
    x = mx.random.normal((2, size, size, cin))
    up = Up(cin, cout)
    ref = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)
    ref.update(up.parameters())
    np.testing.assert_allclose(np.array(up(x)), np.array(ref(x)), atol=1e-5)
    assert up(x).shape == (2, 2 * size, 2 * size, cout)
    (gp, gx), (rp, rx) = _grads(up, x), _grads(ref, x)
    np.testing.assert_allclose(np.array(gx), np.array(rx), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(np.array(gp["weight"]), np.array(rp["weight"]), rtol=1e-4, atol=1e-3)


def test_parameter_shapes_match_the_layers_they_replace():
    assert Down(3, 7).weight.shape == nn.Conv2d(3, 7, 3, stride=2).weight.shape
    assert Up(3, 7).weight.shape == nn.ConvTranspose2d(3, 7, 4, stride=2).weight.shape


def test_space_to_depth_layout():
    x = mx.arange(2 * 6 * 4 * 3).reshape(2, 6, 4, 3)
    blocks = space_to_depth(x)
    assert blocks.shape == (2, 3, 2, 12)
    # Block (0, 0) holds pixels (0,0), (0,1), (1,0), (1,1) in that order, channels innermost.
    expected = np.concatenate([np.array(x[0, r, c]) for r in (0, 1) for c in (0, 1)])
    np.testing.assert_array_equal(np.array(blocks[0, 0, 0]), expected)
    # Every block, not only the first: (n, row block, row phase, col block, col phase, c) order.
    reference = np.array(x).reshape(2, 3, 2, 2, 2, 3).transpose(0, 1, 3, 2, 4, 5).reshape(2, 3, 2, 12)
    np.testing.assert_array_equal(np.array(blocks), reference)


def test_timestep_embedding():
    emb = timestep_embedding(mx.array([0, 3, 5]), 32)
    assert emb.shape == (3, 32)
    np.testing.assert_allclose(np.array(emb[0, :16]), 0.0)  # sin(0)
    np.testing.assert_allclose(np.array(emb[0, 16:]), 1.0)  # cos(0)
    assert not np.allclose(np.array(emb[1]), np.array(emb[2]))
