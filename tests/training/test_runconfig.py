"""config.json: typed, versioned, one home per field; runs written in format 1 still load,
sample exactly as they did, and resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import mlx_generative as mg
from mlx_generative.errors import CheckpointError
from mlx_generative.training import checkpoint, runconfig
from mlx_generative.training.runconfig import FORMAT_VERSION, RunConfig

FORMAT1 = Path(__file__).resolve().parents[1] / "fixtures" / "format1-runs"
FORMAT1_RUNS = ["ae", "vae-conditional", "ddpm", "ddpm-conditional-ddim"]


@pytest.mark.parametrize("name", FORMAT1_RUNS)
def test_a_format_1_run_samples_exactly_what_it_sampled_when_written(name):
    run = mg.load(FORMAT1 / name)
    expected = np.load(FORMAT1 / name / "expected.npz")
    labels = {"labels": [1, 2, 3, 4]} if run.conditional else {}
    np.testing.assert_array_equal(mg.sample(run, n=4, seed=7, **labels), expected["samples"])
    if "trajectory" in expected:
        np.testing.assert_array_equal(mg.denoising_trajectory(run, n=2, seed=3), expected["trajectory"])
    if "ddim" in expected:
        np.testing.assert_array_equal(mg.sample(run, n=4, seed=7, sampler="ddim", steps=2, eta=0.3), expected["ddim"])


def test_format_1_diffusion_settings_move_into_train():
    raw = json.loads((FORMAT1 / "ddpm-conditional-ddim" / "config.json").read_text())
    assert raw["format_version"] == 1 and raw["diffusion"] == {"T": 10, "schedule": "linear", "sigma": "beta"}
    config = runconfig.read(FORMAT1 / "ddpm-conditional-ddim")
    train = config.train
    assert (train.T, train.schedule, train.sigma) == (10, "linear", "beta")
    assert (train.sampler, train.sample_steps, train.sample_eta, train.guidance) == ("ddim", 3, 0.5, 2.0)
    assert config.conditional and config.model.num_classes == 10
    written = config.to_dict()
    assert written["format_version"] == FORMAT_VERSION == 2
    assert "diffusion" not in written and set(written["data"]) == {"dataset", "train_images", "heldout"}
    assert "latent_dim" not in written["train"]  # an option of other families, said nowhere
    assert RunConfig.from_dict(written).to_dict() == written


def test_a_format_1_run_without_a_sigma_sampled_with_the_guides():
    """Runs from before --sigma existed sampled with sqrt(beta_t); migration keeps that."""
    raw = json.loads((FORMAT1 / "ddpm" / "config.json").read_text())
    del raw["diffusion"]["sigma"], raw["train"]["sigma"]
    assert RunConfig.from_dict(raw).train.sigma == "beta"
    assert RunConfig.from_dict({**raw, "format_version": 2, "train": raw["train"]}).train.sigma == "posterior"


def test_a_format_1_ddpm_without_its_diffusion_section_reads_train():
    raw = json.loads((FORMAT1 / "ddpm-conditional-ddim" / "config.json").read_text())
    del raw["diffusion"]
    train = RunConfig.from_dict(raw).train
    assert (train.T, train.schedule, train.sigma) == (10, "linear", "beta")  # format 1 said it twice


def test_format_1_runs_from_before_shards_and_the_ema_resume_as_they_trained():
    raw = json.loads((FORMAT1 / "ae" / "config.json").read_text())
    for newer in ("shards", "ema_decay", "lr_schedule"):
        raw["train"].pop(newer)
    train = RunConfig.from_dict(raw).train
    assert (train.shards, train.ema_decay, train.lr_schedule) == (1, 0.0, None)  # None: the family's


def test_a_format_1_run_resumes_and_is_written_back_in_format_2(tmp_path):
    run_dir = tmp_path / "ddpm"
    shutil.copytree(FORMAT1 / "ddpm-conditional-ddim", run_dir)
    resumed = mg.train("ddpm", resume=run_dir, steps=3, verbose=False)
    written = json.loads((run_dir / "config.json").read_text())
    assert written["format_version"] == 2 and written["train"]["steps"] == 3
    assert {k: written["train"][k] for k in ("T", "schedule", "sigma", "sampler")} == {
        "T": 10, "schedule": "linear", "sigma": "beta", "sampler": "ddim"}
    steps = [r["step"] for r in checkpoint.read_metrics(run_dir) if r["split"] == "train"]
    assert steps == [1, 2, 3]
    np.testing.assert_array_equal(mg.sample(mg.load(run_dir), n=2, labels=[5]), mg.sample(resumed, n=2, labels=[5]))
    # The run was made under --out /tmp/fx and moved here: its guide grid lands beside it.
    assert written["train"]["out"] == "/tmp/fx" and (tmp_path / "ddpm_grid.png").is_file()


def test_the_shipped_classifiers_load_from_format_1():
    from mlx_generative.evaluation.features import find_classifier

    for dataset in ("mnist", "fashion-mnist"):
        classifier = find_classifier(dataset)
        assert classifier.family.classifies and classifier.config.train.steps == 2000


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(format_version=3), "format_version 3 is not supported (this version reads 1 and 2)"),
    (lambda c: c.pop("format_version"), "format_version None"),
    (lambda c: c.pop("kind"), "missing key 'kind'"),
    (lambda c: c.update(kind=["ae"]), "unknown model kind"),
    (lambda c: c["diffusion"].pop("T"), "'diffusion' must hold 'T' and 'schedule'"),
    (lambda c: c["diffusion"].update(T=0), "invalid training settings (--T must be >= 1, got 0)"),
    (lambda c: c["diffusion"].update(schedule="square"), "--schedule must be linear or cosine"),
    (lambda c: c["train"].update(steps="ten"), "'train' 'steps' must be int, got 'ten'"),
    (lambda c: c["data"].pop("dataset"), "'data' 'dataset' must be str"),
    (lambda c: c.update(train=[1]), "'train' must be an object"),
])
def test_damaged_configs_are_named(change, message):
    raw = json.loads((FORMAT1 / "ddpm" / "config.json").read_text())
    change(raw)
    with pytest.raises(CheckpointError) as error:
        RunConfig.from_dict(raw, "x/config.json")
    assert message in str(error.value) and "x/config.json" in str(error.value)
