"""The optimizer every family trains with: Adam with bias correction, as PyTorch and the paper.

    m <- b1 m + (1 - b1) g          v <- b2 v + (1 - b2) g^2
    p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

It is ``mlx.optimizers.Adam(bias_correction=True)``: the same state (m, v and the step t, so
checkpoints are interchangeable) and the same arithmetic, in the same order. Only where the
optional native kernels run (runtime/native.py) is each float32 parameter's update one
vectorised call instead of MLX's scalar loop (benchmarks/RESULTS.md, ~4% of the AE's step).
"""

from __future__ import annotations

import mlx.core as mx
import mlx.optimizers as optim

from ..runtime import native


class Adam(optim.Adam):
    def __init__(self, learning_rate, betas=(0.9, 0.999), eps: float = 1e-8):
        super().__init__(learning_rate=learning_rate, betas=list(betas), eps=eps, bias_correction=True)

    def apply_single(self, gradient: mx.array, parameter: mx.array, state: dict) -> mx.array:
        update = native.adam_for(gradient, parameter, state["m"], state["v"])
        if update is None:
            return super().apply_single(gradient, parameter, state)
        b1, b2 = self.betas
        # The bias corrections, computed as mlx.optimizers.Adam computes them.
        c1 = (self.learning_rate.astype(gradient.dtype) / (1 - b1**self.step)).astype(gradient.dtype)
        c2 = mx.rsqrt(1 - b2**self.step).astype(gradient.dtype)
        k = mx.concatenate([mx.array([b1, 1 - b1, b2, 1 - b2]), c1.reshape(1), c2.reshape(1), mx.array([self.eps])])
        parameter, state["m"], state["v"] = update(k, parameter, gradient, state["m"], state["v"])
        return parameter
