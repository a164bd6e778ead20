"""bin/eval and mlx_generative.evaluate on tiny runs, and the shipped classifier."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mlx_generative as mg
from mlx_generative.cli import main as cli_main
from mlx_generative.data.datasets import load_dataset, load_heldout
from mlx_generative.errors import UsageError
from mlx_generative.evaluation import evaluate as evaluation
from mlx_generative.evaluation import features, sample_metrics

QUICK = dict(n_samples=40, iwae_k=8, iwae_images=6, heldout_images=300, verbose=False)


@pytest.fixture(autouse=True)
def no_user_cache(tmp_path, monkeypatch):
    """Look for classifiers only where the repository ships them."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def runs(tiny_runs, copy_run):
    """Private copies of the session's runs: evaluate writes eval.json into them."""
    return {name: mg.load(copy_run(name, to=name)) for name in ("ae", "vae", "ddpm", "vae-binary")}


def test_shipped_mnist_classifier_is_accurate_on_held_out_digits():
    classifier = features.find_classifier("mnist-sample")
    assert classifier is not None and classifier.kind == "classifier"
    heldout = load_dataset("mnist-sample", "test")  # the 1,000 digits it never trained on
    _, probs = features.classify(classifier, heldout.images)
    assert np.mean(probs.argmax(1) == heldout.labels) >= 0.98


@pytest.mark.parametrize("kind", ["ae", "vae", "ddpm"])
def test_evaluate_writes_eval_json_with_figures_beside_their_floor(runs, kind):
    result = mg.evaluate(runs[kind], **QUICK)
    on_disk = json.loads((runs[kind].run_dir / "eval.json").read_text())
    assert on_disk == json.loads(json.dumps(result))
    expected = {"ae": {"mse", "bce"}, "vae": {"neg_elbo", "bce", "kl"}, "ddpm": {"mse"}}[kind]
    assert expected <= set(result["heldout"]) and "300 images" in result["heldout"]["data"]
    samples, floor = result["samples"], result["reference"]["train_vs_test"]
    assert samples["n"] == 40 and floor["n"] == 40
    # Four training steps make noise: every figure must be far worse than real digits'.
    assert samples["frechet_distance"] > 3 * floor["frechet_distance"] > 0
    assert floor["precision"] > 0.5 and floor["recall"] > 0.5
    assert 1.0 <= samples["inception_score"] <= 10.0
    assert result["reference"]["test"]["inception_score"] > 5.0
    assert result["classifier"]["heldout_accuracy"] >= 0.97
    table = evaluation.format_result(result)
    assert "Frechet distance" in table and "real train (floor)" in table


def test_vae_iwae_bound_and_binarized_test_set(runs):
    continuous = mg.evaluate(runs["vae"], **QUICK)
    assert continuous["iwae"]["k"] == 8 and continuous["iwae"]["images"] == 6
    assert "binarized" not in continuous["heldout"]["data"]
    binary = mg.evaluate(runs["vae-binary"], **QUICK)
    assert "binarized" in binary["heldout"]["data"]
    assert np.isfinite(binary["iwae"]["nll"]) and binary["iwae"]["nll"] > 0


def test_same_seed_same_figures(runs):
    a = mg.evaluate(runs["ae"], write=False, **QUICK)
    b = mg.evaluate(runs["ae"], write=False, **QUICK)
    assert a["samples"]["frechet_distance"] == b["samples"]["frechet_distance"]


def test_the_figures_are_of_samples_drawn_as_asked(runs):
    """The sample metrics are those of the images sample() draws with the same settings, and
    other settings give other figures (not merely another echo in eval.json)."""
    quick = dict(QUICK, write=False)
    ddim = mg.evaluate(runs["ddpm"], sampler="ddim", steps=3, **quick)
    clf = features.find_classifier("mnist")
    test = load_heldout("mnist")
    test_features, _ = features.classify(clf, test.images[:300])
    drawn, _ = features.classify(clf, mg.sample(runs["ddpm"], n=40, seed=0, sampler="ddim", steps=3))
    assert ddim["samples"]["frechet_distance"] == pytest.approx(sample_metrics.frechet_distance(drawn, test_features))
    default = mg.evaluate(runs["ddpm"], **quick)
    assert default["samples"]["frechet_distance"] != ddim["samples"]["frechet_distance"]
    assert mg.evaluate(runs["ddpm"], sampler="ddim", steps=2, **quick)["samples"]["frechet_distance"] != \
        ddim["samples"]["frechet_distance"]
    with pytest.raises(UsageError, match="steps applies to sampler='ddim' or 'dpmpp' only"):
        mg.evaluate(runs["ddpm"], steps=3, **quick)


def test_without_a_classifier_sample_metrics_are_skipped_with_a_note(runs, monkeypatch, capsys):
    monkeypatch.setattr(evaluation, "classifier_dirs", lambda dataset: [])
    monkeypatch.setattr(features, "classifier_dirs", lambda dataset: [])
    result = mg.evaluate(runs["ae"], **{**QUICK, "verbose": True})
    assert result["samples"] is None and "mse" in result["heldout"]
    assert "bin/train classifier --dataset mnist" in capsys.readouterr().err


def test_classifier_trains_and_cannot_sample(tiny_runs):
    run = tiny_runs["classifier"]
    assert (run.run_dir / "model.safetensors").is_file() and not (run.run_dir / "samples.png").exists()
    records = [json.loads(line) for line in (run.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {"xent", "accuracy"} <= set(records[-1])
    with pytest.raises(UsageError, match="does not generate"):
        mg.sample(run, n=2)
    with pytest.raises(UsageError, match="not a classifier"):
        mg.evaluate(run)


def test_bad_evaluation_arguments(runs):
    with pytest.raises(UsageError, match="n_samples must be >= 4"):
        mg.evaluate(runs["ae"], n_samples=2)
    with pytest.raises(UsageError, match="iwae_k must be >= 1"):
        mg.evaluate(runs["vae"], iwae_k=0)
    with pytest.raises(UsageError, match="not a classifier run"):
        mg.evaluate(runs["vae"], classifier=runs["ae"].run_dir, **QUICK)


def test_bin_eval_prints_the_table_and_json(runs, capsys):
    args = [str(runs["ae"].run_dir), "--n-samples", "40", "--heldout-images", "300"]
    assert cli_main(["eval", *args]) == 0
    assert "Frechet distance" in capsys.readouterr().out
    assert cli_main(["eval", *args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "ae"
    assert cli_main(["eval", str(runs["ae"].run_dir), "--n-samples", "1"]) == 2
    assert "n_samples must be >= 4" in capsys.readouterr().err
