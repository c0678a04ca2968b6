r"""A masked autoregressive MLP of our own (the network inside :class:`~ncmle_prob.models.MADE`).

Every unit has a *degree*: input ``j`` has degree ``j`` (1-based) and the outputs of dimension
``i`` have degree ``i``. A hidden unit of degree ``m`` sees the units of degree ``<= m`` of the
layer below; an output of degree ``i`` sees hidden units of degree ``< i``:

.. math::

    M^{\text{hidden}}_{kj} = [m_k \ge m_j], \qquad M^{\text{out}}_{ik} = [i > m_k],

so output ``i`` depends on ``x_{<i}`` only. Hidden degrees are spread evenly over
``0..D-1`` (:func:`hidden_degrees`): the units of **degree 0 see no input, only the noise
level**, and they are the only units the outputs of dimension 1 see. Without them (degrees over
``1..D-1``, the layout of ncmle_prob 0.1 and of nflows' and Pyro's MADE) the parameters of
dimension 1 are the output layer's bias, a constant, so :math:`p(x_1 \mid \sigma)` would be
one law at every σ. Under the noisy data law :math:`q_\sigma = q * \mathcal N(0, \sigma^2 I)`
the first marginal's variance is :math:`\operatorname{Var}_q(x_1) + \sigma^2`, so such a
network cannot fit the family (and its error leaks into the later conditionals, which must
absorb the wrong first marginal). The degree-0 units are the context's own inputs, as zuko and
FlowJAX wire a conditioning variable.

The noise level enters **once**: its embedding ``e(σ)`` is mapped by one linear layer into the
first hidden pre-activation,

.. math::

    h_0 = (W_0 \odot M_0)\, x + C e(\sigma) + c, \qquad
    h_{b+1} = h_b + (W_{b,2} \odot M)\, \phi\big((W_{b,1} \odot M)\, h_b\big), \qquad
    y = (W_f \odot M_f)\, h_B + b_f

(the degree-0 rows of :math:`W_0 \odot M_0` are zero: those units are functions of σ alone),
with residual blocks (one activation per block, the last layer of each block initialised near
zero), or :math:`h_{b+1} = \phi((W_b \odot M) h_b)` with plain layers (then
:math:`h_0 \leftarrow \phi(h_0)`). ``context_every_block=True`` is the layout of the
nflows-based MADE of ncmle_prob 0.1 (σ's embedding also enters every residual block,
pre-activation blocks with two activations), kept to load its checkpoints;
``sigma_units=False`` spreads the hidden degrees over ``1..D-1`` (no degree-0 units), the layout
of both old formats, kept only to load their checkpoints with identical densities.

Masked weights :math:`W \odot M` are recomputed on every call while training or while autograd
may need their gradient; otherwise (``eval()`` under ``no_grad``, or frozen weights) they are
cached and recomputed only when the weight changes (keyed on its version counter, storage,
dtype and device). A write through ``weight.data`` bypasses the version counter: call
:meth:`MaskedLinear.clear_cache` after one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ACTIVATIONS",
    "SPLIT_MIN_WIDTH",
    "MaskedLinear",
    "MaskedMLP",
    "block_split",
    "hidden_degrees",
    "spread_degrees",
]

#: Hidden width from which the default layout's hidden layers skip their zero upper-right
#: block (:func:`block_split`): measured on one CPU core, two products beat one at
#: H >= 256 (15-20 % less forward time per layer) and lose at H = 64.
SPLIT_MIN_WIDTH = 256

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "elu": F.elu,
    "silu": F.silu,
    "gelu": F.gelu,
    "tanh": torch.tanh,
}


def hidden_degrees(features: int, hidden: int) -> Tensor:
    """Hidden degrees spread evenly over ``0..D-1``, non-decreasing:
    ``round(linspace(0, D-1, H))``.

    Degrees ``1..D-2`` get about ``(H-1)/(D-1)`` units each and the two ends half as many; the
    units of degree 0 see only the noise level (they are all that dimension 1's outputs see),
    and the last degree is ``D-1``, so dimension ``D`` sees all its predecessors even when
    ``H < D``. With ``H < D`` some middle degrees are skipped, and an output then sees only the
    predecessors up to the largest hidden degree below its own.

    Example:
        >>> hidden_degrees(3, 7)
        tensor([0, 0, 1, 1, 1, 2, 2])
        >>> hidden_degrees(1, 3)
        tensor([0, 0, 0])
    """
    return torch.linspace(0, features - 1, hidden).round().long()


def spread_degrees(features: int, hidden: int) -> Tensor:
    """Hidden degrees spread evenly over ``1..D-1`` (all 0 when ``D = 1``), non-decreasing:
    the layout without σ-only units (``sigma_units=False``), kept for old checkpoints.

    Example:
        >>> spread_degrees(5, 6)
        tensor([1, 2, 2, 3, 3, 4])
    """
    if features > 1:
        return torch.linspace(1, features - 1, hidden).round().long()
    return torch.zeros(hidden, dtype=torch.long)


def block_split(degrees: Tensor) -> int | None:
    r"""Where a hidden layer with these sorted degrees splits into two row blocks, or ``None``.

    With non-decreasing degrees and the hidden mask :math:`M_{kj} = [m_k \ge m_j]`, the
    outputs ``k < s`` see none of the inputs ``j >= s`` when ``s`` starts a new degree
    (:math:`m_{s-1} < m_s`): that block of :math:`W \odot M` is exactly zero, and

    .. math::

        y_{<s} = (W \odot M)_{<s,<s}\, h_{<s} + b_{<s}, \qquad
        y_{\ge s} = (W \odot M)_{\ge s,:}\, h + b_{\ge s}

    is the same product without the zero block (a quarter of the work; equal up to the
    summation order of the floating-point sums). Returns the degree boundary nearest the
    middle.

    Example:
        >>> block_split(torch.tensor([0, 0, 1, 1, 2, 2]))
        2
        >>> block_split(torch.tensor([3, 3, 3])) is None
        True
    """
    h = len(degrees)
    starts = [s for s in range(1, h) if int(degrees[s - 1]) < int(degrees[s])]
    if not starts or bool((degrees[1:] < degrees[:-1]).any()):
        return None
    return min(starts, key=lambda s: abs(2 * s - h))


def split_linear(h: Tensor, weight: Tensor, bias: Tensor | None, split: int | None) -> Tensor:
    """``F.linear(h, weight, bias)`` for a masked square layer whose upper-right block
    ``weight[:split, split:]`` is zero (:func:`block_split`), without multiplying that block."""
    if split is None:
        return F.linear(h, weight, bias)
    lo_b, hi_b = (None, None) if bias is None else (bias[:split], bias[split:])
    lo = F.linear(h[..., :split], weight[:split, :split], lo_b)
    return torch.cat([lo, F.linear(h, weight[split:], hi_b)], dim=-1)


class MaskedLinear(nn.Linear):
    r"""A linear layer :math:`y = x (W \odot M)^T + b` with a fixed autoregressive mask.

    ``mask[k, j] = out_degrees[k] >= in_degrees[j]`` (``>`` when ``strict``, for output
    layers). ``mask`` and ``degrees`` (the output degrees) are non-persistent buffers: they
    follow from the constructor arguments, so state dicts hold only ``weight`` and ``bias``.

    Args:
        in_degrees: degrees of the inputs, shape ``(in_features,)``.
        out_degrees: degrees of the outputs, shape ``(out_features,)``.
        strict: use ``>`` (an output layer) instead of ``>=`` (a hidden layer).
        bias: learn an additive bias.

    Example:
        >>> layer = MaskedLinear(torch.arange(1, 4), torch.arange(1, 4), strict=True)
        >>> layer.mask
        tensor([[0., 0., 0.],
                [1., 0., 0.],
                [1., 1., 0.]])
    """

    def __init__(
        self, in_degrees: Tensor, out_degrees: Tensor, *, strict: bool, bias: bool = True
    ) -> None:
        super().__init__(len(in_degrees), len(out_degrees), bias=bias)
        allowed = (
            out_degrees[:, None] > in_degrees[None, :]
            if strict
            else out_degrees[:, None] >= in_degrees[None, :]
        )
        self.register_buffer("mask", allowed.to(self.weight.dtype), persistent=False)
        self.register_buffer("degrees", out_degrees.clone(), persistent=False)
        self._cache: tuple[tuple[object, ...], Tensor] | None = None

    def masked_weight(self) -> Tensor:
        r""":math:`W \odot M`, cached outside training when no gradient can flow to ``W``."""
        w = self.weight
        if self.training or torch.is_inference_mode_enabled() or (
            w.requires_grad and torch.is_grad_enabled()
        ):
            return w * self.mask
        key = (w._version, w.data_ptr(), w.dtype, w.device, self.mask._version,
               self.mask.data_ptr())
        cache = self._cache
        if cache is None or cache[0] != key:
            cache = (key, (w * self.mask).detach())
            self._cache = cache
        return cache[1]

    def clear_cache(self) -> None:
        """Drops the cached masked weight (needed only after writing to ``weight.data``)."""
        self._cache = None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.masked_weight(), self.bias)


class _ResidualBlock(nn.Module):
    """``h + W2 φ(W1 h)`` (or the nflows layout ``h + W2 φ(W1 φ(h) + C e)``)."""

    def __init__(self, degrees: Tensor, context_features: int | None) -> None:
        super().__init__()
        self.linear_layers = nn.ModuleList(
            [MaskedLinear(degrees, degrees, strict=False) for _ in range(2)]
        )
        self.context_layer = (
            nn.Linear(context_features, len(degrees)) if context_features is not None else None
        )
        # Start as (nearly) the identity, as nflows and zuko do.
        nn.init.uniform_(self.linear_layers[1].weight, -1e-3, 1e-3)
        nn.init.uniform_(self.linear_layers[1].bias, -1e-3, 1e-3)


class _PlainBlock(nn.Module):
    """``φ(W h + b)``."""

    def __init__(self, degrees: Tensor) -> None:
        super().__init__()
        self.linear = MaskedLinear(degrees, degrees, strict=False)


class MaskedMLP(nn.Module):
    """The masked network: ``(x (N, D), context (N, C)) -> (N, D * output_multiplier)``.

    Output ``i * output_multiplier + p`` (the ``p``-th parameter of dimension ``i``) depends
    on ``x[:, :i]`` and the context only.

    Args:
        features: D.
        hidden_features: H, the width of every hidden layer.
        context_features: size of the context (σ's embedding).
        num_blocks: residual blocks (two masked layers each) or plain layers.
        output_multiplier: outputs per dimension.
        residual: residual blocks or plain layers.
        activation: a name of :data:`ACTIVATIONS`.
        dropout: dropout probability after each block's activation.
        context_every_block: the nflows-era layout (see the module docstring).
        sigma_units: hidden degrees over ``0..D-1``, so that units of degree 0 carry σ to
            dimension 1 (:func:`hidden_degrees`); ``False`` is the old layout
            (:func:`spread_degrees`), in which dimension 1 ignores σ.

    Example:
        >>> net = MaskedMLP(3, 8, context_features=2, num_blocks=1, output_multiplier=2)
        >>> net(torch.randn(5, 3), torch.randn(5, 2)).shape
        torch.Size([5, 6])
    """

    def __init__(
        self,
        features: int,
        hidden_features: int,
        context_features: int,
        num_blocks: int = 2,
        output_multiplier: int = 1,
        residual: bool = True,
        activation: str = "elu",
        dropout: float = 0.0,
        context_every_block: bool = False,
        sigma_units: bool = True,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.features = features
        self.output_multiplier = output_multiplier
        self.residual = residual
        self.legacy = context_every_block
        self.activation = ACTIVATIONS[activation]
        self.dropout = float(dropout)
        inputs = torch.arange(1, features + 1)
        self.sigma_units = bool(sigma_units)
        hidden = (hidden_degrees if self.sigma_units else spread_degrees)(
            features, hidden_features
        )
        # The nflows layout has a bias in the first layer; ours folds it into the context's.
        self.initial_layer = MaskedLinear(inputs, hidden, strict=False, bias=self.legacy)
        self.context_layer = nn.Linear(context_features, hidden_features)
        block_context = context_features if self.legacy else None
        self.blocks = nn.ModuleList(
            [
                _ResidualBlock(hidden, block_context) if residual else _PlainBlock(hidden)
                for _ in range(num_blocks)
            ]
        )
        outputs = inputs.repeat_interleave(output_multiplier)
        self.final_layer = MaskedLinear(hidden, outputs, strict=True)
        # The hidden layers of the default layout skip their zero block from SPLIT_MIN_WIDTH
        # on; the old layouts keep one product per layer (their checkpoints' log densities
        # stay bit for bit those of the code that wrote them).
        self.split: int | None = None
        if self.sigma_units and not self.legacy and hidden_features >= SPLIT_MIN_WIDTH:
            self.split = block_split(hidden)

    def first_preactivation(self, x: Tensor, context: Tensor) -> Tensor:
        """:math:`h_0` before any activation: ``(N, H)``."""
        w0 = self.initial_layer.masked_weight()
        if self.legacy:  # nflows' operation order (bitwise equal)
            return F.linear(x, w0, self.initial_layer.bias) + self.activation(
                self.context_layer(context)
            )
        return torch.addmm(self.context_layer(context), x, w0.t())

    def trunk(
        self,
        h: Tensor,
        weights: list[tuple[Tensor, Tensor | None]],
        contexts: list[Tensor | None],
    ) -> Tensor:
        """The hidden layers from :math:`h_0` (pre-activation) to the last hidden state.

        ``weights[b]`` are block ``b``'s masked weights (``(W1, W2)``, or ``(W, None)`` for a
        plain layer) and ``contexts[b]`` its context term (nflows layout only).
        """
        act, p, training, split = self.activation, self.dropout, self.training, self.split
        if not self.residual:
            h = act(h)
        for block, (w1, w2), ctx in zip(self.blocks, weights, contexts):
            if w2 is None:
                h = act(split_linear(h, w1, block.linear.bias, split))
                if p:
                    h = F.dropout(h, p, training)
                continue
            l1, l2 = block.linear_layers
            if ctx is not None:  # nflows layout, its operation order (bitwise equal)
                t = act(F.linear(act(h), w1, l1.bias) + ctx)
            else:
                t = act(split_linear(h, w1, l1.bias, split))
            if p:
                t = F.dropout(t, p, training)
            h = h + split_linear(t, w2, l2.bias, split)
        return h

    def block_weights(self) -> list[tuple[Tensor, Tensor | None]]:
        """Every block's masked weights, for :meth:`trunk`."""
        out: list[tuple[Tensor, Tensor | None]] = []
        for block in self.blocks:
            if isinstance(block, _ResidualBlock):
                l1, l2 = block.linear_layers
                out.append((l1.masked_weight(), l2.masked_weight()))
            else:
                out.append((block.linear.masked_weight(), None))
        return out

    def block_contexts(self, context: Tensor) -> list[Tensor | None]:
        """Every block's context term (nflows layout; ``None`` in ours)."""
        if not self.legacy:
            return [None] * len(self.blocks)
        return [
            block.context_layer(context) if isinstance(block, _ResidualBlock) else None
            for block in self.blocks
        ]

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        h = self.first_preactivation(x, context)
        h = self.trunk(h, self.block_weights(), self.block_contexts(context))
        return self.final_layer(h)
