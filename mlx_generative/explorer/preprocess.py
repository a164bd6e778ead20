"""A drawn digit, prepared the way MNIST's digits were (LeCun et al., the MNIST page):

    1. crop to the bounding box of the ink;
    2. scale it, keeping its aspect ratio, so that the longer side is 20 pixels
       (anti-aliased: area averaging, as the original normalisation produced grey levels);
    3. paste it into 28x28 so that its centre of mass lies at the centre, (14, 14).

Models trained on MNIST have only seen digits laid out this way; a stroke in a corner of
the canvas, or one twice as large, is far outside what they know.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

SIZE = 28  # the output, MNIST's size
BOX = 20  # the longer side of the digit inside it
INK = 0.05  # a pixel brighter than this (of 1) is ink, for the bounding box


def mnist_layout(canvas: np.ndarray) -> np.ndarray:
    """A float (H, W) drawing in [0, 1], ink bright on black, -> uint8 (28, 28) laid out as MNIST.
    An empty canvas gives an empty image."""
    canvas = np.asarray(canvas, dtype=np.float32)
    rows, cols = np.nonzero(canvas > INK)
    out = np.zeros((SIZE, SIZE), np.float32)
    if rows.size == 0:
        return out.astype(np.uint8)
    ink = canvas[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    h, w = ink.shape
    scale = BOX / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    digit = Image.fromarray(np.clip(ink * 255.0, 0, 255).astype(np.uint8)).resize((new_w, new_h), Image.BOX)
    digit = np.asarray(digit, dtype=np.float32)
    # Place the box's top-left so its centre of mass lands on (14, 14), kept inside the frame.
    mass = digit.sum()
    cy = (digit.sum(axis=1) @ np.arange(new_h)) / mass
    cx = (digit.sum(axis=0) @ np.arange(new_w)) / mass
    top = int(np.clip(round(SIZE / 2 - 0.5 - cy), 0, SIZE - new_h))
    left = int(np.clip(round(SIZE / 2 - 0.5 - cx), 0, SIZE - new_w))
    out[top : top + new_h, left : left + new_w] = digit
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
