"""The classifier whose penultimate features the sample metrics compare, and how to find it.

A data set's classifier is a run directory like any other (``bin/train classifier``):
the user's own in the cache, else the one shipped in the repository's data/classifiers/.
"""

from __future__ import annotations

from pathlib import Path

import mlx.core as mx
import numpy as np

from ..data import idx_folder
from ..data.batches import to_model_input
from ..data.datasets import REPO_DATA_DIR, evaluation_dataset, user_cache_dir
from ..errors import UsageError
from ..families.base import EVAL_BATCH
from ..training import checkpoint
from ..training.runs import Run, load


def classifier_dirs(dataset: str) -> list[Path]:
    """Where a data set's classifier run is looked for: the user cache, then the shipped one."""
    family = evaluation_dataset(dataset)
    return [user_cache_dir("classifiers") / family, REPO_DATA_DIR / "classifiers" / family]


def find_classifier(dataset: str, explicit=None) -> Run | None:
    """The classifier ``Run`` for ``dataset`` (``explicit``: a run directory), or None."""
    if explicit is not None:
        run = load(explicit)
        if not run.family.classifies:
            raise UsageError(f"--classifier {explicit}: not a classifier run (its kind is {run.kind})")
        return run
    if dataset == idx_folder.NAME:  # a cached "idx" classifier may know another folder's classes
        return None
    for directory in classifier_dirs(dataset):
        if (directory / checkpoint.CONFIG).is_file():
            return load(directory)
    return None


def classify(classifier: Run, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, H, W) -> (features (N, D), class probabilities (N, C))."""
    model = classifier.model
    model.eval()  # no dropout
    x = to_model_input(images, "unit")
    features, probs = [], []
    for a in range(0, len(x), EVAL_BATCH):
        f = model.features(mx.array(x[a : a + EVAL_BATCH]))
        p = mx.softmax(model.head(f), axis=-1)
        features.append(np.array(f))
        probs.append(np.array(p))
    return np.concatenate(features), np.concatenate(probs)
