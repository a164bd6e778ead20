"""Flow matching: the same tiny UNet learns a velocity that carries noise to digits along
straight lines, and an ODE solver follows it in a few steps.

Read in this order:
  1. ``path.py``      the straight path x_t = (1 - t) x_0 + t eps and its velocity eps - x_0;
                      where on it training draws t;
  2. ``family.py``    the objective ||v_theta(x_t, t) - (eps - x_0)||^2, the held-out figure,
                      the sampling settings;
  3. ``samplers.py``  from noise to image: Euler and Heun steps of dx/dt = v_theta(x, t).
The network is the DDPM's (../ddpm/unet.py); classifier-free guidance is shared (../guidance.py).
"""

from .family import FAMILY

__all__ = ["FAMILY"]
