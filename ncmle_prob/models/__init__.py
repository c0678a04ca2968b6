"""Trainable networks that return noise-conditional distributions.

* :mod:`.catalogue`: one record per built-in network (command-line name, class, import path,
  input kind), torch-free; every list of model names reads it;
* :class:`NoiseConditionalModel`, :class:`AutoregressiveModel`: the base classes, and
  :data:`MODELS`, the classes checkpoints rebuild (kind ``"model"`` of the name registry);
* :class:`MADE` (vectors) and :class:`PixelCNNPP` (images), with their parts
  (:class:`MaskedLinear`, :class:`MaskedMLP`, :class:`NoiseEmbedding`).

The names below are imported on first use, so ``import ncmle_prob.models.catalogue`` (the
command line's check of ``--model``) imports no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from .catalogue import CATALOGUE, ModelRecord  # noqa: F401 (public names)

#: where each public name lives (imported on first attribute access)
_LAZY = {
    "MODELS": "base", "AutoregressiveModel": "base", "NoiseConditionalModel": "base",
    "NoiseEmbedding": "embedding",
    "MADE": "made",
    "MaskedLinear": "masked", "MaskedMLP": "masked",
    "PixelCNNPP": "pixelcnnpp",
}

__all__ = sorted(["CATALOGUE", "ModelRecord", *_LAZY])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
