"""Trainable networks that return noise-conditional distributions."""

from .embedding import NoiseEmbedding
from .made import MADE

__all__ = ["MADE", "NoiseEmbedding"]
