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

__all__ = ["FlowDistribution", "NoiseAffine", "NoiseConditionalFlow"]


class NoiseAffine(nn.Module):
    r"""An element-wise affine map whose shift and log-scale are linear in an embedding of σ:
    :math:`x = a(\sigma) + e^{b(\sigma)} \odot y`.

    It makes σ reach every dimension of a flow whatever the flow does with its context. An
    nflows MAF, for one, feeds the context only to hidden units of degree ``>= 1``, so its
    first dimension's affine parameters are constants: with a σ-free base,
    :math:`p(x_1 \mid \sigma)` would be one law at every σ, while under noisy data its
    variance must grow by :math:`\sigma^2`. The weights start small (standard deviation
    ``init_scale``), so a new model is nearly the bare flow but already σ-dependent.

    Args:
        features: number of scalar dimensions D.
        noise_features: size of the fixed σ embedding
            (:class:`~ncmle_prob.models.NoiseEmbedding`).
        init_scale: standard deviation of the initial weights.

    Example:
        >>> layer = NoiseAffine(3)
        >>> shift, log_scale = layer(torch.tensor([0.0, 0.5]))
        >>> shift.shape, log_scale.shape
        (torch.Size([2, 3]), torch.Size([2, 3]))
    """

    def __init__(self, features: int, noise_features: int = 9, init_scale: float = 0.01) -> None:
        super().__init__()
        from ..models.embedding import NoiseEmbedding

        self.embedding = NoiseEmbedding(noise_features)
        self.linear = nn.Linear(self.embedding.num_features, 2 * features)
        nn.init.normal_(self.linear.weight, std=init_scale)
        nn.init.zeros_(self.linear.bias)

    def forward(self, sigma: Tensor) -> tuple[Tensor, Tensor]:
        """``(shift, log_scale)``, each ``(N, D)``, for noise levels ``sigma (N,)``."""
        return self.linear(self.embedding(sigma)).chunk(2, dim=-1)


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

    By default the flow's output passes through a :class:`NoiseAffine` map, so σ reaches
    every dimension even where the flow ignores its context (the first dimension of an nflows
    MAF does): :math:`\\log p(x \\mid \\sigma) = \\log p_\\text{flow}\\big((x - a(\\sigma))
    e^{-b(\\sigma)} \\mid c\\big) - \\sum_i b_i(\\sigma)`.

    It is a :class:`~ncmle_prob.models.NoiseConditionalModel` whose ``config`` is ``None``:
    a third-party flow cannot be rebuilt from JSON, so loading a checkpoint of it needs the
    model passed in.

    Args:
        flow: an ``nflows.flows.Flow`` or a zuko ``LazyDistribution`` (this module never
            imports zuko: a zuko flow implies it is imported).
        event_shape: shape of one draw, e.g. ``(2,)``.
        embedding: optional module mapping σ ``(N,)`` to the context ``(N, C)``; it is
            probed once here, at σ = 0 and σ = 0.5, and must return finite ``(N, C)``.
        noise_affine: wrap the flow's output in a :class:`NoiseAffine` map (default).
            ``False`` is the layout before it existed, kept to load those weights: then σ
            reaches a dimension only if the flow feeds its context there.

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
        noise_affine: bool = True,
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
        self.affine = NoiseAffine(math.prod(shape)) if noise_affine else None
        self._probe()

    def _probe(self) -> None:
        """One tiny forward pass: a bad embedding fails here with a clear message, not later
        inside the flow."""
        param = next(iter(self.parameters()), None)
        dtype = param.dtype if param is not None else torch.get_default_dtype()
        device = param.device if param is not None else torch.device("cpu")
        sigma = torch.tensor([0.0, 0.5], dtype=dtype, device=device)
        with torch.no_grad():
            ctx = self.context(sigma)
            if ctx.dim() != 2 or ctx.shape[0] != 2:
                raise ValueError(
                    f"embedding must map sigma of shape (N,) to a context of shape (N, C); for "
                    f"N = 2 it returned shape {tuple(ctx.shape)}"
                )
            if not bool(torch.isfinite(ctx).all()):
                finite = torch.isfinite(ctx).all(-1).tolist()
                bad = [float(s) for s, ok in zip(sigma, finite) if not ok]
                raise ValueError(
                    f"embedding returns non-finite values at sigma = {bad} (sigma = 0 must be "
                    "embedded too, e.g. ncmle_prob.models.NoiseEmbedding)"
                )
            try:
                self.flow_log_prob(
                    torch.zeros((2, *self.event_shape), dtype=dtype, device=device), sigma
                )
            except TypeError:
                # A dtype or device mismatch (e.g. a parameter-free float64 base beside
                # float32 weights) is settled by the caller's .to(); not an embedding error.
                pass
            except RuntimeError as e:
                if "shape" not in str(e) and "size" not in str(e):
                    raise
                raise ValueError(
                    f"the flow does not accept the context: a context of {ctx.shape[1]} "
                    f"features (from {'the embedding' if self.embedding is not None else 'sigma'}"
                    f") fails inside the flow ({str(e).splitlines()[0]}); give the flow "
                    "context_features equal to the embedding's size"
                ) from None

    def context(self, sigma: Tensor) -> Tensor:
        """The flow's context for noise levels ``sigma`` of shape ``(N,)``."""
        if self.embedding is not None:
            return self.embedding(sigma)
        return sigma[:, None]

    def flow_log_prob(self, x: Tensor, sigma: Tensor) -> Tensor:
        """``log p(x | σ)`` for flat ``x (N, *event)`` and ``sigma (N,)``."""
        ctx = self.context(sigma)
        log_det = None
        if self.affine is not None:
            shift, log_scale = self.affine(sigma)
            flat = (x.reshape(x.shape[0], -1) - shift) * torch.exp(-log_scale)
            x = flat.reshape(x.shape)
            log_det = log_scale.sum(-1)
        lp = self.flow.log_prob(x, context=ctx) if self.kind == "nflows" else (
            self.flow(ctx).log_prob(x)
        )
        return lp if log_det is None else lp - log_det

    def flow_sample(self, sigma: Tensor) -> Tensor:
        """One draw per noise level in ``sigma (N,)``: shape ``(N, *event)``."""
        ctx = self.context(sigma)
        if self.kind == "nflows":
            y = self.flow.sample(1, context=ctx)[:, 0]
        else:
            y = self.flow(ctx).sample()
        if self.affine is None:
            return y
        shift, log_scale = self.affine(sigma)
        return (shift + torch.exp(log_scale) * y.reshape(y.shape[0], -1)).reshape(y.shape)

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
