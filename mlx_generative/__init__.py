"""mlx-generative: an autoencoder, a VAE and a tiny DDPM on MNIST-style images, in MLX.

    import mlx_generative as mg
    run = mg.train("vae", steps=600)
    images = mg.sample(run, n=16)          # uint8 (16, 28, 28)
    mg.save_grid(images, "vae.png")
    figures = mg.evaluate(run)             # held-out -ELBO, IWAE, Frechet distance, ...
    mg.sweep("ae", {"latent_dim": [16, 64]})  # one run each, then report.html beside them
    fig = mg.plots.latent_map([ae_run, vae_run])  # matplotlib figures (the `viz` extra)
    mg.explore()                           # draw, walk the latent maps, play the denoising: a local page
    vae = mg.load("pretrained/vae")        # a shipped pretrained run (data/pretrained/)

Each model family has one home: families/ae.py, families/vae.py, families/ddpm/.
"""

# Must run before anything imports mlx.core: see runtime/blas.py, and runtime/parallel.py for
# the breadth-first dispatch width that lets a batch's shards run side by side.
import os

os.environ.setdefault("MLX_BFS_MAX_WIDTH", "1000")

from .runtime import blas  # noqa: E402

blas.status()

from .runtime import jit  # noqa: E402

jit.install_precompiled_header()  # MLX's first CPU kernel builds, 3x quicker (runtime/jit.py)

from .api import (  # noqa: E402,F401  (the public API, re-exported)
    Run,
    TrainOptions,
    __all__,
    __version__,
    denoising_trajectory,
    encode,
    evaluate,
    explore,
    interpolate,
    load,
    load_dataset,
    plots,
    posterior,
    reconstruct,
    report,
    sample,
    save_grid,
    sweep,
    train,
)
