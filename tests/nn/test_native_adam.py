"""Adam's update as one native call (training/adam.py) against mlx.optimizers.Adam.

Skipped where the extension is not built. Every instruction set this CPU runs is checked:
the loop is vectorised per vector width, with a scalar tail for sizes that are not whole
vectors, and split over threads when large.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np
import pytest
from native_helpers import close as _close
from native_helpers import kernels

from mlx_generative.runtime import native
from mlx_generative.training.adam import Adam

# Odd sizes (scalar tails), one of every vector width, and one large enough for threads.
SHAPES = [(1,), (7,), (3, 5), (16,), (33, 17), (4, 3, 3, 8), (600, 1000)]


def _run(optimizer, params, grads_per_step):
    for grads in grads_per_step:
        params = optimizer.apply_gradients(grads, params)
        mx.eval(params, optimizer.state)
    return params


@pytest.mark.parametrize("schedule", [False, True])
def test_the_native_update_is_mlx_adam(instruction_set, schedule):
    # Several steps, so that the moments and both bias corrections (which change with t) count;
    # a schedule makes the learning rate an array that changes too.
    mx.random.seed(1)
    params = {f"p{i}": mx.random.normal(shape) for i, shape in enumerate(SHAPES)}
    grads = [{k: mx.random.normal(v.shape) * 10.0 ** (-s) for k, v in params.items()} for s in range(5)]
    lr = optim.linear_schedule(1e-2, 1e-3, 4) if schedule else 3e-3
    ours, theirs = Adam(lr), optim.Adam(lr, bias_correction=True)
    ours.init(params), theirs.init(params)
    got, expected = _run(ours, params, grads), _run(theirs, params, grads)
    for k in params:
        assert not np.array_equal(np.array(got[k]), np.array(params[k]))  # the parameters moved
        _close(got[k], expected[k], tol=1e-5)
        _close(ours.state[k]["m"], theirs.state[k]["m"], tol=1e-6)
        _close(ours.state[k]["v"], theirs.state[k]["v"], tol=1e-6)
    assert ours.state["step"].item() == theirs.state["step"].item() == len(grads)


def test_it_runs_as_one_native_call_per_float32_parameter(monkeypatch):
    calls = []
    real = native.adam_for

    def counting(*arrays):
        update = real(*arrays)
        calls.append(update is not None)
        return update

    monkeypatch.setattr(native, "adam_for", counting)
    params = {"a": mx.zeros((5,)), "b": mx.zeros((3,), dtype=mx.float16)}
    optimizer = Adam(1e-3)
    optimizer.init(params)
    mx.eval(optimizer.apply_gradients({k: mx.ones_like(v) for k, v in params.items()}, params))
    assert sorted(calls) == [False, True]  # float16 stays with MLX's own Adam


def test_works_under_compile():
    mx.random.seed(2)
    params = {"w": mx.random.normal((50, 40))}
    optimizer = Adam(1e-2)
    optimizer.init(params)
    state = [optimizer.state]
    compiled = mx.compile(lambda p, g: optimizer.apply_gradients(g, p), inputs=state, outputs=state)
    reference = optim.Adam(1e-2, bias_correction=True)
    reference.init(params)
    p, q = params, params
    for _ in range(3):
        g = {"w": mx.random.normal((50, 40))}
        p, q = compiled(p, g), reference.apply_gradients(g, q)
        mx.eval(p, q, state)
    _close(p["w"], q["w"], tol=1e-5)


def test_a_transposed_gradient_is_read_as_its_values():
    # A linear layer's weight gradient arrives transposed: read as a view, copied in the work.
    mx.random.seed(3)
    p, g = mx.random.normal((40, 30)), mx.random.normal((30, 40)).T
    ours, theirs = Adam(1e-2), optim.Adam(1e-2, bias_correction=True)
    ours.init({"w": p}), theirs.init({"w": p})
    _close(ours.apply_gradients({"w": g}, {"w": p})["w"], theirs.apply_gradients({"w": g}, {"w": p})["w"], tol=1e-5)


@pytest.mark.parametrize("k, shapes, message", [
    (mx.zeros((6,)), [(4,)] * 4, r"coefficients must be \(7,\)"),
    (mx.zeros((7,)), [(4,), (4,), (5,), (4,)], "must have the parameter's shape"),
    (mx.zeros((7,), dtype=mx.float16), [(4,)] * 4, "must be float32"),
])
def test_bad_arguments_are_clear_errors(k, shapes, message):
    with pytest.raises(ValueError, match=message):
        kernels.adam_update(k, *(mx.zeros(s) for s in shapes))
