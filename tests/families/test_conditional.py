"""Class-conditional models: the conditional VAE, the label-dropout DDPM and classifier-free guidance."""

from __future__ import annotations

import json

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten
from PIL import Image

import mlx_generative as mg
from mlx_generative.cli import main as cli_main
from mlx_generative.data.datasets import load_heldout
from mlx_generative.errors import UsageError
from mlx_generative.evaluation.evaluate import format_result, label_agreement
from mlx_generative.evaluation.features import classify, find_classifier
from mlx_generative.families.base import balanced_labels
from mlx_generative.families.ddpm.family import ddpm_loss
from mlx_generative.families.ddpm.schedule import Schedule
from mlx_generative.families.ddpm.unet import TinyUNet, UNetArgs
from mlx_generative.families.guidance import CONDITIONAL_DEFAULTS, classifier_free_guidance
from mlx_generative.families.vae import VAE, VAEArgs
from mlx_generative.training import checkpoint
from mlx_generative.training.runs import Run


@pytest.fixture
def runs(tiny_runs):
    """The session's tiny conditional VAE and conditional DDPM."""
    return {"vae": tiny_runs["vae-conditional"], "ddpm": tiny_runs["ddpm-conditional"]}


# ---- the models --------------------------------------------------------------------------


def test_conditional_vae_decodes_differently_per_label(unit_batch):
    mx.random.seed(0)
    model = VAE(VAEArgs(latent_dim=4, num_classes=10))
    z = mx.zeros((2, 4))
    a = model.decode(z, mx.array([3, 3]))
    b = model.decode(z, mx.array([3, 8]))
    assert a.shape == (2, 28, 28, 1)
    assert mx.allclose(a[0], b[0]) and not mx.allclose(a[1], b[1])
    mu, logvar = model.encode(mx.array(unit_batch[:2]), mx.array([1, 2]))
    assert mu.shape == logvar.shape == (2, 4)
    with pytest.raises(ValueError, match="needs the labels"):
        model.decode(z)


def test_unconditional_models_are_unchanged_by_the_option():
    """num_classes = 0 builds the same parameters, drawn in the same order, as before."""
    mx.random.seed(0)
    plain = VAE(VAEArgs(latent_dim=4))
    assert "label_embedding" not in plain.parameters()
    mx.random.seed(0)
    unet = TinyUNet(UNetArgs())
    assert "label_embedding" not in unet.parameters()


def test_unet_null_label_is_the_unconditional_prediction():
    mx.random.seed(0)
    model = TinyUNet(UNetArgs(num_classes=10))
    mx.eval(model.parameters())
    x = mx.random.normal((3, 28, 28, 1))
    t = mx.array([0, 2, 5])
    null = mx.full((3,), model.null_label, dtype=mx.int32)
    assert mx.allclose(model(x, t), model(x, t, null))
    assert not mx.allclose(model(x, t, mx.array([1, 2, 3])), model(x, t, null))


def test_label_dropout_replaces_labels_by_the_null_label():
    """With every label dropped the loss is the unconditional one, draw for draw; with none,
    it is the conditional one."""
    mx.random.seed(0)
    model = TinyUNet(UNetArgs(num_classes=10))
    mx.eval(model.parameters())
    schedule = Schedule.create(6)
    x0 = mx.random.uniform(-1, 1, (8, 28, 28, 1))
    y = mx.array([0, 1, 2, 3, 4, 5, 6, 7])

    def loss(batch, dropout):
        mx.random.seed(3)
        return ddpm_loss(model, batch, {}, schedule, label_dropout=dropout)[0].item()

    unconditional = loss((x0, mx.full((8,), model.null_label, dtype=mx.int32)), 0.0)
    assert loss((x0, y), 0.9999999) == pytest.approx(unconditional, rel=1e-6)
    assert abs(loss((x0, y), 0.0) - unconditional) > 1e-5  # an untrained net: labels move it a little


def test_classifier_free_guidance_combines_the_two_predictions():
    """eps = (1 + w) eps(x, y) - w eps(x, null), from one doubled batch."""
    calls = []

    def denoise(x, t, y):  # a stand-in network: its "noise" is the label, per image
        calls.append(x.shape[0])
        return mx.broadcast_to(y.astype(mx.float32)[:, None, None, None], x.shape)

    labels, null = mx.array([2, 5]), 10
    x, t = mx.zeros((2, 4, 4, 1)), mx.array([1, 1])
    guided = classifier_free_guidance(denoise, labels, null, 3.0)(x, t)
    expected = 4.0 * mx.array([2.0, 5.0]) - 3.0 * null
    assert mx.allclose(guided[:, 0, 0, 0], expected)
    assert calls == [4]  # both predictions in one pass
    plain = classifier_free_guidance(denoise, labels, null, 0.0)(x, t)
    assert mx.allclose(plain[:, 0, 0, 0], mx.array([2.0, 5.0])) and calls == [4, 2]


def test_balanced_labels_make_one_row_per_class():
    labels = balanced_labels(80)
    assert (labels.reshape(10, 8) == np.arange(10)[:, None]).all()
    assert np.bincount(balanced_labels(1000), minlength=10).tolist() == [100] * 10


# ---- the API -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["vae", "ddpm"])
def test_conditional_runs_record_and_reload(runs, kind, tmp_path):
    run = runs[kind]
    assert run.conditional and run.config.train.conditional is True
    assert run.config.model.num_classes == 10
    if kind == "ddpm":
        assert run.config.train.label_dropout == CONDITIONAL_DEFAULTS["label_dropout"]
        assert run.config.train.guidance == CONDITIONAL_DEFAULTS["guidance"]
    reloaded = mg.load(run.run_dir)
    assert reloaded.conditional
    assert np.array_equal(mg.sample(run, labels=[4, 2], seed=5), mg.sample(reloaded, labels=[4, 2], seed=5))
    # The default grid: 8 samples per class, one row each.
    grid = Image.open(run.run_dir / "samples.png")
    assert grid.size[1] > grid.size[0]  # 10 rows of 8
    assert mg.sample(run).shape == (80, 28, 28)


@pytest.mark.parametrize("kind", ["vae", "ddpm"])
def test_labels_choose_what_is_drawn(runs, kind):
    run = runs[kind]
    sevens = mg.sample(run, labels=[7], n=3, seed=1)
    assert sevens.shape == (3, 28, 28)
    assert np.array_equal(sevens, mg.sample(run, labels=[7, 7, 7], seed=1))
    # Same noise, another label: another image (the label reaches the output).
    assert not np.array_equal(sevens, mg.sample(run, labels=[1], n=3, seed=1))


def test_guidance_changes_the_samples(runs):
    run = runs["ddpm"]
    w0 = mg.sample(run, labels=[3, 4], guidance=0, seed=2)
    w5 = mg.sample(run, labels=[3, 4], guidance=5, seed=2)
    assert not np.array_equal(w0, w5)
    assert np.array_equal(mg.sample(run, labels=[3, 4], seed=2), mg.sample(run, labels=[3, 4], guidance=3, seed=2))


def assert_labels_reach_the_output(run, digits) -> None:
    """Another label, with the same image or the same noise, must change what a conditional
    VAE gives: its encoding, its reconstruction and its samples."""
    right, wrong = np.arange(4), (np.arange(4) + 5) % 10
    assert not np.allclose(mg.encode(run, digits[:4], labels=right), mg.encode(run, digits[:4], labels=wrong))
    assert not np.array_equal(mg.reconstruct(run, digits[:4], labels=right),
                              mg.reconstruct(run, digits[:4], labels=wrong))
    assert not np.array_equal(mg.sample(run, labels=right, seed=3), mg.sample(run, labels=wrong, seed=3))


class LabelBlindVAE(VAE):
    """A "conditional" VAE whose label embedding is ignored (zeroed): what the checks must catch."""

    def _with_label(self, h, y):
        return super()._with_label(h, mx.zeros_like(y) if y is not None else y)


def test_conditional_vae_reconstructs_and_encodes_with_labels(runs, digits):
    run = runs["vae"]
    labels = np.arange(4)
    assert mg.reconstruct(run, digits[:4], labels=labels).shape == (4, 28, 28)
    assert mg.encode(run, digits[:4], labels=labels).shape == (4, 32)
    assert_labels_reach_the_output(run, digits)
    blind = LabelBlindVAE(run.model.args)
    blind.update(run.model.parameters())
    with pytest.raises(AssertionError):
        assert_labels_reach_the_output(Run(blind, run.config), digits)
    with pytest.raises(UsageError, match="pass labels="):
        mg.reconstruct(run, digits[:4])
    with pytest.raises(UsageError, match="conditional VAE"):
        mg.interpolate(run, digits[:2], digits[2:4])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda r: mg.sample(r["vae"], labels=[10]), "must lie in 0-9"),
        (lambda r: mg.sample(r["vae"], labels=[1, 2], n=3), "2 labels for 3 images"),
        (lambda r: mg.sample(r["vae"], labels=["seven"]), "class numbers"),
        (lambda r: mg.sample(r["vae"], guidance=2.0), "guidance applies to ddpm or flow runs only, not vae"),
        (lambda r: mg.sample(r["ddpm"], guidance=-1.0), "guidance must be >= 0"),
        (lambda r: mg.sample(r["ddpm"], n=0), "n must be >= 1"),
    ],
)
def test_bad_sampling_requests_are_named(runs, call, message):
    with pytest.raises(UsageError, match=message):
        call(runs)


def test_labels_on_an_unconditional_run_are_refused(tiny_runs, digits):
    run = tiny_runs["ae"]
    with pytest.raises(UsageError, match="trained with --conditional"):
        mg.sample(run, labels=[3])
    with pytest.raises(UsageError, match="unconditional"):
        mg.encode(run, digits[:2], labels=[1, 2])


def test_resume_keeps_the_conditional_model(tmp_path, tiny):
    args = dict(tiny, steps=4, checkpoint_every=2)
    whole = mg.train("ddpm", conditional=True, out=str(tmp_path), name="whole", verbose=False, **args)
    part = mg.train("ddpm", conditional=True, out=str(tmp_path), name="part", verbose=False, **{**args, "steps": 2})
    resumed = mg.train("ddpm", mg.TrainOptions(steps=4), resume=part.run_dir, verbose=False)
    for (name, a), (_, b) in zip(sorted(tree_flatten(whole.model.parameters()), key=lambda p: p[0]),
                                 sorted(tree_flatten(resumed.model.parameters()), key=lambda p: p[0])):
        assert np.allclose(np.array(a), np.array(b), atol=1e-6), name


# ---- evaluation --------------------------------------------------------------------------


def test_label_agreement_scores_real_digits_as_asked():
    """Real test digits asked for as their own labels score the classifier's accuracy; the
    same digits asked for as shuffled labels score chance."""

    test = load_heldout("mnist")
    clf = find_classifier("mnist")
    features, probs = classify(clf, test.images[:1000])
    labels = test.labels[:1000].astype(np.int32)
    right = label_agreement(features, probs, labels, features, labels)
    assert right["accuracy"] > 0.95
    assert len(right["per_class"]) == 10 and all(c["accuracy"] > 0.8 for c in right["per_class"])
    wrong = label_agreement(features, probs, np.roll(labels, 1), features, labels)
    assert wrong["accuracy"] < 0.3
    assert wrong["mean_class_frechet_distance"] > 5 * right["mean_class_frechet_distance"]


def test_evaluate_a_conditional_run(runs):
    result = mg.evaluate(runs["ddpm"], n_samples=40, heldout_images=200, guidance=1.0, verbose=False)
    assert result["samples"]["guidance"] == 1.0
    conditional = result["conditional"]
    assert [c["class"] for c in conditional["per_class"]] == list(range(10))
    assert all(c["n"] == 4 for c in conditional["per_class"])
    assert 0.0 <= conditional["accuracy"] <= 1.0
    assert result["reference"]["conditional"]["accuracy"] > 0.9  # real digits as labelled
    text = format_result(result)
    assert "labels asked for" in text and "guidance w = 1" in text


# ---- the CLI and sweeps ------------------------------------------------------------------


def test_cli_samples_requested_digits(runs, tmp_path, capsys):
    out = tmp_path / "sevens.png"
    assert cli_main(["sample", str(runs["ddpm"].run_dir), "--labels", "7", "--n", "5", "--out", str(out),
                     "--guidance", "1", "--npy", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (5, 28, 28)
    default = tmp_path / "classes.png"
    assert cli_main(["sample", str(runs["vae"].run_dir), "--out", str(default)]) == 0
    width, height = Image.open(default).size
    assert height / width == pytest.approx(10 / 8, rel=0.02)  # 8 per row, one row per class
    assert cli_main(["sample", str(runs["ddpm"].run_dir), "--labels", "seven"]) == 2
    assert "--labels 'seven'" in capsys.readouterr().err


def test_cli_train_conditional_flags(tmp_path, capsys):
    argv = ["train", "ddpm", "--conditional", "--label-dropout", "0.2", "--guidance", "1.5", "--steps", "2",
            "--batch-size", "8", "--limit-train", "32", "--out", str(tmp_path), "--name", "c", "--no-progress"]
    assert cli_main(argv) == 0
    train = json.loads((tmp_path / "c" / checkpoint.CONFIG).read_text())["train"]
    assert (train["conditional"], train["label_dropout"], train["guidance"]) == (True, 0.2, 1.5)
    assert cli_main(["train", "ae", "--conditional", "--out", str(tmp_path)]) == 2
    assert "--conditional applies to vae, ddpm and flow only, not ae" in capsys.readouterr().err


def test_guidance_sweep_trains_once_and_reports_label_accuracy(tmp_path, tiny):
    sweep_dir = mg.sweep("ddpm", {"guidance": [0.0, 2.0]}, conditional=True, out=tmp_path, eval_samples=20,
                         verbose=False, **tiny)
    first, second = sweep_dir / "guidance=0", sweep_dir / "guidance=2"
    assert (first / checkpoint.CHECKPOINTS).is_dir() and not (second / checkpoint.CHECKPOINTS).exists()
    assert (first / checkpoint.WEIGHTS).read_bytes() == (second / checkpoint.WEIGHTS).read_bytes()
    config = json.loads((second / checkpoint.CONFIG).read_text())
    assert config["train"]["guidance"] == 2.0 and config["shares_training_of"] == "guidance=0"
    assert not np.array_equal(mg.sample(first, seed=0), mg.sample(second, seed=0))
    assert (second / "samples.png").is_file()
    report = (sweep_dir / "report.md").read_text()
    assert "label accuracy" in report and "class FD" in report
    reproduce = next(line for line in report.splitlines() if "Reproduce" in line)
    assert "bin/sweep ddpm --guidance 0,2 " in reproduce and reproduce.endswith("--conditional")  # keeps the switch
    # Resuming finds both done: nothing is trained or copied again.
    before = (second / checkpoint.CONFIG).stat().st_mtime_ns
    mg.sweep("ddpm", {"guidance": [0.0, 2.0]}, conditional=True, out=tmp_path, eval_samples=20, verbose=False, **tiny)
    assert (second / checkpoint.CONFIG).stat().st_mtime_ns == before
