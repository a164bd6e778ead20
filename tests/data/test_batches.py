"""Batches: fixed shapes, ranges, seeded shuffles, limit and dynamic binarization."""

from __future__ import annotations

import numpy as np
import pytest

from mlx_generative.data.batches import BatchStream, to_model_input
from mlx_generative.errors import UsageError


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)


def test_shapes_dtypes_and_ranges(images):
    unit = BatchStream(images, 16, seed=0).batch(0)
    assert unit.shape == (16, 28, 28, 1) and unit.dtype == np.float32
    assert unit.min() >= 0.0 and unit.max() <= 1.0
    sym = BatchStream(images, 16, seed=0, scale="symmetric").batch(0)
    assert sym.min() >= -1.0 and sym.max() <= 1.0 and sym.min() < 0
    np.testing.assert_allclose(sym, unit * 2 - 1, atol=1e-6)


def test_epoch_covers_each_image_once_and_drops_the_ragged_end(images):
    stream = BatchStream(images, 16, seed=1)
    assert len(stream) == 3  # 50 // 16, the last 2 images of each epoch are dropped
    seen = np.concatenate([stream.indices(s) for s in range(3)])
    assert len(set(seen.tolist())) == 48
    assert not np.array_equal(stream.indices(0), stream.indices(3))  # a new order next epoch


def test_shuffle_is_a_function_of_seed_and_step(images):
    a, b, c = BatchStream(images, 8, seed=7), BatchStream(images, 8, seed=7), BatchStream(images, 8, seed=8)
    np.testing.assert_array_equal(a.batch(10), b.batch(10))
    assert not np.array_equal(a.batch(10), c.batch(10))
    later_first = b.batch(20), b.batch(3)
    np.testing.assert_array_equal(later_first[1], a.batch(3))  # order of calls does not matter


def test_limit(images):
    stream = BatchStream(images, 4, seed=0, limit=10)
    assert len(stream.images) == 10 and len(stream) == 2
    assert set(np.concatenate([stream.indices(s) for s in range(2)]).tolist()) <= set(range(10))
    assert len(BatchStream(images, 4, limit=1000).images) == 50  # a limit above N uses all


def test_dynamic_binarization(images):
    stream = BatchStream(images, 8, seed=0, binarize="dynamic")
    x = stream.batch(0)
    assert set(np.unique(x).tolist()) <= {0.0, 1.0}
    again = BatchStream(images, 8, seed=0, binarize="dynamic").batch(0)
    np.testing.assert_array_equal(x, again)
    # The same image seen in another epoch is binarized afresh.
    order0, order1 = stream.indices(0), stream.indices(len(stream))
    assert not np.array_equal(x, stream.batch(len(stream))) or not np.array_equal(order0, order1)
    # Mean of Bernoulli draws tracks the intensity.
    many = np.stack([BatchStream(images[:1].repeat(8, 0), 8, seed=s, binarize="dynamic").batch(0) for s in range(50)])
    np.testing.assert_allclose(many.mean(axis=(0, 1))[..., 0], images[0] / 255.0, atol=0.2)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"batch_size": 0}, "batch size"),
        ({"batch_size": 51}, "batch size"),
        ({"batch_size": 4, "limit": 0}, "limit"),
        ({"batch_size": 4, "scale": "wide"}, "scale"),
        ({"batch_size": 4, "binarize": "static"}, "binarize"),
        ({"batch_size": 4, "binarize": "dynamic", "scale": "symmetric"}, "dynamic"),
    ],
)
def test_bad_arguments(images, kwargs, match):
    with pytest.raises(UsageError, match=match):
        BatchStream(images, **kwargs)


def test_to_model_input(images):
    x = to_model_input(images[:3], "symmetric")
    assert x.shape == (3, 28, 28, 1) and x.dtype == np.float32
    assert x.min() >= -1 and x.max() <= 1
