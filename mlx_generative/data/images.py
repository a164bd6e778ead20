"""Image grids as PNG files and animated GIFs, and conversions between model outputs and uint8 pixels."""

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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    picture(images, nrow, scale).save(tmp, format="PNG")
    os.replace(tmp, path)
    return path


def interleave_rows(top: np.ndarray, bottom: np.ndarray, per_row: int) -> np.ndarray:
    """Alternate rows of ``top`` and ``bottom`` (originals over reconstructions)."""
    pieces = []
    for start in range(0, len(top), per_row):
        pieces += [top[start : start + per_row], bottom[start : start + per_row]]
    return np.concatenate(pieces)


def picture(images, nrow: int | None = None, scale: int = 2) -> Image.Image:
    """A grid of images as a Pillow picture, ``scale``x nearest-neighbour upsampled."""
    tiled = Image.fromarray(grid(images, nrow))
    return tiled.resize((tiled.width * scale, tiled.height * scale), Image.NEAREST) if scale > 1 else tiled


def save_gif(frames: list[np.ndarray], path, frame_ms: int = 160, hold_ms: int = 1500) -> Path:
    """An animated GIF, looping, of ``frames`` (2-D uint8 pictures of one size, e.g. from
    ``picture``): each shown ``frame_ms``, the last held ``hold_ms`` so the result can be
    looked at. Returns the path."""
    if not frames:
        raise UsageError(f"{path}: an animation needs at least one frame")
    pictures = [_grey_palette_image(f) for f in frames]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    durations = [frame_ms] * (len(pictures) - 1) + [hold_ms]
    # optimize=False: shrinking the palette to the first frame's greys would round later frames.
    pictures[0].save(tmp, format="GIF", save_all=True, append_images=pictures[1:], duration=durations, loop=0,
                     optimize=False)
    os.replace(tmp, path)
    return path


GREYS = bytes(v for level in range(256) for v in (level, level, level))  # palette index i is grey level i


def _grey_palette_image(pixels: np.ndarray) -> Image.Image:
    """A 2-D uint8 picture as a palette image whose 256 colours are the 256 greys: a GIF
    then stores every pixel exactly."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    image = Image.frombytes("P", (pixels.shape[1], pixels.shape[0]), pixels.tobytes())
    image.putpalette(GREYS)
    return image
