"""mlx-generative: an autoencoder, a VAE and a tiny DDPM on MNIST-style images, in MLX.

    import mlx_generative as mg
    run = mg.train("vae", steps=600)
    images = mg.sample(run, n=16)          # uint8 (16, 28, 28)
    mg.save_grid(images, "vae.png")
    figures = mg.evaluate(run)             # held-out -ELBO, IWAE, Frechet distance, ...
"""

# Must run before anything imports mlx.core: see _blas.py.
from . import _blas

_blas.status()

from .api import Run, __version__, denoising_trajectory, encode, load, reconstruct, sample, train  # noqa: E402
from .datasets import load_dataset  # noqa: E402
from .evaluation import evaluate  # noqa: E402
from .images import save_grid  # noqa: E402
from .options import TrainOptions  # noqa: E402

__all__ = [
    "train",
    "load",
    "sample",
    "reconstruct",
    "encode",
    "denoising_trajectory",
    "evaluate",
    "save_grid",
    "load_dataset",
    "Run",
    "TrainOptions",
    "__version__",
]
