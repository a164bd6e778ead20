"""mlx-generative: an autoencoder, a VAE and a tiny DDPM on MNIST-style images, in MLX.

    import mlx_generative as mg
    run = mg.train("vae", steps=600)
    images = mg.sample(run, n=16)          # uint8 (16, 28, 28)
    mg.save_grid(images, "vae.png")
    figures = mg.evaluate(run)             # held-out -ELBO, IWAE, Frechet distance, ...
    mg.sweep("ae", {"latent_dim": [16, 64]})  # one run each, then report.html beside them
    fig = mg.plots.latent_map([ae_run, vae_run])  # matplotlib figures (the `viz` extra)
"""

# Must run before anything imports mlx.core: see _blas.py, and parallel.py for the
# breadth-first dispatch width that lets a batch's shards run side by side.
import os

os.environ.setdefault("MLX_BFS_MAX_WIDTH", "1000")

from . import _blas  # noqa: E402

_blas.status()

from . import plots  # noqa: E402
from .api import (  # noqa: E402
    Run,
    __version__,
    denoising_trajectory,
    encode,
    interpolate,
    load,
    reconstruct,
    sample,
    train,
)
from .datasets import load_dataset  # noqa: E402
from .evaluation import evaluate  # noqa: E402
from .images import save_grid  # noqa: E402
from .options import TrainOptions  # noqa: E402
from .reports import report  # noqa: E402
from .sweeps import sweep  # noqa: E402

__all__ = [
    "train",
    "load",
    "sample",
    "reconstruct",
    "encode",
    "denoising_trajectory",
    "interpolate",
    "evaluate",
    "sweep",
    "report",
    "plots",
    "save_grid",
    "load_dataset",
    "Run",
    "TrainOptions",
    "__version__",
]
