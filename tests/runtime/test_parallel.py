"""Splitting a batch over CPU streams: same losses, gradients and outputs as the whole batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest
from mlx.utils import tree_flatten

import mlx_generative as mg
from mlx_generative.errors import UsageError
from mlx_generative.families.ae import AE, AEArgs, ae_loss
from mlx_generative.families.ddpm.family import ddpm_loss
from mlx_generative.families.ddpm.schedule import Schedule
from mlx_generative.families.ddpm.unet import TinyUNet, UNetArgs
from mlx_generative.nn.conv import Conv2d
from mlx_generative.runtime import blas, parallel
from mlx_generative.training import checkpoint
from mlx_generative.training.adam import Adam
from mlx_generative.training.trainer import make_train_step


def _flat(tree) -> dict:
    return {k: np.array(v) for k, v in tree_flatten(tree)}


def test_split_gives_near_equal_parts_of_arrays_and_tuples():
    x, y = mx.arange(10), mx.arange(10) * 2
    parts = parallel.split(x, 3)
    assert [p.shape[0] for p in parts] == [3, 3, 4]
    assert np.array_equal(np.concatenate([np.array(p) for p in parts]), np.arange(10))
    pairs = parallel.split((x, y), 2)
    assert [tuple(int(a) for a in p[1][:1]) for p in pairs] == [(0,), (10,)]


@pytest.mark.parametrize("shards", [2, 3])
def test_sharded_loss_and_gradients_equal_the_whole_batch(unit_batch, shards):
    mx.random.seed(0)
    model = AE(AEArgs(latent_dim=8))
    x = mx.array(unit_batch[:10])  # 10 images: uneven shards (5/5, 3/3/4) weigh by their size
    whole = nn.value_and_grad(model, ae_loss)
    split = parallel.sharded_value_and_grad(whole, shards)
    (loss, metrics), grads = whole(model, x, {})
    (s_loss, s_metrics), s_grads = split(model, x, {})
    np.testing.assert_allclose(s_loss.item(), loss.item(), rtol=1e-5)
    np.testing.assert_allclose(s_metrics["mse"].item(), metrics["mse"].item(), rtol=1e-5)
    want, got = _flat(grads), _flat(s_grads)
    assert want.keys() == got.keys()
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("optimizer", [lambda: optim.Adam(1e-3, bias_correction=True), lambda: Adam(1e-3)])
def test_compiled_sharded_step_updates_like_the_whole_batch(unit_batch, optimizer):
    # With shards, each parameter's gradient mean and update run on one of the shard streams.
    x = mx.array(unit_batch[:32])
    params = []
    for shards in (1, 2):
        mx.random.seed(0)
        model = AE(AEArgs(latent_dim=8))
        step, state = make_train_step(model, optimizer(), ae_loss, shards=shards)
        with parallel.blas_threads_for(shards):
            for _ in range(3):
                mx.eval(step(x, {}), state)
        params.append(_flat(model.parameters()))
    for name in params[0]:
        np.testing.assert_allclose(params[1][name], params[0][name], rtol=1e-3, atol=1e-5, err_msg=name)


def test_spread_hands_each_array_to_the_stream_with_the_least_work():
    spread = parallel.Spread(("a", "b"))
    picks = [spread.stream_for(mx.zeros(n)) for n in (200, 10, 10, 200, 5, 1)]
    assert picks == ["a", "b", "b", "b", "a", "a"] and spread.load == [206, 220]


def test_update_spread_builds_each_update_on_a_shard_stream_and_restores_the_optimizer():
    optimizer = optim.SGD(0.1)
    seen = []
    apply_single = optimizer.apply_single
    optimizer.apply_single = lambda g, p, s: seen.append(mx.default_stream(mx.cpu)) or apply_single(g, p, s)
    params = {"big": mx.zeros((300,)), "small": mx.zeros((3,)), "mid": mx.zeros((100,))}
    recorder = optimizer.apply_single
    with parallel.update_spread(optimizer, 2):
        mx.eval(optimizer.apply_gradients({k: mx.ones_like(v) for k, v in params.items()}, params))
    assert seen == [parallel.streams(2)[0], parallel.streams(2)[1], parallel.streams(2)[1]]
    assert optimizer.apply_single is recorder  # put back as it was
    with parallel.update_spread(optimizer, 1):  # one shard: nothing changes
        assert optimizer.apply_single is recorder


def test_sharded_step_draws_each_shards_own_noise():
    """The DDPM loss draws t and noise inside the step: each shard must get fresh draws, not copies."""
    mx.random.seed(0)
    model = TinyUNet(UNetArgs(channels=(8, 16, 16), time_dim=16))
    seen = []

    def loss(model, x, scalars):
        noise = mx.random.normal(x.shape)
        seen.append(noise)
        return ddpm_loss(model, x, scalars, Schedule.create(4))

    grad = parallel.sharded_value_and_grad(nn.value_and_grad(model, loss), 2)
    mx.eval(grad(model, mx.zeros((4, 28, 28, 1)), {}))
    first, second = (np.array(n) for n in seen)
    assert not np.allclose(first, second)


def test_sharded_map_equals_one_pass_and_never_makes_an_empty_shard():
    mx.random.seed(0)
    model = TinyUNet(UNetArgs(channels=(8, 16, 16), time_dim=16))
    x, t = mx.random.normal((5, 28, 28, 1)), mx.array([0, 1, 2, 3, 4])
    whole = np.array(model(x, t))
    np.testing.assert_allclose(np.array(parallel.sharded_map(model, 2)(x, t)), whole, rtol=1e-4, atol=1e-5)
    one = np.array(parallel.sharded_map(model, 4)(x[:1], t[:1]))  # 1 image, 4 shards asked
    np.testing.assert_allclose(one, whole[:1], rtol=1e-4, atol=1e-5)


def test_default_shards_follow_cores_batch_and_environment(monkeypatch):
    monkeypatch.delenv(parallel.ENV_VAR, raising=False)
    monkeypatch.setattr(parallel, "cpu_cores", lambda: 8)
    assert parallel.default_shards(128) == 8
    assert parallel.default_shards(40) == 2  # at least MIN_SHARD images each
    assert parallel.default_shards(8) == 1
    assert parallel.default_shards(128, processes=4) == 2  # mlx.launch ranks share the cores
    monkeypatch.setenv(parallel.ENV_VAR, "3")
    assert parallel.default_shards(128) == 3
    monkeypatch.setenv(parallel.ENV_VAR, "two")
    with pytest.raises(UsageError, match="MLX_GENERATIVE_SHARDS must be a whole number >= 1, got 'two'"):
        parallel.default_shards(128)


@pytest.mark.parametrize("shards, message", [(0, "got 0"), (17, "between 1 and --batch-size \\(16\\), got 17")])
def test_bad_shards_are_refused(shards, message):
    with pytest.raises(UsageError, match=f"--shards must be {message}" if shards else message):
        mg.train("ae", steps=1, batch_size=16, shards=shards, verbose=False)


@pytest.mark.skipif(not blas.status().optimized or blas.status().library is None, reason="no run-time BLAS")
def test_blas_threads_for_sets_one_thread_per_shard_and_restores():
    before = blas.set_threads(1)
    blas.set_threads(before)
    with parallel.blas_threads_for(2):
        inside = blas.set_threads(1)
    after = blas.set_threads(before)
    assert inside == 1 and after == before
    with parallel.blas_threads_for(1):  # one shard: the BLAS keeps its threads
        assert blas.set_threads(before) == before


def test_sharded_run_records_its_shards_and_resumes_exactly(tmp_path):
    opts = dict(steps=6, batch_size=32, limit_train=64, log_every=1, eval_every=100, checkpoint_every=3,
                progress=False, shards=2, T=4)
    full = mg.train("ddpm", out=str(tmp_path), name="full", verbose=False, **opts)
    assert full.config.train.shards == 2
    part = mg.train("ddpm", out=str(tmp_path), name="part", verbose=False, **dict(opts, steps=3))
    mg.train("ddpm", resume=part.run_dir, steps=6, verbose=False)
    losses = lambda d: [m["loss"] for m in checkpoint.read_metrics(d) if m["split"] == "train"]
    np.testing.assert_allclose(losses(part.run_dir), losses(full.run_dir), rtol=1e-5)
    # The noise draws depend on the split: one shard trains differently (and is not a no-op).
    one = mg.train("ddpm", out=str(tmp_path), name="one", verbose=False, **dict(opts, shards=1))
    assert losses(one.run_dir)[1:] != losses(full.run_dir)[1:]


class Twice(nn.Module):
    """One convolution applied twice. (mx.compile of two gradient passes through a reused
    custom-gradient layer fails in MLX 0.32 when differentiating by the *input*; the
    trainer differentiates by the parameters, which this guards.)"""

    def __init__(self):
        super().__init__()
        self.conv = Conv2d(32, 32, 3, padding=1)

    def __call__(self, x):
        return self.conv(self.conv(x))


def test_a_model_reusing_a_layer_trains_sharded_like_whole():
    def loss(model, x, scalars):
        return mx.mean(model(x) ** 2), {}

    x = mx.random.normal((4, 6, 6, 32), key=mx.random.key(1))
    params = []
    for shards in (1, 2):
        mx.random.seed(0)
        model = Twice()
        step, state = make_train_step(model, optim.SGD(0.1), loss, shards=shards)
        mx.eval(step(x, {}), state)
        params.append(_flat(model.parameters()))
    for name in params[0]:
        np.testing.assert_allclose(params[1][name], params[0][name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_info_reports_the_cores_and_the_dispatch_width():
    env = {**os.environ, parallel.ENV_VAR: "3"}
    env.pop("MLX_BFS_MAX_WIDTH", None)
    out = subprocess.run([sys.executable, "-m", "mlx_generative", "info", "--json", "--no-gemm"],
                         env=env, capture_output=True, text=True, timeout=120, check=True)
    facts = json.loads(out.stdout)
    assert facts["shards_per_batch"] == 3 and facts["cpu_cores"] >= 1
    assert facts["mlx_bfs_max_width"] == "1000"  # the package set it before mlx.core loaded
