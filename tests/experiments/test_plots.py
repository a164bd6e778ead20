"""Figures for learning by tweaking: latent maps, interpolations, reconstructions, denoising strips."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import mlx_generative as mg
from mlx_generative.errors import UsageError
from mlx_generative.experiments import plots

# ---- the figures ----------------------------------------------------------------------


def test_interpolation_ends_are_the_reconstructions(ae_sweep):
    run = mg.load(ae_sweep / "latent_dim=8")
    images = mg.load_dataset("mnist-sample", "test").images[:3]
    path = mg.interpolate(run, images, images[::-1], steps=5)
    assert path.shape == (3, 5, 28, 28) and path.dtype == np.uint8
    np.testing.assert_array_equal(path[:, 0], mg.reconstruct(run, images))
    np.testing.assert_array_equal(path[:, -1], mg.reconstruct(run, images[::-1]))
    with pytest.raises(UsageError, match="steps must be >= 2"):
        mg.interpolate(run, images, images, steps=1)


def test_pca_finds_the_widest_direction():
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(500, 3)) * np.array([10.0, 1.0, 0.1])
    points, (x_label, y_label) = plots.project_2d(codes)
    assert points.shape == (500, 2)
    assert np.std(points[:, 0]) == pytest.approx(10.0, rel=0.1) and np.std(points[:, 1]) == pytest.approx(1.0, rel=0.1)
    assert x_label.startswith("PC1 (99%")
    with pytest.raises(UsageError, match="pca or tsne"):
        plots.project_2d(codes, "umap")


def test_tsne_without_scikit_learn_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.manifold", None)
    with pytest.raises(UsageError, match="scikit-learn"):
        plots.project_2d(np.zeros((10, 4)), "tsne")


def test_latent_map_has_a_legend_of_every_class(ae_sweep):
    fig = plots.latent_map([ae_sweep / "latent_dim=4", ae_sweep / "latent_dim=8"], names=["A", "B"], n=300)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title().splitlines()[0] for ax in axes] == ["A", "B"]
    for ax in axes:
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [str(i) for i in range(10)]
        assert ax.get_xlabel().startswith("PC1") and ax.get_ylabel().startswith("PC2")


def test_denoising_strip_has_a_column_per_step(ddpm_run):
    fig = plots.denoising_strip(ddpm_run, n=2)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["t=3", "t=2", "t=1", "t=0"]
    with pytest.raises(UsageError, match="needs ae or vae runs"):
        plots.latent_map(ddpm_run)


def test_reconstruction_rows_put_each_run_under_the_originals(ae_sweep):
    fig = plots.reconstruction_rows([ae_sweep / "latent_dim=4", ae_sweep / "latent_dim=8"], n=5, names=["A", "B"])
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["held-out originals", "A", "B"]
    assert ax.get_images()[0].get_array().shape == (3 * 30 + 2, 5 * 30 + 2)  # 3 rows of 5 images, 2 px apart
