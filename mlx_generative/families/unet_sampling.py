"""Drawing images from a UNet family (ddpm/, flow/), batch by batch: what the two share
around their own chains of steps from noise to image."""

from __future__ import annotations

from collections.abc import Callable

import mlx.core as mx
import numpy as np

from ..runtime import parallel
from .base import EVAL_BATCH, chunks, labels_chunk
from .guidance import classifier_free_guidance

# chain(predict, shape, key, predictions) -> the states [noise, ..., x_0] in [-1, 1], x_0
# clipped; predict(x, t) is the network's output at time t, guided where labels were given.
# ``predictions``, None or a list, receives each step's estimate of x_0 in [-1, 1].
Chain = Callable[[Callable[[mx.array, mx.array], mx.array], tuple[int, ...], mx.array, list | None],
                 list[mx.array]]


def sample_in_batches(model, n: int, key: mx.array, chain: Chain, labels=None, guidance: float = 0.0,
                      time_scale: float | None = None, trajectory: bool = False, predictions: bool = False):
    """n images in [0, 1] (n, H, W, C), or with ``trajectory`` every state (n, states, H, W, C).
    With ``predictions`` also (a trajectory) the clean image each state points at, the same
    shape: the pair (states, predicted x_0), whose last prediction is x_0 itself.

    One compiled graph per batch shape fuses the UNet's elementwise work across all the
    steps; each part of a batch runs on its own core. The weights are the graph's inputs:
    captured, a one-element weight would be written into a kernel's C++ as a number, and
    every trained run would build that kernel anew. ``time_scale`` multiplies the time
    before the network sees it (a flow's t in [0, 1] as 1000 t); None passes it unchanged.
    """
    image_shape = (model.args.image_size, model.args.image_size, model.args.in_channels)
    keys = mx.random.split(key, (n + EVAL_BATCH - 1) // EVAL_BATCH)
    shards = parallel.default_shards(min(n, EVAL_BATCH))
    network = parallel.sharded_map(mx.compile(model, inputs=model.state), shards)
    if time_scale is not None:
        unscaled = network
        network = lambda x, t, *y: unscaled(x, t * time_scale, *y)  # noqa: E731
    out, predicted = [], []
    with parallel.blas_threads_for(shards):
        for i, (a, b) in enumerate(chunks(n)):
            predict = network
            if labels is not None:
                predict = classifier_free_guidance(network, labels_chunk(labels, a, b), model.null_label, guidance)
            x0s = [] if predictions else None
            states = chain(predict, (b - a, *image_shape), keys[i], x0s)
            states = [np.array((s + 1.0) / 2.0) for s in states]  # [-1, 1] -> [0, 1]
            out.append(np.stack(states, axis=1) if trajectory or predictions else states[-1])
            if predictions:
                predicted.append(np.stack([np.array((x + 1.0) / 2.0) for x in x0s] + [states[-1]], axis=1))
    if predictions:
        return np.concatenate(out), np.concatenate(predicted)
    return np.concatenate(out)
