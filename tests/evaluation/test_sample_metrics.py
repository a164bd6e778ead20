"""Frechet distance, Inception Score and precision/recall against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from mlx_generative.errors import UsageError
from mlx_generative.evaluation import sample_metrics as sm


@pytest.fixture
def gaussian():
    return np.random.default_rng(0).normal(size=(2000, 8)) @ np.diag(np.arange(1.0, 9.0))


def test_frechet_distance_of_a_set_with_itself_is_zero(gaussian):
    assert abs(sm.frechet_distance(gaussian, gaussian)) < 1e-6


def test_frechet_distance_of_a_shift_is_the_squared_shift(gaussian):
    shift = np.array([3.0, 0, 0, -1, 0, 0, 0, 2])
    assert sm.frechet_distance(gaussian, gaussian + shift) == pytest.approx(14.0, rel=1e-9)


def test_frechet_distance_of_a_rescaled_set_matches_the_closed_form(gaussian):
    # Scaling by s multiplies each covariance by s^2: FD = (1 - s)^2 tr(S) + |(1 - s) mu|^2.
    _, cov = sm.gaussian_stats(gaussian)
    mean = gaussian.mean(0)
    expected = (1 - 3.0) ** 2 * (np.trace(cov) + mean @ mean)
    assert sm.frechet_distance(gaussian, 3.0 * gaussian) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_grows_as_sets_part(gaussian):
    other = np.random.default_rng(1).normal(size=(2000, 8)) @ np.diag(np.arange(1.0, 9.0))
    near, far = sm.frechet_distance(gaussian, other), sm.frechet_distance(gaussian, other * 1.5)
    assert 0 < near < far


def test_inception_score_bounds():
    one_hot = np.eye(10)[np.arange(1000) % 10]
    assert sm.inception_score(one_hot) == pytest.approx(10.0, rel=1e-6)  # sure and all classes used
    assert sm.inception_score(np.full((100, 10), 0.1)) == pytest.approx(1.0)  # unsure
    assert sm.inception_score(np.eye(10)[np.zeros(100, int)]) == pytest.approx(1.0)  # one class only
    assert sm.confidence(one_hot) == 1.0 and sm.confidence(np.full((5, 4), 0.25)) == 0.25


def test_precision_recall_of_identical_and_disjoint_sets(gaussian):
    assert sm.precision_recall(gaussian, gaussian) == (1.0, 1.0)
    assert sm.precision_recall(gaussian, gaussian + 1000.0) == (0.0, 0.0)


def test_precision_recall_of_mode_collapse():
    """Samples from one of two real modes are realistic (precision 1) but cover half (recall 1/2)."""
    rng = np.random.default_rng(0)
    real = np.concatenate([rng.normal(size=(500, 2)), rng.normal(size=(500, 2)) + 50.0])
    collapsed = rng.normal(size=(1000, 2))
    precision, recall = sm.precision_recall(real, collapsed, k=3)
    assert precision > 0.95
    assert 0.45 < recall < 0.52


def test_metrics_reject_bad_input():
    with pytest.raises(UsageError, match="NaN"):
        sm.frechet_distance(np.full((4, 2), np.nan), np.zeros((4, 2)))
    with pytest.raises(UsageError, match="feature sizes differ"):
        sm.frechet_distance(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(UsageError, match=r"N >= 4"):
        sm.precision_recall(np.zeros((3, 2)), np.zeros((10, 2)), k=3)
