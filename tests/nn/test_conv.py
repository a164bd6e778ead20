"""conv2d_valid / Conv2d compute exactly mx.conv2d and nn.Conv2d, values and gradients."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from mlx_generative.nn.conv import Conv2d, conv2d_valid


def _close(a, b, tol=1e-4):
    a, b = np.array(a), np.array(b)
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, float(np.abs(b).max())))


@pytest.mark.parametrize(
    "shape,k,out_c",
    [
        ((2, 9, 9, 3), 3, 5),  # narrow input: one GEMM on the taps side by side
        ((3, 6, 11, 4), 2, 7),
        ((1, 5, 5, 1), 3, 2),
        ((2, 8, 7, 6), 1, 3),
        ((2, 6, 6, 16), 3, 1),  # narrow output: one GEMM, then shifted sums
        ((2, 6, 7, 16), 3, 16),  # wide both ways: one GEMM per tap
        ((2, 7, 7, 2), 5, 4),
    ],
)
def test_conv2d_valid_matches_mx_conv2d_and_its_gradients(shape, k, out_c):
    mx.random.seed(0)
    x = mx.random.normal(shape)
    w = mx.random.normal((out_c, k, k, shape[-1]))
    probe = mx.random.normal(mx.conv2d(x, w).shape)  # a generic cotangent, not all ones

    def loss(conv):
        return lambda x, w: mx.sum(conv(x, w) * probe)

    _close(conv2d_valid(x, w), mx.conv2d(x, w))
    ours = mx.grad(loss(conv2d_valid), argnums=(0, 1))(x, w)
    ref = mx.grad(loss(mx.conv2d), argnums=(0, 1))(x, w)
    for a, b in zip(ours, ref):
        assert a.shape == b.shape
        _close(a, b)


def test_conv2d_valid_under_compile_matches():
    mx.random.seed(1)
    x, w = mx.random.normal((4, 10, 10, 8)), mx.random.normal((16, 3, 3, 8))
    grad = mx.compile(mx.grad(lambda x, w: mx.sum(conv2d_valid(x, w) ** 2), argnums=(0, 1)))
    ref = mx.grad(lambda x, w: mx.sum(mx.conv2d(x, w) ** 2), argnums=(0, 1))(x, w)
    for a, b in zip(grad(x, w), ref):
        _close(a, b)


@pytest.mark.parametrize("cin,cout,k,pad", [(1, 16, 3, 1), (32, 32, 3, 1), (64, 32, 1, 0), (8, 4, 3, 0)])
def test_Conv2d_is_a_drop_in_for_nn_Conv2d(cin, cout, k, pad):
    mx.random.seed(2)
    ours, ref = Conv2d(cin, cout, k, padding=pad), nn.Conv2d(cin, cout, k, padding=pad)
    assert {n: p.shape for n, p in ours.parameters().items()} == {n: p.shape for n, p in ref.parameters().items()}
    ours.update({"bias": mx.random.normal((cout,))})
    ref.update(ours.parameters())
    x = mx.random.normal((2, 12, 12, cin))
    _close(ours(x), ref(x))

    def grads(layer):
        def f(params, x):
            layer.update(params)
            return mx.sum(layer(x) ** 2)

        return mx.grad(f, argnums=(0, 1))(layer.parameters(), x)

    (gp, gx), (rp, rx) = grads(ours), grads(ref)
    _close(gx, rx)
    for name in ("weight", "bias"):
        _close(gp[name], rp[name])
