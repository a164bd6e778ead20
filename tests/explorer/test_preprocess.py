"""A drawing is laid out as MNIST's digits are: longer side 20 pixels, centre of mass at the
centre of 28x28, whatever its size and place on the canvas."""

from __future__ import annotations

import numpy as np
import pytest

from mlx_generative.explorer.preprocess import mnist_layout


def _box(image: np.ndarray) -> tuple[int, int]:
    rows, cols = np.nonzero(image > 12)
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


def _centre(image: np.ndarray) -> tuple[float, float]:
    mass = image.astype(np.float64)
    ys, xs = np.indices(image.shape)
    return (ys * mass).sum() / mass.sum(), (xs * mass).sum() / mass.sum()


@pytest.mark.parametrize("top,left,height,width", [(5, 5, 30, 12), (100, 150, 60, 60), (0, 0, 200, 90),
                                                    (180, 10, 16, 100)])
def test_any_stroke_becomes_20_pixels_long_and_centred_by_mass(top, left, height, width):
    canvas = np.zeros((224, 224), np.float32)
    canvas[top : top + height, left : left + width] = 1.0
    canvas[top : top + height // 3, left : left + width // 2] = 0.5  # uneven ink: mass is not the box centre
    digit = mnist_layout(canvas)
    assert digit.shape == (28, 28) and digit.dtype == np.uint8
    h, w = _box(digit)
    assert max(h, w) == 20
    assert abs(min(h, w) - 20 * min(height, width) / max(height, width)) <= 1.5  # the aspect ratio is kept
    cy, cx = _centre(digit)
    assert abs(cy - 13.5) <= 0.6 and abs(cx - 13.5) <= 0.6


def test_off_centre_mass_shifts_the_box():
    """An L: most of its ink is in its long stroke, so the box sits off-centre to put the mass there."""
    canvas = np.zeros((100, 100), np.float32)
    canvas[10:90, 10:20] = 1.0
    canvas[80:90, 10:60] = 1.0
    digit = mnist_layout(canvas)
    cols = np.nonzero(digit.max(axis=0) > 12)[0]
    assert 12 <= len(cols) <= 13  # 20 x 12.5: the box is 12 or 13 wide
    assert cols.min() >= 10  # box-centred it would start at column 7 or 8; the mass pulls it right
    cy, cx = _centre(digit)
    assert abs(cx - 13.5) <= 0.6 and abs(cy - 13.5) <= 0.6


def test_an_empty_canvas_is_an_empty_digit():
    assert not mnist_layout(np.zeros((56, 56), np.float32)).any()
