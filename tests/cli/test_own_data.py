"""One's own IDX folder end to end, as a user runs it: train, sample, evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mlx_generative.data.datasets import load_dataset
from mlx_generative.data.idx import write_idx

TINY = ["--steps", "4", "--batch-size", "16", "--no-progress", "--eval-every", "100"]
QUICK_EVAL = ["--n-samples", "16", "--iwae-k", "2", "--iwae-images", "8", "--heldout-images", "32"]


def _kmnist_like(folder: Path, labels: bool) -> Path:
    """Real digits under KMNIST's file names (train and t10k pairs), with or without labels."""
    digits = load_dataset("mnist-sample", "train")
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte.gz", digits.images[:96])
    write_idx(folder / "t10k-images-idx3-ubyte.gz", digits.images[96:160])
    if labels:
        write_idx(folder / "train-labels-idx1-ubyte.gz", digits.labels[:96])
        write_idx(folder / "t10k-labels-idx1-ubyte.gz", digits.labels[96:160])
    return folder


def _run_dir(out: Path) -> Path:
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    return run


def test_an_unlabelled_folder_trains_samples_and_says_what_eval_cannot_compute(cli, tmp_path, monkeypatch):
    _kmnist_like(tmp_path / "mine", labels=False)
    monkeypatch.chdir(tmp_path)  # a relative --data-dir ...
    status, err = cli(["train", "vae", *TINY, "--dataset", "idx", "--data-dir", "mine", "--out", "runs"])
    assert status == 0, err
    run = _run_dir(tmp_path / "runs").resolve()
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["dataset"] == "idx" and config["data"]["train_images"] == 96
    assert config["train"]["data_dir"] == str((tmp_path / "mine").resolve())
    assert (run / "samples.png").is_file() and (run / "reconstructions.png").is_file()

    monkeypatch.chdir(Path("/"))  # ... still found by bin/eval from anywhere
    status, err = cli(["sample", str(run), "--n", "4", "--out", str(tmp_path / "s.png")])
    assert status == 0, err
    assert (tmp_path / "s.png").is_file()
    status, err = cli(["eval", str(run), *QUICK_EVAL])
    assert status == 0, err
    assert "no classifier for your own IDX data, so these figures are not computed: Frechet distance" in err
    result = json.loads((run / "eval.json").read_text())
    assert result["samples"] is None and "Frechet distance" in result["skipped"]
    assert result["heldout"]["neg_elbo"] > 0 and "t10k-images-idx3-ubyte.gz" in result["heldout"]["data"]


def test_a_labelled_folder_trains_conditionally_and_is_scored_by_its_own_classifier(cli, tmp_path):
    data = _kmnist_like(tmp_path / "mine", labels=True)
    common = [*TINY, "--dataset", "idx", "--data-dir", str(data)]
    assert cli(["train", "classifier", *common, "--out", str(tmp_path / "clf")])[0] == 0
    assert cli(["train", "vae", "--conditional", *common, "--out", str(tmp_path / "vae")])[0] == 0
    classifier, vae = _run_dir(tmp_path / "clf"), _run_dir(tmp_path / "vae")
    status, err = cli(["eval", str(vae), *QUICK_EVAL, "--classifier", str(classifier)])
    assert status == 0, err
    result = json.loads((vae / "eval.json").read_text())
    assert np.isfinite(result["samples"]["frechet_distance"])
    assert 0 <= result["classifier"]["heldout_accuracy"] <= 1
    assert len(result["conditional"]["per_class"]) == 10
