"""Image grids as PNG files, and conversions between model outputs and uint8 pixels."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import UsageError


def to_uint8(x) -> np.ndarray:
    """Float pixels in [0, 1] (any of (N, H, W) or (N, H, W, 1)) -> uint8 (N, H, W)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def as_unit_float(images) -> np.ndarray:
    """uint8 (N, H, W) or float (N, H, W[, 1]) in [0, 1] -> float32 (N, H, W, 1) in [0, 1]."""
    x = np.asarray(images)
    if x.ndim == 2:
        x = x[None]
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3:
        raise UsageError(f"images must be (N, H, W) or (N, H, W, 1), got shape {x.shape}")
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0
    else:
        x = x.astype(np.float32)
        if x.size and (x.min() < 0.0 or x.max() > 1.0):
            raise UsageError("float images must lie in [0, 1] (or pass uint8 pixels)")
    return x[..., None]


def grid(images, nrow: int | None = None, padding: int = 2, background: int = 40) -> np.ndarray:
    """Tile (N, H, W) images into one uint8 picture, ``nrow`` images per row."""
    images = to_uint8(images) if np.asarray(images).dtype != np.uint8 else np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    n, h, w = images.shape
    cols = nrow or max(1, int(math.ceil(math.sqrt(n))))
    rows = max(1, int(math.ceil(n / cols)))
    canvas = np.full((rows * (h + padding) + padding, cols * (w + padding) + padding), background, np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        top, left = padding + r * (h + padding), padding + c * (w + padding)
        canvas[top : top + h, left : left + w] = image
    return canvas


def save_grid(images, path, nrow: int | None = None, scale: int = 2) -> Path:
    """Save images as one PNG grid (``scale``x nearest-neighbour upsampling); returns the path."""
    picture = Image.fromarray(grid(images, nrow))
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    picture.save(tmp, format="PNG")
    os.replace(tmp, path)
    return path


def interleave_rows(top: np.ndarray, bottom: np.ndarray, per_row: int) -> np.ndarray:
    """Alternate rows of ``top`` and ``bottom`` (originals over reconstructions)."""
    pieces = []
    for start in range(0, len(top), per_row):
        pieces += [top[start : start + per_row], bottom[start : start + per_row]]
    return np.concatenate(pieces)
