"""Use every CPU core: split a batch into shards and run each on its own MLX stream.

MLX's CPU backend runs each operation on one thread; only the BLAS inside a matrix
product uses more. Our models are mostly small convolutions, norms and activations,
so one stream leaves the other cores idle. MLX runs every CPU *stream* on its own
thread, so two halves of a batch put on two streams run side by side.

Three settings make that pay (each measured: benchmarks/RESULTS.md, "every core"):
  - the BLAS runs one thread per stream (``blas_threads_for``), or the streams' BLAS
    pools fight over the cores;
  - MLX dispatches a graph breadth first only up to ``MLX_BFS_MAX_WIDTH`` arrays (20 by
    default), then depth first, which queues one shard's whole backward pass before the
    other's; the package raises it before MLX reads it (``__init__``);
  - MLX keeps only 32 MB of freed buffers for reuse on the CPU, less than one step's
    activations (``keep_freed_buffers``).

On a GPU (Metal, CUDA) one stream already fills the device: there is one shard.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from functools import lru_cache

import mlx.core as mx
from mlx.utils import tree_map

from ..errors import UsageError
from . import blas, native

ENV_VAR = "MLX_GENERATIVE_SHARDS"  # overrides the default number of shards
MIN_SHARD = 16  # images per shard at least (not tuned: it keeps small batches, like the tests', whole)
FREED_BUFFERS_BYTES = 1 << 30


def cpu_cores() -> int:
    """Cores this process may run on (its affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no affinity masks
        return os.cpu_count() or 1


def default_shards(batch_size: int, processes: int = 1) -> int:
    """One shard per core this process owns (of ``processes`` sharing the machine), at least
    ``MIN_SHARD`` images each; 1 when MLX computes on a GPU. ``MLX_GENERATIVE_SHARDS`` overrides."""
    if os.environ.get(ENV_VAR, "").strip():
        return _shards_from_environment()
    if mx.default_device() != mx.cpu:
        return 1
    return max(1, min(cpu_cores() // max(1, processes), batch_size // MIN_SHARD))


def _shards_from_environment() -> int:
    value = os.environ[ENV_VAR]
    try:
        shards = int(value)
    except ValueError:
        shards = 0
    if shards < 1:
        raise UsageError(f"{ENV_VAR} must be a whole number >= 1, got {value!r}")
    return shards


@lru_cache(maxsize=None)
def streams(count: int) -> tuple:
    """``count`` CPU streams, made once per process (each one is a thread inside MLX)."""
    return tuple(mx.new_stream(mx.cpu) for _ in range(count))


def split(batch, count: int) -> list:
    """``count`` near-equal slices along axis 0 of an array or a tuple of arrays."""
    n = batch_length(batch)
    bounds = [n * i // count for i in range(count + 1)]
    if isinstance(batch, tuple):
        return [tuple(part[a:b] for part in batch) for a, b in zip(bounds, bounds[1:])]
    return [batch[a:b] for a, b in zip(bounds, bounds[1:])]


def sharded_value_and_grad(loss_and_grad: Callable, count: int) -> Callable:
    """Wrap ``loss_and_grad(model, batch, scalars) -> ((loss, metrics), grads)`` so that
    each of ``count`` shards of the batch runs on its own stream; the loss, metrics and
    gradients are the shards' means weighted by their sizes, i.e. the whole batch's mean
    (every loss here is a mean over images). Randomness inside the loss is drawn per shard.
    Each gradient's mean is taken on one of the streams too, spread as ``update_spread``
    spreads the optimizer's updates, so that each parameter's work stays on one stream."""
    if count == 1:
        return loss_and_grad

    def combined(model, batch, scalars):
        parts = split(batch, count)
        total = batch_length(batch)
        weights, results = [], []
        for part, stream in zip(parts, streams(count)):
            with mx.stream(stream):  # this shard's forward and backward pass both run here
                weights.append(batch_length(part) / total)
                results.append(loss_and_grad(model, part, scalars))
        spread = Spread(streams(count))

        def mean(*xs):
            return sum(w * x for w, x in zip(weights, xs))

        def mean_on_a_stream(*xs):
            with mx.stream(spread.stream_for(xs[0])):
                return mean(*xs)

        values = tree_map(mean, *[value for value, _ in results])  # the loss and metrics: scalars
        return values, tree_map(mean_on_a_stream, *[grads for _, grads in results])

    return combined


class Spread:
    """Streams for per-parameter work, handed out in the order it comes: each array to the
    stream with the fewest elements so far. The gradients' mean and the optimizer's update
    after the shards would otherwise run on one stream, one core, while the others wait."""

    def __init__(self, streams: tuple):
        self.streams = streams
        self.load = [0] * len(streams)

    def stream_for(self, a: mx.array):
        i = self.load.index(min(self.load))
        self.load[i] += a.size
        return self.streams[i]


@contextlib.contextmanager
def update_spread(optimizer, count: int):
    """Inside, ``optimizer``'s per-parameter updates (its ``apply_single``) are built on the
    ``count`` shard streams, spread by size as ``sharded_value_and_grad`` spreads the gradients'
    means: the same parameter on the same stream. One stream: nothing changes."""
    if count == 1:
        yield
        return
    spread, apply_single = Spread(streams(count)), optimizer.apply_single
    own = vars(optimizer).get("apply_single")  # an instance's own, to put back (else the class's)

    def on_a_stream(gradient, parameter, state):
        with mx.stream(spread.stream_for(gradient)):
            return apply_single(gradient, parameter, state)

    optimizer.apply_single = on_a_stream  # looked up per call by apply_gradients' tree_map
    try:
        yield
    finally:
        if own is None:
            del optimizer.apply_single
        else:
            optimizer.apply_single = own


def sharded_map(fn: Callable, count: int) -> Callable:
    """``fn(*arrays)`` with every argument split along axis 0 into ``count`` shards, each
    run on its own stream, and the outputs concatenated back (a forward pass: sampling)."""
    if count == 1:
        return fn

    def mapped(*args):
        parts = min(count, args[0].shape[0])  # never an empty shard
        columns = [split(a, parts) for a in args]
        outputs = []
        for i, stream in enumerate(streams(parts)):
            with mx.stream(stream):
                outputs.append(fn(*(c[i] for c in columns)))
        return mx.concatenate(outputs)

    return mapped


@contextlib.contextmanager
def blas_threads_for(shards: int):
    """With several shards, one BLAS thread each for the duration (restored after); the same
    for the native convolution's threads, when that extension is installed (native.py): each
    shard's stream already has a core of its own."""
    if shards <= 1:
        yield
        return
    mx.synchronize()  # no product may be running while the BLAS changes its pool
    previous = blas.set_threads(1)
    previous_native = native.set_threads(1)
    try:
        yield
    finally:
        mx.synchronize()
        if previous:
            blas.set_threads(previous)
        if previous_native:
            native.set_threads(previous_native)


def keep_freed_buffers(limit: int = FREED_BUFFERS_BYTES) -> None:
    """Let MLX keep up to ``limit`` bytes of freed buffers for reuse (never lowers the limit)."""
    previous = mx.set_cache_limit(limit)
    if previous > limit:
        mx.set_cache_limit(previous)


def batch_length(batch) -> int:
    """Images in a batch: an array, or a tuple such as (images, labels)."""
    return (batch[0] if isinstance(batch, tuple) else batch).shape[0]
