"""Per-dimension conditional families, selected by name with :func:`get_family`."""

from .base import ConditionalFamily, family_names, get_family, register_family
from .gaussian import Gaussian, GaussianMixture
from .logistic import DiscretizedLogisticMixture, LogisticMixture

__all__ = [
    "ConditionalFamily",
    "DiscretizedLogisticMixture",
    "Gaussian",
    "GaussianMixture",
    "LogisticMixture",
    "family_names",
    "get_family",
    "register_family",
]
