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

from .errors import UsageError

SCALES = ("unit", "symmetric")  # [0, 1] for AE/VAE; [-1, 1] for diffusion
BINARIZE = (None, "dynamic")


class BatchStream:
    """Yields float32 (B, H, W, 1) batches of uint8 (N, H, W) images.

    limit: use only the first ``limit`` images (the guide's --limit-train).
    scale: "unit" -> [0, 1], "symmetric" -> [-1, 1].
    binarize: "dynamic" draws each pixel as Bernoulli(intensity) afresh every
        time it is seen (Burda et al.'s dynamic binarization); needs scale "unit".
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
    ):
        if images.ndim != 3:
            raise UsageError(f"images must be (N, H, W), got shape {images.shape}")
        if limit is not None:
            if limit < 1:
                raise UsageError(f"limit must be >= 1, got {limit}")
            images = images[:limit]
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

    def batch(self, step: int) -> np.ndarray:
        """The float32 (B, H, W, 1) batch the run uses at ``step``."""
        x = self.images[self.indices(step)].astype(np.float32) / 255.0
        if self.binarize == "dynamic":
            noise = np.random.default_rng([self.seed, step, 1]).random(x.shape, dtype=np.float32)
            x = (noise < x).astype(np.float32)
        if self.scale == "symmetric":
            x = x * 2.0 - 1.0
        return x[..., None]

    def from_step(self, step: int = 0) -> Iterator[np.ndarray]:
        """Endless batches starting at ``step``."""
        while True:
            yield self.batch(step)
            step += 1


def to_model_input(images: np.ndarray, scale: str = "unit") -> np.ndarray:
    """uint8 (N, H, W) -> float32 (N, H, W, 1) in the model's range, without shuffling."""
    x = images.astype(np.float32)[..., None] / 255.0
    return x * 2.0 - 1.0 if scale == "symmetric" else x
