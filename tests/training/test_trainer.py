"""The generic trainer: the compiled step learns, draws fresh noise each step, and is seeded."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np

from mlx_generative.training.trainer import NonFiniteLossError, TrainLoop, make_train_step, run_loop, step_seed


class Noisy(nn.Module):
    """A one-parameter model whose loss exposes the noise drawn inside the step."""

    def __init__(self):
        super().__init__()
        self.w = mx.zeros((1,))

    def __call__(self, x):
        return self.w * x


def noise_loss(model, x, scalars):
    eps = mx.random.normal((1,))
    return mx.sum((model(x) - 1.0) ** 2), {"eps": eps[0]}


def test_compiled_step_draws_new_noise_each_step():
    model = Noisy()
    step, state = make_train_step(model, optim.SGD(0.1), noise_loss)
    mx.random.seed(0)
    draws = []
    for _ in range(4):
        _, metrics = step(mx.ones((2,)), {})
        mx.eval(metrics, state)
        draws.append(metrics["eps"].item())
    assert len(set(draws)) == 4, f"noise repeated inside the compiled step: {draws}"


def test_scalars_change_without_retracing():
    calls = {"n": 0}

    def loss(model, x, scalars):
        calls["n"] += 1  # counts traces, not executions
        return mx.sum((model.w * scalars["beta"] - 1.0) ** 2), {}

    model = Noisy()
    step, state = make_train_step(model, optim.SGD(0.1), loss)
    for beta in (0.0, 0.5, 1.0):
        mx.eval(step(mx.ones((2,)), {"beta": mx.array(beta)}), state)
    traces_after_three = calls["n"]
    mx.eval(step(mx.ones((2,)), {"beta": mx.array(2.0)}), state)
    assert calls["n"] == traces_after_three


def _run(seed, steps=6, start=0, model=None, opt=None):
    model = model or Noisy()
    opt = opt or optim.Adam(0.05, bias_correction=True)
    loop = TrainLoop(steps=steps, seed=seed, start_step=start, log_every=1, progress=False)
    history = run_loop(model, opt, noise_loss, lambda step: np.ones((2,), np.float32), loop)
    return model, opt, history


def test_training_is_seeded_and_loss_falls():
    _, _, a = _run(seed=3)
    _, _, b = _run(seed=3)
    _, _, c = _run(seed=4)
    assert [r["eps"] for r in a] == [r["eps"] for r in b]
    assert [r["eps"] for r in a] != [r["eps"] for r in c]
    assert a[-1]["loss"] < a[0]["loss"]
    assert step_seed(3, 1) != step_seed(3, 2) != step_seed(4, 1)


def test_resumed_loop_draws_the_same_noise():
    _, _, full = _run(seed=5, steps=6)
    model, opt, first = _run(seed=5, steps=3)
    _, _, rest = _run(seed=5, steps=6, start=3, model=model, opt=opt)
    assert [r["eps"] for r in first + rest] == [r["eps"] for r in full]
    np.testing.assert_allclose([r["loss"] for r in first + rest], [r["loss"] for r in full], rtol=1e-6)


def test_non_finite_loss_stops_the_run():
    def bad(model, x, scalars):
        return mx.sum(model.w) / 0.0 * 0.0, {}  # nan

    loop = TrainLoop(steps=5, log_every=1, progress=False)
    try:
        run_loop(Noisy(), optim.SGD(0.1), bad, lambda s: np.ones((2,), np.float32), loop)
    except NonFiniteLossError as e:
        assert "step 1" in str(e) and "--lr" in str(e)
    else:
        raise AssertionError("a NaN loss must stop training")


def test_learning_rate_warms_up_linearly_then_follows_its_schedule():
    from mlx_generative.training.options import TrainOptions
    from mlx_generative.training.train_run import learning_rate

    def lr_at(schedule, step):
        return float(schedule(mx.array(step))) if callable(schedule) else schedule

    cosine = learning_rate(TrainOptions(steps=100, lr=1e-2, lr_schedule="cosine", lr_warmup=10))
    assert abs(lr_at(cosine, 0) - 1e-3) < 1e-7  # lr / warmup: the first step already moves
    assert abs(lr_at(cosine, 5) - 5.5e-3) < 1e-7  # linear in between
    assert abs(lr_at(cosine, 10) - 1e-2) < 1e-7  # the peak when the warm-up ends ...
    assert abs(lr_at(cosine, 100) - 1e-4) < 1e-7  # ... and the cosine's 1% at the end of the run
    constant = learning_rate(TrainOptions(steps=100, lr=1e-2, lr_schedule="constant", lr_warmup=10))
    assert lr_at(constant, 0) < lr_at(constant, 9) < 1e-2 and abs(lr_at(constant, 60) - 1e-2) < 1e-7
    assert learning_rate(TrainOptions(steps=100, lr=1e-2, lr_schedule="constant")) == 1e-2  # no warm-up: as before


def test_the_ema_window_grows_with_the_run_until_the_decay_cap():
    from mlx_generative.training.trainer import ema_decay_at

    # 1 - decay = (N - 1) / (N + t): an average over about the last t / (N - 1) steps
    assert abs((1 - ema_decay_at(800, 0.9999, warmup=10)) - 9 / 810) < 1e-12
    assert abs((1 - ema_decay_at(800, 0.9999, warmup=4)) - 3 / 804) < 1e-12
    assert ema_decay_at(10**6, 0.995, warmup=10) == 0.995  # capped
    assert ema_decay_at(0, 0.995, warmup=10) == 0.1  # the first average is mostly the new weights
