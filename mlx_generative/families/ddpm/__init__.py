"""DDPM-Mini: a tiny diffusion model that learns to denoise, then samples digits from noise.

Read in this order:
  1. ``schedule.py``  the forward process: betas, alpha_bar_t, and
                      x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps;
  2. ``unet.py``      the network eps_theta(x_t, t[, y]), which never sees a beta;
  3. ``family.py``    the objective ||eps_theta(x_t, t) - eps||^2, the held-out figure, the sampling settings;
  4. ``samplers.py``  the reverse process: DDPM and DDIM steps, one loop, classifier-free guidance.
"""

from .family import FAMILY

__all__ = ["FAMILY"]
