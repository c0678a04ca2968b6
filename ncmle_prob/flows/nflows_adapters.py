"""Adapters between nflows and ncmle_prob, in both directions.

* :class:`NflowsTransform`: an nflows transform (their ``(outputs, logabsdet)`` contract with
  ``context=``) as a torch :class:`~torch.distributions.transforms.Transform`, optionally fed
  σ's embedding as context, so that it composes with
  :class:`~ncmle_prob.distributions.transformed.TransformedNoiseConditional`.
* :class:`NflowsBase`: a noise-conditional distribution as an nflows base distribution, so that
  :class:`nflows.flows.Flow` sits on top of it; with :class:`SigmaEmbeddingNet` as the flow's
  ``embedding_net`` both the transforms (through σ's embedding) and the base (through σ itself)
  see the noise level.
"""

from __future__ import annotations

from typing import Any

import torch
from nflows.distributions.base import Distribution as _NflowsDistribution
from nflows.transforms.base import Transform as _NflowsTransformBase
from torch import Tensor, nn
from torch.distributions import constraints
from torch.distributions.transforms import Transform

from ..distributions.base import NoiseConditionalDistribution
from ..distributions.validation import describe_shape
from ..models.embedding import NoiseEmbedding

__all__ = ["NflowsBase", "NflowsTransform", "SigmaEmbeddingNet"]


class NflowsTransform(Transform):
    """An nflows transform as a torch transform in the *sampling* direction.

    nflows transforms map data to noise, :math:`f: x \\mapsto z`, returning
    :math:`(f(x), \\log|\\det J_f(x)|)`. This adapter is :math:`T = f^{-1}` (noise → data), the
    torch convention, so that

    .. math::

        \\log p(x) = \\log p_\\text{base}(f(x)) + \\log|\\det J_f(x)|

    exactly as in :class:`nflows.flows.Flow`, and evaluating a density needs only the (usually
    one-pass) nflows forward direction. With an ``embedding``, :meth:`with_sigma` binds the
    context to the embedding of σ (one row per batch element); without one, a fixed
    ``context`` (or none) is used.

    Args:
        transform: an ``nflows.transforms.Transform``.
        embedding: optional module mapping σ of shape ``(N,)`` to a context ``(N, C)``
            (e.g. :class:`~ncmle_prob.models.NoiseEmbedding` or :class:`SigmaEmbeddingNet`).
        event_dim: number of event dims the nflows transform acts on (1 for vectors).
        context: a fixed context of shape ``(C,)`` or ``batch_shape + (C,)``.

    Example:
        >>> from nflows.transforms import PointwiseAffineTransform
        >>> t = NflowsTransform(PointwiseAffineTransform(shift=1.0, scale=2.0))
        >>> x = torch.tensor([[5.0, 7.0]])  # f(x) = 1 + 2x, so T(z) = (z - 1) / 2
        >>> t.inv(x), t.log_abs_det_jacobian(t.inv(x), x)
        (tensor([[11., 15.]]), tensor([-1.3863]))
    """

    bijective = True

    def __init__(
        self,
        transform: _NflowsTransformBase,
        embedding: nn.Module | None = None,
        event_dim: int = 1,
        context: Tensor | None = None,
    ) -> None:
        if not isinstance(transform, _NflowsTransformBase):
            raise TypeError(
                f"transform must be an nflows.transforms.Transform, got {type(transform).__name__}"
            )
        if int(event_dim) != event_dim or event_dim < 1:
            raise ValueError(f"event_dim must be a positive integer, got {event_dim!r}")
        super().__init__(cache_size=0)
        self.transform = transform
        self.embedding = embedding
        self.context = context
        self._event_dim = int(event_dim)
        self._last: tuple[Tensor, Tensor] | None = None
        self.domain = constraints.independent(constraints.real, self._event_dim)
        self.codomain = constraints.independent(constraints.real, self._event_dim)

    def with_sigma(self, sigma: Tensor) -> NflowsTransform:
        """This transform with its context bound to the embedding of ``sigma``."""
        if self.embedding is None:
            return self
        batch = sigma.shape
        ctx = self.embedding(sigma.reshape(-1))
        return NflowsTransform(
            self.transform, None, self._event_dim, ctx.reshape(batch + ctx.shape[-1:])
        )

    # ------------------------------------------------------------------ plumbing
    def _flatten(self, v: Tensor) -> tuple[Tensor, torch.Size, Tensor | None]:
        k = self._event_dim
        if v.dim() < k:
            raise ValueError(
                f"input has shape {describe_shape(v.shape)} but the transform acts on "
                f"{k} event dims"
            )
        batch = v.shape[: v.dim() - k]
        flat = v.reshape((-1, *v.shape[v.dim() - k :]))
        ctx = None
        if self.context is not None:
            c = self.context
            ctx = c.expand(batch + c.shape[-1:]).reshape(-1, c.shape[-1])
        return flat, batch, ctx

    def _forward_nflows(self, x: Tensor) -> tuple[Tensor, Tensor]:
        flat, batch, ctx = self._flatten(x)
        z, logabsdet = self.transform(flat, context=ctx)
        return z.reshape(x.shape), logabsdet.reshape(batch)

    def _call(self, z: Tensor) -> Tensor:
        flat, _, ctx = self._flatten(z)
        x, _ = self.transform.inverse(flat, context=ctx)
        return x.reshape(z.shape)

    def _inverse(self, x: Tensor) -> Tensor:
        z, logabsdet = self._forward_nflows(x)
        self._last = (x, logabsdet)
        return z

    def log_abs_det_jacobian(self, z: Tensor, x: Tensor) -> Tensor:
        """:math:`\\log|\\det J_T(z)| = -\\log|\\det J_f(x)|`, shape ``batch``."""
        if self._last is not None and self._last[0] is x:
            logabsdet = self._last[1]
        else:
            _, logabsdet = self._forward_nflows(x)
        self._last = None
        return -logabsdet


class SigmaEmbeddingNet(nn.Module):
    """An nflows ``embedding_net`` that keeps σ: context ``(N, 1)`` → ``[σ, e(σ)]``.

    Column 0 of the output is σ itself, which :class:`NflowsBase` reads; the other columns are
    :class:`~ncmle_prob.models.NoiseEmbedding` features, which conditional transforms use
    (give them ``context_features=net.num_features``).

    Args:
        embedding: the σ embedding (default ``NoiseEmbedding(17)``).

    Example:
        >>> net = SigmaEmbeddingNet(NoiseEmbedding(5))
        >>> net(torch.tensor([[0.0], [0.5]])).shape, net.num_features
        (torch.Size([2, 6]), 6)
    """

    def __init__(self, embedding: nn.Module | None = None) -> None:
        super().__init__()
        self.embedding = embedding if embedding is not None else NoiseEmbedding()
        self.num_features = 1 + int(self.embedding.num_features)

    def forward(self, context: Tensor) -> Tensor:
        if context is None:
            raise ValueError("SigmaEmbeddingNet needs a context: the noise levels, shape (N, 1)")
        sigma = context.reshape(context.shape[0], -1)
        if sigma.shape[1] != 1:
            raise ValueError(
                f"context must hold one noise level per row, shape (N, 1), got "
                f"{describe_shape(context.shape)}"
            )
        return torch.cat([sigma, self.embedding(sigma[:, 0])], dim=1)


class NflowsBase(_NflowsDistribution):
    """A noise-conditional distribution as an nflows base distribution.

    The noise level of each row comes from column 0 of the context (as produced by
    :class:`SigmaEmbeddingNet`); with ``context=None`` the bound σ is used. With a model
    (an ``nn.Module`` returning a distribution when called) as ``source``, its parameters are
    registered, so a flow on top trains the base too.

    Args:
        source: a :class:`~ncmle_prob.distributions.NoiseConditionalDistribution` or a module
            whose call returns one.

    Example:
        >>> from nflows.flows import Flow
        >>> from nflows.transforms import MaskedAffineAutoregressiveTransform
        >>> from ncmle_prob.distributions import NoisyGaussian
        >>> _ = torch.manual_seed(0)
        >>> emb = SigmaEmbeddingNet(NoiseEmbedding(5))
        >>> flow = Flow(MaskedAffineAutoregressiveTransform(2, 8, context_features=6),
        ...             NflowsBase(NoisyGaussian(torch.zeros(2), torch.eye(2))), emb)
        >>> flow.log_prob(torch.randn(4, 2), context=torch.full((4, 1), 0.3)).shape
        torch.Size([4])
    """

    def __init__(self, source: NoiseConditionalDistribution | nn.Module) -> None:
        super().__init__()
        if isinstance(source, NoiseConditionalDistribution):
            self._dist: NoiseConditionalDistribution | None = source
            self.model: nn.Module | None = None
        elif isinstance(source, nn.Module):
            self._dist = None
            self.model = source
        else:
            raise TypeError(
                "source must be a NoiseConditionalDistribution or a module returning one, got "
                f"{type(source).__name__}"
            )

    @property
    def distribution(self) -> NoiseConditionalDistribution:
        """The wrapped distribution (built from the model on each access)."""
        if self._dist is not None:
            return self._dist
        dist: Any = self.model()  # type: ignore[misc]
        if not isinstance(dist, NoiseConditionalDistribution):
            raise TypeError(
                f"the model returned {type(dist).__name__}, not a NoiseConditionalDistribution"
            )
        return dist

    @staticmethod
    def _sigma(context: Tensor | None) -> Tensor | None:
        if context is None:
            return None
        return context.reshape(context.shape[0], -1)[:, 0]

    def _log_prob(self, inputs: Tensor, context: Tensor | None) -> Tensor:
        return self.distribution.log_prob(inputs, self._sigma(context))

    def _sample(self, num_samples: int, context: Tensor | None) -> Tensor:
        dist = self.distribution
        sigma = self._sigma(context)
        if sigma is None:
            return dist.sample((num_samples,))
        draws = dist.at(sigma.detach()).sample((num_samples,))  # (num, C, *event)
        return draws.transpose(0, 1)
