"""One generic training loop for every model: a compiled step, logging, checkpoints.

The trainer knows no family, loss or schedule. ``run_loop`` is given
  - ``loss_fn(model, batch, scalars) -> (loss, metrics)``,
  - ``batch_at(step) -> np.ndarray`` or a tuple of arrays (a pure function of the
    step: exact resume),
  - ``scalars_at(step) -> dict[str, float]`` for values that change during
    training (the KL weight); they enter the compiled step as arrays so
    changing them does not retrace.

Randomness inside the step (VAE noise, diffusion timesteps) comes from MLX's
global generator, which the compiled step captures as state. We reseed it
from (seed, step) before every step, so step k draws the same noise whether
or not the run was interrupted and resumed before it.
"""

from __future__ import annotations

import math
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_map
from tqdm import tqdm

from ..errors import MlxGenerativeError
from ..runtime import parallel
from . import signals
from .distributed import mean_over_ranks

STOP_ASKED = "_stop_asked"  # a group's scalar: > 0 when some rank got SIGINT/SIGTERM
# A rank whose step has not ended this long after SIGINT/SIGTERM is stuck in a collective
# (a peer died) and ends itself: long enough for a step and a checkpoint of our models.
STUCK_STEP_GRACE_S = 15.0


class NonFiniteLossError(MlxGenerativeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class RankLostError(MlxGenerativeError):
    """Another process of the launch stopped or died mid-step; rank 0's checkpoints are kept."""


class TrainingInterrupted(MlxGenerativeError):
    """SIGINT/SIGTERM arrived: the current step finished and a checkpoint was written."""

    def __init__(self, step: int, signum: int):
        super().__init__(f"interrupted by {signal.Signals(signum).name} after step {step}")
        self.step = step
        self.signum = signum


LossFn = Callable[[nn.Module, mx.array, dict], tuple[mx.array, dict]]


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """A distinct 32-bit seed for every (run seed, step[, rank]); rank 0's is a single
    process's, so a one-process run and rank 0 of a launch draw the same noise."""
    entropy = [seed, step] if rank == 0 else [seed, step, rank]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def make_train_step(
    model: nn.Module, optimizer: optim.Optimizer, loss_fn: LossFn, clip_grad_norm: float | None = None,
    world_size: int = 1, shards: int = 1,
):
    """The compiled update: (batch, scalars) -> (loss, metrics), updating model and optimizer.

    Captures ``[model.state, optimizer.state, mx.random.state]``: without the
    random state, draws inside a compiled function would repeat every call.
    With ``shards`` > 1 the batch is split over that many CPU streams, run side by
    side (parallel.py); run such a step inside ``parallel.blas_threads_for(shards)``.
    With ``world_size`` > 1 (under mlx.launch) each process holds an equal shard of
    the global batch: gradients, loss and metrics are averaged over the group, so
    every rank applies the same update, the one of the whole global batch.
    """
    loss_and_grad = parallel.sharded_value_and_grad(nn.value_and_grad(model, loss_fn), shards)
    if not optimizer.state:  # Adam's moments made now, not inside the first call: else the second
        optimizer.init(model.trainable_parameters())  # call retraces and builds its kernels again
        mx.eval(optimizer.state)
    state = [model.state, optimizer.state, mx.random.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def train_step(batch: mx.array, scalars: dict):
        (loss, metrics), grads = loss_and_grad(model, batch, scalars)
        if world_size > 1:
            grads = nn.average_gradients(grads)
            # A stop asked of any rank reaches every rank with the step's metrics, so that all
            # stop after the same step (a rank that went on would wait for the others forever).
            metrics = {**metrics, STOP_ASKED: scalars[STOP_ASKED]}
            loss, metrics = mean_over_ranks((loss, metrics), world_size)
        if clip_grad_norm:
            grads, _ = optim.clip_grad_norm(grads, clip_grad_norm)
        with parallel.update_spread(optimizer, shards):  # each parameter's update on a shard's stream
            optimizer.update(model, grads)
        return loss, metrics

    return train_step, state


@dataclass
class TrainLoop:
    """Settings of the loop itself (not of any model)."""

    steps: int  # train until this global step
    seed: int = 0
    start_step: int = 0  # > 0 when resuming
    log_every: int = 10  # steps per metrics.jsonl record (window means)
    checkpoint_every: int = 0  # 0: only at the end
    eval_every: int = 0  # 0: only at the end
    clip_grad_norm: float | None = None
    # Exponential moving average of the weights (0: off). ``ema`` holds it, and may be
    # set by the caller when resuming; it is what the caller should sample from.
    ema_decay: float = 0.0
    ema_warmup: int = 10  # the decay at step t is min(ema_decay, (1 + t) / (ema_warmup + t))
    ema: dict | None = None
    batch_size: int = 0  # for images/s; taken from the first batch when 0
    rank: int = 0  # this process in an mlx.launch group: its own noise stream
    world_size: int = 1  # processes averaging their gradients each step
    shards: int = 1  # CPU streams each batch is split over (parallel.py)
    progress: bool = True
    # Called with (step, record) for each training log, (step) for checkpoints/evals.
    on_log: Callable[[int, dict], None] | None = None
    on_checkpoint: Callable[[int], None] | None = None
    on_eval: Callable[[int], dict] | None = None
    resume_hint: str | None = None  # how to resume this run, said if it must stop without a checkpoint
    checkpointed: int | None = None  # the newest step on_checkpoint wrote (start_step when resuming)
    history: list = field(default_factory=list)


def _progress_bar(loop: TrainLoop):
    """A tqdm bar on a terminal; None elsewhere (CI logs get plain lines instead)."""
    if not loop.progress or not sys.stderr.isatty():
        return None
    return tqdm(
        total=loop.steps,
        initial=loop.start_step,
        unit="step",
        dynamic_ncols=True,
        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]",
    )


def run_loop(
    model: nn.Module,
    optimizer: optim.Optimizer,
    loss_fn: LossFn,
    batch_at: Callable[[int], np.ndarray],
    loop: TrainLoop,
    scalars_at: Callable[[int], dict] = lambda step: {},
) -> list[dict]:
    """Run steps ``loop.start_step .. loop.steps - 1``; returns the logged records.

    SIGINT/SIGTERM finish the current step, write a checkpoint through
    ``loop.on_checkpoint`` and raise ``TrainingInterrupted``.
    """
    parallel.keep_freed_buffers()
    grace = STUCK_STEP_GRACE_S if loop.world_size > 1 else None  # only a group can block forever
    with signals.deferred(grace, lambda: _stuck_explanation(loop)) as received, parallel.blas_threads_for(loop.shards):
        return _train(model, optimizer, loss_fn, batch_at, loop, scalars_at, received)


def _stuck_explanation(loop: TrainLoop) -> str:
    """Why a rank's step never ended, and where its run stands (signals.py)."""
    said = f"rank {loop.rank} of {loop.world_size} lost touch with the other ranks: one of them stopped or died"
    if loop.rank != 0:
        return said + " (rank 0 keeps the checkpoints)"
    if loop.checkpointed is None:
        return said + "; no checkpoint was written yet"
    return said + f"; the newest checkpoint is step {loop.checkpointed}" + (
        f": {loop.resume_hint}" if loop.resume_hint else "")


def ema_decay_at(step: int, decay: float, warmup: int = 10) -> float:
    """EMA decay with warm-up, min(decay, (1 + t) / (warmup + t)): early weights are forgotten
    fast. Until the cap, 1 - decay = (warmup - 1) / (warmup + t), so the average spans about the
    last t / (warmup - 1) steps: a window that grows with the run."""
    return min(decay, (1.0 + step) / (warmup + step))


@mx.compile
def _ema_update(ema: dict, params: dict, decay: mx.array) -> dict:
    return tree_map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)


def _train(model, optimizer, loss_fn, batch_at, loop: TrainLoop, scalars_at, received: list) -> list[dict]:
    train_step, state = make_train_step(
        model, optimizer, loss_fn, loop.clip_grad_norm, loop.world_size, loop.shards
    )
    if loop.ema_decay and loop.ema is None:
        loop.ema = tree_map(lambda p: mx.array(p), model.trainable_parameters())
    bar = _progress_bar(loop)
    plain_every = max(loop.log_every, (loop.steps - loop.start_step) // 10, 1)
    window: dict[str, mx.array] = {}
    window_steps, window_start = 0, time.perf_counter()
    started = window_start

    def flush(step: int) -> dict:
        nonlocal window, window_steps, window_start
        elapsed = time.perf_counter() - window_start
        record = {"step": step, "split": "train"}
        record.update({k: float(v.item()) / window_steps for k, v in window.items()})
        record["images_per_s"] = round(window_steps * loop.batch_size / max(elapsed, 1e-9), 1)
        window, window_steps, window_start = {}, 0, time.perf_counter()
        if not math.isfinite(record["loss"]):
            raise NonFiniteLossError(
                f"loss became {record['loss']} by step {step}; the last good checkpoint is kept. "
                "Try a lower --lr or --clip-grad-norm 1.0."
            )
        loop.history.append(record)
        if loop.on_log:
            loop.on_log(step, record)
        return record

    for step in range(loop.start_step, loop.steps):
        batch = tree_map(mx.array, batch_at(step))  # an array, or a tuple such as (images, labels)
        if not loop.batch_size:
            loop.batch_size = parallel.batch_length(batch)
        scalars = {k: mx.array(v, dtype=mx.float32) for k, v in scalars_at(step).items()}
        if loop.world_size > 1:
            scalars[STOP_ASKED] = mx.array(float(bool(received)), dtype=mx.float32)
        mx.random.seed(step_seed(loop.seed, step, loop.rank))
        loss, metrics = train_step(batch, scalars)
        if loop.ema_decay:
            decay = mx.array(ema_decay_at(step, loop.ema_decay, loop.ema_warmup), dtype=mx.float32)
            loop.ema = _ema_update(loop.ema, model.trainable_parameters(), decay)
        try:
            mx.eval(loss, metrics, state, loop.ema)
        except RuntimeError as e:
            if loop.world_size == 1:
                raise
            raise RankLostError(f"{e}: {_stuck_explanation(loop)}") from None  # MLX's ring saw it
        stop = received[:1]
        if STOP_ASKED in metrics:  # the group's answer: every rank stops after this same step
            asked = metrics.pop(STOP_ASKED).item() > 0
            stop = (received or [signal.SIGTERM])[:1] if asked else []
        for name, value in {"loss": loss, **metrics}.items():
            window[name] = window[name] + value if name in window else value
        window_steps += 1
        done = step + 1
        if done % loop.log_every == 0 or done == loop.steps:
            record = flush(done)
            if bar is not None:
                bar.set_postfix(loss=f"{record['loss']:.4f}", img_s=f"{record['images_per_s']:.0f}")
            elif loop.progress and (done % plain_every == 0 or done == loop.steps):
                elapsed = time.perf_counter() - started
                eta = elapsed / (done - loop.start_step) * (loop.steps - done)
                print(
                    f"step {done}/{loop.steps}  loss {record['loss']:.4f}  "
                    f"{record['images_per_s']:.0f} img/s  ETA {eta:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
        if bar is not None:
            bar.update(1)
        paused = time.perf_counter()
        if loop.on_eval and loop.eval_every and done % loop.eval_every == 0 and done < loop.steps:
            loop.on_eval(done)
        due = loop.checkpoint_every and done % loop.checkpoint_every == 0 and done < loop.steps
        if stop or due:
            if not math.isfinite(loss.item()):  # never checkpoint a blown-up model
                flush(done)
            if loop.on_checkpoint:
                loop.on_checkpoint(done)
                loop.checkpointed = done
            if stop:
                if window_steps:
                    flush(done)
                if bar is not None:
                    bar.close()
                raise TrainingInterrupted(done, stop[0])
        window_start += time.perf_counter() - paused  # images/s counts training time only
    if bar is not None:
        bar.close()
    return loop.history
