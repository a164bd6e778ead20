"""The pretrained runs shipped in data/pretrained/: each loads by its short name, carries its
provenance, and still scores on the held-out digits what it scored when it was trained."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

import mlx_generative as mg
from mlx_generative.cli import main as cli
from mlx_generative.data.batches import to_model_input
from mlx_generative.errors import UsageError
from mlx_generative.training import checkpoint
from mlx_generative.training.runs import PRETRAINED_DIR, pretrained_names

SHIPPED = ["ae", "ddpm", "ddpm-conditional", "flow", "vae", "vae-conditional"]


def test_the_six_runs_are_shipped():
    assert pretrained_names() == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_run_scores_what_it_recorded(name):
    run = mg.load(f"pretrained/{name}")
    assert run.run_dir == PRETRAINED_DIR / name
    recorded = [r for r in checkpoint.read_metrics(run.run_dir) if r.get("split") == "test"][-1]
    assert recorded["step"] == run.config.train.steps  # the final held-out figures
    heldout = mg.load_dataset(run.config.train.dataset, "test")
    assert len(heldout.images) == 1000  # the sample's last 1,000: never trained on
    run.model.eval()
    measured = run.family.heldout(run.model, to_model_input(heldout.images, run.family.scale), run.config.train,
                                  labels=heldout.labels)
    for key, value in measured.items():
        assert float(value) == pytest.approx(recorded[key], rel=1e-4, abs=1e-6), key


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_run_says_how_it_was_made(name):
    folder = PRETRAINED_DIR / name
    provenance = json.loads((folder / "PROVENANCE.json").read_text())
    assert provenance["command"].startswith("uv run bin/train ")
    assert "--dataset mnist-sample" in provenance["command"] and "--seed 0" in provenance["command"]
    assert provenance["rebuild"] == f"uv run python data/build_pretrained.py --only {name}"
    assert len(provenance["commit"].split("-")[0]) == 40 and provenance["seed"] == 0
    assert provenance["train_seconds"] > 0
    assert provenance["model_sha256"] == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert not (folder / "checkpoints").exists()  # nothing only a resume needs


def test_short_names_work_from_the_command_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a shipped run is found from anywhere, and not written to
    assert cli(["sample", "pretrained/ddpm", "--n", "4"]) == 0
    written = tmp_path / "outputs" / "pretrained" / "ddpm" / "samples-seed0.png"
    assert capsys.readouterr().out.strip().endswith(str(written.relative_to(tmp_path)))
    assert written.is_file() and not (PRETRAINED_DIR / "ddpm" / "samples-seed0.png").exists()


def test_an_unknown_short_name_lists_the_shipped_ones():
    with pytest.raises(UsageError, match="no such pretrained run; the shipped ones are pretrained/ae, "):
        mg.load("pretrained/gan")


def test_a_local_run_directory_of_that_path_comes_first(tiny_runs, tmp_path, monkeypatch):
    local = tmp_path / "pretrained" / "vae"
    local.parent.mkdir()
    shutil.copytree(tiny_runs["vae"].run_dir, local)
    monkeypatch.chdir(tmp_path)
    run = mg.load("pretrained/vae")
    assert run.run_dir == local.relative_to(tmp_path)
    np.testing.assert_array_equal(mg.sample(run, n=2), mg.sample(tiny_runs["vae"], n=2))
