r"""A noise-conditional distribution pushed through a chain of (possibly σ-conditional)
transforms.

Where the noise lives matters. ``TransformedNoiseConditional(base, T)`` is the law of
:math:`T(z)` with :math:`z \sim p_\text{base}(\cdot \mid \sigma)`: the noise is added in the
*base* (pre-flow) space, and the flow maps noisy base points to data space. It is **not** the
law of :math:`T(z_0) + \sigma\varepsilon` (noise added after the flow); only for an affine
:math:`T` with orthogonal linear part do the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor
from torch.distributions import constraints
from torch.distributions.transforms import Transform
from torch.distributions.utils import _sum_rightmost

from .base import NoiseConditionalDistribution
from .validation import describe_shape

__all__ = ["SigmaConditionalTransform", "TransformedNoiseConditional"]


@runtime_checkable
class SigmaConditionalTransform(Protocol):
    """A transform whose parameters depend on the noise level.

    ``with_sigma(sigma)`` returns a plain :class:`torch.distributions.transforms.Transform`
    for noise levels ``sigma`` of shape ``batch_shape`` (one σ per batch element); see
    :class:`ncmle_prob.flows.NflowsTransform` for an example that feeds σ's embedding as the
    context of an nflows transform.
    """

    def with_sigma(self, sigma: Tensor) -> Transform: ...


class TransformedNoiseConditional(NoiseConditionalDistribution):
    r"""A noise-conditional base distribution pushed through a flow.

    With transforms :math:`T = T_K \circ \dots \circ T_1` (each a torch ``Transform`` or a
    :class:`SigmaConditionalTransform`), the density is the change of variables

    .. math::

        \log p(x \mid \sigma) = \log p_\text{base}\big(T^{-1}(x) \mid \sigma\big)
        + \log\big|\det J_{T^{-1}}(x)\big|.

    **Where the noise lives:** :math:`p(\cdot \mid \sigma)` is the law of :math:`x = T(z)`,
    :math:`z \sim p_\text{base}(\cdot \mid \sigma)`, i.e. the Gaussian perturbation is in
    the base (pre-flow) space. It is *not* the law of :math:`T(z_0) + \sigma\varepsilon`, so
    :meth:`denoise` (Tweedie in data space) is exact only when :math:`T` is an isometry.
    ``log_prob`` and ``sample`` are exact; ``score`` is the autograd gradient of ``log_prob``
    (one forward and one backward pass through base and flow), so every sampler that needs
    ``log_prob``/``score`` works on the composition.

    Pyro and zuko transforms are torch transforms and work unchanged; nflows transforms work
    through :class:`ncmle_prob.flows.NflowsTransform`. As in torch's
    ``TransformedDistribution``, ``support`` is the codomain of the last transform (with the
    event's dims), so a flow ending in ``ExpTransform`` has a positive support and Pyro's
    autoguides and NUTS sample it through the matching bijection; with ``validate_args`` data
    outside the support are a clear :class:`ValueError`.

    Args:
        base: the noise-conditional base distribution (a continuous one: a discretized
            family's σ = 0 log mass cannot be pushed through a flow).
        transforms: one transform or a sequence, applied first to last in the sampling
            direction (base → data).
        validate_args: per-instance validation.

    Example:
        >>> from torch.distributions.transforms import AffineTransform
        >>> from ncmle_prob.distributions import NoisyGaussian
        >>> base = NoisyGaussian(torch.zeros(2), torch.eye(2), sigma=0.5)
        >>> d = TransformedNoiseConditional(base, AffineTransform(1.0, 2.0))
        >>> x = torch.tensor([1.0, 3.0])
        >>> bool(torch.isclose(d.log_prob(x), base.log_prob((x - 1) / 2) - 2 * torch.log(
        ...     torch.tensor(2.0))))
        True
        >>> d.sample((3,)).shape, d.score(x).shape
        (torch.Size([3, 2]), torch.Size([2]))
    """

    def __init__(
        self,
        base: NoiseConditionalDistribution,
        transforms: Transform | SigmaConditionalTransform | Sequence[Transform],
        validate_args: bool | None = None,
    ) -> None:
        if not isinstance(base, NoiseConditionalDistribution):
            raise TypeError(
                f"base must be a NoiseConditionalDistribution, got {type(base).__name__}"
            )
        if base.discrete_at_zero:
            raise ValueError(
                "base is a discretized family (a log mass on a grid at sigma = 0), which cannot "
                "be pushed through a flow; use a continuous family"
            )
        if isinstance(transforms, (Transform, SigmaConditionalTransform)):
            transforms = [transforms]
        if not isinstance(transforms, Sequence):
            raise TypeError(
                "transforms must be a torch Transform, an object with with_sigma(sigma), or a "
                f"sequence of them, got {type(transforms).__name__}"
            )
        transforms = list(transforms)
        shape = base.event_shape
        for i, t in enumerate(transforms):
            if not isinstance(t, (Transform, SigmaConditionalTransform)):
                raise TypeError(
                    f"transforms[{i}] must be a torch Transform or define with_sigma(sigma), "
                    f"got {type(t).__name__}"
                )
            domain = getattr(t, "domain", None)
            if domain is not None and domain.event_dim > len(shape):
                raise ValueError(
                    f"transforms[{i}] acts on {domain.event_dim} event dims but the event shape "
                    f"there is {describe_shape(shape)}"
                )
            if isinstance(t, Transform):
                shape = torch.Size(t.forward_shape(shape))
        self.base = base
        self.transforms = transforms
        super().__init__(
            base.sigma,
            event_shape=shape,
            param_batch_shape=base._param_batch_shape,
            dtype=base.dtype,
            device=base.device,
            validate_args=validate_args,
        )

    @constraints.dependent_property(is_discrete=False)
    def support(self) -> constraints.Constraint:  # type: ignore[override]
        """The codomain of the last transform, made ``independent`` over the event's dims
        (torch's ``TransformedDistribution`` rule); the base's support without transforms."""
        if not self.transforms:
            return self.base.support
        last = self.transforms[-1]
        codomain = getattr(last, "codomain", None)
        if codomain is None:  # a σ-conditional transform that declares no codomain
            codomain = last.with_sigma(self.sigma).codomain
        if len(self.event_shape) > codomain.event_dim:
            codomain = constraints.independent(
                codomain, len(self.event_shape) - codomain.event_dim
            )
        return codomain

    # ------------------------------------------------------------------ binding σ
    def _bind(self, sigma: Tensor) -> TransformedNoiseConditional:
        """The same composition with the base bound to another (validated) noise level."""
        new = super()._bind(sigma)
        new.base = self.base._bind(sigma)
        return new

    def expand(
        self,
        batch_shape: Sequence[int] | torch.Size,
        _instance: TransformedNoiseConditional | None = None,
    ) -> TransformedNoiseConditional:
        """Expands the batch shape of the base and the composition (torch's ``_instance``
        protocol: see :meth:`NoiseConditionalDistribution.expand`)."""
        new = type(self).__new__(type(self)) if _instance is None else _instance
        new.base = self.base.expand(batch_shape)
        new.transforms = self.transforms
        return super().expand(batch_shape, _instance=new)  # type: ignore[return-value]

    def _prepare(self, value: object, sigma: float | Tensor | None) -> tuple[Tensor, Tensor]:
        x, s = super()._prepare(value, sigma)
        if self._validate_args and self.transforms:
            support = inner = self.support
            while isinstance(inner, constraints.independent):
                inner = inner.base_constraint
            if inner is not constraints.real:  # the reals need no check (finite is checked)
                inside = support.check(x)
                if not bool(inside.all()):
                    raise ValueError(
                        f"x has {int((~inside).sum())} events outside the support {support!r} "
                        f"(shape {describe_shape(x.shape)}): the codomain of the last transform "
                        f"{type(self.transforms[-1]).__name__}"
                    )
        return x, s

    # ------------------------------------------------------------------ hooks
    def conditioned_transforms(self, sigma: Tensor) -> list[Transform]:
        """The torch transforms at noise levels ``sigma`` (shape: the batch of the data)."""
        return [t.with_sigma(sigma) if isinstance(t, SigmaConditionalTransform) else t
                for t in self.transforms]

    def _log_prob(self, x: Tensor, sigma: Tensor) -> Tensor:
        y = x
        event_dim = len(self.event_shape)
        lp: Tensor | float = 0.0
        for t in reversed(self.conditioned_transforms(sigma)):
            z = t.inv(y)
            event_dim += t.domain.event_dim - t.codomain.event_dim
            lp = lp - _sum_rightmost(t.log_abs_det_jacobian(z, y), event_dim - t.domain.event_dim)
            y = z
        if y.shape == sigma.shape + self.base.event_shape:
            base_lp = self.base._log_prob(y, sigma)  # x and σ were validated at entry
        else:  # transforms that change the batch shape: the base broadcasts them itself
            base_lp = self.base.log_prob(y, sigma)
        return lp + _sum_rightmost(base_lp, event_dim - len(self.base.event_shape))

    def _sample(self, sample_shape: torch.Size, generator: torch.Generator | None) -> Tensor:
        z = self.base.sample(sample_shape, generator=generator)
        sigma = self.sigma.expand(sample_shape + self.batch_shape)
        for t in self.conditioned_transforms(sigma):
            z = t(z)
        return z
