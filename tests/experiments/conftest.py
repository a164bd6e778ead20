"""The sweep and the DDPM run that the experiments' tests look at, made once per session."""

from __future__ import annotations

import pytest

import mlx_generative as mg


@pytest.fixture(scope="session")
def sweep_options(tiny) -> dict:
    """A tiny run's options, with held-out evaluations along the way (the loss curves' dots)."""
    return dict(tiny, eval_every=2)


@pytest.fixture(scope="session")
def ae_sweep(tmp_path_factory, sweep_options):
    out = tmp_path_factory.mktemp("sweeps")
    return mg.sweep("ae", {"latent_dim": [4, 8]}, out=out, eval_samples=40, verbose=False, **sweep_options)


@pytest.fixture(scope="session")
def ddpm_run(tmp_path_factory, sweep_options):
    return mg.train("ddpm", out=str(tmp_path_factory.mktemp("d")), name="d", verbose=False, T=3, **sweep_options)
