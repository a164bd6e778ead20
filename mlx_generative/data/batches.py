"""Fixed-shape training batches, reproducible from (seed, step) alone.

Every step's batch is a pure function of the seed and the step number: the
epoch's order is a permutation drawn from ``default_rng([seed, epoch])``. So a
resumed run sees exactly the batches an uninterrupted run would have seen,
and the compiled train step always gets the same shape (no retracing): the
ragged end of each epoch is dropped.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..errors import UsageError

SCALES = ("unit", "symmetric")  # [0, 1] for AE/VAE; [-1, 1] for diffusion
BINARIZE = (None, "dynamic")


class BatchStream:
    """Yields float32 (B, H, W, 1) batches of uint8 (N, H, W) images.

    limit: use only the first ``limit`` images (the guide's --limit-train).
    scale: "unit" -> [0, 1], "symmetric" -> [-1, 1].
    binarize: "dynamic" draws each pixel as Bernoulli(intensity) afresh every
        time it is seen (Burda et al.'s dynamic binarization); needs scale "unit".
    labels: uint8 (N,) class labels; when given, ``batch`` returns (images, labels).
    max_shift: translate each image by up to this many pixels (zero fill), drawn
        afresh every step: the augmentation the classifier trains with.
    """

    def __init__(
        self,
        images: np.ndarray,
        batch_size: int,
        seed: int = 0,
        *,
        limit: int | None = None,
        scale: str = "unit",
        binarize: str | None = None,
        labels: np.ndarray | None = None,
        max_shift: int = 0,
    ):
        if images.ndim != 3:
            raise UsageError(f"images must be (N, H, W), got shape {images.shape}")
        if limit is not None:
            if limit < 1:
                raise UsageError(f"limit must be >= 1, got {limit}")
            images = images[:limit]
            labels = None if labels is None else labels[:limit]
        if labels is not None and len(labels) != len(images):
            raise UsageError(f"{len(labels)} labels for {len(images)} images")
        if max_shift < 0:
            raise UsageError(f"max_shift must be >= 0, got {max_shift}")
        if not 1 <= batch_size <= len(images):
            raise UsageError(
                f"batch size must be between 1 and the number of training images "
                f"({len(images)}), got {batch_size}"
            )
        if scale not in SCALES:
            raise UsageError(f"scale must be one of {SCALES}, got {scale!r}")
        if binarize not in BINARIZE:
            raise UsageError(f"binarize must be None or 'dynamic', got {binarize!r}")
        if binarize and scale != "unit":
            raise UsageError("dynamic binarization needs pixels in [0, 1] (scale='unit')")
        self.images = images
        self.batch_size = batch_size
        self.seed = seed
        self.scale = scale
        self.binarize = binarize
        self.labels = labels
        self.max_shift = max_shift
        self.batches_per_epoch = len(images) // batch_size
        self._epoch = -1
        self._order: np.ndarray | None = None

    def __len__(self) -> int:
        return self.batches_per_epoch

    def order(self, epoch: int) -> np.ndarray:
        """The shuffled image indices of one epoch (cached for the current epoch)."""
        if epoch != self._epoch:
            self._order = np.random.default_rng([self.seed, epoch]).permutation(len(self.images))
            self._epoch = epoch
        return self._order

    def indices(self, step: int) -> np.ndarray:
        epoch, position = divmod(step, self.batches_per_epoch)
        start = position * self.batch_size
        return self.order(epoch)[start : start + self.batch_size]

    def batch(self, step: int):
        """The float32 (B, H, W, 1) batch the run uses at ``step`` (with int32 labels if given)."""
        indices = self.indices(step)
        x = self.images[indices].astype(np.float32) / 255.0
        if self.max_shift:
            x = random_shift(x, self.max_shift, np.random.default_rng([self.seed, step, 2]))
        if self.binarize == "dynamic":
            noise = np.random.default_rng([self.seed, step, 1]).random(x.shape, dtype=np.float32)
            x = (noise < x).astype(np.float32)
        if self.scale == "symmetric":
            x = x * 2.0 - 1.0
        if self.labels is not None:
            return x[..., None], self.labels[indices].astype(np.int32)
        return x[..., None]

    def from_step(self, step: int = 0) -> Iterator[np.ndarray]:
        """Endless batches starting at ``step``."""
        while True:
            yield self.batch(step)
            step += 1


def random_shift(x: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Translate each (H, W) image by (dy, dx) in [-max_shift, max_shift], filling with zeros."""
    n, h, w = x.shape
    padded = np.zeros((n, h + 2 * max_shift, w + 2 * max_shift), dtype=x.dtype)
    padded[:, max_shift : max_shift + h, max_shift : max_shift + w] = x
    dy, dx = rng.integers(0, 2 * max_shift + 1, size=(2, n))
    rows = dy[:, None] + np.arange(h)  # (n, h): the window each image is cut from
    cols = dx[:, None] + np.arange(w)
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def to_model_input(images: np.ndarray, scale: str = "unit") -> np.ndarray:
    """uint8 (N, H, W) -> float32 (N, H, W, 1) in the model's range, without shuffling."""
    x = images.astype(np.float32)[..., None] / 255.0
    return x * 2.0 - 1.0 if scale == "symmetric" else x
