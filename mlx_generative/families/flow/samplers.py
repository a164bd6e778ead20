"""From noise to image: integrate dx/dt = v(x, t) from t = 1 down to t = 0.

The learned velocity field defines an ordinary differential equation; a sampler is an ODE
solver with ``steps`` equal steps in t (``flow_times``). With h = t_next - t < 0:

    Euler   x_next = x + h v(x, t)                                   one evaluation a step
    Heun    x~ = x + h v(x, t);  x_next = x + h (v(x, t) + v(x~, t_next)) / 2
                                                                     two evaluations a step

Euler's error shrinks like 1/steps, Heun's like 1/steps^2 (the tests check both on a field
whose exact solution is known). So at an equal budget of network evaluations, Heun with
3 steps against Euler with 6 asks whether accuracy per step beats more steps.

A sampler needs only a callable ``velocity(x, t) -> v`` with t of shape (N,);
classifier-free guidance (../guidance.py) wraps that callable.
"""

from __future__ import annotations

from collections.abc import Callable

import mlx.core as mx

FLOW_SAMPLERS = ("euler", "heun")

Velocity = Callable[[mx.array, mx.array], mx.array]


def flow_times(steps: int) -> list[float]:
    """steps + 1 times from 1 (noise) down to 0 (image), evenly spaced."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return [1.0 - i / steps for i in range(steps + 1)]


# A step is given v = v(x, t), the velocity the loop has already evaluated at the state.


def euler_step(velocity: Velocity, x: mx.array, t: float, t_next: float, v: mx.array) -> mx.array:
    return x + (t_next - t) * v


def heun_step(velocity: Velocity, x: mx.array, t: float, t_next: float, v: mx.array) -> mx.array:
    h = t_next - t
    guess = x + h * v  # Euler's step: a first guess of x at t_next
    v_next = velocity(guess, mx.full((x.shape[0],), t_next))
    return x + h * 0.5 * (v + v_next)  # the trapezoid: the mean of the slopes at both ends


STEP_OF = {"euler": euler_step, "heun": heun_step}
EVALUATIONS_PER_STEP = {"euler": 1, "heun": 2}


def evaluations(sampler: str, steps: int) -> int:
    """Network evaluations per sample (per batch pass) of ``sampler`` with ``steps`` steps."""
    return EVALUATIONS_PER_STEP[sampler] * steps


def flow_sample_loop(
    velocity: Velocity, sampler: str, steps: int, shape: tuple[int, ...], key: mx.array, trajectory: bool = False,
    predictions: list | None = None,
) -> mx.array | list[mx.array]:
    """x_1 ~ N(0, I) carried to t = 0 by ``sampler``; returns x_0, or with ``trajectory``
    the list [x_1, ..., x_0] of the states at each of the steps + 1 times. Unclipped: the
    caller decides what range its data lives in.

    ``predictions``, a list, receives the image each state points at, x - t v(x, t) (on the
    straight path x_t = (1 - t) x_0 + t noise, v = noise - x_0): one per step."""
    if sampler not in STEP_OF:
        raise ValueError(f"sampler must be one of {', '.join(FLOW_SAMPLERS)}, got {sampler!r}")
    step = STEP_OF[sampler]
    x = mx.random.normal(shape, key=key)
    states = [x]
    times = flow_times(steps)
    for t, t_next in zip(times, times[1:]):
        v = velocity(x, mx.full((shape[0],), t))
        if predictions is not None:
            predictions.append(x - t * v)
        x = step(velocity, x, t, t_next, v)
        mx.eval(x)
        states.append(x)
    return states if trajectory else states[-1]
