"""Noise-conditional distributions: torch/Pyro ``Distribution`` objects with
``log_prob(x, sigma)``, ``score``, ``denoise`` and ``sample`` at every noise level σ ≥ 0."""

from .autoregressive import AutoregressiveConditioner, NoiseConditionalAutoregressive
from .base import NoiseConditionalDistribution
from .constraints import Grid, grid
from .families import (
    ConditionalFamily,
    DiscretizedLogisticMixture,
    Gaussian,
    GaussianMixture,
    LogisticMixture,
    family_names,
    get_family,
    register_family,
)
from .noisy_gaussian import NoisyGaussian, NoisyGaussianMixture
from .transformed import SigmaConditionalTransform, TransformedNoiseConditional

__all__ = [
    "AutoregressiveConditioner",
    "ConditionalFamily",
    "DiscretizedLogisticMixture",
    "Gaussian",
    "GaussianMixture",
    "Grid",
    "LogisticMixture",
    "NoiseConditionalAutoregressive",
    "NoiseConditionalDistribution",
    "NoisyGaussian",
    "NoisyGaussianMixture",
    "SigmaConditionalTransform",
    "TransformedNoiseConditional",
    "family_names",
    "get_family",
    "grid",
    "register_family",
]
