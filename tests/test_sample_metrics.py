"""Frechet distance, Inception Score, precision/recall and the IWAE bound against closed forms."""

from __future__ import annotations

import math

import mlx.core as mx
import numpy as np
import pytest

from mlx_generative import sample_metrics as sm
from mlx_generative.errors import UsageError
from mlx_generative.likelihood import iwae_nll
from mlx_generative.losses import bernoulli_nll


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


class _FixedDecoderVAE:
    """q(z|x) = N(mu, sigma^2), a decoder that ignores z: the IWAE bound has closed forms."""

    def __init__(self, logit: float, mu: float, logvar: float, latent: int = 2):
        self.logit, self.mu, self.logvar, self.latent = logit, mu, logvar, latent

    def encode(self, x):
        shape = (x.shape[0], self.latent)
        return mx.full(shape, self.mu), mx.full(shape, self.logvar)

    def decode(self, z):
        return mx.full((z.shape[0], 4, 4, 1), self.logit)


@pytest.fixture
def pixels():
    return (np.random.default_rng(0).random((6, 4, 4, 1)) > 0.5).astype(np.float32)


@pytest.mark.parametrize("k", [1, 7, 5000])
def test_iwae_is_exact_when_q_is_the_prior(pixels, k, monkeypatch):
    # log w = log p(x|z) exactly for every draw, whatever k and however the k are chunked.
    monkeypatch.setattr("mlx_generative.likelihood.DECODES_PER_CALL", 3)
    model = _FixedDecoderVAE(logit=0.7, mu=0.0, logvar=0.0)
    expected = np.array(bernoulli_nll(mx.full(pixels.shape, 0.7), mx.array(pixels)))
    np.testing.assert_allclose(iwae_nll(model, pixels, k=k), expected, rtol=1e-5)


def test_iwae_bound_tightens_towards_log_px_as_k_grows(pixels):
    # With q != prior, E[w] = p(x|z) still, so the bound approaches it from above as k grows;
    # at k = 1 its expectation is -ELBO = nll + KL(q || prior). q is wider than the prior,
    # so the weights p(z)/q(z) are bounded and the estimate converges fast.
    model = _FixedDecoderVAE(logit=-0.3, mu=0.3, logvar=0.5)
    exact = np.array(bernoulli_nll(mx.full(pixels.shape, -0.3), mx.array(pixels)))
    kl = 0.5 * 2 * (0.3**2 + math.exp(0.5) - 0.5 - 1.0)
    one = np.mean([iwae_nll(model, pixels, k=1, seed=s) - exact for s in range(200)])
    many = iwae_nll(model, pixels, k=4000) - exact
    assert one == pytest.approx(kl, rel=0.15)
    assert np.abs(many).max() < 0.05 and abs(many.mean()) < 0.015  # vs a gap of 0.24 nats at k = 1
