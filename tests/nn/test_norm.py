"""GroupNorm matches nn.GroupNorm(pytorch_compatible=True): values, gradients, parameters."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from mlx_generative.nn.norm import GroupNorm


@pytest.mark.parametrize("shape,groups", [((4, 6, 6, 16), 8), ((3, 5, 7, 12), 3), ((2, 4, 4, 8), 1), ((2, 3, 3, 8), 8)])
def test_groupnorm_matches_mlx_values_and_gradients(shape, groups):
    mx.random.seed(0)
    x = mx.random.normal(shape) * 3 + 5  # an offset mean: the variance must not cancel
    ours, ref = GroupNorm(groups, shape[-1]), nn.GroupNorm(groups, shape[-1], pytorch_compatible=True)
    assert set(ours.parameters()) == set(ref.parameters())
    ours.update({"weight": mx.random.normal((shape[-1],)), "bias": mx.random.normal((shape[-1],))})
    ref.update(ours.parameters())
    np.testing.assert_allclose(np.array(ours(x)), np.array(ref(x)), atol=2e-5)
    probe = mx.random.normal(shape)

    def grads(layer):
        def f(params, x):
            layer.update(params)
            return mx.sum(layer(x) * probe)

        return mx.grad(f, argnums=(0, 1))(layer.parameters(), x)

    (gp, gx), (rp, rx) = grads(ours), grads(ref)
    np.testing.assert_allclose(np.array(gx), np.array(rx), atol=5e-5)
    for name in ("weight", "bias"):
        np.testing.assert_allclose(np.array(gp[name]), np.array(rp[name]), rtol=1e-4, atol=1e-4)


def test_groupnorm_rejects_groups_that_do_not_divide():
    with pytest.raises(ValueError, match="groups=3 must divide dims=8"):
        GroupNorm(3, 8)
