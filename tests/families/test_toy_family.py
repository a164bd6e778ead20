"""A family registered inside the test suite goes through every generic path: train, save,
load, sample, evaluate, sweep, report and the CLI. That is the proof that the registry is the
only place a family is named: one new module (this one) plus one registry line."""

from __future__ import annotations

import json
from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

import mlx_generative as mg
from mlx_generative.cli import main as cli_main
from mlx_generative.errors import UsageError
from mlx_generative.families import FAMILIES
from mlx_generative.families.base import BaseModelArgs, Family, Metric, chunks, weighted_means
from mlx_generative.training import checkpoint

# ---- the toy family: every pixel an independent Bernoulli ------------------------------


@dataclass
class PixelsArgs(BaseModelArgs):
    image_size: int = 28


class Pixels(nn.Module):
    """One learnable logit per pixel; the image is ignored, as a per-pixel model must."""

    def __init__(self, args: PixelsArgs):
        super().__init__()
        self.args = args
        self.logits = mx.zeros((args.image_size, args.image_size, 1))

    def __call__(self, x: mx.array) -> mx.array:
        return mx.broadcast_to(self.logits, x.shape)


def pixels_loss(model, x, scalars):
    bce = mx.mean(nn.losses.binary_cross_entropy(model(x), x, with_logits=True, reduction="none"))
    return bce, {"bce": bce}


class PixelsFamily(Family):
    name, title = "toy", "per-pixel Bernoulli"
    args_cls, model_cls = PixelsArgs, Pixels
    defaults = {"steps": 30, "lr": 0.1, "lr_schedule": "constant", "ema_decay": 0.0}
    heldout_metrics = (Metric("bce", "BCE per pixel", "BCE/pixel"),)
    key_settings = ("lr", "steps")

    def loss_fn(self, opts):
        return pixels_loss

    def heldout(self, model, x, opts, labels=None):
        return weighted_means([(b - a, pixels_loss(model, mx.array(x[a:b]), {})[1]) for a, b in chunks(len(x))])

    def sample(self, model, opts, extras, n, key, labels=None, settings=None, trajectory=False):
        p = mx.sigmoid(model.logits)
        return np.array(mx.random.bernoulli(mx.broadcast_to(p, (n, *p.shape)), key=key).astype(mx.float32))


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(FAMILIES, "toy", PixelsFamily())  # the registry line


def test_a_registered_family_trains_saves_loads_and_samples(toy, tmp_path, tiny):
    run = mg.train("toy", out=str(tmp_path), name="toy", verbose=False, **dict(tiny, steps=30))
    config = json.loads((run.run_dir / "config.json").read_text())
    assert config["kind"] == "toy" and config["model"] == {"image_size": 28}
    records = checkpoint.read_metrics(run.run_dir)
    heldout = [r["bce"] for r in records if r["split"] == "test"]
    assert heldout[-1] < 0.5 * np.log(2)  # it learned: the all-0.5 start scores log 2 nats per pixel
    assert (run.run_dir / "samples.png").is_file() and not (run.run_dir / "reconstructions.png").exists()
    reloaded = mg.load(run.run_dir)
    np.testing.assert_array_equal(np.array(reloaded.model.logits), np.array(run.model.logits))
    images = mg.sample(reloaded, n=5, seed=1)
    assert images.shape == (5, 28, 28) and set(np.unique(images)) <= {0, 255}
    np.testing.assert_array_equal(images, mg.sample(run, n=5, seed=1))
    assert images[:, 0, 0].sum() == 0  # the corner pixel, black in every digit, is never drawn
    with pytest.raises(UsageError, match="a toy has no encoder|needs an ae or vae run"):
        mg.encode(run, images)
    with pytest.raises(UsageError, match="--T applies to ddpm only, not toy"):
        mg.train("toy", out=str(tmp_path), verbose=False, T=3, **tiny)


def test_a_registered_family_is_evaluated_swept_and_reported(toy, tmp_path, tiny):
    sweep_dir = mg.sweep("toy", {"lr": [0.05, 0.2]}, out=tmp_path, eval_samples=20, verbose=False, **tiny)
    for name in ("lr=0.05", "lr=0.2"):
        evaluated = json.loads((sweep_dir / name / "eval.json").read_text())
        assert evaluated["kind"] == "toy" and evaluated["samples"]["n"] == 20 and "bce" in evaluated["heldout"]
    table = (sweep_dir / "report.md").read_text()
    assert "| lr | held-out BCE/pixel |" in table
    assert (sweep_dir / "figures" / "loss_curves.png").is_file()


def test_the_cli_offers_a_registered_family(toy, tmp_path, capsys):
    assert cli_main(["train", "toy", "--steps", "2", "--batch-size", "8", "--limit-train", "16",
                     "--out", str(tmp_path), "--name", "t", "--no-progress"]) == 0
    assert cli_main(["sample", str(tmp_path / "t"), "--n", "3"]) == 0
    assert cli_main(["train", "toy", "--latent-dim", "4", "--out", str(tmp_path)]) == 2
    assert "--latent-dim applies to ae and vae only, not toy" in capsys.readouterr().err
