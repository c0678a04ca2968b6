r"""Predictors: the move from one noise level to the next in predictor–corrector annealing.

Between levels :math:`\sigma_i > \sigma_{i+1}` of a ladder, a predictor carries a draw of
:math:`p(\cdot\mid\sigma_i)` towards :math:`p(\cdot\mid\sigma_{i+1})` without needing the
corrector to mix from scratch (Song et al., 2021, "Score-based generative modeling through
stochastic differential equations"). With :math:`\delta_i = \sigma_i^2 - \sigma_{i+1}^2` and the
score :math:`s = \nabla_x\log p(x\mid\sigma_i)` at the current point,

* ``reverse_diffusion``: one Euler–Maruyama step of the variance-exploding reverse SDE,

  .. math::

      x \leftarrow x + \delta_i\, s + \sqrt{\delta_i}\, z, \qquad z \sim \mathcal N(0, I);

* ``probability_flow``: one Euler step of its probability-flow ODE (deterministic),

  .. math::

      x \leftarrow x + \tfrac12\,\delta_i\, s;

* ``none``: :math:`x` unchanged (plain annealed Langevin: the corrector does all the work).

On a Gaussian of clean variance :math:`v` both steps are exact up to an excess variance of
order :math:`\delta_i^2/(v + \sigma_i^2)` (``reverse_diffusion``) or a quarter of it
(``probability_flow``), which vanishes for a fine ladder and which the corrector removes. The
step into a final level at the target itself (e.g. σ = 0 for continuous data) is the same
formula with :math:`\sigma_{i+1} = 0`; ``probability_flow`` into σ = 0 at half the step is not
Tweedie's formula (that is :math:`x + \sigma_i^2 s`, see :mod:`.tweedie`).

A predictor is a function ``fn(x, score, sigma, next_sigma, noise) -> x_next`` where
``noise()`` returns a standard normal tensor shaped like ``x`` (drawn from the run's
generator); it costs nothing beyond the score the engine already holds. Register your own:

Example:
    >>> import torch
    >>> from ncmle_prob import samplers
    >>> @samplers.register_predictor("half_reverse_diffusion")
    ... def half(x, score, sigma, next_sigma, noise):
    ...     delta = 0.5 * (sigma**2 - next_sigma**2)
    ...     return x + delta * score + delta**0.5 * noise()
    >>> "half_reverse_diffusion" in samplers.available_predictors()
    True
    >>> samplers.get_predictor("probability_flow")(torch.ones(2), -torch.ones(2), 1.0, 0.0,
    ...                                            None)
    tensor([0.5000, 0.5000])
    >>> samplers.unregister_predictor("half_reverse_diffusion")
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

from torch import Tensor

from .._registry import NamedRegistry

__all__ = [
    "Predictor",
    "get_predictor",
    "predictors",
    "register_predictor",
    "unregister_predictor",
]

#: ``fn(x, score, sigma, next_sigma, noise) -> x_next``
Predictor = Callable[[Tensor, Tensor, float, float, Callable[[], Tensor]], Tensor]


def _check(name: str, fn: Any) -> Any:
    if not callable(fn) or len(inspect.signature(fn).parameters) != 5:
        raise TypeError(
            f"predictor {name!r} must be a function (x, score, sigma, next_sigma, noise) -> "
            f"x_next, got {fn!r}"
        )
    return fn


_PREDICTORS = NamedRegistry("predictor", _check)


def register_predictor(name: str) -> Callable[[Any], Any]:
    """Decorator registering a predictor function under ``name`` (see the module docstring).

    Raises:
        ValueError: the name is taken or not an identifier.
        TypeError: the object is not a function of five arguments.
    """
    return _PREDICTORS.register(name)


def unregister_predictor(name: str) -> None:
    """Removes predictor ``name``."""
    _PREDICTORS.unregister(name)


def predictors() -> list[str]:
    """Sorted names of the registered predictors."""
    return _PREDICTORS.names()


def get_predictor(name: str) -> Predictor:
    """The predictor registered as ``name``.

    Raises:
        ValueError: unknown name (the message lists the valid ones).
    """
    return _PREDICTORS.get(name)


@register_predictor("reverse_diffusion")
def reverse_diffusion(
    x: Tensor, score: Tensor, sigma: float, next_sigma: float, noise: Callable[[], Tensor]
) -> Tensor:
    r""":math:`x + \delta s + \sqrt{\delta} z`, :math:`\delta = \sigma^2 - \sigma_{next}^2`."""
    delta = sigma * sigma - next_sigma * next_sigma
    return x + delta * score + math.sqrt(delta) * noise()


@register_predictor("probability_flow")
def probability_flow(
    x: Tensor, score: Tensor, sigma: float, next_sigma: float, noise: Callable[[], Tensor]
) -> Tensor:
    r""":math:`x + \tfrac12\delta s` (no noise)."""
    return x + 0.5 * (sigma * sigma - next_sigma * next_sigma) * score


@register_predictor("none")
def no_predictor(
    x: Tensor, score: Tensor, sigma: float, next_sigma: float, noise: Callable[[], Tensor]
) -> Tensor:
    """The identity."""
    return x
