"""The native GroupNorm + SiLU and SiLU (native/, `uv sync --extra fast`) against the pure-MLX
layers they replace, nn/norm.py's GroupNorm followed by nn/activations.py's rational_silu:
values and the gradients in x, weight and bias, on every instruction set this CPU runs. Skipped
where the extension is not installed."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten
from native_helpers import close, kernels

from mlx_generative.families.ddpm.unet import ResBlock
from mlx_generative.nn import activations, norm
from mlx_generative.nn.activations import rational_silu
from mlx_generative.runtime import native


def _reference(x, w, b, groups, eps):
    return rational_silu(w * norm._normalize(groups, eps)(x) + b)


def _native(x, w, b, groups, eps):
    return kernels.group_norm_silu(x, w, b, groups, eps)


def _check(x, w, b, groups, eps=1e-5):
    ref = _reference(x, w, b, groups, eps)
    close(_native(x, w, b, groups, eps), ref)
    probe = mx.random.normal(ref.shape)

    def loss(f):
        return lambda x, w, b: mx.sum(f(x, w, b, groups, eps) * probe)

    for ours, theirs in zip(mx.grad(loss(_native), argnums=(0, 1, 2))(x, w, b),
                            mx.grad(loss(_reference), argnums=(0, 1, 2))(x, w, b)):
        close(ours, theirs)


@pytest.mark.parametrize("seed", range(8))
def test_random_shapes_match_the_pure_mlx_layers(instruction_set, seed):
    rng = np.random.default_rng(seed)
    groups = int(rng.choice([1, 2, 4, 8]))
    channels = groups * int(rng.choice([1, 2, 3, 4, 8, 9]))
    shape = (int(rng.integers(1, 5)), *(int(v) for v in rng.integers(1, 15, size=int(rng.integers(0, 3)))), channels)
    mx.random.seed(seed)
    # Large offsets and scales: the variance must not be a difference of two large sums.
    x = mx.random.normal(shape) * float(rng.uniform(0.1, 5)) + float(rng.uniform(-20, 20))
    _check(x, mx.random.normal((channels,)), mx.random.normal((channels,)), groups)


@pytest.mark.parametrize("shape,groups", [((3, 14, 14, 32), 8), ((3, 7, 7, 64), 8), ((2, 14, 14, 64), 8)])
def test_the_unet_shapes_match(instruction_set, shape, groups):
    mx.random.seed(1)
    c = shape[-1]
    _check(mx.random.normal(shape), 1 + 0.1 * mx.random.normal((c,)), 0.1 * mx.random.normal((c,)), groups)


def test_strided_and_broadcast_inputs_are_read_as_their_values():
    # Views are read as they are (copied row-major inside the work): a transposed x, a broadcast
    # weight, and a broadcast cotangent (the gradient of a sum).
    mx.random.seed(11)
    x = mx.random.normal((2, 16, 5, 3)).transpose(0, 2, 3, 1)  # (2, 5, 3, 16), strided
    w, b = mx.broadcast_to(mx.array([1.5]), (16,)), mx.random.normal((16,))
    _check(x, w, b, 4)
    close(mx.grad(lambda x: mx.sum(_native(x, w, b, 4, 1e-5)))(x),
          mx.grad(lambda x: mx.sum(_reference(x, w, b, 4, 1e-5)))(x))
    y = mx.random.normal((6, 40)).T
    close(kernels.silu(y), rational_silu(y))
    close(mx.grad(lambda y: mx.sum(kernels.silu(y)))(y), mx.grad(lambda y: mx.sum(rational_silu(y)))(y))


def test_a_constant_group_gives_no_nan():
    # Zero variance: rstd = 1/sqrt(eps), x_hat = 0, as the pure layers compute.
    x = mx.ones((2, 4, 4, 8)) * 3.0
    w, b = mx.random.normal((8,)), mx.random.normal((8,))
    _check(x, w, b, 4)
    assert not np.isnan(np.array(mx.grad(lambda x: mx.sum(_native(x, w, b, 4, 1e-5)))(x))).any()


def test_a_residual_block_is_the_same_with_and_without_it(monkeypatch):
    mx.random.seed(2)
    block = ResBlock(32, 64, 16, 8)
    x, temb = mx.random.normal((2, 7, 7, 32)), mx.random.normal((2, 16))

    def value_and_grads():
        def loss(params):
            block.update(params)
            return mx.sum(block(x, temb) ** 2)
        return mx.value_and_grad(loss)(block.trainable_parameters())

    with_native = value_and_grads()
    monkeypatch.setattr(native, "group_norm_silu_for", lambda x, w: None)
    monkeypatch.setattr(native, "conv_for", lambda x, w: None)
    without = value_and_grads()
    close(with_native[0], without[0])
    for (name, a), (other, b) in zip(tree_flatten(with_native[1]), tree_flatten(without[1])):
        assert name == other
        close(a, b, tol=1e-3)


@pytest.mark.parametrize("x_shape,w_shape,groups,message", [
    ((2, 4, 4, 6), (6,), 4, "groups=4 must divide 6 channels"),
    ((2, 4, 4, 8), (6,), 4, r"weight and bias must be \(8,\)"),
    ((8,), (8,), 4, r"x must be \(N, ..., C\)"),
])
def test_bad_shapes_are_clear_errors(x_shape, w_shape, groups, message):
    with pytest.raises(ValueError, match=message):
        kernels.group_norm_silu(mx.zeros(x_shape), mx.zeros(w_shape), mx.zeros(w_shape), groups, 1e-5)


@pytest.mark.parametrize("shape", [(1,), (15,), (3, 5, 7, 33), (128, 28, 28, 4), (2, 300001)])
def test_silu_alone_matches_the_rational_one(instruction_set, shape):
    # Sizes off the vector width, and past one thread's block; values far past the clamp.
    mx.random.seed(len(shape))
    x = mx.random.normal(shape) * 10
    close(kernels.silu(x), rational_silu(x))
    probe = mx.random.normal(shape)
    close(mx.grad(lambda x: mx.sum(kernels.silu(x) * probe))(x),
          mx.grad(lambda x: mx.sum(rational_silu(x) * probe))(x))


def test_silu_is_the_native_one_where_it_runs_and_the_same_without(monkeypatch):
    x = mx.random.normal((4, 6, 6, 16)) * 3
    probe = mx.random.normal(x.shape)

    def value_and_grad():
        return mx.value_and_grad(lambda x: mx.sum(activations.silu(x) * probe))(x)

    assert native.silu_for(x) is kernels.silu
    with_native = value_and_grad()
    monkeypatch.setattr(native, "silu_for", lambda x: None)
    without = value_and_grad()
    for a, b in zip(with_native, without):
        close(a, b)


def test_silu_of_another_dtype_is_a_clear_error():
    assert native.silu_for(mx.zeros((3,), dtype=mx.float16)) is None
    with pytest.raises(ValueError, match="float32"):
        kernels.silu(mx.zeros((3,), dtype=mx.float16))
