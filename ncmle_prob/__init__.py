"""ncmle_prob: noise-conditional autoregressive models as exact probabilistic objects.

A noise-conditional autoregressive (NCAR) model is a family of densities
:math:`p_\\theta(x \\mid \\sigma)` of data perturbed by Gaussian noise, one for every noise
level :math:`\\sigma \\ge 0`. This package exposes such models as torch/Pyro distributions
(:mod:`ncmle_prob.distributions`), trainable networks that produce them
(:mod:`ncmle_prob.models`), the NCMLE objective (:mod:`ncmle_prob.objectives`) and samplers
(:mod:`ncmle_prob.samplers`).

Subpackages are imported lazily, so ``import ncmle_prob`` is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = (
    "distributions",
    "models",
    "objectives",
    "samplers",
    "training",
    "data",
    "metrics",
    "infer",
    "pretrained",
    "cli",
)

__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
