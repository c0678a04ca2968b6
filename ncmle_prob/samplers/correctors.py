r"""Correctors: Langevin moves at one noise level of predictor–corrector annealing.

At level :math:`\sigma_i` every corrector step proposes, with step :math:`\alpha` and
:math:`s(x) = \nabla_x \log p(x\mid\sigma_i)`,

.. math::

    y = x + \alpha\, s(x) + \sqrt{2\alpha}\, z, \qquad z \sim \mathcal N(0, I),

* ``langevin``: always moves to :math:`y` (unadjusted Langevin, ULA). On a Gaussian of
  variance :math:`c` its stationary variance is :math:`c/(1 - \alpha/2c)`, a bias of order
  :math:`\alpha/c`;
* ``mala``: moves to :math:`y` with the Metropolis–Hastings probability

  .. math::

      a = \min\Big(1,\; \frac{p(y\mid\sigma_i)\, q(x \mid y)}{p(x\mid\sigma_i)\, q(y\mid x)}
      \Big), \qquad q(y\mid x) = \mathcal N\big(y;\; x + \alpha s(x),\; 2\alpha I\big),

  which leaves :math:`p(\cdot\mid\sigma_i)` exactly invariant at any step size. It needs the
  exact :math:`\log p`, which a noise-conditional autoregressive model has (a score network
  does not); ``log p`` and the score come from the same pass
  (:meth:`~ncmle_prob.distributions.NoiseConditionalDistribution.log_prob_and_score`), so a
  MALA step costs what a ULA step costs;
* ``none``: no steps (the predictor alone: a reverse-diffusion or probability-flow solver).

Both report the Metropolis acceptance probability of the proposal (for ``langevin`` the one it
*would* have had: a measure of its discretisation bias), which the ``adapt`` step rule of
:mod:`.engine` drives towards a target.

A corrector is a function ``step(level, chain, alpha) -> (chain, accept_prob)`` over a
:class:`Level` (the distribution bound to :math:`\sigma_i`, its evaluation and noise) and a
:class:`Chain` (the states with their log density and score at :math:`\sigma_i`). Register
your own with :func:`register_corrector`:

Example:
    >>> import torch
    >>> from ncmle_prob import samplers
    >>> from ncmle_prob.samplers.correctors import Chain
    >>> @samplers.register_corrector("gradient_ascent")
    ... def ascent(level, chain, alpha):   # a (biased) deterministic corrector
    ...     y = chain.x + alpha * chain.score
    ...     return Chain(y, *level.evaluate(y)), torch.ones_like(chain.log_prob)
    >>> "gradient_ascent" in samplers.available_correctors()
    True
    >>> samplers.unregister_corrector("gradient_ascent")

On grid data at σ = 0 (a discretized family, where there is no score) :func:`grid_metropolis`
corrects the final draws with the exact log *mass*: a Metropolis random walk of ±1 bin.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .._registry import NamedRegistry
from ..distributions import NoiseConditionalDistribution
from ..distributions.validation import bin_width
from .mala import mala_step

__all__ = [
    "Chain",
    "Level",
    "corrector_is_metropolis",
    "correctors",
    "get_corrector",
    "grid_metropolis",
    "register_corrector",
    "unregister_corrector",
]


@dataclass
class Level:
    """One noise level as a corrector sees it.

    Attributes:
        dist: the distribution bound to ``sigma`` (its ``batch_shape`` kept).
        sigma: the level.
        event_dims: the event dims of a state tensor (negative indices).
        generator: the run's generator (or ``None``).
        evals: batched ``log_prob_and_score`` evaluations so far.
    """

    dist: NoiseConditionalDistribution
    sigma: float
    event_dims: tuple[int, ...]
    generator: torch.Generator | None
    evals: int = field(default=0)

    def evaluate(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(log p(x | σ), score)``: the fast path without validation (x was validated when
        the level started)."""
        self.evals += 1
        return self.dist.log_prob_and_score(x, validate=False)

    def normal(self, like: Tensor) -> Tensor:
        """Standard normal noise shaped like ``like``."""
        return torch.randn(like.shape, generator=self.generator, dtype=like.dtype,
                           device=like.device)

    def uniform(self, like: Tensor) -> Tensor:
        """U(0, 1) noise shaped like ``like``."""
        return torch.rand(like.shape, generator=self.generator, dtype=like.dtype,
                          device=like.device)


@dataclass
class Chain:
    """The states ``x`` of all chains with ``log_prob`` and ``score`` at the current level."""

    x: Tensor
    log_prob: Tensor
    score: Tensor


#: ``step(level, chain, alpha) -> (chain, accept_prob)``
Corrector = Callable[[Level, Chain, float], tuple[Chain, Tensor]]


@dataclass(frozen=True)
class _Entry:
    step: Corrector
    metropolis: bool


def _check(name: str, obj: Any) -> _Entry:
    if isinstance(obj, _Entry):
        return obj
    if not callable(obj) or len(inspect.signature(obj).parameters) != 3:
        raise TypeError(
            f"corrector {name!r} must be a function (level, chain, alpha) -> (chain, "
            f"accept_prob), got {obj!r}"
        )
    return _Entry(obj, bool(getattr(obj, "metropolis", False)))


_CORRECTORS = NamedRegistry("corrector", _check)


def register_corrector(name: str, *, metropolis: bool = False) -> Callable[[Any], Any]:
    """Decorator registering a corrector step function under ``name``.

    Args:
        name: an identifier.
        metropolis: whether the step is Metropolis-adjusted (its acceptance rates are then
            reported in :class:`~ncmle_prob.samplers.SampleInfo`).

    Raises:
        ValueError: the name is taken or not an identifier.
        TypeError: the object is not a function of three arguments.
    """
    add = _CORRECTORS.register(name)

    def decorate(fn: Any) -> Any:
        add(_Entry(_check(name, fn).step, metropolis))
        return fn

    return decorate


def unregister_corrector(name: str) -> None:
    """Removes corrector ``name``."""
    _CORRECTORS.unregister(name)


def correctors() -> list[str]:
    """Sorted names of the registered correctors."""
    return _CORRECTORS.names()


def get_corrector(name: str) -> Corrector:
    """The step function of corrector ``name``.

    Raises:
        ValueError: unknown name (the message lists the valid ones).
    """
    return _CORRECTORS.get(name).step


def corrector_is_metropolis(name: str) -> bool:
    """Whether corrector ``name`` is Metropolis-adjusted."""
    return _CORRECTORS.get(name).metropolis


def _langevin_move(level: Level, chain: Chain, alpha: float, metropolis: bool
                   ) -> tuple[Chain, Tensor]:
    """The Langevin proposal by the library's one MALA step (:func:`.mala.mala_step`)."""
    z = level.normal(chain.x)
    u = level.uniform(chain.log_prob) if metropolis else None
    out = mala_step(chain.x, chain.log_prob, chain.score, level.evaluate, alpha, z=z, u=u,
                    event_dims=level.event_dims)
    return Chain(out.x, out.log_prob, out.score), out.accept_prob


@register_corrector("langevin")
def langevin(level: Level, chain: Chain, alpha: float) -> tuple[Chain, Tensor]:
    r"""Unadjusted Langevin: :math:`x \leftarrow x + \alpha s(x) + \sqrt{2\alpha} z`."""
    return _langevin_move(level, chain, alpha, metropolis=False)


@register_corrector("mala", metropolis=True)
def mala(level: Level, chain: Chain, alpha: float) -> tuple[Chain, Tensor]:
    """Metropolis-adjusted Langevin (exact for the level's density at any step)."""
    return _langevin_move(level, chain, alpha, metropolis=True)


@register_corrector("none")
def no_corrector(level: Level, chain: Chain, alpha: float) -> tuple[Chain, Tensor]:
    """No move (the engine takes no corrector steps for ``none``)."""
    return chain, torch.ones_like(chain.log_prob)


def grid_metropolis(
    dist: NoiseConditionalDistribution,
    x: Tensor,
    steps: int,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, float | None]:
    r"""Metropolis steps on the grid of a discretized family at σ = 0, with its exact log mass.

    Each step moves every coordinate by one bin up or down with probability
    :math:`q/2` each (:math:`q = \min(1/2, 2/D)`, so about two coordinates move per step in
    high dimension), rejects proposals off the grid, and accepts with probability
    :math:`\min(1, P(y)/P(x))` (the proposal is symmetric). The grid's mass function is then
    invariant, so this repairs whatever Tweedie-and-snap left wrong, at one forward pass
    (``log_prob``, no score) per step.

    Args:
        dist: a discretized family bound to σ = 0 (``dist.bins`` set).
        x: states on the grid, shape ``(N, *batch_shape, *event_shape)``.
        steps: number of Metropolis steps.
        generator: optional generator on the distribution's device.

    Returns:
        ``(x, acceptance_rate)`` (the rate is ``None`` for zero steps).

    Example:
        >>> from ncmle_prob.models import MADE
        >>> _ = torch.manual_seed(0)
        >>> d = MADE(2, hidden_features=8, family="discretized_logistic_mixture", bins=5)()
        >>> x, rate = grid_metropolis(d, torch.zeros(100, 2), 20)
        >>> bool(d.support.check(x).all()), 0.0 < rate <= 1.0
        (True, True)
    """
    if steps == 0:
        return x, None
    if dist.bins is None:
        raise ValueError("grid_metropolis needs a discretized family (dist.bins is None)")
    k = len(dist.event_shape)
    dims = tuple(range(-k, 0))
    width = bin_width(dist.bins)
    d = math.prod(dist.event_shape)
    q = min(0.5, 2.0 / d)
    kw: dict[str, Any] = {"generator": generator, "dtype": x.dtype, "device": x.device}
    with torch.no_grad():  # no score is needed: keep no graph, so memory is flat in `steps`
        return _grid_steps(dist, x.detach(), steps, k, dims, width, q, kw)


def _grid_steps(
    dist: NoiseConditionalDistribution, x: Tensor, steps: int, k: int, dims: tuple[int, ...],
    width: float, q: float, kw: dict[str, Any],
) -> tuple[Tensor, float]:
    """The loop of :func:`grid_metropolis` (called under ``no_grad``)."""
    lp = dist.log_prob(x)
    accepted = 0.0
    for _ in range(steps):
        u = torch.rand(x.shape, **kw)
        move = torch.where(u < 0.5 * q, -1.0, torch.where(u < q, 1.0, 0.0))
        y = x + width * move
        inside = ((y >= -1.0 - 1e-6) & (y <= 1.0 + 1e-6)).all(dim=dims) if k else (
            (y >= -1.0 - 1e-6) & (y <= 1.0 + 1e-6))
        y = torch.where(inside.reshape(inside.shape + (1,) * k), y, x)
        # snap away float rounding so the grid check of log_prob holds exactly
        y = torch.round((y + 1.0) / width) * width - 1.0
        lp_y = dist.log_prob(y)
        log_u = torch.log(torch.rand(lp.shape, **kw))
        acc = inside & (log_u < lp_y - lp)
        x = torch.where(acc.reshape(acc.shape + (1,) * k), y, x)
        lp = torch.where(acc, lp_y, lp)
        accepted += float(acc.double().mean())
    return x, accepted / steps
