"""What MLX runs on: the BLAS it multiplies with, and the CPU streams a batch is split over.

``blas`` must run before anything imports ``mlx.core`` (the package's ``__init__``
imports it first); everything above, sampling included, may use ``parallel``.
"""
