"""Run by tests/training/test_distributed.py under mlx.launch: train, then save this rank's weights.

argv: OUT NAME KIND JSON_OPTIONS. Writes OUT/NAME-rank<r>.safetensors on every rank, so the
test can check that all ranks end with the same weights (only rank 0 writes the run).
"""

# ruff: noqa: I001  (the order matters: mlx_generative loads the fast BLAS before mlx.core)
import json
import sys

import mlx_generative as mg
import mlx.core as mx
from mlx.utils import tree_flatten

out, name, kind, options = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
run = mg.train(kind, out=out, name=name, verbose=False, **options)
rank = mx.distributed.init().rank()
mx.save_safetensors(f"{out}/{name}-rank{rank}.safetensors", dict(tree_flatten(run.model.trainable_parameters())))
