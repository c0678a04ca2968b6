r"""The base class of every noise-conditional distribution.

A *noise-conditional* distribution is a family of densities :math:`p(x \mid \sigma)`, one for
each noise level :math:`\sigma \ge 0`, where :math:`p(\cdot \mid \sigma)` models data
:math:`x = x_0 + \sigma \varepsilon`, :math:`\varepsilon \sim \mathcal N(0, I)`. An instance
is *bound* to one σ (a scalar or a tensor that contributes to ``batch_shape``) so that it behaves
like any Pyro distribution, and every method also takes an explicit ``sigma`` that overrides the
bound one for that call.

**The σ contract.** σ is validated once, where it enters: at construction, at :meth:`at`, at
:meth:`at_levels` (a whole ladder in one check) and at a per-call ``sigma=``. A per-call
``sigma`` means exactly ``self.at(sigma)`` (same shapes, same numbers); internal paths pass the
already validated tensor on without checking it again, so a call costs at most one device
synchronisation for σ. As in torch, ``validate_args=False`` turns the scans off: a tensor σ is
not scanned (no synchronisation at all); Python numbers, types, shapes and devices, which cost
no device work, are still checked.

References:
    Autoregressive Generative Modeling with Noise Conditional Maximum Likelihood Estimation
    (the seed paper of this library: one autoregressive model of :math:`p(x \mid \sigma)` for
    every noise level, trained by noise-conditional maximum likelihood).

    Y. Song and S. Ermon. Generative Modeling by Estimating Gradients of the Data
    Distribution. NeurIPS 2019 (noise-conditional scores, annealed Langevin dynamics).

    Y. Song, J. Sohl-Dickstein, D. P. Kingma, A. Kumar, S. Ermon and B. Poole. Score-Based
    Generative Modeling through Stochastic Differential Equations. ICLR 2021 (the
    predictor-corrector samplers that :meth:`score` serves).

    B. Efron. Tweedie's Formula and Selection Bias. JASA 106(496), 2011 (the posterior mean
    :math:`E[x_0 \mid x] = x + \sigma^2 \nabla_x \log p(x \mid \sigma)` of :meth:`denoise`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, TypeVar

import torch
from pyro.distributions import TorchDistribution
from torch import Tensor
from torch.distributions import constraints
from torch.distributions.utils import lazy_property

from .constraints import grid
from .validation import as_sigma, broadcast_shapes, check_finite, check_tensor, describe_shape

__all__ = ["NoiseConditionalDistribution"]

_ShapeLike = Sequence[int] | torch.Size
_D = TypeVar("_D", bound="NoiseConditionalDistribution")


class NoiseConditionalDistribution(TorchDistribution):
    r"""A family :math:`p(x \mid \sigma)` of densities of Gaussian-perturbed data.

    Subclasses implement :meth:`_log_prob` and :meth:`_sample`, and may override
    :meth:`_score` with a closed form; everything else (σ handling, shapes, validation,
    :meth:`score`, :meth:`denoise`, :meth:`at`, :meth:`expand`, ``support``) lives here.

    Shapes follow torch: ``sample_shape + batch_shape + event_shape``. An explicit ``sigma``
    broadcasts against the *batch* dims of ``x`` (never its event dims) and against
    ``batch_shape``, exactly as a distribution parameter would.

    Validation is per instance: with ``validate_args`` true (torch's default) data are checked
    for NaN/inf and, for discrete families at σ = 0, for lying on the grid. Shapes, dtypes,
    devices and σ are checked always; those checks are cheap and a wrong shape would otherwise
    broadcast silently.

    Args:
        sigma: the bound noise level(s), ``>= 0``.
        event_shape: shape of one draw.
        param_batch_shape: batch shape contributed by the other parameters.
        dtype: floating dtype of the distribution's computations.
        device: device of the distribution's computations.
        validate_args: per-instance validation switch (``None``: torch's default).
    """

    arg_constraints = {"sigma": constraints.nonnegative}
    has_rsample = False
    #: Whether ``log_prob`` is a log *mass* on a grid at σ = 0 (discretized families).
    discrete_at_zero: bool = False
    #: Number of grid levels on [-1, 1] for grid data (``None`` for continuous data).
    bins: int | None = None

    def __init__(
        self,
        sigma: float | Tensor = 0.0,
        *,
        event_shape: _ShapeLike,
        param_batch_shape: _ShapeLike = (),
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        validate_args: bool | None = None,
    ) -> None:
        device = torch.device(device)
        check = TorchDistribution._validate_args if validate_args is None else validate_args
        sigma = as_sigma(sigma, dtype=dtype, device=device, validate=bool(check))
        param_batch_shape = torch.Size(param_batch_shape)
        batch_shape = self._broadcast_batch(param_batch_shape, sigma.shape)
        self.sigma = sigma.expand(batch_shape)
        self._param_batch_shape = param_batch_shape
        self._dtype = dtype
        self._device = device
        # σ was checked by as_sigma above, the one entry check of the σ contract; torch's own
        # arg_constraints check would repeat it (one more device sync per model(sigma) call),
        # so torch's is skipped and the other declared constraints are checked below.
        super().__init__(torch.Size(batch_shape), torch.Size(event_shape), validate_args=False)
        if validate_args is None:
            del self._validate_args  # torch's default switch applies, as for torch's classes
        else:
            self._validate_args = validate_args
        if self._validate_args:
            self._check_arg_constraints()

    # ------------------------------------------------------------------ properties
    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype in which the distribution computes."""
        return self._dtype

    @property
    def device(self) -> torch.device:
        """Device on which the distribution computes."""
        return self._device

    @constraints.dependent_property
    def support(self) -> constraints.Constraint:  # type: ignore[override]
        """The grid at σ = 0 for discretized families, the reals otherwise.

        A ``dependent_property`` as in torch: on an instance it is the constraint below; on
        the class (``NoisyGaussian.support``) it is a ``Constraint`` whose ``event_dim`` is
        not known statically, so generic code such as Pyro's ``infer_shapes`` raises
        :class:`NotImplementedError` instead of failing on a ``property`` object.

        A discretized family bound to a batch that mixes σ = 0 and σ > 0 reports the reals
        (one constraint must cover the batch); its log_prob is still a mass where σ = 0
        (:meth:`is_mass`). Bind one kind of σ per site for inference.
        """
        if self.discrete_at_zero and bool((self.sigma == 0).all()):
            return constraints.independent(grid(self.bins or 2), len(self.event_shape))
        return constraints.independent(constraints.real, len(self.event_shape))

    @classmethod
    def infer_shapes(cls, **arg_shapes: Any) -> tuple[torch.Size, torch.Size]:
        """Pyro's shape inference from argument shapes.

        The event shape of a noise-conditional model comes from its network, not from the
        shapes of tensor arguments, so the generic class raises :class:`NotImplementedError`
        (Pyro's documented answer for "cannot infer"); the closed-form oracles override it.
        """
        raise NotImplementedError(
            f"{cls.__name__}.infer_shapes: the event shape is not a function of argument "
            "shapes (it comes from the model); build the distribution and read batch_shape "
            "and event_shape"
        )

    # ------------------------------------------------------------------ binding σ
    def at(self: _D, sigma: float | Tensor) -> _D:
        """Returns the same distribution bound to another noise level.

        σ is validated here, once (:func:`~ncmle_prob.distributions.validation.as_sigma`;
        not at all with ``validate_args=False``).

        Args:
            sigma: a non-negative float or tensor; a tensor contributes to ``batch_shape``.
        """
        return self._bind(self._as_sigma(sigma))

    def at_levels(self: _D, sigmas: Sequence[float] | Tensor) -> list[_D]:
        r"""The distribution bound to each level of a ladder, validated in one check.

        For a ladder :math:`\sigma_1, \dots, \sigma_L` this is ``[self.at(s) for s in
        sigmas]`` with two differences: the whole ladder is checked once (Python numbers in
        Python, a tensor with one reduction: at most one device synchronisation for all
        levels), and every level keeps this distribution's ``batch_shape`` (a plain
        ``self.at(float)`` drops the batch dims that a tensor-bound σ contributed).

        Args:
            sigmas: the levels, a sequence of non-negative numbers or a 1-D tensor.

        Returns:
            one distribution per level, each with ``batch_shape == self.batch_shape``.

        Raises:
            ValueError: a negative or non-finite level (naming the ladder), or a tensor that
                is not 1-D.

        Example:
            >>> import torch
            >>> from ncmle_prob.distributions import NoisyGaussian
            >>> d = NoisyGaussian(torch.zeros(2), torch.eye(2), sigma=torch.tensor([0.1, 0.2]))
            >>> levels = d.at_levels([1.0, 0.5, 0.0])
            >>> [lv.batch_shape for lv in levels][0], float(levels[1].sigma[0])
            (torch.Size([2]), 0.5)
        """
        if isinstance(sigmas, Tensor) and sigmas.dim() != 1:
            raise ValueError(f"sigmas must be a 1-D tensor of levels, got shape "
                             f"{describe_shape(sigmas.shape)}")
        ladder = self._as_sigma(sigmas if isinstance(sigmas, Tensor) else list(sigmas),
                                name="sigmas")
        return [self._bind(ladder[i].expand(self.batch_shape)) for i in range(ladder.shape[0])]

    def _as_sigma(self, sigma: object, *, name: str = "sigma") -> Tensor:
        """:func:`as_sigma` with this distribution's dtype, device and ``validate_args``."""
        return as_sigma(sigma, dtype=self.dtype, device=self.device, name=name,
                        validate=bool(self._validate_args))

    def _bind(self: _D, sigma: Tensor) -> _D:
        """:meth:`at` for an already validated σ tensor (internal paths; no check)."""
        new = copy.copy(self)
        batch_shape = self._broadcast_batch(self._param_batch_shape, sigma.shape)
        new.sigma = sigma.expand(batch_shape)
        new._batch_shape = torch.Size(batch_shape)
        return new

    def expand(
        self, batch_shape: _ShapeLike, _instance: NoiseConditionalDistribution | None = None
    ) -> NoiseConditionalDistribution:
        """Expands the batch shape (no copy of the network or its parameters).

        Follows torch's protocol for subclasses: a subclass's ``expand`` creates its instance
        with ``self._get_checked_instance(Cls, _instance)``, sets its own fields on it and
        passes it on as ``_instance``; the fields it set are kept, and every other field of
        ``self`` is carried over unchanged (so a subclass that adds only constant fields
        needs no ``expand`` of its own).

        Raises:
            ValueError: ``batch_shape`` is not a broadcast of the current ``batch_shape``.
        """
        batch_shape = torch.Size(batch_shape)
        try:
            ok = broadcast_shapes(batch_shape, self.batch_shape) == batch_shape
        except RuntimeError:
            ok = False
        if not ok:
            raise ValueError(
                f"expand: batch_shape {describe_shape(batch_shape)} is not a broadcast of the "
                f"current batch_shape {describe_shape(self.batch_shape)}"
            )
        new = type(self).__new__(type(self)) if _instance is None else _instance
        for key, value in self.__dict__.items():  # fields the subclass did not set itself
            new.__dict__.setdefault(key, value)
        new.sigma = self.sigma.expand(batch_shape)
        new._param_batch_shape = batch_shape
        new._dtype = self._dtype
        new._device = self._device
        super(NoiseConditionalDistribution, new).__init__(
            batch_shape, self.event_shape, validate_args=False
        )
        new._validate_args = self._validate_args
        return new

    # ------------------------------------------------------------------ public math
    def log_prob(self, value: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        """Log density (or log mass at σ = 0 for discretized families) of ``value``.

        Args:
            value: tensor of shape ``(..., *event_shape)``.
            sigma: noise level(s); ``None`` uses the bound σ. Broadcasts against the batch
                dims of ``value``.

        Returns:
            Tensor of shape ``broadcast(value.shape[:-event_dim], sigma.shape, batch_shape)``,
            where an explicit ``sigma`` replaces the bound one, so ``batch_shape`` here is that
            of the other parameters (``self.at(0.0).batch_shape``).
        """
        x, s = self._prepare(value, sigma)
        return self._log_prob(x, s)

    def score(
        self, value: Tensor, sigma: float | Tensor | None = None, *, create_graph: bool = False
    ) -> Tensor:
        r"""The exact score :math:`\nabla_x \log p(x \mid \sigma)`, same shape as ``value``.

        Computed by one forward and one backward pass through the whole log density (the
        joint score, cross terms included). With ``create_graph=True`` the result is
        differentiable (for score-matching losses or second derivatives).

        Raises:
            ValueError: at σ = 0 for a discretized family, where ``log_prob`` is a log mass on
                a grid and has no score.
        """
        x, s = self._prepare(value, sigma)
        self._check_has_score(s)
        return self._score(x, s, create_graph=create_graph)

    def log_prob_and_score(
        self, value: Tensor, sigma: float | Tensor | None = None, *, validate: bool = True
    ) -> tuple[Tensor, Tensor]:
        """``(log p(x | σ), ∇ₓ log p(x | σ))`` from one forward and one backward pass.

        The building block of gradient-based samplers and MCMC kernels (MALA needs both).

        Args:
            value: tensor of shape ``(..., *event_shape)``.
            sigma: noise level(s); ``None`` uses the bound σ (a per-call σ means exactly
                ``self.at(sigma)``).
            validate: ``False`` is the documented **no-validation fast path** for inner loops:
                ``value`` must already have shape ``(..., *batch_shape, *event_shape)`` with
                the distribution's dtype and device, ``sigma`` must be ``None``, and nothing
                is checked (not even for NaN). Validate once, outside the loop.

        Returns:
            ``(log_prob, score)`` with shapes ``value.shape[:-event_dim]`` and
            ``value.shape``; both detached.

        Example:
            >>> import torch
            >>> from ncmle_prob.distributions import NoisyGaussian
            >>> d = NoisyGaussian(torch.zeros(2), torch.eye(2), sigma=0.5)
            >>> lp, g = d.log_prob_and_score(torch.ones(3, 2))
            >>> lp.shape, g.shape, torch.allclose(g, -torch.ones(3, 2) / 1.25)
            (torch.Size([3]), torch.Size([3, 2]), True)
        """
        if validate:
            x, s = self._prepare(value, sigma)
            self._check_has_score(s)
        else:
            if sigma is not None:
                raise ValueError(
                    "log_prob_and_score(validate=False) uses the bound sigma: pass sigma=None "
                    "and bind sigma once outside the loop with dist.at(sigma)"
                )
            x = value
            s = self.sigma.expand(x.shape[: x.dim() - len(self.event_shape)])
        return self._log_prob_and_score(x, s)

    def conditional_log_prob(
        self, value: Tensor, sigma: float | Tensor | None = None
    ) -> Tensor:
        r"""Per-dimension terms :math:`\log p(x_i \mid x_{<i}, \sigma)`, shape
        ``log_prob``'s shape ``+ (D,)``, indexed by flat event dimension, summing to
        ``log_prob``.

        The order is the distribution's autoregressive order (its conditioner's ``order()``
        for a model; ``0..D-1`` for the oracles). This is what
        :func:`ncmle_prob.testing.check_sigma_reach` reads to check that σ moves the
        conditional law of every dimension.

        Raises:
            NotImplementedError: the distribution has no per-dimension decomposition (e.g. a
                flow or a transformed distribution).

        Example:
            >>> import torch
            >>> from ncmle_prob.distributions import NoisyGaussian
            >>> d = NoisyGaussian(torch.zeros(2), torch.eye(2), sigma=1.0)
            >>> terms = d.conditional_log_prob(torch.zeros(2))
            >>> terms.shape, torch.allclose(terms.sum(-1), d.log_prob(torch.zeros(2)))
            (torch.Size([2]), True)
        """
        x, s = self._prepare(value, sigma)
        return self._conditional_log_prob(x, s)

    def denoise(self, value: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        r"""Tweedie's posterior mean :math:`E[x_0 \mid x] = x + \sigma^2 \nabla_x \log p(x
        \mid \sigma)`.

        Exact when the distribution is the noisy law :math:`q_\sigma` of the clean data
        :math:`x_0`; at σ = 0 it returns ``value`` unchanged.
        """
        x, s = self._prepare(value, sigma)
        positive = s > 0
        safe = torch.where(positive, s, torch.ones_like(s))
        g = self._score(x, safe, create_graph=False)
        shift = torch.where(positive, s * s, torch.zeros_like(s))
        return x + self._lift(shift) * g

    def sample(
        self, sample_shape: _ShapeLike = torch.Size(), generator: torch.Generator | None = None
    ) -> Tensor:
        """Draws ``sample_shape + batch_shape + event_shape`` samples at the bound σ.

        Args:
            sample_shape: leading shape of the draw.
            generator: optional :class:`torch.Generator` for reproducible draws.
        """
        with torch.no_grad():
            return self._sample(torch.Size(sample_shape), generator)

    def is_mass(self, sigma: float | Tensor | None = None) -> Tensor:
        """Boolean tensor: where ``log_prob`` is a log *mass* (grid data at σ = 0)."""
        s = self.sigma if sigma is None else self.at(sigma).sigma  # exactly at(sigma)
        return (s == 0) & self.discrete_at_zero

    # ------------------------------------------------------------------ hooks
    def _log_prob(self, x: Tensor, sigma: Tensor) -> Tensor:
        raise NotImplementedError

    def _sample(self, sample_shape: torch.Size, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError

    def _conditional_log_prob(self, x: Tensor, sigma: Tensor) -> Tensor:
        raise NotImplementedError(
            f"{type(self).__name__} has no per-dimension conditionals (conditional_log_prob)"
        )

    def _score(self, x: Tensor, sigma: Tensor, *, create_graph: bool) -> Tensor:
        """Autograd score; subclasses with a closed form override this."""
        with torch.enable_grad():
            xg = x if (create_graph and x.requires_grad) else x.detach().requires_grad_(True)
            lp = self._log_prob(xg, sigma)
            (g,) = torch.autograd.grad(lp.sum(), xg, create_graph=create_graph)
        return g

    def _log_prob_and_score(self, x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
        """Both from one pass; a closed-form :meth:`_score` is used when a subclass has one."""
        if type(self)._score is not NoiseConditionalDistribution._score:
            return self._log_prob(x, sigma).detach(), self._score(x, sigma, create_graph=False)
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            lp = self._log_prob(xg, sigma)
            (g,) = torch.autograd.grad(lp.sum(), xg)
        return lp.detach(), g

    # ------------------------------------------------------------------ helpers
    def _check_arg_constraints(self) -> None:
        """torch's parameter check for every declared constraint but σ's (see ``__init__``)."""
        for name, constraint in self.arg_constraints.items():
            if name == "sigma" or constraints.is_dependent(constraint):
                continue
            if name not in self.__dict__ and isinstance(getattr(type(self), name, None),
                                                        lazy_property):
                continue
            value = getattr(self, name)
            if not bool(constraint.check(value).all()):
                raise ValueError(
                    f"{name} of shape {describe_shape(value.shape)} must satisfy the "
                    f"constraint {constraint!r}"
                )

    def _lift(self, t: Tensor) -> Tensor:
        """Appends singleton event dims so a batch-shaped tensor broadcasts against x."""
        return t.reshape(t.shape + (1,) * len(self.event_shape))

    def _check_has_score(self, sigma: Tensor) -> None:
        if self.discrete_at_zero and bool((sigma == 0).any()):
            raise ValueError(
                "score is undefined at sigma = 0 for a discretized family: log_prob there is a "
                "log mass on a grid of bins levels. Use sigma > 0 (the density of noisy data)"
            )

    @staticmethod
    def _broadcast_batch(param_batch_shape: torch.Size, sigma_shape: torch.Size) -> torch.Size:
        try:
            return broadcast_shapes(param_batch_shape, sigma_shape)
        except RuntimeError:
            raise ValueError(
                f"sigma has shape {describe_shape(sigma_shape)}, which does not broadcast against "
                f"the distribution's batch_shape {describe_shape(param_batch_shape)}"
            ) from None

    def _prepare(self, value: object, sigma: float | Tensor | None) -> tuple[Tensor, Tensor]:
        """Checks ``value`` and ``sigma`` and broadcasts them to a common batch shape."""
        x = check_tensor(
            "x", value, dtype=self.dtype, device=self.device, event_shape=self.event_shape
        )
        if self._validate_args:
            check_finite("x", x)
        k = len(self.event_shape)
        x_batch = x.shape[: x.dim() - k]
        if sigma is None:
            s = self.sigma
        else:
            s = self._as_sigma(sigma)
            if k and s.dim() == x.dim() and (
                tuple(s.shape) == tuple(x_batch) + (1,) * k or s.shape == x.shape
            ):
                raise ValueError(
                    f"sigma has shape {describe_shape(s.shape)}, shaped like x "
                    f"{describe_shape(x.shape)} including its event dims; sigma broadcasts "
                    f"against the batch dims of x only: pass sigma of shape "
                    f"{describe_shape(x_batch)}"
                )
        try:
            out = broadcast_shapes(x_batch, s.shape, self._param_batch_shape)
        except RuntimeError:
            raise ValueError(
                f"sigma of shape {describe_shape(s.shape)} does not broadcast against the batch "
                f"dims {describe_shape(x_batch)} of x (shape {describe_shape(x.shape)}) and "
                f"batch_shape {describe_shape(self.batch_shape)}"
            ) from None
        x = x.expand(out + self.event_shape)
        s = s.expand(out)
        if self._validate_args and self.discrete_at_zero:
            self._check_on_grid(x, s)
        return x, s

    def _check_on_grid(self, x: Tensor, sigma: Tensor) -> None:
        at_zero = self._lift(sigma == 0).expand_as(x)
        if not bool(at_zero.any()):
            return
        ok = grid(self.bins or 2).check(x)
        if not bool(ok[at_zero].all()):
            raise ValueError(
                f"x must lie on the grid of bins={self.bins} levels in [-1, 1] where sigma == 0 "
                f"(a discretized family's log_prob is a log mass there); got off-grid values. "
                f"Use sigma > 0 for continuous data"
            )
