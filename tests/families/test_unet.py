"""The UNet's optional self-attention layer, and runs trained with it."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten

import mlx_generative as mg
from mlx_generative.families.ddpm.unet import SelfAttention, TinyUNet, UNetArgs


def reference_attention(layer: SelfAttention, x: np.ndarray) -> np.ndarray:
    """The layer written out in float64 numpy: normalize, project, softmax per head, project back."""
    n, h, w, c = x.shape
    heads, d = layer.heads, c // layer.heads
    normed = np.array(layer.norm(mx.array(x)), dtype=np.float64).reshape(n, h * w, c)
    qkv = normed @ np.array(layer.qkv.weight, dtype=np.float64).T + np.array(layer.qkv.bias)
    q, k, v = (qkv[..., i * c:(i + 1) * c].reshape(n, h * w, heads, d).transpose(0, 2, 1, 3) for i in range(3))
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    weights /= weights.sum(axis=-1, keepdims=True)
    out = (weights @ v).transpose(0, 2, 1, 3).reshape(n, h * w, c)
    out = out @ np.array(layer.proj.weight, dtype=np.float64).T + np.array(layer.proj.bias)
    return x + out.reshape(n, h, w, c)


def test_attention_matches_the_formula():
    mx.random.seed(0)
    layer = SelfAttention(16, groups=4, heads=4)
    x = np.random.default_rng(0).normal(size=(2, 5, 5, 16)).astype(np.float32)
    np.testing.assert_allclose(np.array(layer(mx.array(x))), reference_attention(layer, x), rtol=1e-4, atol=1e-5)


def test_attention_is_blind_to_pixel_order():
    """No position enters the layer: shuffling the pixels shuffles its output the same way."""
    mx.random.seed(1)
    layer = SelfAttention(8, groups=2, heads=2)
    x = mx.random.normal((1, 4, 4, 8))
    order = np.random.default_rng(1).permutation(16)
    shuffled = x.reshape(1, 16, 8)[:, mx.array(order)].reshape(1, 4, 4, 8)
    expected = layer(x).reshape(1, 16, 8)[:, mx.array(order)].reshape(1, 4, 4, 8)
    np.testing.assert_allclose(np.array(layer(shuffled)), np.array(expected), rtol=1e-5, atol=1e-5)


def test_heads_must_divide_the_width():
    with pytest.raises(ValueError, match="heads=4 must divide channels=18"):
        SelfAttention(18, groups=2, heads=4)


def test_attention_is_optional_and_older_configs_load_without_it():
    plain, with_attention = TinyUNet(UNetArgs()), TinyUNet(UNetArgs(attention=True))
    names = {k for k, _ in tree_flatten(with_attention.parameters())} - {k for k, _ in tree_flatten(plain.parameters())}
    assert names == {"attention.norm.weight", "attention.norm.bias", "attention.qkv.weight", "attention.qkv.bias",
                     "attention.proj.weight", "attention.proj.bias"}
    legacy = {k: v for k, v in UNetArgs().to_dict().items() if k != "attention"}  # a config from before the flag
    assert UNetArgs.from_dict(legacy).attention is False
    x, t = mx.random.normal((2, 28, 28, 1)), mx.array([0, 3])
    assert with_attention(x, t).shape == x.shape


def test_a_run_trained_with_attention_records_it_and_reloads(tmp_path, tiny):
    run = mg.train("ddpm", out=str(tmp_path), name="att", verbose=False, attention=True, **tiny)
    assert run.config.model.attention is True and run.config.train.attention is True
    reloaded = mg.load(run.run_dir)
    assert reloaded.model.args.attention
    np.testing.assert_array_equal(mg.sample(reloaded, n=4, seed=2), mg.sample(run, n=4, seed=2))


def test_channels_set_the_unets_widths_at_its_three_resolutions():
    from mlx_generative.families import get_family
    from mlx_generative.training.options import TrainOptions, resolve

    for kind in ("ddpm", "flow"):
        family = get_family(kind)
        assert family.model_args(resolve(kind, TrainOptions(channels=48))).channels == (24, 48, 96)
        assert family.model_args(resolve(kind, TrainOptions())).channels == (16, 32, 64)  # the guide's
