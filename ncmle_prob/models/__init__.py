"""Trainable networks that return noise-conditional distributions."""

from .embedding import NoiseEmbedding
from .made import MADE
from .pixelcnnpp import PixelCNNPP

__all__ = ["MADE", "NoiseEmbedding", "PixelCNNPP"]
