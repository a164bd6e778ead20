"""The guide's acceptance gates for the three models (tests/test_ae_vae_ddpm.py in its file map),
made into tests of learning, plus the formulas each family's home computes."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten

import mlx_generative as mg
from mlx_generative.data.datasets import load_dataset
from mlx_generative.families.ae import AE, AEArgs, ae_loss
from mlx_generative.families.ddpm.family import ddpm_loss
from mlx_generative.families.ddpm.schedule import Schedule
from mlx_generative.families.ddpm.unet import TinyUNet, UNetArgs
from mlx_generative.families.vae import VAE, VAEArgs, gaussian_kl, kl_beta, vae_loss
from mlx_generative.training import checkpoint
from mlx_generative.training.trainer import make_train_step


def _real_digits(start: int, stop: int) -> mx.array:
    images = load_dataset("mnist-sample", "train").images[start:stop]
    return mx.array(images[:, :, :, None].astype(np.float32) / 255.0)


def test_ae_train_step_reduces_mse():
    """Training steps on real digits must make the AE reconstruct *other* digits far better
    than any output that ignores its input could: the best such output, the mean training
    image, scores the "blind" MSE. One step on noise, the guide's gate, passes for almost
    any model; this fails for an AE whose code carries nothing."""
    train, heldout = _real_digits(0, 512), _real_digits(512, 768)
    blind = mx.mean((mx.mean(train, axis=0) - heldout) ** 2).item()
    mx.random.seed(0)
    model = AE(AEArgs(latent_dim=16))
    before = ae_loss(model, heldout, {})[0].item()
    step, state = make_train_step(model, optim.Adam(3e-3, bias_correction=True), ae_loss)
    for i in range(150):
        start = (i * 32) % 512
        step(train[start : start + 32], {})
        mx.eval(state)
    after = ae_loss(model, heldout, {})[0].item()
    assert after < before
    assert after < 0.5 * blind, f"held-out MSE {after:.4f}, an input-blind AE reaches {blind:.4f}"


def test_vae_elbo_step(unit_batch):
    mx.random.seed(0)
    model = VAE(VAEArgs(latent_dim=8))
    x = mx.array(unit_batch)
    step, state = make_train_step(model, optim.Adam(1e-3, bias_correction=True), vae_loss)
    losses = []
    for t in range(20):
        # beta rises over the first 10 steps: the objective changes, yet the loss must still fall.
        beta = mx.array(kl_beta(t, warmup_steps=10, beta_max=1.0))
        mx.random.seed(t)
        loss, metrics = step(x, {"beta": beta})
        mx.eval(loss, state)
        losses.append(loss.item())
        assert np.isfinite(metrics["kl"].item()) and metrics["kl"].item() >= 0
    assert losses[-1] <= losses[0]
    mx.random.seed(99)
    _, metrics = vae_loss(model, x, {"beta": mx.array(1.0)})
    assert abs(metrics["neg_elbo"].item() - (metrics["bce"] + metrics["kl"]).item()) < 1e-3


def test_ddpm_loss_and_shapes():
    mx.random.seed(0)
    model = TinyUNet(UNetArgs())
    schedule = Schedule.create(6, "linear")
    x0 = mx.random.uniform(-1, 1, (4, 28, 28, 1))
    eps = model(x0, mx.array([0, 1, 2, 5]))
    assert eps.shape == x0.shape and eps.dtype == mx.float32
    loss_and_grad = nn.value_and_grad(model, lambda m, x: ddpm_loss(m, x, {}, schedule=schedule))
    (loss, _), grads = loss_and_grad(model, x0)
    assert np.isfinite(loss.item()) and loss.item() > 0
    # Every parameter must receive some gradient: no dead branch in the UNet.
    for name, g in tree_flatten(grads):
        assert g.shape == dict(tree_flatten(model.parameters()))[name].shape
        assert mx.abs(g).max().item() > 0, f"no gradient reaches {name}"
    n_params = sum(v.size for _, v in tree_flatten(model.parameters()))
    assert 100_000 < n_params < 1_000_000


def test_vae_outputs_and_kl_formula():
    mx.random.seed(0)
    model = VAE(VAEArgs(latent_dim=5))
    logits, mu, logvar = model(mx.random.uniform(shape=(3, 28, 28, 1)))
    assert logits.shape == (3, 28, 28, 1) and mu.shape == (3, 5) and logvar.shape == (3, 5)
    # KL(N(0, 1) || N(0, 1)) = 0; KL(N(1, e^0) || N(0, 1)) = 1/2 per dimension.
    assert gaussian_kl(mx.zeros((1, 5)), mx.zeros((1, 5))).item() == 0
    assert abs(gaussian_kl(mx.ones((1, 4)), mx.zeros((1, 4))).item() - 2.0) < 1e-6


def test_kl_warmup_schedule():
    assert kl_beta(0, 200, 1.0) == 0.0
    assert kl_beta(100, 200, 1.0) == 0.5
    assert kl_beta(400, 200, 4.0) == 4.0
    assert kl_beta(0, 0, 0.5) == 0.5


def test_decoder_starts_at_the_mean_pixel():
    """The output bias starts at logit(MNIST's mean pixel), not at sigmoid 0.5 everywhere."""
    mx.random.seed(0)
    z = mx.random.normal((64, 16))
    for model in (AE(AEArgs(latent_dim=16)), VAE(VAEArgs(latent_dim=16))):
        mean_pixel = mx.mean(mx.sigmoid(model.decode(z))).item()
        assert abs(mean_pixel - 0.13) < 0.05


def test_small_latent_ae_leaves_the_all_black_plateau(tmp_path):
    """With its decoder started at 0 logits, the guide's AE at latent 16 (lr 3e-3) stayed at the
    all-black image (held-out MSE 0.110, the pixels' mean square) for all 500 steps."""
    run = mg.train("ae", steps=100, latent_dim=16, out=str(tmp_path), verbose=False, progress=False,
                   eval_every=100, checkpoint_every=100)
    (final,) = [r for r in checkpoint.read_metrics(run.run_dir) if r["split"] == "test"]
    assert final["mse"] < 0.06
