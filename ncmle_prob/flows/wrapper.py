"""NCMLE for flows from other libraries: feed σ (or its embedding) as the flow's context."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any

import torch
from nflows.flows.base import Flow as _NflowsFlow
from torch import Tensor, nn

from ..distributions.base import NoiseConditionalDistribution
from ..models.base import NoiseConditionalModel

__all__ = ["FlowDistribution", "NoiseConditionalFlow"]


def _is_zuko_flow(flow: object) -> bool:
    # A zuko flow can exist only if zuko is already imported; importing it here would run
    # its import-time side effect (it turns torch's default argument validation off).
    lazy = sys.modules.get("zuko.lazy")
    return lazy is not None and isinstance(flow, lazy.LazyDistribution)


class NoiseConditionalFlow(NoiseConditionalModel):
    """A conditional flow of nflows or zuko as a noise-conditional model.

    The flow's context is the noise level: ``embedding(σ)`` when an ``embedding`` is given
    (e.g. :class:`~ncmle_prob.models.NoiseEmbedding`; the flow's ``context_features`` must
    equal its ``num_features``), else σ itself as a ``(N, 1)`` column (for an nflows
    :class:`~nflows.flows.Flow` whose ``embedding_net`` is
    :class:`~ncmle_prob.flows.SigmaEmbeddingNet` and whose base is
    :class:`~ncmle_prob.flows.NflowsBase`). ``model(sigma)`` returns a
    :class:`FlowDistribution`, so :func:`~ncmle_prob.objectives.ncmle_loss` trains it:

    .. math::

        \\log p_\\theta(x \\mid \\sigma) = \\log p_\\text{flow}\\big(x \\mid
        c = e(\\sigma)\\big).

    It is a :class:`~ncmle_prob.models.NoiseConditionalModel` whose ``config`` is ``None``:
    a third-party flow cannot be rebuilt from JSON, so loading a checkpoint of it needs the
    model passed in.

    Args:
        flow: an ``nflows.flows.Flow`` or a zuko ``LazyDistribution`` (this module never
            imports zuko: a zuko flow implies it is imported).
        event_shape: shape of one draw, e.g. ``(2,)``.
        embedding: optional module mapping σ ``(N,)`` to the context ``(N, C)``.

    Example:
        >>> from nflows.distributions import StandardNormal
        >>> from nflows.flows import Flow
        >>> from nflows.transforms import MaskedAffineAutoregressiveTransform
        >>> from ncmle_prob.models import NoiseEmbedding
        >>> from ncmle_prob.objectives import ncmle_loss
        >>> _ = torch.manual_seed(0)
        >>> flow = Flow(MaskedAffineAutoregressiveTransform(2, 8, context_features=5),
        ...             StandardNormal([2]))
        >>> model = NoiseConditionalFlow(flow, (2,), NoiseEmbedding(5))
        >>> ncmle_loss(model, torch.randn(16, 2)).backward()
        >>> model(0.5).sample((3,)).shape
        torch.Size([3, 2])
    """

    def __init__(
        self,
        flow: nn.Module,
        event_shape: Sequence[int] | torch.Size,
        embedding: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if isinstance(flow, _NflowsFlow):
            self.kind = "nflows"
        elif _is_zuko_flow(flow):
            self.kind = "zuko"
        else:
            raise TypeError(
                f"flow must be an nflows.flows.Flow or a zuko flow, got {type(flow).__name__}"
            )
        shape = torch.Size(event_shape)
        if not shape or any(int(s) < 1 for s in shape):
            raise ValueError(f"event_shape must be a non-empty shape of positive sizes, got "
                             f"{tuple(event_shape)}")
        self.flow = flow
        self.embedding = embedding
        self.event_shape = shape

    def context(self, sigma: Tensor) -> Tensor:
        """The flow's context for noise levels ``sigma`` of shape ``(N,)``."""
        if self.embedding is not None:
            return self.embedding(sigma)
        return sigma[:, None]

    def flow_log_prob(self, x: Tensor, sigma: Tensor) -> Tensor:
        """``log p(x | σ)`` for flat ``x (N, *event)`` and ``sigma (N,)``."""
        ctx = self.context(sigma)
        if self.kind == "nflows":
            return self.flow.log_prob(x, context=ctx)
        return self.flow(ctx).log_prob(x)

    def flow_sample(self, sigma: Tensor) -> Tensor:
        """One draw per noise level in ``sigma (N,)``: shape ``(N, *event)``."""
        ctx = self.context(sigma)
        if self.kind == "nflows":
            return self.flow.sample(1, context=ctx)[:, 0]
        return self.flow(ctx).sample()

    def forward(
        self, sigma: float | Tensor = 0.0, validate_args: bool | None = None
    ) -> FlowDistribution:
        """Returns :math:`p_\\theta(\\cdot \\mid \\sigma)` bound to ``sigma``."""
        return FlowDistribution(self, sigma, validate_args)


class FlowDistribution(NoiseConditionalDistribution):
    """The distribution of a :class:`NoiseConditionalFlow` at a bound noise level.

    ``log_prob`` is the flow's exact log density with σ's context, ``score`` its autograd
    gradient, and ``sample`` the flow's own sampler (nflows and zuko take no generator, so a
    given ``generator`` seeds torch's global stream inside a forked RNG state).

    Args:
        module: the :class:`NoiseConditionalFlow`.
        sigma: bound noise level(s).
        validate_args: per-instance validation.
    """

    def __init__(
        self,
        module: NoiseConditionalFlow,
        sigma: float | Tensor = 0.0,
        validate_args: bool | None = None,
    ) -> None:
        if not isinstance(module, NoiseConditionalFlow):
            raise TypeError(f"module must be a NoiseConditionalFlow, got {type(module).__name__}")
        self.module = module
        param: Any = next(iter(module.parameters()), None)
        super().__init__(
            sigma,
            event_shape=module.event_shape,
            dtype=param.dtype if param is not None else torch.get_default_dtype(),
            device=param.device if param is not None else torch.device("cpu"),
            validate_args=validate_args,
        )

    def _log_prob(self, x: Tensor, sigma: Tensor) -> Tensor:
        batch = sigma.shape
        n = math.prod(batch)
        lp = self.module.flow_log_prob(x.reshape((n, *self.event_shape)), sigma.reshape(n))
        return lp.reshape(batch)

    def _sample(self, sample_shape: torch.Size, generator: torch.Generator | None) -> Tensor:
        shape = sample_shape + self.batch_shape
        sigma = self.sigma.expand(shape).reshape(-1)
        if generator is None:
            x = self.module.flow_sample(sigma)
        else:
            devices = [self.device] if self.device.type == "cuda" else []
            seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                x = self.module.flow_sample(sigma)
        return x.reshape(shape + self.event_shape)
