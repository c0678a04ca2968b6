"""Trainable networks that return noise-conditional distributions."""

from .base import AutoregressiveModel, NoiseConditionalModel
from .embedding import NoiseEmbedding
from .made import MADE
from .masked import MaskedLinear, MaskedMLP
from .pixelcnnpp import PixelCNNPP

__all__ = [
    "MADE",
    "AutoregressiveModel",
    "MaskedLinear",
    "MaskedMLP",
    "NoiseConditionalModel",
    "NoiseEmbedding",
    "PixelCNNPP",
]
