"""Sample-quality measures on classifier features: Frechet distance, Inception Score,
precision and recall. Plain numpy on (N, D) feature arrays and (N, C) class
probabilities, so they can be checked against closed forms and reused on any
feature extractor.
"""

from __future__ import annotations

import numpy as np

from ..errors import UsageError

_CHUNK = 2048  # rows per block of the pairwise-distance matrix (2048 x 10000 floats = 80 MB)


def _features(name: str, x: np.ndarray, min_rows: int = 2) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or len(x) < min_rows:
        raise UsageError(f"{name} must be an (N, D) array with N >= {min_rows}, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise UsageError(f"{name} holds NaN or infinite values")
    return x


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (float64) of (N, D) features."""
    f = _features("features", features).astype(np.float64)
    return f.mean(axis=0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (the "F" of FID):

        |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2))

    tr((S_a S_b)^(1/2)) is computed as the trace of the square root of the symmetric
    PSD matrix S_a^(1/2) S_b S_a^(1/2), which has the same eigenvalues, so no complex
    matrix square root is needed.
    """
    mu_a, s_a = gaussian_stats(a)
    mu_b, s_b = gaussian_stats(b)
    if mu_a.shape != mu_b.shape:
        raise UsageError(f"feature sizes differ: {mu_a.shape[0]} vs {mu_b.shape[0]}")
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    middle = root_a @ s_b @ root_a
    tr_root = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(s_a) + np.trace(s_b) - 2.0 * tr_root)


def inception_score(probs: np.ndarray) -> float:
    """exp(E_x KL(p(y|x) || p(y))): high when each image is confidently one class and
    the classes are evenly used. Ranges from 1 to the number of classes."""
    p = _features("probs", probs, min_rows=1).astype(np.float64)
    p = np.clip(p, 1e-12, 1.0)
    marginal = p.mean(axis=0, keepdims=True)
    return float(np.exp(np.mean(np.sum(p * (np.log(p) - np.log(marginal)), axis=1))))


def confidence(probs: np.ndarray) -> float:
    """Mean top-class probability: how sure the classifier is that an image is *some* digit."""
    return float(np.mean(np.max(_features("probs", probs, min_rows=1), axis=1)))


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)


def knn_radii(features: np.ndarray, k: int = 3) -> np.ndarray:
    """Squared distance from each point to its k-th nearest *other* point in the same set."""
    f = _features("features", features, min_rows=k + 1).astype(np.float32)
    radii = np.empty(len(f), dtype=np.float32)
    for start in range(0, len(f), _CHUNK):
        d = _squared_distances(f[start : start + _CHUNK], f)
        radii[start : start + _CHUNK] = np.partition(d, k, axis=1)[:, k]  # column 0 is the point itself
    return radii


def _covered(points: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """For each point: does it fall inside any centre's k-NN ball?"""
    inside = np.zeros(len(points), dtype=bool)
    for start in range(0, len(points), _CHUNK):
        d = _squared_distances(points[start : start + _CHUNK], centres)
        inside[start : start + _CHUNK] = np.any(d <= radii[None, :], axis=1)
    return inside


def precision_recall(real: np.ndarray, generated: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019, arXiv:1904.06991).

    Each set's manifold is the union of balls reaching each point's k-th nearest
    neighbour. Precision: the share of generated points inside the real manifold
    (are samples realistic?). Recall: the share of real points inside the generated
    manifold (is the data's variety covered?).
    """
    if k < 1:
        raise UsageError(f"k must be >= 1, got {k}")
    real = _features("real features", real, min_rows=k + 1).astype(np.float32)
    generated = _features("generated features", generated, min_rows=k + 1).astype(np.float32)
    precision = float(np.mean(_covered(generated, real, knn_radii(real, k))))
    recall = float(np.mean(_covered(real, generated, knn_radii(generated, k))))
    return precision, recall
