"""MADE: a σ-conditioned masked autoregressive network for vectors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from nflows.transforms.made import MADE as _NflowsMADE
from nflows.transforms.made import MaskedLinear
from torch import Tensor, nn

from ..distributions import ConditionalFamily, NoiseConditionalAutoregressive, get_family
from ..distributions.families.base import check_int
from .embedding import NoiseEmbedding

__all__ = ["MADE"]

_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "elu": F.elu,
    "silu": F.silu,
    "gelu": F.gelu,
    "tanh": torch.tanh,
}


def _spread_hidden_degrees(net: _NflowsMADE, features: int) -> None:
    """Spreads the hidden units' degrees evenly over ``1..D-1``.

    nflows assigns hidden degrees ``1, 2, ..., H`` cyclically, so with fewer hidden units
    than inputs (``H < D - 1``, e.g. ``H = 256`` at ``D = 784``) every output past ``H`` can
    see only the first ``H`` inputs. Even spacing (as Pyro's MADE does) lets every output see
    all of its predecessors. The masks stay autoregressive by construction: a hidden unit of
    degree ``m`` sees inputs ``<= m`` and feeds outputs ``> m``.
    """
    hidden = net.initial_layer.out_features
    in_degrees = torch.arange(1, features + 1)
    if features > 1:
        degrees = torch.linspace(1, features - 1, hidden).round().long()
    else:
        degrees = torch.zeros(hidden, dtype=torch.long)
    previous = in_degrees
    for layer in net.modules():
        if not isinstance(layer, MaskedLinear) or layer is net.final_layer:
            continue
        layer.degrees.copy_(degrees)
        layer.mask.copy_((degrees[:, None] >= previous[None, :]).to(layer.mask.dtype))
        previous = degrees
    out_degrees = net.final_layer.degrees
    net.final_layer.mask.copy_((out_degrees[:, None] > degrees[None, :]).to(net.final_layer.mask))


class MADE(nn.Module):
    """A noise-conditional MADE: ``model(sigma)`` returns :math:`p_\\theta(\\cdot \\mid \\sigma)`.

    The masked network is nflows' ``MADE`` (residual masked blocks) with the noise embedding as
    its context and hidden degrees spread evenly over the inputs; optionally
    (``linear_skip=True``) a direct masked linear connection from the inputs to the location
    parameters (Germain et al., 2015) represents a linear-Gaussian autoregressive process
    exactly. Output ``i`` depends on ``x[:i]`` and σ only.

    .. math::

        p_\\theta(x \\mid \\sigma) = \\prod_{i=1}^{D} p_\\text{family}(x_i;\\;
        \\theta_i(x_{<i}, e(\\sigma)))

    Args:
        features: dimension D of the data.
        hidden_features: width of the hidden layers (any size, also below D).
        num_blocks: number of masked residual blocks.
        family: name of the per-dimension conditional family
            (see :func:`ncmle_prob.distributions.family_names`).
        components: mixture components (mixture families).
        bins: grid levels on [-1, 1] (``"discretized_logistic_mixture"``).
        noise_features: size of the σ embedding.
        activation: ``"relu"``, ``"elu"``, ``"silu"``, ``"gelu"`` or ``"tanh"``. Smooth
            activations give smooth scores, which Langevin samplers prefer.
        dropout: dropout probability inside the blocks.
        residual: residual masked blocks (nflows' default) or plain feed-forward blocks.
        linear_skip: add a strictly lower-triangular linear map of ``x`` (D × D) to every
            location parameter. Off by default: the D × D product costs 1.5-1.8x in
            ``log_prob`` at D = 784 with 256 hidden units (``benchmarks/README.md``).

    Example:
        >>> _ = torch.manual_seed(0)
        >>> model = MADE(features=2, hidden_features=32, family="logistic_mixture",
        ...              components=4)
        >>> dist = model(0.3)
        >>> x = dist.sample((5,))
        >>> dist.log_prob(x).shape, dist.score(x).shape
        (torch.Size([5]), torch.Size([5, 2]))
    """

    def __init__(
        self,
        features: int,
        hidden_features: int = 64,
        num_blocks: int = 2,
        family: str = "gaussian",
        components: int | None = None,
        bins: int | None = None,
        noise_features: int = 17,
        activation: str = "elu",
        dropout: float = 0.0,
        residual: bool = True,
        linear_skip: bool = False,
    ) -> None:
        super().__init__()
        features = check_int("features", features, 1)
        hidden_features = check_int("hidden_features", hidden_features, 1)
        num_blocks = check_int("num_blocks", num_blocks, 0)
        noise_features = check_int("noise_features", noise_features, 1)
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}"
            )
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.family = get_family(family, components=components, bins=bins)
        self.event_shape = torch.Size([int(features)])
        self.embedding = NoiseEmbedding(noise_features)
        self.net = _NflowsMADE(
            features=int(features),
            hidden_features=int(hidden_features),
            context_features=self.embedding.num_features,
            num_blocks=int(num_blocks),
            output_multiplier=self.family.num_params,
            use_residual_blocks=residual,
            activation=_ACTIVATIONS[activation],
            dropout_probability=dropout,
        )
        _spread_hidden_degrees(self.net, int(features))
        self.skip: MaskedLinear | None = None
        if linear_skip:
            self.skip = MaskedLinear(
                in_degrees=torch.arange(1, int(features) + 1),
                out_features=int(features),
                autoregressive_features=int(features),
                random_mask=False,
                is_output=True,
                bias=False,
            )
            loc_mask = torch.zeros(self.family.num_params)
            loc_mask[self.family.location_params] = 1.0
            self.register_buffer("_loc_mask", loc_mask, persistent=False)
        self._config: dict[str, Any] = {
            "features": int(features),
            "hidden_features": int(hidden_features),
            "num_blocks": int(num_blocks),
            **self.family.config(),
            "noise_features": int(noise_features),
            "activation": activation,
            "dropout": float(dropout),
            "residual": bool(residual),
            "linear_skip": bool(linear_skip),
        }

    @property
    def config(self) -> dict[str, Any]:
        """JSON-able constructor arguments: ``MADE(**model.config)`` rebuilds the model."""
        return dict(self._config)

    def conditional_params(self, x: Tensor, sigma: Tensor) -> Tensor:
        """Raw family parameters, shape ``(N, D, num_params)``; row ``i`` sees ``x[:, :i]``."""
        context = self.embedding(sigma)
        out = self.net(x, context).view(x.shape[0], self.event_shape[0], self.family.num_params)
        if self.skip is not None:
            out = out + self.skip(x).unsqueeze(-1) * self._loc_mask
        return out

    @torch.no_grad()
    def ancestral_sample(
        self, family: ConditionalFamily, sigma: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """D sequential draws, shape ``(N, D)``, with the network's work cached across steps.

        Output ``i`` depends on ``x[:, :i]`` only, so step ``i`` needs the initial layer's
        pre-activation updated by the rank-one term :math:`x_{i-1} W_0[:, i-1]` (not
        recomputed), the hidden blocks, and only the ``num_params`` rows of the output layer
        (and the one row of the skip connection) that belong to dimension ``i``. Masked weights
        and the σ context are computed once. The draws equal those of the generic loop of
        :class:`~ncmle_prob.distributions.NoiseConditionalAutoregressive` (same generator
        stream; equal up to floating-point rounding).
        """
        net, act = self.net, self.net.activation
        n, d, p = sigma.shape[0], self.event_shape[0], family.num_params
        context = self.embedding(sigma)
        w0 = net.initial_layer.weight * net.initial_layer.mask
        h0 = net.initial_layer.bias + act(net.context_layer(context))  # pre-activation at x = 0
        blocks = []
        for block in net.blocks:
            if net.use_residual_blocks:
                l1, l2 = block.linear_layers
                ctx = block.context_layer(context)
                blocks.append((block, l1.weight * l1.mask, l2.weight * l2.mask, ctx))
            else:
                blocks.append((block, block.linear.weight * block.linear.mask, None, None))
        wf = (net.final_layer.weight * net.final_layer.mask).view(d, p, -1)
        bf = net.final_layer.bias.view(d, p)
        ws = None if self.skip is None else self.skip.weight * self.skip.mask
        x = torch.zeros(n, d, dtype=context.dtype, device=context.device)
        for i in range(d):
            t = h0 if net.use_residual_blocks else act(h0)
            for block, w1, w2, ctx in blocks:
                if w2 is None:  # feed-forward block: dropout(act(W t + b))
                    t = block.dropout(act(torch.addmm(block.linear.bias, t, w1.t())))
                    continue
                u = torch.addmm(block.linear_layers[0].bias, act(t), w1.t()) + ctx
                u = block.dropout(act(u))
                t = t + torch.addmm(block.linear_layers[1].bias, u, w2.t())
            out = torch.addmm(bf[i], t, wf[i].t())
            if ws is not None and i:
                out = out + (x[:, :i] @ ws[i, :i]).unsqueeze(-1) * self._loc_mask
            x[:, i] = family.sample(out, sigma, generator)
            h0 = torch.addr(h0, x[:, i], w0[:, i])
        return x

    def forward(
        self, sigma: float | Tensor = 0.0, validate_args: bool | None = None
    ) -> NoiseConditionalAutoregressive:
        """Returns :math:`p_\\theta(\\cdot \\mid \\sigma)` bound to ``sigma``."""
        return NoiseConditionalAutoregressive(self, self.family, sigma, validate_args)

    def extra_repr(self) -> str:
        return f"features={self.event_shape[0]}, family={self.family!r}"
