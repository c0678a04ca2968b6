"""The noise-conditional autoregressive distribution and the conditioner contract it calls."""

from __future__ import annotations

import abc
import math

import torch
from torch import Tensor, nn

from .base import NoiseConditionalDistribution
from .families import ConditionalFamily

__all__ = ["AutoregressiveConditioner", "NoiseConditionalAutoregressive"]


class AutoregressiveConditioner(abc.ABC):
    """What :class:`NoiseConditionalAutoregressive` calls on its network.

    A nominal base class (not a runtime ``Protocol``: an ``isinstance`` check against it is a
    cached ABC lookup, cheap enough for every ``model(sigma)`` call). The models of
    :mod:`ncmle_prob.models` implement it through
    :class:`~ncmle_prob.models.AutoregressiveModel`; it lives here so that distributions
    never import models.

    * ``event_shape``: shape of one draw.
    * :meth:`conditional_params` maps ``x`` of shape ``(N, *event_shape)`` and noise levels
      of shape ``(N,)`` to raw family parameters ``(N, *event_shape, num_params)``, where the
      parameters of flat dimension ``order()[k]`` depend only on ``x`` at
      ``order()[:k]`` and on σ.
    * :meth:`order`: flat event indices in autoregressive order (default ``0, 1, ..., D-1``).
    * :meth:`ancestral_sample`: an optional fast sampler; the default returns ``None``, which
      makes the distribution run its generic loop (one :meth:`conditional_params` call per
      dimension).

    An ``nn.Module`` that defines ``event_shape`` and ``conditional_params`` but does not
    derive from this class is still accepted (it gets the defaults above), unless it also
    defines ``order`` or ``ancestral_sample``: those would be ignored, so it must derive from
    this class to have them called.
    """

    event_shape: torch.Size

    @abc.abstractmethod
    def conditional_params(self, x: Tensor, sigma: Tensor) -> Tensor:
        """Raw family parameters ``(N, *event_shape, num_params)``."""

    def order(self) -> Tensor:
        """Flat event indices in autoregressive order (default ``0, ..., D-1``)."""
        return torch.arange(math.prod(self.event_shape))

    def ancestral_sample(
        self,
        family: ConditionalFamily,
        sigma: Tensor,
        generator: torch.Generator | None = None,
    ) -> Tensor | None:
        """Draws ``(N, *event_shape)`` at noise levels ``sigma (N,)``, or ``None`` (default)
        for the distribution's generic sequential loop."""
        return None


class _PlainConditioner(AutoregressiveConditioner):
    """Gives a plain module with ``event_shape`` and ``conditional_params`` the defaults."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.event_shape = torch.Size(module.event_shape)

    def conditional_params(self, x: Tensor, sigma: Tensor) -> Tensor:
        return self.module.conditional_params(x, sigma)


def _as_conditioner(conditioner: object) -> AutoregressiveConditioner:
    if isinstance(conditioner, AutoregressiveConditioner):
        return conditioner
    if not (
        isinstance(conditioner, nn.Module)
        and hasattr(conditioner, "conditional_params")
        and hasattr(conditioner, "event_shape")
    ):
        raise TypeError(
            "conditioner must define event_shape and conditional_params(x, sigma), got "
            f"{type(conditioner).__name__}"
        )
    hooks = [name for name in ("order", "ancestral_sample") if hasattr(conditioner, name)]
    if hooks:
        raise TypeError(
            f"conditioner {type(conditioner).__name__} defines {', '.join(hooks)} but does not "
            "derive from AutoregressiveConditioner (e.g. ncmle_prob.models.AutoregressiveModel)"
            ", so they would be ignored; derive from it"
        )
    return _PlainConditioner(conditioner)


def _first_parameter(module: nn.Module) -> Tensor | None:
    """``next(iter(module.parameters()), None)`` (same pre-order) without its generators,
    which cost about as much as the rest of this class's construction."""
    for p in module._parameters.values():
        if p is not None:
            return p
    for child in module._modules.values():
        if child is not None:
            p = _first_parameter(child)
            if p is not None:
                return p
    return None


class NoiseConditionalAutoregressive(NoiseConditionalDistribution):
    r"""An autoregressive density :math:`p(x \mid \sigma) = \prod_i p(x_i \mid x_{<i},
    \sigma)` for every noise level at once.

    The per-dimension conditionals come from a ``family`` whose parameters a ``conditioner``
    network computes from :math:`x_{<i}` and an embedding of σ. ``log_prob`` is exact (one
    network pass), ``score`` is exact (one forward and one backward pass), and ``sample`` draws
    exactly by ancestral sampling (the conditioner's
    :meth:`~AutoregressiveConditioner.ancestral_sample` when it has one, else one network pass
    per dimension, under ``no_grad``).

    .. math::

        \log p(x \mid \sigma) = \sum_{i=1}^{D} \log p_{\text{family}}\big(x_i;\;
        \theta_i(x_{<i}, \sigma)\big)

    For a discretized family, ``log_prob`` at σ = 0 is a log *mass* on the grid and a log
    density elsewhere (see :meth:`is_mass`).

    Usually built by a model, e.g. :class:`ncmle_prob.models.MADE`, rather than by hand.

    Args:
        conditioner: an :class:`AutoregressiveConditioner` module (or a plain module with
            ``event_shape`` and ``conditional_params``).
        family: the per-dimension family.
        sigma: bound noise level(s); a tensor contributes to ``batch_shape``.
        validate_args: per-instance validation.

    Example:
        >>> from ncmle_prob.models import MADE
        >>> _ = torch.manual_seed(0)
        >>> dist = MADE(features=3, hidden_features=16)(sigma=0.5)
        >>> x = dist.sample((4,))
        >>> dist.log_prob(x).shape, dist.score(x).shape
        (torch.Size([4]), torch.Size([4, 3]))
    """

    def __init__(
        self,
        conditioner: nn.Module,
        family: ConditionalFamily,
        sigma: float | Tensor = 0.0,
        validate_args: bool | None = None,
    ) -> None:
        impl = _as_conditioner(conditioner)
        if not isinstance(family, ConditionalFamily):
            raise TypeError(f"family must be a ConditionalFamily, got {type(family).__name__}")
        self.conditioner = conditioner
        self._impl = impl
        self.family = family
        self.discrete_at_zero = family.discrete_at_zero
        self.bins = family.bins
        param = _first_parameter(conditioner)
        dtype = param.dtype if param is not None else torch.get_default_dtype()
        device = param.device if param is not None else torch.device("cpu")
        super().__init__(
            sigma,
            event_shape=impl.event_shape,
            dtype=dtype,
            device=device,
            validate_args=validate_args,
        )

    @property
    def num_dims(self) -> int:
        """Number of scalar dimensions D of one event."""
        return math.prod(self.event_shape)

    def _log_prob(self, x: Tensor, sigma: Tensor) -> Tensor:
        return self._conditional_log_prob(x, sigma).sum(-1)

    def _conditional_log_prob(self, x: Tensor, sigma: Tensor) -> Tensor:
        batch = sigma.shape
        n = math.prod(batch)
        xf = x.reshape((n, *self.event_shape))
        sf = sigma.reshape(n)
        params = self._impl.conditional_params(xf, sf)
        per_dim = self.family.log_prob(params, xf, self._lift(sf))
        return per_dim.reshape(batch + (self.num_dims,))

    def _sample(self, sample_shape: torch.Size, generator: torch.Generator | None) -> Tensor:
        shape = sample_shape + self.batch_shape
        n = math.prod(shape)
        sigma = self.sigma.expand(shape).reshape(n)
        x = self._impl.ancestral_sample(self.family, sigma, generator)
        if x is None:
            x = self._ancestral_loop(sigma, generator)
        return x.reshape(shape + self.event_shape)

    def _ancestral_loop(self, sigma: Tensor, generator: torch.Generator | None) -> Tensor:
        """The generic sampler: one :meth:`conditional_params` pass per dimension, in
        :meth:`~AutoregressiveConditioner.order`."""
        n, d = sigma.shape[0], self.num_dims
        x = torch.zeros((n, *self.event_shape), dtype=self.dtype, device=self.device)
        flat = x.view(n, d)
        for i in self._impl.order().tolist():
            params = self._impl.conditional_params(x, sigma).reshape(n, d, -1)
            flat[:, i] = self.family.sample(params[:, i], sigma, generator)
        return x

    # ------------------------------------------------ the ancestral draw as a fixed point
    def ancestral_order(self) -> Tensor:
        """Flat event indices in autoregressive order (the conditioner's ``order()``)."""
        return self._impl.order()

    def ancestral_noise(
        self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
        generator: torch.Generator | None = None,
    ) -> Tensor:
        r"""The randomness of :meth:`sample`, drawn up front: a tensor
        ``(*sample_shape, *batch_shape, D, noise_size)`` indexed by flat event position.

        It consumes ``generator`` (or torch's global generator) exactly as ``sample`` does,
        one dimension at a time in :meth:`ancestral_order`, so with the same seed
        :math:`x = g(x, u)` (:meth:`ancestral_map`) has the ancestral draw as its fixed point.

        Raises:
            NotImplementedError: the family does not split its draw into noise and a
                transform (:meth:`~ncmle_prob.distributions.ConditionalFamily.draw_noise`).
        """
        shape = torch.Size(sample_shape) + self.batch_shape
        n, d = math.prod(shape), self.num_dims
        like = torch.empty((), dtype=self.dtype, device=self.device)
        noise = torch.empty((n, d, self.family.noise_size), dtype=self.dtype, device=self.device)
        for i in self.ancestral_order().tolist():
            noise[:, i] = self.family.draw_noise(torch.Size((n,)), like, generator)
        return noise.reshape((*shape, d, self.family.noise_size))

    def ancestral_map(self, x: Tensor, noise: Tensor) -> Tensor:
        r"""One parallel pass :math:`x' = g(x, u)`: every dimension drawn from its conditional
        given the current ``x``, with the pre-drawn ``noise`` (:meth:`ancestral_noise`), at
        the bound σ. Dimension :math:`i` of :math:`g(x, u)` depends on :math:`x_{<i}` only,
        so the ancestral draw is the unique fixed point, reached in at most D passes.

        Args:
            x: ``(*sample_shape, *batch_shape, *event_shape)``.
            noise: ``(*sample_shape, *batch_shape, D, noise_size)``.

        Example:
            >>> from ncmle_prob.models import MADE
            >>> _ = torch.manual_seed(0)
            >>> d = MADE(3, hidden_features=8)(0.2)
            >>> u = d.ancestral_noise((4,), torch.Generator().manual_seed(1))
            >>> x = torch.zeros(4, 3)
            >>> for _ in range(3):
            ...     x = d.ancestral_map(x, u)
            >>> y = d.sample((4,), torch.Generator().manual_seed(1))
            >>> bool(torch.allclose(x, y, atol=1e-5))
            True
        """
        k = len(self.event_shape)
        shape = x.shape[: x.dim() - k]
        n, d = math.prod(shape), self.num_dims
        sigma = self.sigma.expand(shape).reshape(n)
        with torch.no_grad():
            params = self._impl.conditional_params(x.reshape((n, *self.event_shape)), sigma)
            out = self.family.transform(params.reshape(n, d, -1), noise.reshape(n, d, -1),
                                        sigma.unsqueeze(-1))
        return out.reshape(x.shape)
