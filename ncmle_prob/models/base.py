"""The base classes of every model: an ``nn.Module`` whose call returns :math:`p(\\cdot|\\sigma)`.

* :class:`NoiseConditionalModel`: ``model(sigma)`` returns a
  :class:`~ncmle_prob.distributions.NoiseConditionalDistribution` bound to ``sigma`` (σ is
  validated there, once); ``event_shape`` and a JSON-able ``config`` for checkpoints.
* :class:`AutoregressiveModel`: a noise-conditional model whose distribution is
  :class:`~ncmle_prob.distributions.NoiseConditionalAutoregressive`; it implements the
  :class:`~ncmle_prob.distributions.AutoregressiveConditioner` contract (``family``,
  ``conditional_params``, ``order``, the optional ``ancestral_sample`` fast path).

In the spirit of zuko's ``LazyDistribution`` (a module called with its condition returns a
distribution); here the condition is the noise level.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from .._registry import NamedRegistry
from ..distributions import (
    AutoregressiveConditioner,
    ConditionalFamily,
    NoiseConditionalAutoregressive,
    NoiseConditionalDistribution,
)
from . import catalogue

__all__ = ["MODELS", "AutoregressiveModel", "NoiseConditionalModel"]

#: The model classes by class name (kind ``"model"`` of :mod:`ncmle_prob._registry`):
#: checkpoints rebuild a model from this table only. The built-in networks are entered from
#: the catalogue by import path (imported on first lookup); any other class is entered when it
#: is defined (see :meth:`NoiseConditionalModel.__init_subclass__`).
MODELS = NamedRegistry("model")
for _record in catalogue.CATALOGUE:
    MODELS.register_lazy(_record.class_name, _record.target)


class NoiseConditionalModel(nn.Module, abc.ABC):
    """A trainable model of :math:`p_\\theta(x \\mid \\sigma)` for every σ ≥ 0.

    Subclasses set ``event_shape`` and implement :meth:`forward`; models that can be rebuilt
    from JSON set ``_config`` (their constructor arguments), which :attr:`config` returns and
    :mod:`ncmle_prob.training` checkpoints store.
    """

    event_shape: torch.Size
    _config: dict[str, Any] | None = None

    def __init_subclass__(cls, register: bool | None = None, **kwargs: Any) -> None:
        """Registers the class under its name in :data:`MODELS`: the models of
        ``ncmle_prob.models`` always, other classes when defined with ``register=True``
        (``class MyModel(NoiseConditionalModel, register=True)``), so that checkpoints can
        rebuild them; ``register=False`` keeps an abstract helper class out."""
        super().__init_subclass__(**kwargs)
        if register is None:
            register = cls.__module__.startswith("ncmle_prob.models")
        # a built-in network is already entered by its import path (the catalogue)
        if register and MODELS.pending(cls.__name__) != f"{cls.__module__}:{cls.__qualname__}":
            MODELS.add(cls.__name__, cls)

    @property
    def config(self) -> dict[str, Any] | None:
        """JSON-able constructor arguments (``type(model)(**model.config)`` rebuilds the
        model), or ``None`` when the model cannot be rebuilt from JSON."""
        return None if self._config is None else dict(self._config)

    @abc.abstractmethod
    def forward(
        self, sigma: float | Tensor = 0.0, validate_args: bool | None = None
    ) -> NoiseConditionalDistribution:
        """Returns :math:`p_\\theta(\\cdot \\mid \\sigma)` bound to ``sigma``."""

    if TYPE_CHECKING:  # nn.Module.__call__ is typed to return Any

        def __call__(
            self, sigma: float | Tensor = 0.0, validate_args: bool | None = None
        ) -> NoiseConditionalDistribution: ...


class AutoregressiveModel(NoiseConditionalModel, AutoregressiveConditioner, register=False):
    """A noise-conditional model with autoregressive conditionals from a ``family``.

    Subclasses set ``event_shape`` and ``family`` and implement :meth:`conditional_params`;
    they may override :meth:`order` and :meth:`ancestral_sample` (a cached sampler that must
    draw exactly what the generic loop draws). ``model(sigma)`` returns
    :class:`~ncmle_prob.distributions.NoiseConditionalAutoregressive`, which calls these
    methods directly.
    """

    family: ConditionalFamily

    @abc.abstractmethod
    def conditional_params(self, x: Tensor, sigma: Tensor) -> Tensor:
        """Raw family parameters ``(N, *event_shape, family.num_params)``."""

    def forward(
        self, sigma: float | Tensor = 0.0, validate_args: bool | None = None
    ) -> NoiseConditionalAutoregressive:
        """Returns :math:`p_\\theta(\\cdot \\mid \\sigma)` bound to ``sigma``."""
        return NoiseConditionalAutoregressive(self, self.family, sigma, validate_args)
