"""The three model families, and the classifier that evaluates them.

Models map inputs to outputs; they know nothing of training.
"""

from .ae import AE, AEArgs
from .classifier import Classifier, ClassifierArgs
from .unet import TinyUNet, UNetArgs
from .vae import VAE, VAEArgs

__all__ = ["AE", "AEArgs", "Classifier", "ClassifierArgs", "VAE", "VAEArgs", "TinyUNet", "UNetArgs"]
