"""The three model families. Models map inputs to outputs; they know nothing of training."""

from .ae import AE, AEArgs
from .unet import TinyUNet, UNetArgs
from .vae import VAE, VAEArgs

__all__ = ["AE", "AEArgs", "VAE", "VAEArgs", "TinyUNet", "UNetArgs"]
